//! Every command's flags, one file per command (the outputs' flags, which each output crate
//! brings, are listed here); the command files beside `main.rs` hold only wiring.

mod data;
mod experiments;
mod listen;
mod run;
mod sweep;
mod train;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use gradtone_frame::{Output, Report};
use gradtone_ingest::Finished;
use gradtone_live::LiveArgs;
use gradtone_pipeline::Outputs;
use gradtone_sound::{SoundConfig, SoundVoice};

pub use data::DataArgs;
pub use experiments::ExperimentsArgs;
pub use gradtone_bench::BenchArgs;
pub use gradtone_train::args::ModelArg;
pub use listen::{ListenArgs, RenderArgs};
pub use run::RunArgs;
pub use sweep::SweepArgs;
pub use train::TrainArgs;

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

/// Declares [`SinkArgs`] from one list: each output crate's options, flattened in `--help`
/// order, and the same list in the same order as the outputs they open (see
/// `SinkArgs::outputs`). A new output is one line of this list.
macro_rules! sink_args {
    ($($field:ident: $options:ty,)*) => {
        /// Every output's flags (each output crate's options), after the sound's.
        #[derive(Args, Debug, Clone, Default)]
        pub struct SinkArgs {
            #[command(flatten)]
            pub sound: gradtone_sound::SoundArgs,
            $(
                #[command(flatten)]
                pub $field: $options,
            )*
        }

        impl SinkArgs {
            /// The outputs' options, in the list's order.
            fn listed(&self) -> Vec<&dyn Output<SoundConfig>> {
                vec![$(&self.$field as &dyn Output<SoundConfig>),*]
            }
        }
    };
}

sink_args! {
    wav: gradtone_sound::WavArgs,
    csv: gradtone_csv::CsvArgs,
    alarms: gradtone_pipeline::AlarmsArgs,
    plot: gradtone_plot::PlotArgs,
    midi: gradtone_export::MidiArgs,
    osc: gradtone_export::OscArgs,
    tensorboard: gradtone_tensorboard::TensorBoardArgs,
    // Last: every file is checked before the page's port is taken.
    serve: gradtone_serve::ServeArgs,
}

impl SinkArgs {
    /// Every output asked for, the speakers (`live`) first so they hear a step before the files
    /// take their time with it, the page last so every file is checked before a port is taken;
    /// this is also the order of the "wrote …" lines.
    fn outputs<'a>(&'a self, live: Option<&'a LiveArgs>) -> Vec<&'a dyn Output<SoundConfig>> {
        live.map(|l| l as &dyn Output<SoundConfig>)
            .into_iter()
            .chain(self.listed())
            .collect()
    }

    /// Checks, then opens every output asked for (and the speakers, `live`) for the sound
    /// `config`, before any work; `title` names the run in the plot and on the page.
    pub fn open_with(
        &self,
        config: SoundConfig,
        live: Option<&LiveArgs>,
        title: &str,
    ) -> anyhow::Result<Outputs> {
        let voice = SoundVoice::new(config.clone());
        let stop = crate::interrupt_flag_as_is();
        let (outputs, report) = (self.outputs(live), console());
        Ok(Outputs::open(
            Box::new(voice),
            &config,
            &outputs,
            title,
            report,
            &stop,
        )?)
    }

    /// [`SinkArgs::open_with`] the sound configuration of the flags.
    pub fn open(&self, live: Option<&LiveArgs>, title: &str) -> anyhow::Result<Outputs> {
        let config = self.sound.config()?;
        self.open_with(config, live, title)
    }

    /// Whether any output asked for keeps something after the run (a file, a page).
    pub fn keeps(&self) -> bool {
        self.outputs(None).iter().any(|o| o.keeps())
    }
}

/// Where the libraries' messages go: stderr, a line each.
pub fn console() -> Report {
    std::sync::Arc::new(|m: &str| eprintln!("{m}"))
}

/// Shows a stream's finished run: its frame count on stderr, then a "wrote …" line per output,
/// on stdout, or on stderr when stdout is the training's (`run`, `listen`).
pub fn show(finished: &Finished, to_stderr: bool) {
    eprintln!("{} frames", finished.frames);
    for l in &finished.lines {
        if to_stderr {
            eprintln!("wrote {l}");
        } else {
            println!("wrote {l}");
        }
    }
}
