//! [`Diagnostics`]: what a source skipped, and the bookkeeping that fills it.

use std::fmt;

/// How many messages [`Diagnostics::first_errors`] (and [`Diagnostics::warnings`]) keep; later
/// ones are only counted, so a stream of garbage cannot flood memory or the terminal.
pub const MAX_REPORTED: usize = 20;

/// Characters of a peer's text (a name, an address, a parse error quoting the input) shown in
/// one message at most; the rest is cut (see [`shorten`]).
pub const MAX_MESSAGE_CHARS: usize = 200;

// The one cut for messages lives on the frame side (the sinks' messages use it too); it is
// re-exported here because every reader's diagnostics quote peers' text through it.
use gradtone_frame::Report;
pub use gradtone_frame::naming::shorten;

/// What a source skipped or noticed so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diagnostics {
    /// The source's name as used in messages (a path, `stdin`, `udp 127.0.0.1:9000`).
    pub source: String,
    /// Frames delivered.
    pub frames: u64,
    /// Lines (or OSC messages) skipped as malformed.
    pub malformed: u64,
    /// OSC messages with an address this reader does not know, ignored.
    pub ignored: u64,
    /// The first [`MAX_REPORTED`] problems, each `"<source> line N: why"` (UDP:
    /// `"<source> datagram D line N: why"`, OSC: `"<source> packet P: why"`).
    pub first_errors: Vec<String>,
    /// Notices that are not errors (a newer format version, a truncated or rotated file), the
    /// first [`MAX_REPORTED`].
    pub warnings: Vec<String>,
    /// Whether a line with a format version above 1 was seen (read as far as v1 goes).
    pub newer_version_seen: bool,
    /// UDP datagrams received (UDP and OSC sources only).
    pub datagrams: u64,
    /// UDP datagrams the operating system dropped before the source could read them (it fell
    /// behind the sender), as reported for the socket when the stream ended (Linux; 0
    /// elsewhere). Sent = `datagrams` + `os_dropped`.
    pub os_dropped: u64,
    /// Notices beyond the first [`MAX_REPORTED`], counted but neither kept nor reported.
    pub suppressed_warnings: u64,
    /// What the source's items are called in the summary ("line" when empty).
    unit: &'static str,
}

impl Diagnostics {
    /// A one-line summary for the end of a run, e.g. `"run.jsonl: 3 malformed lines skipped"`;
    /// `None` when nothing was skipped.
    pub fn summary(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.malformed > 0 {
            let s = if self.malformed == 1 { "" } else { "s" };
            let unit = if self.unit.is_empty() {
                "line"
            } else {
                self.unit
            };
            parts.push(format!("{} malformed {unit}{s} skipped", self.malformed));
        }
        if self.ignored > 0 {
            let s = if self.ignored == 1 { "" } else { "s" };
            parts.push(format!(
                "{} message{s} with an unknown address ignored",
                self.ignored
            ));
        }
        if self.os_dropped > 0 {
            let s = if self.os_dropped == 1 { "" } else { "s" };
            parts.push(format!(
                "{} datagram{s} dropped by the system before they could be read (sent faster \
                 than they were sounded)",
                self.os_dropped
            ));
        }
        if self.suppressed_warnings > 0 {
            parts.push(format!(
                "{} further notices not shown",
                self.suppressed_warnings
            ));
        }
        if parts.is_empty() {
            None
        } else {
            Some(format!("{}: {}", self.source, parts.join(", ")))
        }
    }
}

/// Fills a [`Diagnostics`] and forwards messages to the reporter.
pub(crate) struct Tally {
    pub(crate) diag: Diagnostics,
    reporter: Option<Report>,
}

impl Tally {
    pub(crate) fn new(source: String) -> Self {
        Tally {
            diag: Diagnostics {
                source,
                ..Diagnostics::default()
            },
            reporter: None,
        }
    }

    /// Calls the source's items `unit` in the summary (OSC: "message").
    pub(crate) fn unit(mut self, unit: &'static str) -> Self {
        self.diag.unit = unit;
        self
    }

    pub(crate) fn set_reporter(&mut self, r: Report) {
        self.reporter = Some(r);
    }

    /// Records a skipped line/message at `location` ("line 17", "packet 3").
    pub(crate) fn malformed(&mut self, location: fmt::Arguments<'_>, why: &dyn fmt::Display) {
        self.diag.malformed += 1;
        self.error(location, why);
    }

    /// Records an ignored OSC message.
    pub(crate) fn ignored(&mut self, location: fmt::Arguments<'_>, why: &dyn fmt::Display) {
        self.diag.ignored += 1;
        self.error(location, why);
    }

    fn error(&mut self, location: fmt::Arguments<'_>, why: &dyn fmt::Display) {
        let n = self.diag.first_errors.len();
        if n < MAX_REPORTED {
            // `why` may quote the input (a 1 MiB string value, a 64 KB OSC address): cut it.
            let why = why.to_string();
            let msg = format!(
                "{} {location}: {}",
                self.diag.source,
                shorten(&why, MAX_MESSAGE_CHARS)
            );
            if let Some(r) = &self.reporter {
                r(&msg);
            }
            self.diag.first_errors.push(msg);
            if n + 1 == MAX_REPORTED
                && let Some(r) = &self.reporter
            {
                r(&format!(
                    "{}: further problems are counted but not reported one by one",
                    self.diag.source
                ));
            }
        }
    }

    /// Records a notice (not an error).
    pub(crate) fn warn(&mut self, msg: String) {
        if self.diag.warnings.len() < MAX_REPORTED {
            let msg = shorten(&msg, 2 * MAX_MESSAGE_CHARS).into_owned();
            if let Some(r) = &self.reporter {
                r(&msg);
            }
            self.diag.warnings.push(msg);
        } else {
            self.diag.suppressed_warnings += 1;
        }
    }

    /// Records that a record with format version `v` was read at `location`; warns once per
    /// stream for versions above 1.
    pub(crate) fn version(&mut self, v: u64, location: fmt::Arguments<'_>) {
        if v > 1 && !self.diag.newer_version_seen {
            self.diag.newer_version_seen = true;
            let msg = format!(
                "{} {location}: format version {v} is newer than this reader (1); reading the \
                 version-1 fields only (upgrade gradtone to hear the rest)",
                self.diag.source
            );
            self.warn(msg);
        }
    }
}
