//! The export crate's [`Sink`]s: a MIDI file and an OSC stream.

use std::path::{Path, PathBuf};

use gradtone_frame::{AlarmEvent, Frame, Sink, SinkError};

use crate::{MidiOptions, MidiWriter, OscSender};

/// The run as a MIDI file, a track per voice (see [`MidiWriter`]).
pub struct MidiFile {
    path: PathBuf,
    // Made at the first frame: the tracks need the frame's names.
    writer: Option<MidiWriter>,
}

impl MidiFile {
    /// A MIDI file at `path`, written when the run finishes. The caller checks the folder.
    pub fn new(path: &Path) -> Self {
        MidiFile {
            path: path.to_path_buf(),
            writer: None,
        }
    }
}

impl Sink for MidiFile {
    fn describe(&self) -> String {
        format!("MIDI file {}", self.path.display())
    }

    fn frame(&mut self, frame: &Frame, _alarms: &[AlarmEvent]) -> Result<(), SinkError> {
        if self.writer.is_none() {
            let voices: Vec<&str> = frame.values.iter().map(|v| v.name.as_str()).collect();
            self.writer = Some(MidiWriter::create(
                &self.path,
                &voices,
                MidiOptions::default(),
            )?);
        }
        if let Some(w) = &mut self.writer {
            w.push(frame);
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<String, SinkError> {
        match self.writer {
            Some(w) => {
                let s = w.finish()?;
                Ok(format!(
                    "{} ({} notes, {} alarms)",
                    self.path.display(),
                    s.notes,
                    s.alarms
                ))
            }
            None => Ok(format!("{} (no frames: not written)", self.path.display())),
        }
    }

    // An unfinished MidiWriter removes its own temporary file when dropped: the default
    // `discard` (drop) is right.
}

impl Sink for OscSender {
    fn describe(&self) -> String {
        format!("OSC to {}", self.peer())
    }

    fn frame(&mut self, frame: &Frame, alarms: &[AlarmEvent]) -> Result<(), SinkError> {
        // UDP errors are counted by the sender and reported at the end, never fatal.
        self.send_frame(frame);
        for e in alarms {
            self.send_alarm(e.kind.name(), &e.message);
        }
        Ok(())
    }

    fn essential(&self) -> bool {
        false
    }

    fn finish(self: Box<Self>) -> Result<String, SinkError> {
        let s = self.stats();
        Ok(format!(
            "OSC to {}: {} frames, {} send errors",
            self.peer(),
            s.frames,
            s.send_errors
        ))
    }
}
