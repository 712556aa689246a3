//! Standard MIDI File output: one track per voice, a conductor track, an alarm track.
//!
//! Layout of the written file (format 1, "parallel"):
//!
//! | track | name | content |
//! |---|---|---|
//! | 0 | `gradtone` | tempo, 4/4 time signature, a text event describing the mapping, and a *marker* at every alarm (`step 12: fc1=NaN`) |
//! | 1..=V | the voice names | one note per frame (channels 1–9, 11–16 in turn, never the drum channel) |
//! | V+1 | `alarm` | General MIDI percussion (channel 10): a cymbal at every frame with a non-finite number |
//!
//! Time: frame *k* (the k-th frame pushed, whatever its `step` number, so that sparse logging
//! does not leave silence) starts at tick `k · ticks_per_step` and lasts one step (legato). A step
//! is a sixteenth note; the tempo is chosen so that a step lasts [`MidiOptions::step_seconds`].
//!
//! Pitch ([`PitchMap`]): `Fixed` maps `note = 60 + 12·log2(|v| / reference)`, rounded and clamped
//! to [`NOTE_MIN`]..=[`NOTE_MAX`] (a factor of 2 in the norm is an octave); `Auto` spreads the
//! log range of the whole file over [`AUTO_LOW`]..=[`AUTO_HIGH`]. Velocity ([`velocity`]) is the
//! voice's loudness relative to the frame's largest value: `127 · (1 + dB/48)`, so the loudest
//! voice plays at 127 and one 48 dB (≈ 250×) smaller at 1.
//!
//! A non-finite value (NaN, ±∞) or a value a frame lacks is a rest on its voice's track; a
//! non-finite value or loss anywhere in the frame also puts a cymbal on the alarm track
//! ([`ALARM_KEY_NAN`], [`ALARM_KEY_POS_INF`], [`ALARM_KEY_NEG_INF`]) and a marker on the
//! conductor track, so a diverged run is audible and visible in any DAW.
//!
//! Memory: `midly` writes whole files, so frames are kept until [`MidiWriter::finish`], compactly:
//! **4 bytes per voice per frame** (the value as `f32`) plus ≈ 70 bytes per alarm
//! ([`MidiWriter::memory_bytes`]). `finish` then builds all events at once (2 midly events of
//! 32 bytes per note) and encodes them (≈ 8 bytes per note): 100 000 frames × 8 voices hold
//! 3.2 MB while recording and peak at ≈ 58 MB while finishing. For much longer runs, push every
//! n-th frame (a MIDI file of 100 000 steps already plays 3.5 hours at the default 8 steps/s).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use gradtone_frame::{Frame, OutputFile};
use midly::num::{u4, u7, u15, u24, u28};
use midly::{Format, Header, MetaMessage, MidiMessage, Timing, TrackEvent, TrackEventKind};

use crate::ExportError;

/// Lowest note of the fixed mapping (C1).
pub const NOTE_MIN: u8 = 24;
/// Highest note of the fixed mapping (C8).
pub const NOTE_MAX: u8 = 108;
/// Note of a value equal to the reference in the fixed mapping (middle C).
pub const NOTE_CENTER: u8 = 60;
/// Lowest note of the auto-ranged mapping (C2).
pub const AUTO_LOW: u8 = 36;
/// Highest note of the auto-ranged mapping (C7).
pub const AUTO_HIGH: u8 = 96;
/// Alarm-track key for NaN: GM Crash Cymbal 1.
pub const ALARM_KEY_NAN: u8 = 49;
/// Alarm-track key for +∞: GM Crash Cymbal 2.
pub const ALARM_KEY_POS_INF: u8 = 57;
/// Alarm-track key for −∞: GM Chinese Cymbal.
pub const ALARM_KEY_NEG_INF: u8 = 52;
/// Zero-based MIDI channel of the alarm track (GM percussion, "channel 10").
pub const ALARM_CHANNEL: u8 = 9;
/// Name of the alarm track.
pub const ALARM_TRACK: &str = "alarm";
/// Name of the conductor track.
pub const CONDUCTOR_TRACK: &str = "gradtone";

/// Dynamic range of the velocity mapping, dB: a value this much below the frame's largest plays
/// at velocity 1.
const VELOCITY_RANGE_DB: f64 = 48.0;

/// How a value becomes a MIDI note.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PitchMap {
    /// `note = 60 + 12·log2(|v| / reference)`, clamped to [`NOTE_MIN`]..=[`NOTE_MAX`]: the same
    /// norm is always the same note, across runs and files. Zero plays [`NOTE_MIN`].
    Fixed {
        /// The value that plays middle C (60); must be finite and > 0.
        reference: f64,
    },
    /// The smallest and largest non-zero |value| in the file span [`AUTO_LOW`]..=[`AUTO_HIGH`]
    /// on a log scale (zero plays [`AUTO_LOW`]; a constant run plays 60). Uses the whole range
    /// whatever the model's scale, but notes are not comparable between files.
    Auto,
}

/// Options of [`MidiWriter::create`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MidiOptions {
    /// MIDI ticks per frame, 1..=8191 (a step is a sixteenth note, and the file's ticks per
    /// quarter note, `4 × ticks_per_step`, must fit 15 bits). Default 120.
    pub ticks_per_step: u16,
    /// Duration of one frame when played, seconds, > 0 and ≤ 4 (the tempo must fit 24 bits).
    /// Default 0.125 (8 frames a second).
    pub step_seconds: f64,
    /// The pitch mapping. Default `Fixed { reference: 1.0 }`.
    pub pitch: PitchMap,
}

impl Default for MidiOptions {
    fn default() -> Self {
        MidiOptions {
            ticks_per_step: 120,
            step_seconds: 0.125,
            pitch: PitchMap::Fixed { reference: 1.0 },
        }
    }
}

/// What [`MidiWriter::finish`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MidiSummary {
    /// The file written.
    pub path: PathBuf,
    /// Frames recorded.
    pub frames: u64,
    /// Notes on the voice tracks.
    pub notes: u64,
    /// Notes on the alarm track.
    pub alarms: u64,
    /// Tracks in the file (voices + 2).
    pub tracks: usize,
    /// Size of the file, bytes.
    pub bytes: u64,
}

/// The fixed mapping's note for `value` (see [`PitchMap::Fixed`]); `None` when `value` is not finite.
///
/// ```
/// use gradtone_export::midi::fixed_note;
/// assert_eq!(fixed_note(1.0, 1.0), Some(60));
/// assert_eq!(fixed_note(2.0, 1.0), Some(72)); // twice the norm: an octave up
/// assert_eq!(fixed_note(1e-9, 1.0), Some(24)); // clamped
/// assert_eq!(fixed_note(f64::NAN, 1.0), None);
/// ```
pub fn fixed_note(value: f64, reference: f64) -> Option<u8> {
    if !value.is_finite() {
        return None;
    }
    if value == 0.0 {
        return Some(NOTE_MIN);
    }
    let note = f64::from(NOTE_CENTER) + 12.0 * (value.abs() / reference).log2();
    Some(note.round().clamp(f64::from(NOTE_MIN), f64::from(NOTE_MAX)) as u8)
}

/// The velocity of `value` in a frame whose largest finite |value| is `frame_max`:
/// `127 · (1 + 20·log10(|v| / max) / 48)`, clamped to 1..=127.
///
/// ```
/// use gradtone_export::midi::velocity;
/// assert_eq!(velocity(2.0, 2.0), 127);
/// assert_eq!(velocity(1.0, 2.0), 111); // −6 dB
/// assert_eq!(velocity(0.0, 2.0), 1);
/// ```
pub fn velocity(value: f64, frame_max: f64) -> u8 {
    if frame_max.is_nan() || frame_max <= 0.0 || !value.is_finite() {
        return 1;
    }
    let db = 20.0 * (value.abs() / frame_max).log10();
    (127.0 * (1.0 + db / VELOCITY_RANGE_DB))
        .round()
        .clamp(1.0, 127.0) as u8
}

/// A non-finite number seen in a frame.
#[derive(Debug)]
struct Alarm {
    /// Index of the frame.
    row: u64,
    /// The alarm keys sounded (deduplicated; at most three).
    keys: Vec<u8>,
    /// Marker text, e.g. `step 12: fc1=NaN, loss=inf`.
    text: String,
}

/// Writes frames to a Standard MIDI File (see the [module docs](self) for the layout).
///
/// The file appears only when [`finish`](Self::finish) succeeds (written to a temporary file in
/// the same folder, then renamed); dropping the writer unfinished leaves nothing behind.
///
/// ```
/// use gradtone_export::{MidiOptions, MidiWriter};
/// use gradtone_frame::{Frame, OutputFile};
/// let dir = std::env::temp_dir().join(format!("gradtone-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let mut w = MidiWriter::create(dir.join("run.mid"), &["conv1", "fc1"], MidiOptions::default())?;
/// w.push(&Frame::new(0).with_value("conv1", 0.5).with_value("fc1", 2.0));
/// w.push(&Frame::new(1).with_value("conv1", f64::NAN).with_value("fc1", 1.0));
/// let summary = w.finish()?;
/// assert_eq!((summary.tracks, summary.notes, summary.alarms), (4, 3, 1));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MidiWriter {
    path: PathBuf,
    /// Written beside `path`, put there by `finish`; removed if dropped before.
    output: OutputFile,
    /// `None` once taken by `finish`.
    tmp: Option<File>,
    voices: Vec<String>,
    options: MidiOptions,
    /// Row-major frames × voices; NaN is a rest.
    values: Vec<f32>,
    frames: u64,
    alarms: Vec<Alarm>,
    /// Describes the mapping inside the file itself, for whoever opens it later.
    mapping_text: String,
}

impl MidiWriter {
    /// Prepares `path` for a file with one track per voice. Frames' values are matched to
    /// voices by name (values first, then losses, so a voice may be `"loss"`).
    ///
    /// The temporary file is created now, so a bad folder fails here and not after a long run.
    ///
    /// # Errors
    /// [`ExportError::BadVoices`] for an empty or repeated voice list,
    /// [`ExportError::BadOption`] for options outside the ranges in [`MidiOptions`],
    /// [`ExportError::Io`] when the temporary file cannot be created.
    pub fn create(
        path: impl AsRef<Path>,
        voices: &[&str],
        options: MidiOptions,
    ) -> Result<Self, ExportError> {
        let path = path.as_ref();
        Self::check(voices, &options)?;
        let output = OutputFile::create(path).map_err(|source| ExportError::Io {
            path: path.to_path_buf(),
            action: "create a file beside it",
            cause: source,
        })?;
        Self::with_output(output, voices, options)
    }

    /// [`create`](Self::create) with the file already made beside its path (by a sink that
    /// checks its path before the first frame names the voices).
    ///
    /// # Errors
    /// As [`create`](Self::create), but for the temporary file.
    pub fn with_output(
        (output, tmp): (OutputFile, File),
        voices: &[&str],
        options: MidiOptions,
    ) -> Result<Self, ExportError> {
        Self::check(voices, &options)?;
        Ok(MidiWriter {
            path: output.path().to_path_buf(),
            output,
            tmp: Some(tmp),
            voices: voices.iter().map(|v| (*v).to_owned()).collect(),
            options,
            values: Vec::new(),
            frames: 0,
            alarms: Vec::new(),
            mapping_text: mapping_text(&options.pitch),
        })
    }

    fn check(voices: &[&str], options: &MidiOptions) -> Result<(), ExportError> {
        let voices: Vec<String> = voices.iter().map(|v| (*v).to_owned()).collect();
        if voices.is_empty() {
            return Err(ExportError::BadVoices {
                voices,
                reason: "no voices: name at least one value (e.g. a layer) to play",
            });
        }
        if voices.len() > usize::from(u16::MAX) - 2 {
            return Err(ExportError::BadVoices {
                voices: Vec::new(),
                reason: "more than 65533 voices: a MIDI file holds at most 65535 tracks",
            });
        }
        for (i, v) in voices.iter().enumerate() {
            if voices[..i].contains(v) || v == ALARM_TRACK {
                return Err(ExportError::BadVoices {
                    voices,
                    reason: "a voice name is repeated or is \"alarm\": give each voice once",
                });
            }
        }
        check_options(options)
    }

    /// Records one frame: a note per voice (a rest where the frame lacks the voice or its
    /// value is not finite) and an alarm for every non-finite value or loss in the frame.
    pub fn push(&mut self, frame: &Frame) {
        let row = self.frames;
        for voice in &self.voices {
            let v = frame
                .values
                .iter()
                .chain(&frame.losses)
                .find(|n| &n.name == voice)
                .map_or(f64::NAN, |n| n.value);
            // Clamp to f32's range so that a huge finite norm stays a (clamped) note.
            let stored = if v.is_finite() {
                v.clamp(-f64::from(f32::MAX), f64::from(f32::MAX)) as f32
            } else {
                f32::NAN
            };
            self.values.push(stored);
        }
        let mut keys = Vec::new();
        let mut text = String::new();
        for n in frame.values.iter().chain(&frame.losses) {
            let key = if n.value.is_nan() {
                ALARM_KEY_NAN
            } else if n.value == f64::INFINITY {
                ALARM_KEY_POS_INF
            } else if n.value == f64::NEG_INFINITY {
                ALARM_KEY_NEG_INF
            } else {
                continue;
            };
            if !keys.contains(&key) {
                keys.push(key);
            }
            text.push_str(if text.is_empty() { "" } else { ", " });
            text.push_str(&format!("{}={}", n.name, n.value));
        }
        if !keys.is_empty() {
            self.alarms.push(Alarm {
                row,
                keys,
                text: format!("step {}: {text}", frame.step),
            });
        }
        self.frames += 1;
    }

    /// Frames recorded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The voices, in track order.
    pub fn voices(&self) -> &[String] {
        &self.voices
    }

    /// Bytes held for the recorded frames: 4 per voice per frame, plus the alarms.
    pub fn memory_bytes(&self) -> usize {
        self.values.len() * size_of::<f32>()
            + self
                .alarms
                .iter()
                .map(|a| size_of::<Alarm>() + a.keys.len() + a.text.len())
                .sum::<usize>()
    }

    /// Writes the file (temporary file, fsync, rename over `path`) and reports what it holds.
    ///
    /// # Errors
    /// [`ExportError::Io`] when writing or renaming fails (the temporary file is removed),
    /// [`ExportError::MidiLimit`] when a track would exceed the format's 4 GiB.
    pub fn finish(mut self) -> Result<MidiSummary, ExportError> {
        let Some(file) = self.tmp.take() else {
            unreachable!("`tmp` is only taken here, and `finish` consumes the writer")
        };
        // On an error the writer is dropped here, and its unplaced temporary file with it.
        let summary = self.write_into(file)?;
        self.output.place().map_err(|source| ExportError::Io {
            path: self.path.clone(),
            action: "rename the temporary file onto",
            cause: source,
        })?;
        Ok(summary)
    }

    fn write_into(&self, file: File) -> Result<MidiSummary, ExportError> {
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| ExportError::Io {
                path,
                action,
                cause: source,
            }
        };
        let tracks = self.build_tracks();
        let notes = tracks[1..=self.voices.len()]
            .iter()
            .flatten()
            .filter(|e| is_note_on(e))
            .count() as u64;
        let alarms = tracks
            .last()
            .map_or(0, |t| t.iter().filter(|e| is_note_on(e)).count()) as u64;
        let ticks_per_beat = u15::new(4 * self.options.ticks_per_step);
        let header = Header::new(Format::Parallel, Timing::Metrical(ticks_per_beat));
        let mut out = BufWriter::new(file);
        midly::write_std(&header, &tracks, &mut out).map_err(|source| {
            if source.kind() == std::io::ErrorKind::InvalidInput {
                ExportError::MidiLimit {
                    path: self.path.clone(),
                    reason: format!("{source}; record fewer frames per file"),
                }
            } else {
                io("write", &self.path)(source)
            }
        })?;
        let file = out
            .into_inner()
            .map_err(|e| io("write", &self.path)(e.into_error()))?;
        file.sync_all().map_err(io("sync", &self.path))?;
        let bytes = file.metadata().map_err(io("measure", &self.path))?.len();
        Ok(MidiSummary {
            path: self.path.clone(),
            frames: self.frames,
            notes,
            alarms,
            tracks: tracks.len(),
            bytes,
        })
    }

    /// Builds every track's events (borrowing names and texts from `self`).
    fn build_tracks(&self) -> Vec<Vec<TrackEvent<'_>>> {
        let tps = u64::from(self.options.ticks_per_step);
        let end = self.frames * tps;
        let v = self.voices.len();
        let note = self.note_fn();
        let mut tracks = Vec::with_capacity(v + 2);

        let mut conductor = TrackBuilder::new(CONDUCTOR_TRACK);
        let tempo = (self.options.step_seconds * 4.0 * 1e6).round() as u32;
        conductor.meta(0, MetaMessage::Tempo(u24::new(tempo)));
        conductor.meta(0, MetaMessage::TimeSignature(4, 2, 24, 8));
        conductor.meta(0, MetaMessage::Text(self.mapping_text.as_bytes()));
        for a in &self.alarms {
            conductor.meta(a.row * tps, MetaMessage::Marker(a.text.as_bytes()));
        }
        tracks.push(conductor.finish(end));

        for (i, name) in self.voices.iter().enumerate() {
            let channel = voice_channel(i);
            let mut t = TrackBuilder::new(name);
            for (row, frame) in self.values.chunks_exact(v).enumerate() {
                let value = f64::from(frame[i]);
                let Some(key) = note(value) else { continue };
                let max = frame
                    .iter()
                    .filter(|x| x.is_finite())
                    .fold(0.0f64, |m, x| m.max(f64::from(x.abs())));
                let start = row as u64 * tps;
                t.note(start, start + tps, channel, key, velocity(value, max));
            }
            tracks.push(t.finish(end));
        }

        let mut alarm = TrackBuilder::new(ALARM_TRACK);
        for a in &self.alarms {
            let start = a.row * tps;
            // Keys are deduplicated per frame, so no note-off can end another's note early.
            for &key in &a.keys {
                alarm.note_on(start, ALARM_CHANNEL, key, 127);
            }
            for &key in &a.keys {
                alarm.note_off(start + tps, ALARM_CHANNEL, key);
            }
        }
        tracks.push(alarm.finish(end));
        tracks
    }

    /// The per-value note function of the configured mapping.
    fn note_fn(&self) -> impl Fn(f64) -> Option<u8> + use<> {
        let (fixed, lo, hi) = match self.options.pitch {
            PitchMap::Fixed { reference } => (Some(reference), 0.0, 0.0),
            PitchMap::Auto => {
                let (lo, hi) = self
                    .values
                    .iter()
                    .filter(|x| x.is_finite() && **x != 0.0)
                    .map(|x| f64::from(x.abs()).log2())
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), l| {
                        (lo.min(l), hi.max(l))
                    });
                (None, lo, hi)
            }
        };
        move |value: f64| {
            if !value.is_finite() {
                return None;
            }
            if let Some(reference) = fixed {
                return fixed_note(value, reference);
            }
            if value == 0.0 {
                return Some(AUTO_LOW);
            }
            if hi - lo <= 1e-9 {
                return Some(NOTE_CENTER);
            }
            let span = f64::from(AUTO_HIGH - AUTO_LOW);
            let note = f64::from(AUTO_LOW) + (value.abs().log2() - lo) / (hi - lo) * span;
            Some(
                note.round()
                    .clamp(f64::from(AUTO_LOW), f64::from(AUTO_HIGH)) as u8,
            )
        }
    }
}

fn mapping_text(pitch: &PitchMap) -> String {
    let pitch = match pitch {
        PitchMap::Fixed { reference } => {
            format!("note = 60 + 12*log2(|value| / {reference}) clamped to {NOTE_MIN}..{NOTE_MAX}")
        }
        PitchMap::Auto => format!("note = log2(|value|) auto-ranged over {AUTO_LOW}..{AUTO_HIGH}"),
    };
    format!(
        "gradtone: {pitch}; velocity = loudness relative to the frame's largest value; \
         non-finite values: cymbals on channel 10 (track \"{ALARM_TRACK}\") and markers"
    )
}

fn check_options(o: &MidiOptions) -> Result<(), ExportError> {
    if !(1..=8191).contains(&o.ticks_per_step) {
        return Err(ExportError::BadOption {
            field: "ticks_per_step",
            value: o.ticks_per_step.to_string(),
            reason: "must be 1..=8191 (4 × ticks_per_step is the file's ticks per quarter note, 15 bits); 120 is usual",
        });
    }
    let tempo = o.step_seconds * 4.0 * 1e6;
    if !(o.step_seconds > 0.0 && tempo.round() >= 1.0 && tempo.round() < f64::from(1u32 << 24)) {
        return Err(ExportError::BadOption {
            field: "step_seconds",
            value: o.step_seconds.to_string(),
            reason: "must be > 0 and ≤ 4 seconds (the MIDI tempo is 24 bits of µs per quarter note)",
        });
    }
    if let PitchMap::Fixed { reference } = o.pitch
        && !(reference.is_finite() && reference > 0.0)
    {
        return Err(ExportError::BadOption {
            field: "pitch.reference",
            value: reference.to_string(),
            reason: "must be finite and > 0: the norm that plays middle C (1.0 is usual)",
        });
    }
    Ok(())
}

/// Zero-based channel of voice `i`: 0..=8 then 10..=15, cycling, never the drum channel 9.
fn voice_channel(i: usize) -> u8 {
    let c = (i % 15) as u8;
    if c >= ALARM_CHANNEL { c + 1 } else { c }
}

fn is_note_on(e: &TrackEvent<'_>) -> bool {
    matches!(
        e.kind,
        TrackEventKind::Midi {
            message: MidiMessage::NoteOn { .. },
            ..
        }
    )
}

/// Appends events at absolute ticks (non-decreasing), writing the deltas midly wants.
struct TrackBuilder<'a> {
    events: Vec<TrackEvent<'a>>,
    now: u64,
}

impl<'a> TrackBuilder<'a> {
    fn new(name: &'a str) -> Self {
        let mut t = TrackBuilder {
            events: Vec::new(),
            now: 0,
        };
        t.meta(0, MetaMessage::TrackName(name.as_bytes()));
        t
    }

    fn push(&mut self, at: u64, kind: TrackEventKind<'a>) {
        let max = u64::from(u28::max_value().as_int());
        let mut delta = at.saturating_sub(self.now);
        // A delta must fit 28 bits; bridge longer silences with empty text events.
        while delta > max {
            self.events.push(TrackEvent {
                delta: u28::max_value(),
                kind: TrackEventKind::Meta(MetaMessage::Text(b"")),
            });
            delta -= max;
        }
        self.events.push(TrackEvent {
            delta: u28::new(delta as u32),
            kind,
        });
        self.now = self.now.max(at);
    }

    fn meta(&mut self, at: u64, m: MetaMessage<'a>) {
        self.push(at, TrackEventKind::Meta(m));
    }

    fn note_on(&mut self, at: u64, channel: u8, key: u8, vel: u8) {
        let message = MidiMessage::NoteOn {
            key: u7::new(key),
            vel: u7::new(vel),
        };
        self.push(
            at,
            TrackEventKind::Midi {
                channel: u4::new(channel),
                message,
            },
        );
    }

    fn note_off(&mut self, at: u64, channel: u8, key: u8) {
        let message = MidiMessage::NoteOff {
            key: u7::new(key),
            vel: u7::new(0),
        };
        self.push(
            at,
            TrackEventKind::Midi {
                channel: u4::new(channel),
                message,
            },
        );
    }

    fn note(&mut self, on: u64, off: u64, channel: u8, key: u8, vel: u8) {
        self.note_on(on, channel, key, vel);
        self.note_off(off, channel, key);
    }

    fn finish(mut self, end: u64) -> Vec<TrackEvent<'a>> {
        self.meta(end.max(self.now), MetaMessage::EndOfTrack);
        self.events
    }
}
