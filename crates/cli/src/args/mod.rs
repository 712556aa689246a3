//! Every command's flags, one file per command (the shared sink and playback flags here); the
//! command files beside `main.rs` hold only wiring.

mod bench;
mod data;
mod experiments;
mod listen;
mod run;
mod sweep;
mod train;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use gradtone_sound::SampleFormat;

pub use bench::BenchArgs;
pub use data::DataArgs;
pub use experiments::ExperimentsArgs;
pub use listen::{ListenArgs, RankArgs, RenderArgs};
pub use run::RunArgs;
pub use sweep::SweepArgs;
pub use train::{ModelArg, TrainArgs};

use crate::outputs::{OutputSpec, ServeSpec};

/// Hear neural-network training: each step's per-layer gradient norms become sound.
#[derive(Parser, Debug)]
#[command(name = "gradtone", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train on MNIST (Burn, CPU) and hear the gradient norms: the 2019 seed CNN (optionally
    /// with an L2 term), or a small GAN whose three losses are three instruments.
    Train(TrainArgs),
    /// Train the same seed at several weights of one loss term and render them into one WAV,
    /// separated by pings, with a table and a picture: hear where the balance tips.
    Sweep(SweepArgs),
    /// Run the five original settings and write their WAVs, CSVs and a summary.md table.
    Experiments(ExperimentsArgs),
    /// Check gradtone's gradients against PyTorch's reference answers (exit 1 if any error > 1e-4).
    ReferenceCheck {
        /// A folder laid out like shared/reference/pytorch/exact (params/, batch_*.f32/u8, expected.json).
        dir: PathBuf,
    },
    /// Render recorded metrics (JSONL stream, CSV, or TensorBoard event files) to sound, offline.
    Render(RenderArgs),
    /// Time training steps (batch 10/64/256), the norms' and the sound's cost, and peak memory.
    Bench(BenchArgs),
    /// Sonify a live stream of metrics: stdin, a growing file, UDP or OSC (see docs/stream-format.md).
    ///
    /// From stdin (`python train.py | gradtone listen`), lines that are not frames (the
    /// script's own prints) pass through to stdout; gradtone's messages and its summary go to
    /// stderr. A pipe or a file carries lines of up to 1 MiB; a UDP or OSC datagram at most
    /// 65,507 bytes. The outputs are replaced only once a frame has arrived: a run without
    /// frames exits 1 and leaves existing files as they were.
    Listen(ListenArgs),
    /// Run a training command and hear it: `gradtone run [FLAGS] -- python train.py …`.
    ///
    /// The command keeps its stdin, stdout, stderr and Ctrl-C (SIGINT or SIGTERM to the process
    /// group end the command as without gradtone, then gradtone finalises its outputs). Its gradtone hook reaches a private loopback TCP listener that GRADTONE_TO
    /// names (`tcp://127.0.0.1:PORT`: lines up to 1 MiB, a 5,000-tensor frame is 390 KB; each
    /// torchrun rank on its own connection); gradtone's messages and its summary go to stderr.
    /// The outputs are set up first (files created beside their paths, the --serve port bound,
    /// the OSC socket opened): a bad path or a busy port refuses the run before the command
    /// starts. Once started, the command is never stopped by gradtone, which exits with the
    /// command's status; a run in which no frame arrived says so in one line and leaves
    /// existing files as they were.
    Run(RunArgs),
}

/// Live playback flags.
#[derive(Args, Debug, Clone)]
pub struct LiveArgs {
    /// Do not play sound on the speakers (files are still written).
    #[arg(long)]
    no_live: bool,
    /// When training is faster than its sound: skip to the newest step (live), or wait (realtime).
    #[arg(long, value_enum, default_value_t = gradtone_live::Pace::Live)]
    pace: gradtone_live::Pace,
}

impl LiveArgs {
    /// The playback pace, or `None` with `--no-live`.
    pub fn pace(&self) -> Option<gradtone_live::Pace> {
        (!self.no_live).then_some(self.pace)
    }
}

/// How the sound is made and written (shared by train, listen and render).
#[derive(Args, Debug, Clone, Default)]
pub struct SinkArgs {
    /// Mapping from values to sound: seed (the 2019 original, sample-exact), depth, cents
    /// (default: cents, or the --sound-config file's).
    #[arg(long)]
    pub mapping: Option<gradtone_sound::mapping::MappingKind>,
    /// TOML file configuring mappings, synthesis, grouping and alarms (see crates/sound/examples/sound.toml).
    #[arg(long, value_name = "FILE")]
    pub sound_config: Option<PathBuf>,
    /// Mix alarm earcons into the seed mapping too (it stays sample-exact without).
    #[arg(long)]
    pub alarm_sounds: bool,
    /// Write the sound to this WAV file.
    #[arg(long, value_name = "FILE")]
    pub wav: Option<PathBuf>,
    /// WAV sample format.
    #[arg(long, value_enum, default_value_t = SampleFormat::Pcm16)]
    pub wav_format: SampleFormat,
    /// Write one row per step (step,loss,<values>...) to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write every alarm event as one line of JSON (step, kind, layers, message, numbers) to
    /// this file, for scripts and CI; a healthy run leaves it empty.
    #[arg(long, value_name = "FILE")]
    pub alarms: Option<PathBuf>,
    /// Draw the values per step (log scale, alarm markers) and a spectrogram of the sound to this PNG.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Write a MIDI file: a track per voice, alarms on the drum channel.
    #[arg(long, value_name = "FILE")]
    pub midi: Option<PathBuf>,
    /// Send each frame as OSC to HOST:PORT (e.g. 127.0.0.1:57120 for SuperCollider; docs/osc.md).
    #[arg(long, value_name = "HOST:PORT")]
    pub osc_out: Option<String>,
    /// Write the values as scalars and the sound as audio clips into TensorBoard event files in DIR.
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
    /// Serve a live page (the sound, the chart, the alarms) on [IP:]PORT: 127.0.0.1:8737 when
    /// no value is given, 0 for any free port. Any address but loopback needs a token (a random
    /// one is printed in the URL). Remote use: README "Hear it from anywhere".
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
    pub serve: Option<String>,
    /// The token the page's URL must carry (default: none on loopback, random elsewhere).
    #[arg(long, value_name = "TOKEN", requires = "serve")]
    pub serve_token: Option<String>,
    /// Serve without a token (allowed on loopback only).
    #[arg(long, requires = "serve", conflicts_with = "serve_token")]
    pub serve_no_token: bool,
    /// Wait for a browser to open the page before the first step (hear it from the start).
    #[arg(long, requires = "serve")]
    pub serve_wait: bool,
    /// Keep serving this many seconds after the run ends (default 0; `render`: until Ctrl-C).
    #[arg(long, value_name = "SECONDS", requires = "serve")]
    pub serve_linger: Option<f64>,
}

impl SinkArgs {
    /// The output spec of these flags, with live playback `live` and a plot title.
    pub fn spec(&self, live: Option<gradtone_live::Pace>, title: &str) -> OutputSpec {
        OutputSpec {
            mapping: self.mapping,
            sound_config: self.sound_config.clone(),
            alarm_sounds: self.alarm_sounds,
            wav: self.wav.clone(),
            wav_format: self.wav_format,
            csv: self.csv.clone(),
            alarms: self.alarms.clone(),
            plot: self.plot.clone(),
            midi: self.midi.clone(),
            osc_out: self.osc_out.clone(),
            tensorboard: self.tensorboard.clone(),
            live,
            title: title.to_string(),
            no_plateau: false,
            absolute_pitch: false,
            serve: self.serve_spec(),
            summary_to_stderr: false,
            drain_on_failure: false,
        }
    }

    /// The `--serve*` flags; an address that does not parse is reported by `Outputs::create`.
    fn serve_spec(&self) -> Option<ServeSpec> {
        let addr = self.serve.clone()?;
        Some(ServeSpec {
            addr,
            token: match (&self.serve_token, self.serve_no_token) {
                (Some(t), _) => gradtone_serve::Token::Given(t.clone()),
                (None, true) => gradtone_serve::Token::Off,
                (None, false) => gradtone_serve::Token::Auto,
            },
            wait: self.serve_wait,
            linger: self.serve_linger,
            stop: crate::interrupt_flag_as_is(),
        })
    }
}
