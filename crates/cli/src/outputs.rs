//! The sinks of a run, fed one frame at a time: the mapping (with alarms) renders the sound,
//! which goes to the speakers, a WAV and TensorBoard; the frame itself goes to CSV, MIDI, OSC,
//! TensorBoard scalars and the plot.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use gradtone_export::{MidiOptions, MidiWriter, OscSender};
use gradtone_live::{LiveConfig, LivePlayer, Pace};
use gradtone_sound::alarm::{AlarmEvent, AlarmKind, WithAlarms};
use gradtone_sound::config::SoundConfig;
use gradtone_sound::csv::CsvWriter;
use gradtone_sound::grouping::Grouping;
use gradtone_sound::{Frame, Mapping, SampleFormat, WavSink, mapping};
use gradtone_tensorboard::EventWriter;

/// Audio kept in memory for the plot's spectrogram, at most (samples): ~10 min of stereo.
const PLOT_AUDIO_CAP: usize = 44_100 * 2 * 600;
/// Steps of audio per TensorBoard clip.
const TB_CLIP_STEPS: usize = 100;

/// What to produce; every field is optional.
#[derive(Clone, Debug, Default)]
pub struct OutputSpec {
    /// Mapping name (`seed`, `depth`, `cents`); `None`: the config's (default `cents`).
    pub mapping: Option<String>,
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
}

struct TensorBoardSink {
    writer: EventWriter,
    clip: Vec<f32>,
    clip_steps: usize,
    last_step: u64,
}

struct PlotSink {
    path: PathBuf,
    frames: Vec<Frame>,
    audio: Vec<f32>,
    markers: Vec<gradtone_plot::Marker>,
}

/// All sinks of one run. Files are created (or their folders checked) up front, so a bad
/// path fails before any work. A sink that fails later (a full disk, a name it cannot take) is
/// reported and closed; the other sinks go on and are finalised, and [`Outputs::finish`] then
/// fails naming it. After a failure of the *source*, [`Outputs::discard`] removes what would
/// look complete.
pub struct Outputs {
    mapping: WithAlarms<Box<dyn Mapping + Send>>,
    config: SoundConfig,
    live: Option<LivePlayer>,
    wav: Option<(PathBuf, WavSink)>,
    csv: Option<(PathBuf, Option<CsvWriter<File>>)>,
    midi: Option<(PathBuf, Option<MidiWriter>)>,
    osc: Option<OscSender>,
    tensorboard: Option<TensorBoardSink>,
    plot: Option<PlotSink>,
    title: String,
    buf: Vec<f32>,
    legend_shown: bool,
    frames_seen: u64,
    /// Sinks that failed and were closed: "the CSV output (path): why".
    failures: Vec<String>,
    /// Whether the CSV's column limit was reported.
    csv_overflow_told: bool,
}

/// Fails, naming the file, when `path`'s folder does not exist (checked before any work).
pub(crate) fn check_parent(path: &Path, what: &str) -> Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        bail!(
            "cannot write the {what} {}: folder {} does not exist",
            path.display(),
            parent.display()
        );
    }
    Ok(())
}

impl Outputs {
    /// Opens every requested sink.
    pub fn create(spec: &OutputSpec) -> Result<Self> {
        let mut config = match &spec.sound_config {
            Some(p) => SoundConfig::from_file(p)?,
            None => SoundConfig::default(),
        };
        if let Some(m) = &spec.mapping {
            config.mapping = m.clone();
        }
        if spec.absolute_pitch && spec.sound_config.is_none() {
            config.cents.range = gradtone_sound::config::Range::Absolute;
        }
        if spec.no_plateau {
            config.alarms.plateau.enabled = false;
        }
        if config.mapping == "seed" && !spec.alarm_sounds {
            // The seed mapping is the 2019 sound, sample for sample: alarms print, silently.
            config.alarms.volume = 0.0;
        }
        let mapping = mapping::with_alarms(&config)?;
        let (rate, channels) = (mapping.sample_rate(), mapping.channels());
        let wav = match &spec.wav {
            Some(p) => Some((
                p.clone(),
                WavSink::create(p, rate, channels, spec.wav_format)
                    .with_context(|| format!("cannot write the WAV file {}", p.display()))?,
            )),
            None => None,
        };
        // The CSV header and MIDI tracks need the frame's names: those writers are made at the
        // first frame, but the paths are checked now.
        let csv = match &spec.csv {
            Some(p) => {
                File::create(p)
                    .with_context(|| format!("cannot write the CSV file {}", p.display()))?;
                Some((p.clone(), None))
            }
            None => None,
        };
        let midi = match &spec.midi {
            Some(p) => {
                check_parent(p, "MIDI file")?;
                Some((p.clone(), None))
            }
            None => None,
        };
        let osc = match &spec.osc_out {
            Some(a) => Some(OscSender::connect(a)?),
            None => None,
        };
        let tensorboard = match &spec.tensorboard {
            Some(d) => Some(TensorBoardSink {
                writer: EventWriter::create(d)?,
                clip: Vec::new(),
                clip_steps: 0,
                last_step: 0,
            }),
            None => None,
        };
        let plot = match &spec.plot {
            Some(p) => {
                check_parent(p, "plot")?;
                Some(PlotSink {
                    path: p.clone(),
                    frames: Vec::new(),
                    audio: Vec::new(),
                    markers: Vec::new(),
                })
            }
            None => None,
        };
        let live = spec.live.and_then(|pace| {
            let cfg = LiveConfig {
                sample_rate: rate,
                channels,
                pace,
                ..LiveConfig::default()
            };
            match LivePlayer::open(cfg) {
                Ok(p) => Some(p),
                Err(e) => {
                    // A headless machine is normal: say it once, keep going with the files.
                    eprintln!("note: {e}; continuing without live sound (--no-live silences this)");
                    None
                }
            }
        });
        Ok(Self {
            mapping,
            config,
            live,
            wav,
            csv,
            midi,
            osc,
            tensorboard,
            plot,
            title: spec.title.clone(),
            buf: Vec::new(),
            legend_shown: false,
            frames_seen: 0,
            failures: Vec::new(),
            csv_overflow_told: false,
        })
    }

    /// Raises an alarm found outside the mapping's detector (a lagging or disagreeing rank): its
    /// earcon sounds in the next frame's audio and it is returned by the next [`Outputs::push`].
    pub fn raise(&mut self, step: u64, kind: AlarmKind, message: String) {
        self.mapping.raise(AlarmEvent {
            step,
            kind,
            message,
        });
    }

    /// Starts part `index` (0-based) of a file made of several runs (a sweep's settings): a
    /// fresh mapping, so no statistics or alarm state carry over from the previous part, then
    /// `index + 1` marker pings and 300 ms of silence in the audio, and a plot marker called
    /// `label` at `step`, the first step of the part.
    pub fn begin_part(&mut self, index: usize, label: &str, step: u64) -> Result<()> {
        self.mapping = mapping::with_alarms(&self.config)?;
        let (rate, ch) = (
            self.mapping.sample_rate(),
            usize::from(self.mapping.channels()),
        );
        let m = gradtone_sound::alarm::marker(index + 1, rate, self.config.alarms.volume.max(0.3));
        let silence = (0.3 * f64::from(rate)) as usize;
        self.buf.clear();
        for s in m
            .samples
            .into_iter()
            .chain(std::iter::repeat_n(0.0, silence))
        {
            self.buf.extend(std::iter::repeat_n(s, ch));
        }
        self.send_audio(step);
        if let Some(p) = &mut self.plot {
            p.markers.push(gradtone_plot::Marker {
                step,
                label: label.to_string(),
            });
        }
        Ok(())
    }

    /// Sends one frame to every sink; returns the alarms it fired (for the console).
    pub fn push(&mut self, frame: &Frame) -> Result<Vec<AlarmEvent>> {
        self.frames_seen += 1;
        if !self.legend_shown {
            self.legend_shown = true;
            let names: Vec<&str> = frame.values.iter().map(|v| v.name.as_str()).collect();
            if names.len() > self.config.grouping.max_voices {
                let g = Grouping::new(&names, &self.config.grouping);
                eprintln!(
                    "{} values grouped into voices:\n{}",
                    names.len(),
                    g.legend_text()
                );
            }
        }
        self.buf.clear();
        self.mapping.render(frame, &mut self.buf);
        let events = self.mapping.take_events();
        self.send_audio(frame.step);
        if let Some((path, writer)) = &mut self.csv {
            let result = (|| -> Result<()> {
                if writer.is_none() {
                    let losses: Vec<&str> = frame.losses.iter().map(|v| v.name.as_str()).collect();
                    let values: Vec<&str> = frame.values.iter().map(|v| v.name.as_str()).collect();
                    *writer = Some(CsvWriter::create(path, &losses, &values)?);
                }
                if let Some(w) = writer {
                    w.write(frame)?;
                    if !self.csv_overflow_told
                        && let (n, Some(first)) = w.overflow()
                        && n > 0
                    {
                        self.csv_overflow_told = true;
                        eprintln!(
                            "warning: {}: more than {} distinct names; later ones (first: \
                             {first:?}) are counted, not written (--tensorboard or the JSONL \
                             stream keep them)",
                            path.display(),
                            gradtone_sound::csv::MAX_COLUMNS
                        );
                    }
                }
                Ok(())
            })();
            if let Err(e) = result {
                let what = format!("the CSV output {}", path.display());
                self.csv = None;
                self.fail(what, e);
            }
        }
        if let Some((path, writer)) = &mut self.midi {
            let result = (|| -> Result<()> {
                if writer.is_none() {
                    let voices: Vec<&str> = frame.values.iter().map(|v| v.name.as_str()).collect();
                    *writer = Some(MidiWriter::create(
                        path.as_path(),
                        &voices,
                        MidiOptions::default(),
                    )?);
                }
                if let Some(w) = writer {
                    w.push(frame);
                }
                Ok(())
            })();
            if let Err(e) = result {
                let what = format!("the MIDI output {}", path.display());
                self.midi = None;
                self.fail(what, e);
            }
        }
        if let Some(osc) = &mut self.osc {
            // UDP errors are counted by the sender and reported at the end, never fatal.
            osc.send_frame(frame);
            for e in &events {
                osc.send_alarm(e.kind.name(), &e.message);
            }
        }
        if let Some(tb) = &mut self.tensorboard {
            let t = gradtone_tensorboard::wall_time_now();
            let result = frame.values.iter().chain(&frame.losses).try_for_each(|v| {
                tb.writer.add_scalar(
                    &format!("gradtone/{}", v.name),
                    frame.step,
                    v.value as f32,
                    t,
                )
            });
            if let Err(e) = result {
                self.tensorboard = None;
                self.fail("the TensorBoard output".into(), e.into());
            }
        }
        if let Some(p) = &mut self.plot {
            p.frames.push(frame.clone());
            p.markers
                .extend(events.iter().map(|e| gradtone_plot::Marker {
                    step: e.step,
                    label: e.kind.name().into(),
                }));
        }
        Ok(events)
    }

    /// Reports a sink's failure once; the sink is already closed, the others go on.
    fn fail(&mut self, what: String, e: anyhow::Error) {
        let why = crate::error_chain(&e);
        eprintln!("error: {what} failed: {why}; the other outputs go on");
        self.failures.push(format!("{what}: {why}"));
    }

    /// The rendered samples in `self.buf` go to the speakers, the WAV, TensorBoard and the plot.
    /// A sink that fails is closed and reported ([`Outputs::fail`]).
    fn send_audio(&mut self, step: u64) {
        if let Some(player) = &mut self.live
            && let Err(e) = player.push(&self.buf)
        {
            // Losing the speakers must not lose the run: the files keep everything.
            eprintln!("note: {e}; live sound stopped, files continue");
            self.live = None;
        }
        if let Some((path, sink)) = &mut self.wav
            && let Err(e) = sink.write(&self.buf)
        {
            let what = format!("the WAV output {}", path.display());
            self.wav = None;
            self.fail(what, e.into());
        }
        if let Some(tb) = &mut self.tensorboard {
            tb.clip.extend_from_slice(&self.buf);
            tb.clip_steps += 1;
            tb.last_step = step;
            if tb.clip_steps >= TB_CLIP_STEPS
                && let Err(e) = flush_clip(tb, self.mapping.sample_rate(), self.mapping.channels())
            {
                self.tensorboard = None;
                self.fail("the TensorBoard output".into(), e);
            }
        }
        if let Some(p) = &mut self.plot {
            let room = PLOT_AUDIO_CAP.saturating_sub(p.audio.len());
            p.audio
                .extend_from_slice(&self.buf[..self.buf.len().min(room)]);
        }
    }

    /// Plays out what the mapping still holds (an earcon's tail), then finalises every file;
    /// returns a line per sink. Each sink is finalised on its own: one that fails does not stop
    /// the others. Fails (after finalising the others) when a sink failed during the run or
    /// here, and when no frame arrived at all (then nothing is left behind: an empty WAV or CSV
    /// would pass for a result).
    pub fn finish(mut self) -> Result<Vec<String>> {
        if self.frames_seen == 0 {
            if let Some(player) = self.live.take() {
                let _ = player.finish();
            }
            self.discard();
            bail!("no frames: the input held no training step to sonify, so nothing was written");
        }
        self.buf.clear();
        // Silent earcons (the seed mapping's default) leave no tail: its length stays exact.
        if self.config.alarms.volume > 0.0 {
            self.mapping.flush(&mut self.buf);
        }
        if !self.buf.is_empty() {
            let step = self.frames_seen;
            self.send_audio(step);
        }
        let (rate, channels) = (
            f64::from(self.mapping.sample_rate()),
            f64::from(self.mapping.channels()),
        );
        let mut failures = std::mem::take(&mut self.failures);
        let mut lines = Vec::new();
        if let Some(player) = self.live.take() {
            match player.finish() {
                Ok(s) => lines.push(format!(
                    "live: {:.1} s played, {:.1} s skipped to keep up, {} underruns",
                    s.samples_played as f64 / rate / channels,
                    s.samples_dropped as f64 / rate / channels,
                    s.underruns
                )),
                Err(e) => eprintln!("note: {e}"),
            }
        }
        if let Some((path, sink)) = self.wav.take() {
            let n = sink.samples_written();
            match sink.finalize() {
                Ok(()) => lines.push(format!(
                    "{} ({:.1} s of audio, {} mapping)",
                    path.display(),
                    n as f64 / rate / channels,
                    self.config.mapping
                )),
                Err(e) => failures.push(format!("finalising {}: {e}", path.display())),
            }
        }
        if let Some((path, writer)) = self.csv.take() {
            let result = match writer {
                Some(w) => {
                    let (overflow, _) = w.overflow();
                    w.finish().map(|_| overflow)
                }
                None => Ok(0),
            };
            match result {
                Ok(0) => lines.push(path.display().to_string()),
                Ok(n) => lines.push(format!(
                    "{} ({n} values past {} columns not written)",
                    path.display(),
                    gradtone_sound::csv::MAX_COLUMNS
                )),
                Err(e) => failures.push(format!("finalising {}: {e}", path.display())),
            }
        }
        if let Some((path, Some(w))) = self.midi.take() {
            match w.finish() {
                Ok(s) => lines.push(format!(
                    "{} ({} notes, {} alarms)",
                    path.display(),
                    s.notes,
                    s.alarms
                )),
                Err(e) => failures.push(format!("finalising {}: {e}", path.display())),
            }
        }
        if let Some(osc) = self.osc.take() {
            let s = osc.stats();
            lines.push(format!(
                "OSC to {}: {} frames, {} send errors",
                osc.peer(),
                s.frames,
                s.send_errors
            ));
        }
        if let Some(mut tb) = self.tensorboard.take() {
            let result = (|| -> Result<PathBuf> {
                if tb.clip_steps > 0 {
                    flush_clip(&mut tb, self.mapping.sample_rate(), self.mapping.channels())?;
                }
                Ok(tb.writer.finish()?)
            })();
            match result {
                Ok(path) => lines.push(format!(
                    "{} (TensorBoard: scalars gradtone/*, audio gradtone/sound)",
                    path.display()
                )),
                Err(e) => failures.push(format!(
                    "finalising the TensorBoard output: {}",
                    crate::error_chain(&e)
                )),
            }
        }
        if let Some(p) = self.plot.take() {
            let input = gradtone_plot::PlotInput {
                title: &self.title,
                frames: &p.frames,
                markers: &p.markers,
                audio: Some((
                    &p.audio,
                    self.mapping.sample_rate(),
                    self.mapping.channels(),
                )),
            };
            match gradtone_plot::render_png(&p.path, &input) {
                Ok(()) => lines.push(p.path.display().to_string()),
                Err(e) => failures.push(format!("{e}")),
            }
        }
        if failures.is_empty() {
            return Ok(lines);
        }
        let kept = if lines.is_empty() {
            "no other output".to_string()
        } else {
            format!("kept: {}", lines.join("; "))
        };
        Err(anyhow!(
            "{} output(s) failed: {} ({kept})",
            failures.len(),
            failures.join("; ")
        ))
    }

    /// Removes the files after a failure, so nothing incomplete passes for a finished result.
    pub fn discard(mut self) {
        if let Some((path, sink)) = self.wav.take() {
            drop(sink);
            let _ = std::fs::remove_file(path);
        }
        if let Some((path, writer)) = self.csv.take() {
            drop(writer);
            let _ = std::fs::remove_file(path);
        }
        // An unfinished MIDI writer removes its own temporary file when dropped.
    }
}

fn flush_clip(tb: &mut TensorBoardSink, rate: u32, channels: u16) -> Result<()> {
    let t = gradtone_tensorboard::wall_time_now();
    tb.writer
        .add_audio("gradtone/sound", tb.last_step, &tb.clip, rate, channels, t)?;
    tb.clip.clear();
    tb.clip_steps = 0;
    Ok(())
}
