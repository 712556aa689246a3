//! The export crate's [`Sink`]s: a MIDI file and an OSC stream, with their options ([`MidiArgs`],
//! [`OscArgs`]), each opened through [`Output`].

use std::fs::File;
use std::path::{Path, PathBuf};

use gradtone_frame::{
    AlarmEvent, Frame, Opening, Output, OutputError, OutputFile, Sink, SinkError, check_file,
};

use crate::{ExportError, MidiOptions, MidiWriter, OscSender};

/// The run as a MIDI file, a track per voice (see [`MidiWriter`]): written beside its path and
/// put there when the run finishes.
pub struct MidiFile {
    path: PathBuf,
    // Made now (a bad path fails before any work), handed to the writer at the first frame,
    // whose names the tracks need.
    output: Option<(OutputFile, File)>,
    writer: Option<MidiWriter>,
}

impl MidiFile {
    /// A MIDI file at `path`, its file created beside `path` now.
    ///
    /// # Errors
    /// [`ExportError::Io`] when the file cannot be created there.
    pub fn create(path: &Path) -> Result<Self, ExportError> {
        let output = OutputFile::create(path).map_err(|source| ExportError::Io {
            path: path.to_path_buf(),
            action: "create a file beside it",
            cause: source,
        })?;
        Ok(MidiFile {
            path: path.to_path_buf(),
            output: Some(output),
            writer: None,
        })
    }
}

impl Sink for MidiFile {
    fn describe(&self) -> String {
        format!("MIDI file {}", self.path.display())
    }

    fn frame(&mut self, frame: &Frame, _alarms: &[AlarmEvent]) -> Result<(), SinkError> {
        if let Some(output) = self.output.take() {
            let voices: Vec<&str> = frame.values.iter().map(|v| v.name.as_str()).collect();
            self.writer = Some(MidiWriter::with_output(
                output,
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

    // An unfinished MidiWriter (or the unused file) removes its temporary file when dropped:
    // the default `discard` (drop) is right.
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

/// The MIDI output's options.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct MidiArgs {
    /// Write a MIDI file: a track per voice, alarms on the drum channel.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub midi: Option<PathBuf>,
}

impl<C: ?Sized> Output<C> for MidiArgs {
    fn precheck(&self) -> Result<(), OutputError> {
        check_file(self.midi.as_deref(), "MIDI file")
    }

    fn open(&self, _at: &Opening<'_, C>) -> Result<Option<Box<dyn Sink>>, OutputError> {
        let Some(p) = &self.midi else { return Ok(None) };
        gradtone_frame::check_parent(p, "MIDI file")?;
        let midi = MidiFile::create(p).map_err(|e| OutputError::open("MIDI file", e))?;
        Ok(Some(Box::new(midi)))
    }

    fn keeps(&self) -> bool {
        self.midi.is_some()
    }
}

/// The OSC output's options.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct OscArgs {
    /// Send each frame as OSC to HOST:PORT (e.g. 127.0.0.1:57120 for SuperCollider; docs/osc.md).
    #[cfg_attr(feature = "clap", arg(long, value_name = "HOST:PORT"))]
    pub osc_out: Option<String>,
}

impl<C: ?Sized> Output<C> for OscArgs {
    fn open(&self, _at: &Opening<'_, C>) -> Result<Option<Box<dyn Sink>>, OutputError> {
        let Some(a) = &self.osc_out else {
            return Ok(None);
        };
        let osc = OscSender::connect(a).map_err(|e| OutputError::open("OSC output", e))?;
        Ok(Some(Box::new(osc)))
    }
}
