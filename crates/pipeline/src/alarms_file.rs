//! `--alarms FILE`: every alarm event as one line of JSON, for scripts, CI jobs and
//! experiment trackers.
//!
//! ```json
//! {"step":190,"kind":"explosion","layers":["fc1"],"message":"step 190: ALARM explosion: …","numbers":{"ratio":12.5,"median":0.8}}
//! ```
//!
//! The file is an [`OutputFile`]: written beside its path and put there when the run finishes,
//! so a user's existing file stays as it was until a run with frames completes; a healthy run
//! leaves an empty file (no alarm is a result too). Non-finite numbers are written as the
//! stream format spells them (`"nan"`, `"inf"`, `"-inf"`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use gradtone_frame::{
    AlarmEvent, Frame, Opening, Output, OutputError, OutputFile, Sink, SinkError, check_file,
};
use serde_json::{Map, Value, json};

/// The alarms file's options.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct AlarmsArgs {
    /// Write every alarm event as one line of JSON (step, kind, layers, message, numbers) to
    /// this file, for scripts and CI; a healthy run leaves it empty.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub alarms: Option<PathBuf>,
}

impl<C: ?Sized> Output<C> for AlarmsArgs {
    fn precheck(&self) -> Result<(), OutputError> {
        check_file(self.alarms.as_deref(), "alarms file")
    }

    fn open(&self, _at: &Opening<'_, C>) -> Result<Option<Box<dyn Sink>>, OutputError> {
        let Some(p) = &self.alarms else {
            return Ok(None);
        };
        let file = AlarmsFile::create(p).map_err(|e| OutputError::open("alarms file", e))?;
        Ok(Some(Box::new(file)))
    }

    fn keeps(&self) -> bool {
        self.alarms.is_some()
    }
}

/// The alarm events of a run as JSON Lines.
pub struct AlarmsFile {
    path: PathBuf,
    output: OutputFile,
    out: BufWriter<File>,
    frames: u64,
    events: usize,
}

/// What can go wrong writing the alarms file.
#[derive(Debug, thiserror::Error)]
pub enum AlarmsFileError {
    /// Creating, writing or renaming the file failed.
    #[error("cannot {action} the alarms file {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl AlarmsFile {
    /// An alarms file for `path`: its temporary file is made beside it now (so a bad path
    /// fails before any work), and put at the path when the run finishes.
    pub fn create(path: &Path) -> Result<Self, AlarmsFileError> {
        let io = |source| AlarmsFileError::Io {
            action: "create",
            path: path.to_path_buf(),
            source,
        };
        let (output, file) = OutputFile::create(path).map_err(io)?;
        Ok(AlarmsFile {
            path: path.to_path_buf(),
            output,
            out: BufWriter::new(file),
            frames: 0,
            events: 0,
        })
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> AlarmsFileError {
        AlarmsFileError::Io {
            action,
            path: self.path.clone(),
            source,
        }
    }
}

/// One event as a JSON object (the `--alarms` line).
pub fn event_json(e: &AlarmEvent) -> Value {
    let number = |x: f64| match serde_json::Number::from_f64(x) {
        Some(n) => Value::Number(n),
        None if x.is_nan() => Value::String("nan".into()),
        None if x > 0.0 => Value::String("inf".into()),
        None => Value::String("-inf".into()),
    };
    let numbers: Map<String, Value> = e
        .numbers
        .iter()
        .map(|(k, v)| (k.clone(), number(*v)))
        .collect();
    json!({
        "step": e.step,
        "kind": e.kind.name(),
        "layers": e.layers,
        "message": e.message,
        "numbers": numbers,
    })
}

impl Sink for AlarmsFile {
    fn describe(&self) -> String {
        format!("alarms file {}", self.path.display())
    }

    fn frame(&mut self, _frame: &Frame, alarms: &[AlarmEvent]) -> Result<(), SinkError> {
        self.frames += 1;
        for e in alarms {
            let line = event_json(e).to_string();
            writeln!(self.out, "{line}").map_err(|e| self.io("write", e))?;
            self.events += 1;
        }
        // An alarm is news a script may be tailing for: out at once, not at the end.
        if !alarms.is_empty() {
            self.out.flush().map_err(|e| self.io("write", e))?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<String, SinkError> {
        if self.frames == 0 {
            return Ok(format!("{} (no frames: not written)", self.path.display()));
        }
        self.out.flush().map_err(|e| self.io("write", e))?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|e| self.io("write", e))?;
        self.output.place().map_err(|e| self.io("rename into", e))?;
        Ok(format!(
            "{} ({} alarm event{})",
            self.path.display(),
            self.events,
            if self.events == 1 { "" } else { "s" }
        ))
    }

    fn discard(self: Box<Self>) {
        let AlarmsFile { output, out, .. } = *self;
        drop(out);
        output.discard();
    }
}
