//! `gradtone`: hear neural-network training. Thin wiring of the library crates: sources
//! (the Burn trainer, CSV files) → frames → a mapping → sinks (WAV, CSV).

mod alloc;
mod bench;
mod data;
mod experiments;
mod gan;
mod listen;
mod outputs;
mod run;
mod sweep;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use gradtone_sound::SampleFormat;
use gradtone_train::{Optim, Preset, RunConfig, SeedParams};
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::DataArgs;
use crate::outputs::Outputs;

/// Hear neural-network training: each step's per-layer gradient norms become sound.
#[derive(Parser, Debug)]
#[command(name = "gradtone", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train on MNIST (Burn, CPU) and hear the gradient norms: the 2019 seed CNN (optionally
    /// with an L2 term), or a small GAN whose three losses are three instruments.
    Train(TrainArgs),
    /// Train the same seed at several weights of one loss term and render them into one WAV,
    /// separated by pings, with a table and a picture: hear where the balance tips.
    Sweep(sweep::SweepArgs),
    /// Run the five original settings and write their WAVs, CSVs and a summary.md table.
    Experiments(ExperimentsArgs),
    /// Check gradtone's gradients against PyTorch's reference answers (exit 1 if any error > 1e-4).
    ReferenceCheck {
        /// A folder laid out like shared/reference/pytorch/exact (params/, batch_*.f32/u8, expected.json).
        dir: PathBuf,
    },
    /// Render recorded metrics (JSONL stream, CSV, or TensorBoard event files) to sound, offline.
    Render(listen::RenderArgs),
    /// Time training steps (batch 10/64/256), the norms' and the sound's cost, and peak memory.
    Bench(bench::BenchArgs),
    /// Sonify a live stream of metrics: stdin, a growing file, UDP or OSC (see docs/stream-format.md).
    Listen(listen::ListenArgs),
    /// Run a training command and hear it: `gradtone run [FLAGS] -- python train.py …`. The
    /// command's output is untouched; its gradtone hook reaches this listener through
    /// GRADTONE_TO; the exit status is the command's.
    Run(run::RunArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum ModelArg {
    /// The 2019 seed CNN classifier (loss terms: nll, and l2 when weighted).
    #[default]
    Cnn,
    /// A small MLP GAN (loss terms: d_real, d_fake, g_adv).
    Gan,
}

/// Loss-term weights, `name=weight` pairs in the order given.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LossWeights(pub Vec<(String, f64)>);

/// Parses `name=weight[,name=weight…]` (weights finite and ≥ 0).
pub(crate) fn parse_weights(s: &str) -> Result<LossWeights, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (name, w) = p
                .split_once('=')
                .ok_or_else(|| format!("{p:?} is not name=weight (e.g. l2=0.001)"))?;
            let w: f64 = w
                .trim()
                .parse()
                .map_err(|_| format!("weight of {:?} is not a number: {w:?}", name.trim()))?;
            if !w.is_finite() || w < 0.0 {
                return Err(format!(
                    "weight of {:?} must be finite and ≥ 0, got {w}",
                    name.trim()
                ));
            }
            Ok((name.trim().to_string(), w))
        })
        .collect::<Result<_, _>>()
        .map(LossWeights)
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OptimArg {
    /// SGD with momentum (PyTorch semantics: dampening 0).
    Sgd,
    /// Adam (betas 0.9/0.999, eps 1e-8, as PyTorch).
    Adam,
}

/// Live playback flags.
#[derive(Args, Debug, Clone)]
pub(crate) struct LiveArgs {
    /// Do not play sound on the speakers (files are still written).
    #[arg(long)]
    no_live: bool,
    /// When training is faster than its sound: skip to the newest step (live), or wait (realtime).
    #[arg(long, value_enum, default_value_t = gradtone_live::Pace::Live)]
    pace: gradtone_live::Pace,
}

impl LiveArgs {
    pub(crate) fn pace(&self) -> Option<gradtone_live::Pace> {
        (!self.no_live).then_some(self.pace)
    }
}

/// How the sound is made and written (shared by train, listen and render).
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct SinkArgs {
    /// Mapping from values to sound: seed (the 2019 original, sample-exact), depth, cents
    /// (default: cents, or the --sound-config file's).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(gradtone_sound::mapping::NAMES))]
    mapping: Option<String>,
    /// TOML file configuring mappings, synthesis, grouping and alarms (see crates/sound/examples/sound.toml).
    #[arg(long, value_name = "FILE")]
    sound_config: Option<PathBuf>,
    /// Mix alarm earcons into the seed mapping too (it stays sample-exact without).
    #[arg(long)]
    alarm_sounds: bool,
    /// Write the sound to this WAV file.
    #[arg(long, value_name = "FILE")]
    wav: Option<PathBuf>,
    /// WAV sample format.
    #[arg(long, value_enum, default_value_t = SampleFormat::Pcm16)]
    wav_format: SampleFormat,
    /// Write one row per step (step,loss,<values>...) to this CSV file.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Draw the values per step (log scale, alarm markers) and a spectrogram of the sound to this PNG.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Write a MIDI file: a track per voice, alarms on the drum channel.
    #[arg(long, value_name = "FILE")]
    midi: Option<PathBuf>,
    /// Send each frame as OSC to HOST:PORT (e.g. 127.0.0.1:57120 for SuperCollider; docs/osc.md).
    #[arg(long, value_name = "HOST:PORT")]
    osc_out: Option<String>,
    /// Write the values as scalars and the sound as audio clips into TensorBoard event files in DIR.
    #[arg(long, value_name = "DIR")]
    tensorboard: Option<PathBuf>,
    /// Serve a live page (the sound, the chart, the alarms) on [IP:]PORT: 127.0.0.1:8737 when
    /// no value is given, 0 for any free port. Any address but loopback needs a token (a random
    /// one is printed in the URL). Remote use: README "Hear it from anywhere".
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
    serve: Option<String>,
    /// The token the page's URL must carry (default: none on loopback, random elsewhere).
    #[arg(long, value_name = "TOKEN", requires = "serve")]
    serve_token: Option<String>,
    /// Serve without a token (allowed on loopback only).
    #[arg(long, requires = "serve", conflicts_with = "serve_token")]
    serve_no_token: bool,
    /// Wait for a browser to open the page before the first step (hear it from the start).
    #[arg(long, requires = "serve")]
    serve_wait: bool,
    /// Keep serving this many seconds after the run ends (default 0; `render`: until Ctrl-C).
    #[arg(long, value_name = "SECONDS", requires = "serve")]
    serve_linger: Option<f64>,
}

impl SinkArgs {
    fn format(&self) -> SampleFormat {
        self.wav_format
    }

    /// The output spec of these flags, with live playback `live` and a plot title.
    pub(crate) fn spec(
        &self,
        live: Option<gradtone_live::Pace>,
        title: &str,
    ) -> outputs::OutputSpec {
        outputs::OutputSpec {
            mapping: self.mapping.clone(),
            sound_config: self.sound_config.clone(),
            alarm_sounds: self.alarm_sounds,
            wav: self.wav.clone(),
            wav_format: self.format(),
            csv: self.csv.clone(),
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
        }
    }

    /// The `--serve*` flags; an address that does not parse is reported by `Outputs::create`.
    fn serve_spec(&self) -> Option<outputs::ServeSpec> {
        let addr = self.serve.clone()?;
        Some(outputs::ServeSpec {
            addr,
            token: match (&self.serve_token, self.serve_no_token) {
                (Some(t), _) => gradtone_serve::Token::Given(t.clone()),
                (None, true) => gradtone_serve::Token::Off,
                (None, false) => gradtone_serve::Token::Auto,
            },
            wait: self.serve_wait,
            linger: self.serve_linger,
            stop: interrupt_flag_as_is(),
        })
    }
}

#[derive(Args, Debug)]
pub(crate) struct TrainArgs {
    /// What to train: the seed CNN, or a GAN (see the GAN flags).
    #[arg(long, value_enum, default_value_t = ModelArg::Cnn)]
    model: ModelArg,
    /// Weights of the loss terms, name=weight,…: cnn `l2=λ` adds λ·Σ‖W‖² (its NLL weight stays
    /// 1); gan `d_real=…,d_fake=…,g_adv=…` (default 1 each). Each term becomes an instrument.
    #[arg(long, value_name = "NAME=W,...", value_parser = parse_weights)]
    loss_weights: Option<LossWeights>,
    /// Start from one of the five original settings; the flags below override its fields.
    #[arg(long, value_enum, default_value = "sgd_lr0.1_bs10")]
    preset: Preset,
    /// Optimiser.
    #[arg(long, value_enum)]
    optim: Option<OptimArg>,
    /// Learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// SGD momentum (PyTorch semantics, dampening 0). The presets use 0.5.
    #[arg(long)]
    momentum: Option<f64>,
    /// Batch size.
    #[arg(long)]
    batch: Option<usize>,
    /// Stop after this many steps (the original: 201). 0 = no step limit (use --epochs).
    #[arg(long)]
    steps: Option<usize>,
    /// Stop after this many epochs (whichever of --steps/--epochs comes first).
    #[arg(long)]
    epochs: Option<usize>,
    /// Seed for the initial weights and each epoch's shuffle.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Go through the training set in file order instead of shuffling each epoch.
    #[arg(long)]
    no_shuffle: bool,
    /// Keep the last incomplete batch of each epoch (default: drop it, as the original).
    #[arg(long)]
    keep_last: bool,
    /// Start from raw float32 parameter files (PyTorch layout, <name>.f32) instead of a seeded init.
    #[arg(long, value_name = "DIR")]
    init_params: Option<PathBuf>,
    /// Skip the test-set accuracy at the end.
    #[arg(long)]
    no_eval: bool,
    #[command(flatten)]
    gan: gan::GanArgs,
    #[command(flatten)]
    sinks: SinkArgs,
    #[command(flatten)]
    live: LiveArgs,
    #[command(flatten)]
    data: DataArgs,
}

impl TrainArgs {
    fn run_config(&self) -> Result<RunConfig> {
        let mut cfg = self.preset.config(self.seed);
        let momentum = match cfg.optim {
            Optim::Sgd { momentum } => momentum,
            Optim::Adam => 0.5,
        };
        match self.optim {
            Some(OptimArg::Adam) => cfg.optim = Optim::Adam,
            Some(OptimArg::Sgd) => cfg.optim = Optim::Sgd { momentum },
            None => {}
        }
        if let (Some(m), Optim::Sgd { momentum }) = (self.momentum, &mut cfg.optim) {
            *momentum = m;
        }
        if let Some(lr) = self.lr {
            cfg.lr = lr;
        }
        if let Some(b) = self.batch {
            cfg.batch = b;
        }
        if let Some(s) = self.steps {
            cfg.steps = (s > 0).then_some(s);
        }
        if self.epochs.is_some() {
            cfg.epochs = self.epochs;
        }
        cfg.shuffle = !self.no_shuffle;
        cfg.drop_last = !self.keep_last;
        for (name, w) in self.loss_weights.iter().flat_map(|w| &w.0) {
            match name.as_str() {
                "l2" => cfg.l2 = *w,
                "nll" if *w == 1.0 => {}
                "nll" => bail!(
                    "--loss-weights: the cnn's nll weight is fixed at 1 (scale --lr instead), got {w}"
                ),
                other => bail!(
                    "--loss-weights: the cnn has the terms nll and l2, not {other:?} (for d_real/d_fake/g_adv use --model gan)"
                ),
            }
        }
        Ok(cfg)
    }
}

#[derive(Args, Debug)]
struct ExperimentsArgs {
    /// Folder for <setting>.wav, <setting>.csv and summary.md (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Seed of every run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Steps per run (default: the article's 201).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    steps: Option<u64>,
    /// WAV sample format.
    #[arg(long, value_enum, default_value_t = SampleFormat::Pcm16)]
    wav_format: SampleFormat,
    #[command(flatten)]
    data: DataArgs,
}

impl ExperimentsArgs {
    fn format(&self) -> SampleFormat {
        SinkArgs {
            wav_format: self.wav_format,
            ..SinkArgs::default()
        }
        .format()
    }
}

fn main() {
    alloc::keep_freed_pages();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {}", error_chain(&e));
        std::process::exit(1);
    }
}

/// `e` and its causes, `: `-separated. Many library errors already print their cause in their
/// own message (`cannot open x: No such file (os error 2)`) and also return it as `source()`;
/// a cause whose text is already there is left out, so nothing is said twice.
pub(crate) fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) if args.model == ModelArg::Gan => gan::train(&args),
        Command::Train(args) => train(args),
        Command::Sweep(args) => sweep::run(&args),
        Command::Experiments(args) => experiments::run(&args),
        Command::ReferenceCheck { dir } => reference_check(&dir),
        Command::Render(args) => listen::render(&args),
        Command::Listen(args) => listen::listen(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Run(args) => run::run(&args),
    }
}

/// The flag that Ctrl-C sets: the loop finishes its step, the files are finalised. One
/// process-wide flag (a handler can be installed only once), cleared for each new run.
pub(crate) fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = interrupt_flag_as_is();
    flag.store(false, Ordering::SeqCst);
    flag
}

/// The Ctrl-C flag, installing the handler if needed, without clearing it.
pub(crate) fn interrupt_flag_as_is() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    let flag = FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        if let Err(e) = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst)) {
            eprintln!("note: Ctrl-C will stop at once, without finalising files ({e})");
        }
        flag
    });
    flag.clone()
}

/// Prints a line above the progress bar, or to stderr when the bar is hidden (not a terminal):
/// indicatif drops `println` on a hidden bar, and alarms must never be lost.
pub(crate) fn say(pb: &ProgressBar, line: String) {
    if pb.is_hidden() {
        eprintln!("{line}");
    } else {
        pb.println(line);
    }
}

pub(crate) fn progress_bar(total: usize) -> ProgressBar {
    let pb = ProgressBar::new(total as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb
}

/// Feeds a training loop's frames to the sinks with a progress bar: prints alarms, keeps the
/// frames, stops the loop on Ctrl-C or on a sink error (kept for [`FrameDriver::finish`]).
pub(crate) struct FrameDriver {
    pb: ProgressBar,
    stop: Arc<AtomicBool>,
    failure: Option<anyhow::Error>,
    /// Every frame pushed.
    pub frames: Vec<gradtone_sound::Frame>,
}

impl FrameDriver {
    pub(crate) fn new(total_steps: usize, label: &str) -> Self {
        let pb = progress_bar(total_steps);
        pb.set_prefix(label.to_string());
        FrameDriver {
            pb,
            stop: interrupt_flag(),
            failure: None,
            frames: Vec::new(),
        }
    }

    /// Sends `frame` to `outputs`, with `message` beside the bar; `Break` ends the run.
    pub(crate) fn push(
        &mut self,
        outputs: &mut Outputs,
        frame: gradtone_sound::Frame,
        message: String,
    ) -> ControlFlow<()> {
        match outputs.push(&frame) {
            Ok(alarms) => alarms
                .iter()
                .for_each(|a| say(&self.pb, format!("alarm: {}", a.message))),
            Err(e) => {
                self.failure = Some(e.into());
                return ControlFlow::Break(());
            }
        }
        self.pb.set_message(message);
        self.pb.inc(1);
        self.frames.push(frame);
        if self.stop.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// The frames and whether Ctrl-C stopped the run, or the sink error that did.
    pub(crate) fn finish(self) -> Result<(Vec<gradtone_sound::Frame>, bool)> {
        self.pb.finish_and_clear();
        match self.failure {
            Some(e) => Err(e),
            None => Ok((self.frames, self.stop.load(Ordering::SeqCst))),
        }
    }
}

/// Trains one configuration with sound, returns the frames and the trainer. Steps are
/// numbered from `step_offset` (a sweep's parts follow each other).
pub(crate) fn train_with_outputs(
    cfg: &RunConfig,
    params: &SeedParams,
    train: &gradtone_mnist::Dataset,
    outputs: &mut Outputs,
    label: &str,
    step_offset: u64,
) -> Result<(Vec<gradtone_sound::Frame>, gradtone_train::Trainer, bool)> {
    let mut driver = FrameDriver::new(cfg.total_steps(train.len()), label);
    let trainer = gradtone_train::run(
        cfg,
        params,
        train,
        &gradtone_train::default_device(),
        |mut frame| {
            frame.step += step_offset;
            let message = frame
                .loss()
                .map_or(String::new(), |l| format!("loss {l:.4}"));
            driver.push(outputs, frame, message)
        },
    );
    let (frames, interrupted) = driver.finish()?;
    Ok((frames, trainer, interrupted))
}

fn train(args: TrainArgs) -> Result<()> {
    let cfg = args.run_config()?;
    if cfg.batch == 0 {
        bail!("--batch must be at least 1");
    }
    // Everything that can fail on bad input is read before any output file is created.
    let params = match &args.init_params {
        Some(dir) => SeedParams::load_dir(dir)
            .with_context(|| format!("loading --init-params {}", dir.display()))?,
        None => SeedParams::init(cfg.seed),
    };
    let train_set = args.data.load(gradtone_mnist::Split::Train)?;
    data::check_plan(&cfg, train_set.len(), "gradtone train")?;
    let test_set = if args.no_eval {
        None
    } else {
        Some(args.data.load(gradtone_mnist::Split::Test)?)
    };
    let mut outputs = Outputs::create(&args.sinks.spec(
        args.live.pace(),
        &format!(
            "gradtone train ({:?} lr {} batch {}{})",
            cfg.optim,
            cfg.lr,
            cfg.batch,
            if cfg.l2 > 0.0 {
                format!(", l2 {}", cfg.l2)
            } else {
                String::new()
            }
        ),
    ))?;
    let started = std::time::Instant::now();
    let (frames, trainer, interrupted) =
        match train_with_outputs(&cfg, &params, &train_set, &mut outputs, "train", 0) {
            Ok(r) => r,
            Err(e) => {
                outputs.discard();
                return Err(e);
            }
        };
    let train_secs = started.elapsed().as_secs_f64();
    let written = outputs.finish()?;
    let stats = gradtone_train::summary::RunStats::of(&frames);
    if interrupted {
        eprintln!(
            "interrupted after {} steps; outputs finalised",
            frames.len()
        );
    }
    println!(
        "{} steps, {:?} lr {} batch {}, final loss {}, {:.1} ms/step",
        stats.steps,
        cfg.optim,
        cfg.lr,
        cfg.batch,
        stats.final_loss.map_or("-".into(), |l| format!("{l:.4}")),
        train_secs * 1e3 / stats.steps.max(1) as f64
    );
    for v in &stats.values {
        println!("  {:6} median {:.4}  max {:.4}", v.name, v.median, v.max);
    }
    if let Some(s) = stats.first_non_finite {
        println!("  first non-finite value at step {s}");
    }
    if stats.all_zero_steps > 0 {
        println!(
            "  {} steps with every weight gradient exactly 0 (dead)",
            stats.all_zero_steps
        );
    }
    if let Some(test) = test_set {
        println!(
            "  test accuracy {:.4} on {} images",
            trainer.accuracy(&test),
            test.len()
        );
    }
    for line in written {
        println!("  wrote {line}");
    }
    Ok(())
}

fn reference_check(dir: &std::path::Path) -> Result<()> {
    let report = gradtone_train::reference::check(dir, &gradtone_train::default_device())
        .with_context(|| format!("reference check of {}", dir.display()))?;
    println!(
        "{:34} {:>18} {:>18} {:>10}",
        "quantity", "gradtone", "pytorch f64", "rel err"
    );
    for r in &report.rows {
        println!(
            "{:34} {:>18.12} {:>18.12} {:>10.2e} {}",
            r.what,
            r.ours,
            r.expected,
            r.rel_error(),
            if r.ok() { "ok" } else { "FAIL" }
        );
    }
    println!(
        "step1 log-probs max abs error {:.2e}",
        report.log_probs_max_abs_error
    );
    if !report.passed() {
        bail!(
            "reference check failed: max relative error {:.2e} exceeds {:.0e}",
            report.max_rel_error(),
            gradtone_train::reference::TOLERANCE
        );
    }
    println!(
        "PASS: {} quantities, max relative error {:.2e} (tolerance {:.0e})",
        report.rows.len(),
        report.max_rel_error(),
        gradtone_train::reference::TOLERANCE
    );
    Ok(())
}
