//! `--alarms FILE`: every alarm event as one line of JSON, for scripts, CI jobs and
//! experiment trackers.
//!
//! ```json
//! {"step":190,"kind":"explosion","layers":["fc1"],"message":"step 190: ALARM explosion: …","numbers":{"ratio":12.5,"median":0.8}}
//! ```
//!
//! The file is written beside its path (`.NAME.partial`) and renamed over it when the run
//! finishes, so a user's existing file stays as it was until a run with frames completes; a
//! healthy run leaves an empty file (no alarm is a result too). Non-finite numbers are
//! written as the stream format spells them (`"nan"`, `"inf"`, `"-inf"`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use gradtone_frame::{AlarmEvent, Frame, Sink, SinkError, remove_partial};
use serde_json::{Map, Value, json};

/// The alarm events of a run as JSON Lines.
pub struct AlarmsFile {
    path: PathBuf,
    partial: PathBuf,
    // Made at the first frame: nothing is touched before the run has data.
    out: Option<BufWriter<File>>,
    events: usize,
}

/// What can go wrong writing the alarms file.
#[derive(Debug, thiserror::Error)]
pub enum AlarmsFileError {
    /// Creating, writing or renaming the file failed.
    #[error("cannot {action} the alarms file {}: {source}", path.display())]
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
    /// An alarms file at `path`; nothing is written until the first frame.
    pub fn new(path: &Path) -> Self {
        let name = path
            .file_name()
            .map_or_else(|| "alarms".into(), |n| n.to_string_lossy().into_owned());
        AlarmsFile {
            path: path.to_path_buf(),
            partial: path.with_file_name(format!(".{name}.partial")),
            out: None,
            events: 0,
        }
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
        if self.out.is_none() {
            // A stale partial file of a killed run goes first; `create_new` never follows a
            // link planted at the name.
            remove_partial(&self.partial);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&self.partial)
                .map_err(|e| self.io("create", e))?;
            self.out = Some(BufWriter::new(f));
        }
        for e in alarms {
            let line = event_json(e).to_string();
            if let Some(out) = &mut self.out {
                writeln!(out, "{line}").map_err(|e| self.io("write", e))?;
            }
            self.events += 1;
        }
        // An alarm is news a script may be tailing for: out at once, not at the end.
        if !alarms.is_empty()
            && let Some(out) = &mut self.out
        {
            out.flush().map_err(|e| self.io("write", e))?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<String, SinkError> {
        let Some(out) = self.out.take() else {
            return Ok(format!("{} (no frames: not written)", self.path.display()));
        };
        let file = out
            .into_inner()
            .map_err(|e| self.io("write", e.into_error()))?;
        file.sync_all().map_err(|e| self.io("write", e))?;
        drop(file);
        std::fs::rename(&self.partial, &self.path).map_err(|e| self.io("rename into", e))?;
        Ok(format!(
            "{} ({} alarm event{})",
            self.path.display(),
            self.events,
            if self.events == 1 { "" } else { "s" }
        ))
    }

    fn discard(self: Box<Self>) {
        let AlarmsFile { partial, out, .. } = *self;
        drop(out);
        remove_partial(&partial);
    }
}
