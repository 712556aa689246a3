//! WavWriter and read_wav against hound's own reader, on real files.

use std::path::{Path, PathBuf};

use gradtone_sound::wav::{read_wav, to_pcm16};
use gradtone_sound::{SampleFormat, SoundError, WavWriter};

/// A fresh per-test directory under the system temp dir (no tempfile crate: kept to hound and
/// thiserror).
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradtone-sound-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// Test signal: a ramp through and beyond [-1, 1], with a NaN and infinities.
fn signal() -> Vec<f32> {
    let mut s: Vec<f32> = (0..2000).map(|i| (i as f32 - 1000.0) / 900.0).collect();
    s.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, 1.0, -1.0]);
    s
}

fn hound_i16(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = r.spec();
    let s = r
        .into_samples::<i16>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (spec, s)
}

#[test]
fn pcm16_round_trip() -> Result<(), SoundError> {
    let dir = scratch("pcm16");
    let path = dir.join("a.wav");
    let input = signal();
    let mut sink = WavWriter::create(&path, 22_050, 2, SampleFormat::Pcm16)?;
    sink.write(&input)?;
    assert_eq!(
        (sink.samples_written(), sink.frames_written()),
        (2006, 1003)
    );
    sink.finalize()?;

    let (spec, raw) = hound_i16(&path);
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 22_050, 16)
    );
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    assert_eq!(raw.len(), input.len());
    for (i, (&x, &y)) in input.iter().zip(&raw).enumerate() {
        assert_eq!(y, to_pcm16(x), "sample {i} ({x})");
        if x.is_finite() {
            let want = (f64::from(x.clamp(-1.0, 1.0)) * 32767.0).clamp(-32768.0, 32767.0);
            assert!((f64::from(y) - want).abs() <= 1.0, "sample {i}: {x} → {y}");
        }
    }
    assert_eq!(&raw[2000..], [0, 32767, -32768, 0, 32767, -32767]);

    // read_wav scales back within half an LSB.
    let (spec2, back) = read_wav(&path)?;
    assert_eq!(spec2, spec);
    for (&x, &y) in input.iter().zip(&back) {
        if x.is_finite() {
            assert!(
                (x.clamp(-1.0, 1.0) - y).abs() <= 0.5 / 32767.0 + 1e-7,
                "{x} vs {y}"
            );
        }
        assert!((-1.0..=1.0).contains(&y));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn float32_round_trip_is_exact() -> Result<(), SoundError> {
    let dir = scratch("float32");
    let path = dir.join("f.wav");
    let input = signal();
    let mut sink = WavWriter::create(&path, 44_100, 1, SampleFormat::Float32)?;
    sink.write(&input[..1000])?;
    sink.write(&input[1000..])?;
    sink.finalize()?;

    let r = hound::WavReader::open(&path).map_err(|source| SoundError::Wav {
        path: path.clone(),
        source,
    })?;
    assert_eq!(
        (r.spec().sample_format, r.spec().bits_per_sample),
        (hound::SampleFormat::Float, 32)
    );
    let raw: Vec<f32> = r
        .into_samples::<f32>()
        .collect::<Result<_, _>>()
        .map_err(|source| SoundError::Wav {
            path: path.clone(),
            source,
        })?;
    let expected: Vec<f32> = input
        .iter()
        .map(|&x| if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) })
        .collect();
    // Bit-exact (0.0 vs -0.0 aside, which compare equal).
    assert_eq!(raw, expected);
    assert_eq!(read_wav(&path)?.1, expected);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn flushed_file_is_playable_while_sink_is_still_open() -> Result<(), SoundError> {
    let dir = scratch("flush");
    let path = dir.join("live.wav");
    let mut sink = WavWriter::create(&path, 44_100, 1, SampleFormat::Pcm16)?;
    sink.write(&vec![0.25; 1000])?;
    sink.flush()?;
    // More samples after the flush stay in the write buffer: as if the process were killed now.
    sink.write(&[0.5; 100])?;
    let (spec, on_disk) = hound_i16(&path);
    assert_eq!(spec.sample_rate, 44_100);
    assert_eq!(
        on_disk.len(),
        1000,
        "header counts exactly what was flushed"
    );
    assert!(on_disk.iter().all(|&s| s == to_pcm16(0.25)));
    assert_eq!(sink.samples_written(), 1100);

    // Automatic flushes: by default at least every 0.5 s of audio, without calling flush().
    for _ in 0..10 {
        sink.write(&[0.0; 4410])?;
    }
    let (_, on_disk) = hound_i16(&path);
    assert!(
        on_disk.len() as u64 >= sink.samples_written() - 22_050,
        "{} on disk of {} written",
        on_disk.len(),
        sink.samples_written()
    );
    // Dropping without finalize still leaves a complete file (hound finalizes on drop).
    drop(sink);
    assert_eq!(hound_i16(&path).1.len(), 1100 + 44_100);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn flush_every_is_configurable() -> Result<(), SoundError> {
    let dir = scratch("flush-every");
    let path = dir.join("s.wav");
    let mut sink = WavWriter::create(&path, 8000, 2, SampleFormat::Pcm16)?.with_flush_every(100);
    assert!(
        !path.exists(),
        "nothing at the path before the first samples"
    );
    sink.write(&[0.1; 2])?;
    assert_eq!(
        hound_i16(&path).1.len(),
        2,
        "the first samples: in place, header current"
    );
    sink.write(&[0.1; 2 * 99])?;
    assert_eq!(hound_i16(&path).1.len(), 2, "99 frames more: not yet");
    sink.write(&[0.1; 2])?;
    assert_eq!(hound_i16(&path).1.len(), 202, "100 frames: flushed");
    sink.finalize()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn bad_calls_are_errors_naming_the_path() -> Result<(), SoundError> {
    let dir = scratch("errors");
    let missing = dir.join("no-such-dir").join("out.wav");
    let err = WavWriter::create(&missing, 44_100, 1, SampleFormat::Pcm16)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains(&missing.display().to_string()), "{err:?}");

    let path = dir.join("st.wav");
    let msg = WavWriter::create(&path, 44_100, 0, SampleFormat::Pcm16)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("channels"), "{msg:?}");

    let mut sink = WavWriter::create(&path, 44_100, 2, SampleFormat::Float32)?;
    let msg = sink
        .write(&[0.0; 3])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.contains("st.wav") && msg.contains("whole number"),
        "{msg:?}"
    );
    assert_eq!(sink.samples_written(), 0, "a refused write writes nothing");
    sink.finalize()?;

    let msg = read_wav(&dir.join("absent.wav"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("absent.wav"), "{msg:?}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// An existing file at the path is replaced only by the first samples: a sink dropped or
/// discarded before them leaves it as it was, and no temporary file behind.
#[test]
fn an_existing_file_is_replaced_only_by_samples() -> Result<(), SoundError> {
    let dir = scratch("replace");
    let path = dir.join("o.wav");
    std::fs::write(&path, b"the user's file").expect("write");
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    drop(WavWriter::create(&path, 8000, 1, SampleFormat::Pcm16)?);
    WavWriter::create(&path, 8000, 1, SampleFormat::Pcm16)?.discard();
    assert_eq!(std::fs::read(&path).expect("read"), b"the user's file");
    assert_eq!(listing(), ["o.wav"]);
    let mut sink = WavWriter::create(&path, 8000, 1, SampleFormat::Pcm16)?;
    assert_eq!(listing().len(), 2, "written beside the path");
    sink.write(&[0.25; 10])?;
    // Killed now, the path would hold a playable WAV of those samples.
    assert_eq!(hound_i16(&path).1.len(), 10);
    sink.write(&[0.25; 10])?;
    sink.finalize()?;
    assert_eq!(hound_i16(&path).1.len(), 20);
    assert_eq!(listing(), ["o.wav"]);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
