//! The pipeline of a gradtone run, as a library: frames in; alarms, sound and every output out.
//!
//! [`Outputs`] owns the run's [`Watch`]es, the mapping and the [`Sink`]s. Each [`Outputs::push`]
//! runs every watch on the frame (the gradient detector and any added with
//! [`Outputs::add_watch`]: a GAN's, a rank merger's), has the mapping render the frame with the
//! earcons of the alarms they fired, then hands the samples and the frame with its alarms to
//! every sink. Sinks are independent: one that fails is reported, its own
//! partial output removed, and the others go on; [`Outputs::finish`] completes every sink that
//! is left. Dropping an unfinished `Outputs` (an error, a panic unwinding) discards every
//! partial output, so nothing incomplete passes for a finished result. A file output is written
//! beside its path and replaces it only at its first data ([`gradtone_frame::OutputFile`]), so
//! a run that is refused, fails to start or receives nothing leaves the user's files as they
//! were.
//!
//! A new output is one `impl Sink` beside its code, plus the line in [`Outputs::create`] that
//! opens it from its [`OutputSpec`] field.
//!
//! [`driver::FrameDriver`] feeds a training loop's frames to the outputs; [`stream`] drives a
//! stream of frames from any source (merging a distributed run's ranks) through them.
#![warn(missing_docs)]

pub mod alarms_file;
pub mod driver;
pub mod stream;

pub use driver::{FrameDriver, RunProgress};
pub use stream::{RankOptions, StreamError};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gradtone_csv::CsvFile;
use gradtone_detect::AlarmDetector;
use gradtone_export::OscSender;
use gradtone_export::sink::MidiFile;
use gradtone_frame::{AlarmEvent, ErrorChain, Frame, Sink, SinkError, Watch};
use gradtone_live::{LiveConfig, LivePlayer, Pace};
use gradtone_plot::PlotFile;
use gradtone_serve::{ServeOptions, ServeSink, Server};
use gradtone_sound::alarm::WithAlarms;
use gradtone_sound::config::SoundConfig;
use gradtone_sound::sink::WavFile;
use gradtone_sound::{Mapping, SampleFormat, SoundError, mapping};
use gradtone_tensorboard::TensorBoardSink;

/// What can go wrong in a run's outputs.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The sound configuration or mapping could not be made.
    #[error(transparent)]
    Sound(#[from] SoundError),
    /// A file's folder does not exist (checked before any work).
    #[error("cannot write the {what} {}: folder {} does not exist", path.display(), folder.display())]
    NoFolder {
        /// What the file is (`"plot"`, `"MIDI file"`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its missing folder.
        folder: PathBuf,
    },
    /// A file output's path is a folder.
    #[error("cannot write the {what} {}: it is a folder", path.display())]
    IsFolder {
        /// What the file is (`"WAV file"`).
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// The TensorBoard log folder's path is a file.
    #[error("cannot write TensorBoard logs into {}: it is a file, not a folder", .0.display())]
    NotAFolder(PathBuf),
    /// A sink could not be opened.
    #[error("cannot open the {what}")]
    Open {
        /// The sink (`"OSC output"`).
        what: String,
        /// Why.
        #[source]
        source: SinkError,
    },
    /// Every essential output failed during the run: there is nothing left to write to.
    #[error("every output failed ({}); nothing was kept", failed.join("; "))]
    AllFailed {
        /// A line per failed output: what it was and why.
        failed: Vec<String>,
    },
    /// The run ended before its first frame: every output was removed, since an empty WAV or
    /// CSV would pass for a result.
    #[error("no frames: the input held no training step to sonify, so nothing was written")]
    NoFrames,
    /// Some outputs failed; the others were finished and kept.
    #[error("{} output(s) failed: {}; kept: {}", failed.len(), failed.join("; "),
        if finished.is_empty() { "nothing".to_string() } else { finished.join(", ") })]
    SomeFailed {
        /// A line per failed output: what it was and why.
        failed: Vec<String>,
        /// The summary lines of the outputs that were finished and kept.
        finished: Vec<String>,
    },
}

/// What to produce; every field is optional.
#[derive(Clone, Debug, Default)]
pub struct OutputSpec {
    /// Mapping name (`seed`, `depth`, `cents`); `None`: the config's (default `cents`).
    pub mapping: Option<mapping::MappingKind>,
    /// A TOML sound configuration.
    pub sound_config: Option<PathBuf>,
    /// Mix alarm earcons into the `seed` mapping too (off by default: it stays sample-exact).
    pub alarm_sounds: bool,
    /// WAV file and its format.
    pub wav: Option<PathBuf>,
    /// WAV sample format.
    pub wav_format: SampleFormat,
    /// CSV of frames.
    pub csv: Option<PathBuf>,
    /// Every alarm event as JSON Lines ([`alarms_file`]).
    pub alarms: Option<PathBuf>,
    /// PNG of norms, alarms and spectrogram.
    pub plot: Option<PathBuf>,
    /// MIDI file, a track per voice.
    pub midi: Option<PathBuf>,
    /// OSC destination (`host:port`).
    pub osc_out: Option<String>,
    /// TensorBoard log folder: norms as scalars, the sound as audio clips.
    pub tensorboard: Option<PathBuf>,
    /// Live playback pace; `None`: no speakers.
    pub live: Option<Pace>,
    /// A title for the plot.
    pub title: String,
    /// Turn the loss-plateau alarm off (a GAN's losses are not meant to fall).
    pub no_plateau: bool,
    /// Without a sound config: `cents` pitch in absolute mode (the same norm, the same pitch
    /// across the whole file), so a sweep's parts can be compared by ear.
    pub absolute_pitch: bool,
    /// Serve the live page (`--serve`).
    pub serve: Option<ServeSpec>,
    /// For the caller: print the "wrote …" summary on stderr (`gradtone run` and `listen`,
    /// whose stdout is the training's).
    pub summary_to_stderr: bool,
    /// When the outputs fail mid-stream, read the source on to its end (dropping the frames)
    /// instead of stopping: the training that writes into it (`gradtone run`'s command, a
    /// script piped into `listen`) is then never blocked or broken by our failure.
    pub drain_on_failure: bool,
}

/// The live page's settings (`--serve`).
#[derive(Clone, Debug, Default)]
pub struct ServeSpec {
    /// `--serve`'s value (see [`gradtone_serve::parse_addr`]).
    pub addr: String,
    /// Token policy.
    pub token: gradtone_serve::Token,
    /// Wait for a browser before the first frame.
    pub wait: bool,
    /// Seconds to keep serving after the run (infinite: until `stop`); `None`: 0.
    pub linger: Option<f64>,
    /// Raised to stop waiting for a browser or lingering (Ctrl-C).
    pub stop: Arc<AtomicBool>,
}

impl OutputSpec {
    /// The sound configuration this spec asks for: the file's (or the defaults), with the
    /// spec's mapping, pitch and alarm choices applied.
    pub fn sound_config(&self) -> Result<SoundConfig, PipelineError> {
        let mut config = match &self.sound_config {
            Some(p) => SoundConfig::from_file(p)?,
            None => SoundConfig::default(),
        };
        if let Some(m) = &self.mapping {
            config.mapping = *m;
        }
        if self.absolute_pitch && self.sound_config.is_none() {
            config.cents.range = gradtone_sound::config::Range::Absolute;
        }
        if self.no_plateau {
            config.alarms.plateau.enabled = false;
        }
        if config.mapping == mapping::MappingKind::Seed && !self.alarm_sounds {
            // The seed mapping is the 2019 sound, sample for sample: alarms print, silently.
            config.alarms.volume = 0.0;
        }
        Ok(config)
    }

    /// Fails, naming the file, when an output cannot be written where asked (its folder
    /// missing, a folder where a file should be, a file where the TensorBoard folder should
    /// be), before anything is opened.
    pub fn precheck(&self) -> Result<(), PipelineError> {
        let files = [
            (&self.wav, "WAV file"),
            (&self.csv, "CSV file"),
            (&self.alarms, "alarms file"),
            (&self.plot, "plot"),
            (&self.midi, "MIDI file"),
        ];
        for (path, what) in files {
            if let Some(p) = path {
                check_parent(p, what)?;
                if p.is_dir() {
                    return Err(PipelineError::IsFolder {
                        what,
                        path: p.clone(),
                    });
                }
            }
        }
        if let Some(d) = &self.tensorboard
            && d.exists()
            && !d.is_dir()
        {
            return Err(PipelineError::NotAFolder(d.clone()));
        }
        Ok(())
    }
}

/// Fails, naming the file, when `path`'s folder does not exist (checked before any work).
pub fn check_parent(path: &Path, what: &'static str) -> Result<(), PipelineError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if parent.is_dir() {
        Ok(())
    } else {
        Err(PipelineError::NoFolder {
            what,
            path: path.to_path_buf(),
            folder: parent.to_path_buf(),
        })
    }
}

fn open<S: Sink + 'static, E: Into<SinkError>>(
    what: &str,
    made: Result<S, E>,
) -> Result<Box<dyn Sink>, PipelineError> {
    made.map(|s| Box::new(s) as Box<dyn Sink>)
        .map_err(|e| PipelineError::Open {
            what: what.to_string(),
            source: e.into(),
        })
}

/// A run's watches, mapping and sinks. Everything that can fail to open does so in
/// [`Outputs::create`], before any work; an output file replaces what is at its path only at
/// its first data ([`gradtone_frame::OutputFile`]).
pub struct Outputs {
    /// The added watches in the order added, then the gradient detector (when alarms are on).
    watches: Vec<Box<dyn Watch + Send>>,
    mapping: WithAlarms<Box<dyn Mapping + Send>>,
    config: SoundConfig,
    sinks: Vec<Box<dyn Sink>>,
    failed: Vec<String>,
    buf: Vec<f32>,
    legend_shown: bool,
    frames_seen: u64,
    served: Option<std::net::SocketAddr>,
}

/// Starts the live page's server (and waits for a browser if asked).
fn start_server(
    spec: &ServeSpec,
    title: &str,
    (rate, channels): (u32, u16),
    config: &SoundConfig,
) -> Result<ServeSink, PipelineError> {
    let failed = |source: SinkError| PipelineError::Open {
        what: "live page".into(),
        source,
    };
    let addr = gradtone_serve::parse_addr(&spec.addr).map_err(|e| failed(e.into()))?;
    let mut opts = ServeOptions::new(addr, rate, channels);
    opts.token = spec.token.clone();
    opts.title = if title.is_empty() {
        "gradtone".into()
    } else {
        title.to_string()
    };
    let server = Server::start(opts).map_err(|e| failed(e.into()))?;
    eprintln!("serving the live page at {}", server.url());
    if spec.wait {
        eprintln!("waiting for a browser to open it (Ctrl-C to go on without one)…");
        server.wait_for_client(&spec.stop, None);
        spec.stop.store(false, Ordering::SeqCst);
    }
    let linger = spec.linger.unwrap_or(0.0);
    Ok(ServeSink::new(
        server,
        config.grouping.clone(),
        linger,
        Arc::clone(&spec.stop),
    ))
}

impl Outputs {
    /// Opens every sink `spec` asks for: each file is created beside its path (it replaces the
    /// path at its first data; the TensorBoard folder is made then), the OSC socket is opened,
    /// the page's server bound. A failure here touches no output path and leaves no file.
    pub fn create(spec: &OutputSpec) -> Result<Self, PipelineError> {
        let config = spec.sound_config()?;
        let mapping = mapping::with_alarms(&config)?;
        let (rate, channels) = (mapping.sample_rate(), mapping.channels());
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        // Speakers first: they should hear a step before the files take their time with it.
        if let Some(pace) = spec.live {
            let cfg = LiveConfig {
                sample_rate: rate,
                channels,
                pace,
                ..LiveConfig::default()
            };
            match LivePlayer::open(cfg) {
                Ok(p) => sinks.push(Box::new(p)),
                // A headless machine is normal: say it once, keep going with the files.
                Err(e) => {
                    eprintln!("note: {e}; continuing without live sound (--no-live silences this)")
                }
            }
        }
        if let Some(p) = &spec.wav {
            let wav = WavFile::create(p, rate, channels, spec.wav_format, config.mapping.name());
            sinks.push(open("WAV file", wav)?);
        }
        if let Some(p) = &spec.csv {
            sinks.push(open("CSV file", CsvFile::create(p))?);
        }
        if let Some(p) = &spec.alarms {
            sinks.push(open("alarms file", alarms_file::AlarmsFile::create(p))?);
        }
        if let Some(p) = &spec.midi {
            check_parent(p, "MIDI file")?;
            sinks.push(open("MIDI file", MidiFile::create(p))?);
        }
        if let Some(a) = &spec.osc_out {
            sinks.push(open("OSC output", OscSender::connect(a))?);
        }
        if let Some(d) = &spec.tensorboard {
            let tb = TensorBoardSink::create(d, rate, channels);
            sinks.push(open("TensorBoard log", tb)?);
        }
        if let Some(p) = &spec.plot {
            check_parent(p, "plot")?;
            let grouping = mapping::plot_grouping(&config).cloned();
            let plot = PlotFile::create(p, &spec.title, (rate, channels), grouping);
            sinks.push(open("plot", plot)?);
        }
        // Last: every file is checked before a port is taken or a browser is waited for.
        let mut served = None;
        if let Some(sv) = &spec.serve {
            let sink = start_server(sv, &spec.title, (rate, channels), &config)?;
            served = Some(sink.local_addr());
            sinks.push(Box::new(sink));
        }
        let mut out = Self::with_sinks(mapping, config, sinks);
        out.served = served;
        Ok(out)
    }

    /// Outputs made of `sinks` and the mapping `config` names: for sinks made by the caller.
    pub fn from_sinks(
        config: SoundConfig,
        sinks: Vec<Box<dyn Sink>>,
    ) -> Result<Self, PipelineError> {
        let mapping = mapping::with_alarms(&config)?;
        Ok(Self::with_sinks(mapping, config, sinks))
    }

    fn with_sinks(
        mapping: WithAlarms<Box<dyn Mapping + Send>>,
        config: SoundConfig,
        sinks: Vec<Box<dyn Sink>>,
    ) -> Self {
        Outputs {
            watches: gradient_watch(&config),
            mapping,
            config,
            sinks,
            failed: Vec::new(),
            buf: Vec::new(),
            legend_shown: false,
            frames_seen: 0,
            served: None,
        }
    }

    /// Adds a sink to a running pipeline (it gets the steps from now on).
    pub fn add_sink(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push(sink);
    }

    /// The address the live page is served on, if it is.
    pub fn served_addr(&self) -> Option<std::net::SocketAddr> {
        self.served
    }

    /// The sample rate (Hz) and channel count of the sound every sink gets.
    pub fn audio_format(&self) -> (u32, u16) {
        (self.mapping.sample_rate(), self.mapping.channels())
    }

    /// Adds a watch: from the next [`Outputs::push`] on it judges every frame, before the
    /// gradient detector (so its alarms come first in what `push` returns), after the watches
    /// added before it. A watch that needs more than the frame carries is a
    /// [`gradtone_frame::Shared`] its source also holds. With `alarms.enabled` off it still
    /// sees every frame, but nothing it fires is reported or sounded.
    pub fn add_watch(&mut self, watch: Box<dyn Watch + Send>) {
        let at = self.watches.len() - usize::from(self.config.alarms.enabled);
        self.watches.insert(at, watch);
    }

    /// Starts part `index` (0-based) of a file made of several runs (a sweep's settings): a
    /// fresh mapping and gradient detector, so no statistics or alarm state carry over from the
    /// previous part (the watches added for it are dropped: add the new part's after this), then
    /// `index + 1` marker pings and 300 ms of silence in the audio, and a part marker called
    /// `label` at `step`, the first step of the part.
    pub fn begin_part(
        &mut self,
        index: usize,
        label: &str,
        step: u64,
    ) -> Result<(), PipelineError> {
        self.mapping = mapping::with_alarms(&self.config)?;
        self.watches = gradient_watch(&self.config);
        let ch = usize::from(self.mapping.channels());
        let m = gradtone_sound::alarm::marker(
            index + 1,
            self.mapping.sample_rate(),
            self.config.alarms.volume.max(0.3),
        );
        let silence = (0.3 * f64::from(self.mapping.sample_rate())) as usize;
        self.buf.clear();
        for s in m
            .samples
            .into_iter()
            .chain(std::iter::repeat_n(0.0, silence))
        {
            self.buf.extend(std::iter::repeat_n(s, ch));
        }
        self.send_audio(step)?;
        for s in &mut self.sinks {
            s.part(step, label);
        }
        Ok(())
    }

    /// Runs every watch on one frame, renders it with their alarms' earcons, and sends both to
    /// every sink; returns the alarms (for the console), the added watches' first.
    ///
    /// A sink that fails is reported on stderr and dropped; the error returned here means that
    /// no essential sink is left.
    pub fn push(&mut self, frame: &Frame) -> Result<Vec<AlarmEvent>, PipelineError> {
        self.frames_seen += 1;
        if !self.legend_shown {
            self.legend_shown = true;
            let names: Vec<&str> = frame.values.iter().map(|v| v.name.as_str()).collect();
            // What plays: voices for cents/depth, every value in turn for seed; bounded text.
            if let Some(legend) = mapping::voice_legend(&self.config, &names) {
                eprint!("{legend}");
            }
        }
        let mut events: Vec<AlarmEvent> = Vec::new();
        for w in &mut self.watches {
            events.extend(w.observe(frame));
        }
        if !self.config.alarms.enabled {
            events.clear();
        }
        self.buf.clear();
        self.mapping.play(frame, &events, &mut self.buf);
        self.send_audio(frame.step)?;
        self.each_sink(|s| s.frame(frame, &events))?;
        Ok(events)
    }

    /// The rendered samples in `self.buf` go to every sink.
    fn send_audio(&mut self, step: u64) -> Result<(), PipelineError> {
        let buf = std::mem::take(&mut self.buf);
        let r = self.each_sink(|s| s.audio(step, &buf));
        self.buf = buf;
        r
    }

    /// Runs `f` on every sink; a sink whose call fails leaves the run (reported, its partial
    /// output discarded). Errs when sinks were asked for and no essential one is left.
    fn each_sink(
        &mut self,
        mut f: impl FnMut(&mut dyn Sink) -> Result<(), SinkError>,
    ) -> Result<(), PipelineError> {
        let mut i = 0;
        let mut lost = false;
        while i < self.sinks.len() {
            match f(self.sinks[i].as_mut()) {
                Ok(()) => i += 1,
                Err(e) => {
                    let sink = self.sinks.remove(i);
                    lost |= sink.essential();
                    self.drop_failed(sink, &e);
                }
            }
        }
        if lost && !self.sinks.iter().any(|s| s.essential()) {
            return Err(PipelineError::AllFailed {
                failed: self.failed.clone(),
            });
        }
        Ok(())
    }

    fn drop_failed(&mut self, sink: Box<dyn Sink>, e: &SinkError) {
        let what = sink.describe();
        if sink.essential() {
            eprintln!(
                "error: {what}: {}; that output is abandoned, the others go on",
                ErrorChain(&**e)
            );
            self.failed.push(format!("{what}: {}", ErrorChain(&**e)));
            sink.discard();
        } else {
            // Losing the speakers must not lose the run: the files keep everything.
            eprintln!(
                "note: {what}: {}; it stopped, the other outputs go on",
                ErrorChain(&**e)
            );
        }
    }

    /// Plays out what the mapping still holds (an earcon's tail), then finishes every sink;
    /// returns a line per sink. Errs if any essential sink failed during the run or now: the
    /// others are finished and kept all the same, and the error lists both. A run without a
    /// single frame is [`PipelineError::NoFrames`], and leaves nothing behind.
    pub fn finish(mut self) -> Result<Vec<String>, PipelineError> {
        if self.frames_seen == 0 {
            // Dropping discards every sink's partial output.
            drop(self);
            return Err(PipelineError::NoFrames);
        }
        self.buf.clear();
        // Silent earcons (the seed mapping's default) leave no tail: its length stays exact.
        if self.config.alarms.volume > 0.0 {
            self.mapping.flush(&mut self.buf);
        }
        if !self.buf.is_empty() {
            let step = self.frames_seen;
            // A failure here is recorded in `self.failed`, reported below.
            let _ = self.send_audio(step);
        }
        let mut lines = Vec::new();
        for sink in std::mem::take(&mut self.sinks) {
            let (what, essential) = (sink.describe(), sink.essential());
            match sink.finish() {
                Ok(line) => lines.push(line),
                Err(e) if essential => self.failed.push(format!("{what}: {}", ErrorChain(&*e))),
                Err(e) => eprintln!("note: {what}: {}", ErrorChain(&*e)),
            }
        }
        if self.failed.is_empty() {
            Ok(lines)
        } else {
            Err(PipelineError::SomeFailed {
                failed: std::mem::take(&mut self.failed),
                finished: lines,
            })
        }
    }

    /// Removes every partial output (what dropping an unfinished `Outputs` does).
    pub fn discard(self) {}
}

/// The built-in watch: the gradient detector, when `config.alarms` are on.
fn gradient_watch(config: &SoundConfig) -> Vec<Box<dyn Watch + Send>> {
    if config.alarms.enabled {
        vec![Box::new(AlarmDetector::new(&config.alarms))]
    } else {
        Vec::new()
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        for sink in self.sinks.drain(..) {
            sink.discard();
        }
    }
}
