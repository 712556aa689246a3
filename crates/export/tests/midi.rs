//! MIDI round trips: write with `MidiWriter`, read back with midly, check what a DAW would see.

use std::path::{Path, PathBuf};

use gradtone_export::midi::{
    ALARM_CHANNEL, ALARM_KEY_NAN, ALARM_KEY_NEG_INF, ALARM_KEY_POS_INF, AUTO_HIGH, AUTO_LOW,
};
use gradtone_export::{ExportError, MidiOptions, MidiWriter, PitchMap};
use gradtone_frame::Frame;
use midly::{MetaMessage, MidiMessage, Smf, TrackEventKind};

/// A fresh folder for one test.
fn tmp_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gradtone-export-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One note as read back: absolute start tick, end tick, channel, key, velocity.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Note {
    start: u64,
    end: u64,
    channel: u8,
    key: u8,
    vel: u8,
}

/// Per track: name, notes, meta events with their absolute ticks.
struct TrackView {
    name: String,
    notes: Vec<Note>,
    metas: Vec<(u64, String)>,
    end: u64,
}

/// The file's header, its first tempo and its tracks.
fn read(path: &Path) -> (midly::Header, Option<u32>, Vec<TrackView>) {
    let bytes = std::fs::read(path).unwrap();
    let parsed = Smf::parse(&bytes).unwrap();
    let tempo = parsed.tracks[0].iter().find_map(|e| match e.kind {
        TrackEventKind::Meta(MetaMessage::Tempo(t)) => Some(t.as_int()),
        _ => None,
    });
    let mut views = Vec::new();
    for track in &parsed.tracks {
        let mut now = 0u64;
        let mut name = String::new();
        let mut open: Vec<(u64, u8, u8, u8)> = Vec::new();
        let mut notes = Vec::new();
        let mut metas = Vec::new();
        for e in track {
            now += u64::from(e.delta.as_int());
            match e.kind {
                TrackEventKind::Meta(MetaMessage::TrackName(n)) => {
                    name = String::from_utf8_lossy(n).into_owned();
                }
                TrackEventKind::Meta(MetaMessage::Marker(t)) => {
                    metas.push((now, String::from_utf8_lossy(t).into_owned()));
                }
                TrackEventKind::Midi { channel, message } => match message {
                    MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                        open.push((now, channel.as_int(), key.as_int(), vel.as_int()));
                    }
                    MidiMessage::NoteOff { key, .. } | MidiMessage::NoteOn { key, .. } => {
                        let i = open
                            .iter()
                            .position(|o| o.1 == channel.as_int() && o.2 == key.as_int())
                            .expect("note-off without note-on");
                        let (start, channel, key, vel) = open.remove(i);
                        notes.push(Note {
                            start,
                            end: now,
                            channel,
                            key,
                            vel,
                        });
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        assert!(
            open.is_empty(),
            "track {name}: notes left hanging: {open:?}"
        );
        notes.sort_by_key(|n| (n.start, n.key));
        views.push(TrackView {
            name,
            notes,
            metas,
            end: now,
        });
    }
    (parsed.header, tempo, views)
}

#[test]
fn round_trip_tracks_names_pitches_and_alarms() {
    let dir = tmp_dir("round-trip");
    let path = dir.join("run.mid");
    let voices = ["conv1", "conv2", "fc1"];
    let tps = 96u16;
    let options = MidiOptions {
        ticks_per_step: tps,
        step_seconds: 0.25,
        pitch: PitchMap::Fixed { reference: 1.0 },
    };
    let mut w = MidiWriter::create(&path, &voices, options).unwrap();
    // conv1 walks octaves: 0.25 → 36, 0.5 → 48, 1 → 60, 2 → 72, 4 → 84, 8 → 96.
    let conv1 = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0];
    for (row, &c1) in conv1.iter().enumerate() {
        // Steps are sparse (every 10th) on purpose: time follows frames, not step numbers.
        let mut f = Frame::new(100 + 10 * row as u64).with_value("conv1", c1);
        f = match row {
            2 => f.with_value("conv2", f64::NAN), // alarm, rest on conv2
            4 => f,                               // conv2 missing: rest, no alarm
            _ => f.with_value("conv2", 1.5),      // 60 + 12·log2(1.5) = 67.02 → 67
        };
        f = f.with_value("fc1", 1e-12); // clamped to 24
        f = f.with_value(
            "not-a-voice",
            if row == 5 { f64::NEG_INFINITY } else { 1.0 },
        );
        f = f.with_loss("loss", if row == 3 { f64::INFINITY } else { 2.3 });
        w.push(&f);
    }
    assert!(!path.exists(), "nothing at the final path before finish");
    let summary = w.finish().unwrap();
    assert_eq!(summary.frames, 6);
    assert_eq!(summary.tracks, 5);
    assert_eq!(summary.notes, 6 + 4 + 6);
    assert_eq!(summary.alarms, 3);
    assert_eq!(summary.bytes, std::fs::metadata(&path).unwrap().len());

    let (header, tempo, tracks) = read(&path);
    assert_eq!(header.format, midly::Format::Parallel);
    assert_eq!(
        header.timing,
        midly::Timing::Metrical(midly::num::u15::new(4 * tps))
    );
    let names: Vec<_> = tracks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["gradtone", "conv1", "conv2", "fc1", "alarm"]);
    // Tempo: a step (sixteenth) of 0.25 s is a quarter of 1 s.
    assert_eq!(tempo, Some(1_000_000));
    for t in &tracks {
        assert_eq!(
            t.end,
            6 * u64::from(tps),
            "track {} ends with the last frame",
            t.name
        );
    }

    let t = u64::from(tps);
    let keys = |i: usize| tracks[i].notes.iter().map(|n| n.key).collect::<Vec<_>>();
    let starts = |i: usize| {
        tracks[i]
            .notes
            .iter()
            .map(|n| n.start / t)
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(1), [36, 48, 60, 72, 84, 96]);
    assert_eq!(starts(1), [0, 1, 2, 3, 4, 5]);
    assert!(tracks[1].notes.iter().all(|n| n.end == n.start + t));
    assert_eq!(keys(2), [67, 67, 67, 67]);
    assert_eq!(
        starts(2),
        [0, 1, 3, 5],
        "rests at the NaN (2) and the missing value (4)"
    );
    assert_eq!(keys(3), [24; 6]);
    let voice_channels: Vec<u8> = (1..=3).map(|i| tracks[i].notes[0].channel).collect();
    assert_eq!(voice_channels, [0, 1, 2]);

    // Velocity: relative to the frame's loudest voice (conv1 = 8 at row 5 → 127;
    // conv2 = 1.5 there is −14.5 dB → 127·(1 − 14.5/48) = 88.6 → 89).
    let row5 = |i: usize| {
        tracks[i]
            .notes
            .iter()
            .find(|n| n.start == 5 * t)
            .unwrap()
            .vel
    };
    assert_eq!(row5(1), 127);
    assert_eq!(row5(2), 89);
    assert_eq!(row5(3), 1, "1e-12 is far below the 48 dB range");

    // Alarms: GM drums, at the rows with a non-finite number anywhere in the frame.
    let alarm = &tracks[4];
    let got: Vec<(u64, u8)> = alarm.notes.iter().map(|n| (n.start / t, n.key)).collect();
    assert_eq!(
        got,
        [
            (2, ALARM_KEY_NAN),
            (3, ALARM_KEY_POS_INF),
            (5, ALARM_KEY_NEG_INF)
        ]
    );
    assert!(alarm.notes.iter().all(|n| n.channel == ALARM_CHANNEL));
    let markers: Vec<(u64, &str)> = tracks[0]
        .metas
        .iter()
        .map(|(at, s)| (at / t, s.as_str()))
        .collect();
    assert_eq!(
        markers,
        [
            (2, "step 120: conv2=NaN"),
            (3, "step 130: loss=inf"),
            (5, "step 150: not-a-voice=-inf"),
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn auto_range_spans_the_files_log_range() {
    let dir = tmp_dir("auto");
    let path = dir.join("auto.mid");
    let options = MidiOptions {
        pitch: PitchMap::Auto,
        ..MidiOptions::default()
    };
    let mut w = MidiWriter::create(&path, &["a", "b"], options).unwrap();
    // log2 range 1e-3 .. 1e3 ≈ −9.97 .. 9.97: 1.0 sits in the middle (66).
    for (a, b) in [(1e-3, 1.0), (1e3, 0.0), (f64::NAN, 1.0)] {
        w.push(&Frame::new(0).with_value("a", a).with_value("b", b));
    }
    w.finish().unwrap();
    let (_, _, tracks) = read(&path);
    let keys = |i: usize| tracks[i].notes.iter().map(|n| n.key).collect::<Vec<_>>();
    assert_eq!(keys(1), [AUTO_LOW, AUTO_HIGH]);
    assert_eq!(keys(2), [66, AUTO_LOW, 66], "zero plays the lowest note");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn memory_is_four_bytes_per_voice_per_frame() {
    let dir = tmp_dir("memory");
    let voices = ["l0", "l1", "l2", "l3", "l4", "l5", "l6", "l7"];
    let mut w = MidiWriter::create(dir.join("m.mid"), &voices, MidiOptions::default()).unwrap();
    let frame = voices
        .iter()
        .fold(Frame::new(0), |f, v| f.with_value(*v, 0.5));
    for _ in 0..10_000 {
        w.push(&frame);
    }
    let per_frame = w.memory_bytes() as f64 / w.frames() as f64;
    println!("memory per frame with 8 voices: {per_frame} bytes");
    assert_eq!(per_frame, 32.0);
    let nan = Frame::new(1).with_value("l0", f64::NAN);
    w.push(&nan);
    let with_alarm = w.memory_bytes() - 32 * 10_001;
    println!("an alarm adds {with_alarm} bytes");
    assert!(
        (20..200).contains(&with_alarm),
        "alarm costs {with_alarm} bytes"
    );
    let s = w.finish().unwrap();
    println!(
        "file: {} bytes for {} notes ({:.2} bytes/note)",
        s.bytes,
        s.notes,
        s.bytes as f64 / s.notes as f64
    );
    assert_eq!(s.notes, 80_000, "the NaN frame is rests only");
    println!(
        "while finishing: {} bytes per MIDI event, 2 events per note",
        size_of::<midly::TrackEvent<'static>>()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn atomic_finish_and_drop_leave_no_partial_file() {
    let dir = tmp_dir("atomic");
    let path = dir.join("run.mid");
    std::fs::write(&path, b"old").unwrap();
    let mut w = MidiWriter::create(&path, &["a"], MidiOptions::default()).unwrap();
    w.push(&Frame::new(0).with_value("a", 1.0));
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(listing().len(), 2, "a temporary file beside the old one");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"old",
        "old file untouched until finish"
    );
    drop(w);
    assert_eq!(
        listing(),
        ["run.mid"],
        "dropping removes the temporary file"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"old");

    let mut w = MidiWriter::create(&path, &["a"], MidiOptions::default()).unwrap();
    w.push(&Frame::new(0).with_value("a", 1.0));
    w.finish().unwrap();
    assert_eq!(listing(), ["run.mid"]);
    assert_eq!(&std::fs::read(&path).unwrap()[..4], b"MThd");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_are_named() {
    let dir = tmp_dir("bad");
    let missing = dir.join("no-such-folder").join("x.mid");
    let e = MidiWriter::create(&missing, &["a"], MidiOptions::default()).unwrap_err();
    assert!(matches!(e, ExportError::Io { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("no-such-folder") && msg.contains("writable"),
        "{msg}"
    );

    let p = dir.join("x.mid");
    let err = |voices: &[&str], o: MidiOptions| {
        MidiWriter::create(&p, voices, o).unwrap_err().to_string()
    };
    let d = MidiOptions::default();
    assert!(err(&[], d).contains("no voices"));
    assert!(err(&["a", "a"], d).contains("repeated"));
    assert!(err(&["alarm"], d).contains("\"alarm\""));
    let tps = MidiOptions {
        ticks_per_step: 0,
        ..d
    };
    assert!(err(&["a"], tps).contains("`ticks_per_step` = 0"));
    let slow = MidiOptions {
        step_seconds: 5.0,
        ..d
    };
    assert!(err(&["a"], slow).contains("`step_seconds` = 5"));
    let nan_ref = MidiOptions {
        pitch: PitchMap::Fixed {
            reference: f64::NAN,
        },
        ..d
    };
    assert!(err(&["a"], nan_ref).contains("pitch.reference"));
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "no temporary files left by refused calls"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn long_silences_and_many_voices_stay_valid() {
    let dir = tmp_dir("long");
    let path = dir.join("long.mid");
    let voices: Vec<String> = (0..17).map(|i| format!("v{i}")).collect();
    let refs: Vec<&str> = voices.iter().map(String::as_str).collect();
    let options = MidiOptions {
        ticks_per_step: 8191,
        ..MidiOptions::default()
    };
    let mut w = MidiWriter::create(&path, &refs, options).unwrap();
    // 40 000 frames × 8191 ticks = 3.3e8 ticks between the two alarms: more than a 28-bit delta.
    let frames = 40_000u64;
    for row in 0..frames {
        let alarm = row == 0 || row == frames - 1;
        let mut f = Frame::new(row).with_loss("loss", if alarm { f64::NAN } else { 1.0 });
        if row == 0 {
            f = refs.iter().fold(f, |f, v| f.with_value(*v, 1.0));
        }
        w.push(&f);
    }
    w.finish().unwrap();
    let (_, _, tracks) = read(&path);
    assert_eq!(tracks.len(), 19);
    let starts: Vec<u64> = tracks[18].notes.iter().map(|n| n.start).collect();
    assert_eq!(starts, [0, (frames - 1) * 8191]);
    let channels: Vec<u8> = tracks[1..=17].iter().map(|t| t.notes[0].channel).collect();
    assert_eq!(
        channels,
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 0, 1],
        "voices never use the drum channel"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The diverging PyTorch reference run (SGD, lr 1.0): NaN from step 6 on must ring the alarm.
#[test]
fn real_diverging_run_rings_the_alarm() {
    let Some(dir) = gradtone_testkit::shared(
        "real_diverging_run_rings_the_alarm",
        "reference/pytorch/trajectories",
    ) else {
        return;
    };
    let frames = gradtone_csv::read_frames(&dir.join("sgd_lr1.0_bs10_seed1.csv")).unwrap();
    let voices: Vec<&str> = frames[0].values.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(voices, ["conv1", "conv2", "fc1", "fc2"]);
    let out = tmp_dir("real");
    let path = out.join("sgd.mid");
    let mut w = MidiWriter::create(&path, &voices, MidiOptions::default()).unwrap();
    frames.iter().for_each(|f| w.push(f));
    let s = w.finish().unwrap();
    let finite = frames
        .iter()
        .flat_map(|f| &f.values)
        .filter(|n| n.value.is_finite())
        .count() as u64;
    let bad_rows: Vec<u64> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.values
                .iter()
                .chain(&f.losses)
                .any(|n| !n.value.is_finite())
        })
        .map(|(i, _)| i as u64)
        .collect();
    println!(
        "{} frames: {} notes, {} alarms (first at frame {:?}), {} bytes",
        s.frames,
        s.notes,
        s.alarms,
        bad_rows.first(),
        s.bytes
    );
    assert_eq!(s.notes, finite);
    assert_eq!(s.alarms, bad_rows.len() as u64);
    assert!(s.alarms > 100, "the run diverges early");
    let (_, _, tracks) = read(&path);
    let tps = 120;
    let alarm_rows: Vec<u64> = tracks[5].notes.iter().map(|n| n.start / tps).collect();
    assert_eq!(alarm_rows, bad_rows);
    std::fs::remove_dir_all(&out).unwrap();
}
