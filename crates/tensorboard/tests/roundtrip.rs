//! Our writer → our reader, the TFRecord framing against TensorBoard's own bytes, and damage.

mod common;

use std::time::Duration;

use common::{sine, temp_dir};
use gradtone_sound::analysis::{dominant_frequency, goertzel_power};
use gradtone_tensorboard::proto::{Event, Value};
use gradtone_tensorboard::{
    EventReader, EventWriter, TbError, frame_record, masked_crc32c, read_scalars,
};
use prost::Message;

#[test]
fn masked_crc_matches_known_vectors() {
    // CRC32C("123456789") = 0xe3069283 is the published check value; the masked values were
    // computed with TensorBoard 2.21's `tensorflow_stub.pywrap_tensorflow.masked_crc32c`.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
    assert_eq!(masked_crc32c(b""), 0xa282_ead8);
    assert_eq!(masked_crc32c(b"hello"), 0x191c_1fbb);
    // TensorBoard's `RecordWriter().write(b"hello")`, byte for byte.
    let mut rec = Vec::new();
    frame_record(b"hello", &mut rec);
    assert_eq!(hex(&rec), "0500000000000000eab2043e68656c6c6fbb1f1c19");
}

#[test]
fn event_bytes_match_tensorboards_protobuf() {
    // `event_pb2.Event(wall_time=1.5, step=7, file_version="brain.Event:2").SerializeToString()`
    // from TensorBoard 2.21: checks the field numbers and wire types of Event.
    let e = Event {
        wall_time: 1.5,
        step: 7,
        file_version: Some("brain.Event:2".into()),
        summary: None,
    };
    assert_eq!(
        hex(&e.encode_to_vec()),
        "09000000000000f83f10071a0d627261696e2e4576656e743a32"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes 50 steps of three tags plus one audio clip; returns the file.
fn sample_file(test: &str) -> std::path::PathBuf {
    let dir = temp_dir(test).join("run");
    let mut w = EventWriter::create(&dir).expect("create");
    for step in 0..50u64 {
        let t = 1_700_000_000.0 + step as f64;
        w.add_scalar("grad/conv1", step, 0.1 * step as f32, t)
            .unwrap();
        w.add_scalar("grad/fc1", step, 1.0 / (1.0 + step as f32), t)
            .unwrap();
        w.add_scalar("train/loss", step, 2.3 - 0.04 * step as f32, t)
            .unwrap();
    }
    w.add_audio("sound/run", 49, &sine(440.0, 0.5, 8000, 8000), 8000, 1, 1.0)
        .unwrap();
    w.finish().expect("finish")
}

#[test]
fn scalars_round_trip() {
    let file = sample_file("scalars");
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("events.out.tfevents.") && name.ends_with(".gradtone"),
        "{name}"
    );

    let events: Vec<Event> = EventReader::open(&file)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(events.len(), 1 + 150 + 1);
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    assert_eq!(events[3].step, 0);
    assert_eq!(events[3].wall_time, 1_700_000_000.0);

    // Patterns order the tags: `train/*` first, then grad/* by first appearance.
    let s = read_scalars(file.parent().unwrap(), &["train/*", "grad/*"]).unwrap();
    assert_eq!(s.tags, ["train/loss", "grad/conv1", "grad/fc1"]);
    assert_eq!(s.points.len(), 50);
    let conv = s.series("grad/conv1");
    assert_eq!(conv[7], (7, f64::from(0.7f32)));
    assert_eq!(
        s.points[&10][2],
        ("grad/fc1".to_owned(), f64::from(1.0f32 / 11.0))
    );

    let frames = s.to_frames();
    assert_eq!(frames.len(), 50);
    assert_eq!(frames[20].step, 20);
    assert_eq!(frames[20].loss(), Some(f64::from(2.3f32 - 0.8)));
    let names: Vec<_> = frames[20].values.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["grad/conv1", "grad/fc1"]);

    // Only matching tags; the audio tag is no scalar even with `*`.
    assert_eq!(read_scalars(&file, &["*fc*"]).unwrap().tags, ["grad/fc1"]);
    assert_eq!(read_scalars(&file, &[]).unwrap().tags.len(), 3);
    assert!(read_scalars(&file, &["nope"]).unwrap().points.is_empty());
}

#[test]
fn audio_round_trip_decodes_as_wav() {
    let dir = temp_dir("audio");
    let mut w = EventWriter::create(&dir).unwrap();
    let rate = 22_050;
    // Stereo: 440 Hz left, 660 Hz right, 0.5 s; one sample out of range and one NaN.
    let (l, r) = (
        sine(440.0, 0.5, rate, 11_025),
        sine(660.0, 0.25, rate, 11_025),
    );
    let mut inter: Vec<f32> = l.iter().zip(&r).flat_map(|(a, b)| [*a, *b]).collect();
    inter[0] = 3.0;
    inter[1] = f32::NAN;
    w.add_audio("sound/clip", 5, &inter, rate, 2, 2.0).unwrap();
    let file = w.finish().unwrap();

    let audio = EventReader::open(&file)
        .unwrap()
        .filter_map(|e| e.unwrap().summary)
        .flat_map(|s| s.value)
        .find_map(|v| match v.value {
            Some(Value::Audio(a)) => Some((v.tag, a)),
            _ => None,
        })
        .expect("an audio value");
    assert_eq!(audio.0, "sound/clip");
    let a = audio.1;
    assert_eq!(
        (a.sample_rate, a.num_channels, a.length_frames),
        (22_050.0, 2, 11_025)
    );
    assert_eq!(a.content_type, "audio/wav");
    assert_eq!(a.encoded_audio_string.len(), 44 + 11_025 * 2 * 2);

    let mut wav = hound::WavReader::new(a.encoded_audio_string.as_slice()).unwrap();
    let spec = wav.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, rate, 16)
    );
    let pcm: Vec<i16> = wav.samples::<i16>().collect::<Result<_, _>>().unwrap();
    assert_eq!(pcm.len(), 22_050);
    assert_eq!(
        (pcm[0], pcm[1]),
        (i16::MAX, 0),
        "clipped, and NaN is silence"
    );
    let chan = |c: usize| -> Vec<f32> {
        pcm.iter()
            .skip(c)
            .step_by(2)
            .map(|&s| f32::from(s) / 32767.0)
            .collect()
    };
    let (left, right) = (chan(0), chan(1));
    let fl = dominant_frequency(&left, rate, 100.0, 2000.0);
    let fr = dominant_frequency(&right, rate, 100.0, 2000.0);
    assert!((fl - 440.0).abs() < 1.0, "left {fl} Hz");
    assert!((fr - 660.0).abs() < 1.0, "right {fr} Hz");
    let pl = goertzel_power(&left, rate, 440.0);
    assert!(
        (pl - 0.0625).abs() < 0.002,
        "left power {pl} (amplitude 0.5 → 0.0625)"
    );
    assert!(goertzel_power(&left, rate, 660.0) < 1e-4, "no crosstalk");
}

/// The clip's 16-bit codes are the WAV file's, sample for sample: one conversion for both
/// (they used to round differently and differ by 1 LSB).
#[test]
fn audio_clip_holds_the_same_codes_as_the_wav_file() {
    use gradtone_sound::wav::{SampleFormat, WavWriter, to_pcm16};
    let dir = temp_dir("same-codes");
    let mut rng = common::SplitMix(7);
    // Random samples over the range, beyond it, NaN, and the one exact tie (±0.5).
    let mut samples: Vec<f32> = (0..20_000)
        .map(|_| ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.4 - 1.2) as f32)
        .collect();
    samples.extend([0.5, -0.5, 1.0, -1.0, -1.5, 1.5, f32::NAN, 0.0]);
    // The old f32 `.round()` conversion differs on some of these: the test can tell the two apart.
    let old = |s: f32| (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16;
    assert!(samples.iter().any(|&s| old(s) != to_pcm16(s)));

    let wav_path = dir.join("clip.wav");
    let mut wav = WavWriter::create(&wav_path, 8000, 2, SampleFormat::Pcm16).unwrap();
    wav.write(&samples).unwrap();
    wav.finalize().unwrap();
    let from_wav: Vec<i16> = hound::WavReader::open(&wav_path)
        .unwrap()
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .unwrap();

    let mut w = EventWriter::create(&dir).unwrap();
    w.add_audio("sound/clip", 1, &samples, 8000, 2, 1.0)
        .unwrap();
    let file = w.finish().unwrap();
    let clip = EventReader::open(&file)
        .unwrap()
        .filter_map(|e| e.unwrap().summary)
        .flat_map(|s| s.value)
        .find_map(|v| match v.value {
            Some(Value::Audio(a)) => Some(a.encoded_audio_string),
            _ => None,
        })
        .expect("an audio value");
    let from_tb: Vec<i16> = hound::WavReader::new(clip.as_slice())
        .unwrap()
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(from_tb.len(), samples.len());
    assert!(
        from_tb == from_wav,
        "the clip's codes differ from the WAV file's"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flushing_follows_the_interval() {
    let dir = temp_dir("flush");
    let mut lazy = EventWriter::create(dir.join("lazy"))
        .unwrap()
        .with_flush_interval(Duration::from_secs(3600));
    let header = std::fs::metadata(lazy.path()).unwrap().len();
    assert!(header > 16, "the file-version record is flushed at once");
    lazy.add_scalar("a", 1, 1.0, 0.0).unwrap();
    assert_eq!(
        std::fs::metadata(lazy.path()).unwrap().len(),
        header,
        "still buffered"
    );
    lazy.flush().unwrap();
    assert!(std::fs::metadata(lazy.path()).unwrap().len() > header);

    let mut eager = EventWriter::create(dir.join("eager"))
        .unwrap()
        .with_flush_interval(Duration::ZERO);
    eager.add_scalar("a", 1, 1.0, 0.0).unwrap();
    let n = read_scalars(eager.path(), &[]).unwrap().points.len();
    assert_eq!(n, 1, "visible without flush()");
}

#[test]
fn two_writers_in_one_folder_get_two_files() {
    let dir = temp_dir("twice");
    let a = EventWriter::create(&dir).unwrap();
    let b = EventWriter::create(&dir).unwrap();
    assert_ne!(a.path(), b.path());
    let (pa, pb) = (a.finish().unwrap(), b.finish().unwrap());
    assert_eq!(gradtone_tensorboard::event_files(&dir).unwrap(), {
        let mut v = vec![pa, pb];
        v.sort();
        v
    });
}

#[test]
fn bad_arguments_are_errors() {
    let dir = temp_dir("args");
    let mut w = EventWriter::create(&dir).unwrap();
    let msg = |r: Result<(), TbError>| r.unwrap_err().to_string();
    assert!(msg(w.add_scalar("", 0, 1.0, 0.0)).contains("empty tag"));
    assert!(msg(w.add_scalar("a", u64::MAX, 1.0, 0.0)).contains("int64"));
    assert!(msg(w.add_audio("s", 0, &[0.0; 3], 8000, 2, 0.0)).contains("3 samples"));
    assert!(msg(w.add_audio("s", 0, &[0.0; 4], 8000, 0, 0.0)).contains("channels (0)"));
    assert!(msg(w.add_audio("s", 0, &[], 8000, 1, 0.0)).contains("0 samples"));
    // None of them wrote anything.
    let file = w.finish().unwrap();
    assert_eq!(EventReader::open(&file).unwrap().count(), 1);

    let empty = temp_dir("empty");
    let e = read_scalars(&empty, &[]).unwrap_err();
    assert!(matches!(e, TbError::NoEventFiles { .. }), "{e}");
    let e = read_scalars(empty.join("missing"), &[]).unwrap_err();
    assert!(e.to_string().contains("cannot open the event file"), "{e}");
}

/// Byte offsets of each record's start.
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        starts.push(at);
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
        at += 12 + len + 4;
    }
    starts
}

#[test]
fn flipped_data_byte_is_reported_with_offset_and_reading_resyncs() {
    let file = sample_file("flip");
    let mut bytes = std::fs::read(&file).unwrap();
    let starts = record_starts(&bytes);
    let victim = starts[10];
    bytes[victim + 12 + 3] ^= 0x40;
    let items: Vec<_> = EventReader::new(bytes.as_slice(), "flip.tfevents").collect();
    assert_eq!(items.len(), starts.len(), "every record reported once");
    let errs: Vec<_> = items
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .collect();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, 10);
    match errs[0].1 {
        Err(TbError::BadCrc { offset, what, .. }) => {
            assert_eq!((*offset, *what), (victim as u64, "data"));
        }
        other => panic!("{other:?}"),
    }
    let text = items[10].as_ref().unwrap_err().to_string();
    assert!(
        text.contains(&format!("flip.tfevents: record at byte {victim}")),
        "{text}"
    );

    // read_scalars skips the damaged record, says where, and keeps every other step.
    let whole = read_scalars(&file, &[]).unwrap();
    std::fs::write(&file, &bytes).unwrap();
    let s = read_scalars(&file, &[]).unwrap();
    assert_eq!(s.skipped, 1);
    assert_eq!(s.problems.len(), 1);
    assert!(
        s.problems[0].contains(&format!("record at byte {victim}")),
        "{:?}",
        s.problems
    );
    let lost: usize = whole.points.values().map(Vec::len).sum::<usize>()
        - s.points.values().map(Vec::len).sum::<usize>();
    assert!(
        lost <= 3,
        "only the damaged record's scalars are missing ({lost} lost)"
    );
}

#[test]
fn flipped_length_byte_is_skipped_and_reading_resyncs() {
    let file = sample_file("flip-len");
    let mut bytes = std::fs::read(&file).unwrap();
    let starts = record_starts(&bytes);
    let victim = starts[5];
    bytes[victim] ^= 0x01;
    let items: Vec<_> = EventReader::new(bytes.as_slice(), "x").collect();
    assert_eq!(
        items.len(),
        starts.len(),
        "one error for the record, the rest read"
    );
    assert!(items[..5].iter().all(Result::is_ok));
    match &items[5] {
        Err(TbError::Damaged {
            offset,
            skipped,
            resynced: true,
            ..
        }) => assert_eq!(
            (*offset, *skipped),
            (victim as u64, (starts[6] - victim) as u64)
        ),
        other => panic!("{other:?}"),
    }
    assert!(items[6..].iter().all(Result::is_ok));
}

/// A record whose length claims 2^63 bytes, 1 GiB, or just more than the file holds: skipped,
/// reported once with its offset, and the records after it are read (no allocation by claim).
#[test]
fn a_huge_claimed_length_is_skipped_and_the_rest_is_read() {
    let file = sample_file("huge-len");
    let bytes = std::fs::read(&file).unwrap();
    let starts = record_starts(&bytes);
    let victim = starts[7];
    let good = EventReader::new(bytes.as_slice(), "x").count();
    // 200 fits in the file (its data checksum fails); the others run past its end.
    for claim in [
        1u64 << 63,
        1 << 30,
        200,
        (bytes.len() - victim + 100) as u64,
    ] {
        let mut hostile = bytes[..victim].to_vec();
        let len = claim.to_le_bytes();
        hostile.extend_from_slice(&len);
        hostile.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        hostile.extend_from_slice(&[0xAB; 40]);
        hostile.extend_from_slice(&bytes[victim..]);
        let items: Vec<_> = EventReader::new(hostile.as_slice(), "h").collect();
        let errors: Vec<_> = items.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(errors.len(), 1, "claim {claim}: {errors:?}");
        assert!(
            matches!(
                errors[0],
                TbError::Damaged { offset, resynced: true, .. }
                | TbError::BadCrc { offset, what: "data", .. } if *offset == victim as u64
            ),
            "claim {claim}: {errors:?}"
        );
        assert_eq!(
            items.len() - 1,
            good,
            "claim {claim}: every real record read"
        );
        let dir = temp_dir(&format!("huge-{claim}"));
        std::fs::write(dir.join("events.out.tfevents.1.h"), &hostile).unwrap();
        let s = read_scalars(&dir, &[]).unwrap();
        assert_eq!((s.skipped, s.points.len()), (1, 50), "claim {claim}");
        assert!(s.problems[0].contains(&format!("record at byte {victim}")));
    }
}

#[test]
fn truncation_anywhere_is_a_clean_error() {
    let file = sample_file("trunc");
    let bytes = std::fs::read(&file).unwrap();
    let starts = record_starts(&bytes);
    let last = *starts.last().unwrap();
    // Every cut inside the last record (the audio clip) and a few in the middle.
    let cuts = (last + 1..bytes.len()).chain([starts[3] + 5, starts[3] + 12, starts[3] + 20]);
    for cut in cuts {
        let items: Vec<_> = EventReader::new(&bytes[..cut], "t").collect();
        let (err, ok) = items.split_last().unwrap();
        assert!(ok.iter().all(Result::is_ok), "cut {cut}");
        match err {
            Err(TbError::Truncated {
                offset,
                needed,
                got,
                ..
            }) => {
                assert!(starts.contains(&(*offset as usize)), "cut {cut}");
                assert!(got < needed);
            }
            other => panic!("cut {cut}: {other:?}"),
        }
    }
    // A live file that ends mid-record still gives its complete steps.
    std::fs::write(&file, &bytes[..last + 30]).unwrap();
    let s = read_scalars(&file, &[]).unwrap();
    assert_eq!(s.points.len(), 50);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut rng = common::SplitMix(7);
    let garbage: Vec<u8> = (0..10_000).map(|_| rng.next_u64() as u8).collect();
    let items: Vec<_> = EventReader::new(garbage.as_slice(), "garbage").collect();
    assert_eq!(items.len(), 1);
    assert!(matches!(
        items[0],
        Err(TbError::Damaged {
            offset: 0,
            skipped: 10_000,
            resynced: false,
            ..
        })
    ));
    let dir = temp_dir("garbage");
    let path = dir.join("events.out.tfevents.0.garbage");
    std::fs::write(&path, &garbage).unwrap();
    let s = read_scalars(&dir, &[]).unwrap();
    assert_eq!((s.skipped, s.tags.len()), (1, 0));

    // A checksummed record whose data is not an Event: reported, and reading goes on.
    let mut bytes = Vec::new();
    frame_record(&[0xff, 0xff, 0xff], &mut bytes);
    frame_record(&Event::default().encode_to_vec(), &mut bytes);
    let items: Vec<_> = EventReader::new(bytes.as_slice(), "g").collect();
    assert!(matches!(items[0], Err(TbError::Decode { offset: 0, .. })));
    assert!(items[1].is_ok());
}

/// `runs/` as `SummaryWriter()` leaves it, one sub-folder per run: each run's tags become
/// `RUN/TAG`, and a pattern picks one run.
#[test]
fn a_runs_folder_reads_every_run_as_its_own_instruments() {
    let runs = temp_dir("runs").join("runs");
    for (run, scale) in [("Nov29_lr0.1", 1.0f32), ("Nov29_lr1.0", 10.0)] {
        let mut w = EventWriter::create(runs.join(run)).expect("create");
        for step in 0..5u64 {
            w.add_scalar("grad/fc1", step, scale * step as f32, 1.0)
                .unwrap();
            w.add_scalar("loss", step, 2.0, 1.0).unwrap();
        }
        w.finish().expect("finish");
    }
    let s = read_scalars(&runs, &[]).unwrap();
    assert_eq!(
        s.tags,
        [
            "Nov29_lr0.1/grad/fc1",
            "Nov29_lr0.1/loss",
            "Nov29_lr1.0/grad/fc1",
            "Nov29_lr1.0/loss"
        ]
    );
    let f = s.to_frames();
    assert_eq!(f.len(), 5);
    assert_eq!(f[3].value("Nov29_lr1.0/grad/fc1"), Some(30.0));
    assert_eq!(f[3].losses.len(), 2, "each run's loss is a loss");
    let one = read_scalars(&runs, &["Nov29_lr1.0/*"]).unwrap();
    assert_eq!(one.tags, ["Nov29_lr1.0/grad/fc1", "Nov29_lr1.0/loss"]);
    // One run's own folder reads as before: no prefix.
    let alone = read_scalars(runs.join("Nov29_lr0.1"), &[]).unwrap();
    assert_eq!(alone.tags, ["grad/fc1", "loss"]);
}
