//! gradtone's benchmarks and evaluation: what `gradtone bench` measures, and how informative
//! the sound is. A development crate (`publish = false`), not part of the library API: the
//! binary depends on it for `gradtone bench`, everything else only in tests and examples.
//!
//! - [`train`]: time per training step of the seed network per batch size, with and without
//!   the norms read back, the sound's cost, peak memory;
//! - [`profile`]: where a step's time goes, each part of the network timed alone
//!   (`gradtone bench --profile`);
//! - [`serve_cost`]: what serving the live page costs a loop, measured with [`probe`], a
//!   blocking WebSocket client that follows the page as a browser does (`gradtone bench --serve`);
//! - [`run`]: the three as `gradtone bench` prints them;
//! - [`informativeness`]: what a listener can tell from the rendered audio alone (an example
//!   and a test of this crate run it on the reference trajectories).
//!
//! It depends on the trainer (`gradtone-train`, Burn), the sound, the pipeline and the
//! server; only the binary and the tests depend on it.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod informativeness;
pub mod probe;
pub mod profile;
pub mod serve_cost;
pub mod train;

use gradtone_mnist::Dataset;
use gradtone_pipeline::PipelineError;
use gradtone_sound::SoundError;
use gradtone_train::{Device, Readback, SeedParams, Trainer};

/// What can stop a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The medians would be over no step.
    #[error("--steps ({steps}) must exceed --warmup ({warmup})")]
    Warmup {
        /// Steps per batch size.
        steps: usize,
        /// Steps excluded from the medians.
        warmup: usize,
    },
    /// A batch of no image cannot be profiled.
    #[error("--batch sizes must be at least 1")]
    ZeroBatch,
    /// A mapping to time could not be made.
    #[error(transparent)]
    Sound(#[from] SoundError),
    /// The outputs of [`serve_cost`] could not be made, fed or finished.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The page's server of [`serve_cost`] could not start.
    #[error(transparent)]
    Serve(#[from] gradtone_serve::ServeError),
    /// The [`probe`] client could not connect to the served page.
    #[error(transparent)]
    Probe(#[from] tungstenite::Error),
}

/// What `gradtone bench` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Time per step per batch size, the norms' and the sound's share, peak memory ([`train`]).
    Steps,
    /// Each part of a step timed alone, per batch size ([`profile`]).
    Profile,
    /// What serving the page costs, at the first batch size ([`serve_cost`]).
    Serve,
}

/// `gradtone bench`'s flags (behind the `clap` feature).
#[cfg(feature = "clap")]
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Batch sizes to time.
    #[arg(long, value_delimiter = ',', default_value = "10,64,256")]
    pub batch: Vec<usize>,
    /// Steps per batch size (the original's 201).
    #[arg(long, default_value_t = 201)]
    pub steps: usize,
    /// Steps excluded from the medians.
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Instead: time each part of a step alone (data, each layer's forward and backward,
    /// pooling, norms, optimiser) per batch size, median of --steps runs each.
    #[arg(long)]
    pub profile: bool,
    /// Instead: the cost of `--serve` to training. Steps at the first --batch size, each
    /// followed by its sound and chart (cents mapping), in alternating blocks with the page
    /// served to one connected client and without; plus the push → client delay.
    #[arg(long)]
    pub serve: bool,
    /// Where the training images come from.
    #[command(flatten)]
    pub data: gradtone_mnist::DataArgs,
}

#[cfg(feature = "clap")]
impl BenchArgs {
    /// The settings these flags ask for.
    pub fn options(&self) -> Options {
        Options {
            batch: self.batch.clone(),
            steps: self.steps,
            warmup: self.warmup,
            mode: match (self.profile, self.serve) {
                (true, _) => Mode::Profile,
                (false, true) => Mode::Serve,
                (false, false) => Mode::Steps,
            },
        }
    }
}

/// `gradtone bench`'s settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Batch sizes to time.
    pub batch: Vec<usize>,
    /// Steps per batch size.
    pub steps: usize,
    /// Steps excluded from the medians.
    pub warmup: usize,
    /// What to measure.
    pub mode: Mode,
}

impl Options {
    /// Checks the settings before any data is loaded: the medians need a step after the
    /// warm-up.
    pub fn check(&self) -> Result<(), BenchError> {
        if self.steps <= self.warmup {
            return Err(BenchError::Warmup {
                steps: self.steps,
                warmup: self.warmup,
            });
        }
        Ok(())
    }
}

/// Runs `gradtone bench` on the training images `data` on `device`. `out` receives the report
/// as it is measured, a piece at a time, each ending in a newline, to print as it comes.
pub fn run(
    opts: &Options,
    data: &Dataset,
    device: &Device,
    out: &mut dyn FnMut(&str),
) -> Result<(), BenchError> {
    opts.check()?;
    match opts.mode {
        Mode::Steps => steps(opts, data, device, out),
        Mode::Profile => profile(opts, data, device, out),
        Mode::Serve => serve(opts, data, device, out),
    }
}

/// The default mode: a table row and a `RESULT` line per batch size, then peak memory.
fn steps(
    opts: &Options,
    data: &Dataset,
    device: &Device,
    out: &mut dyn FnMut(&str),
) -> Result<(), BenchError> {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    out(&format!(
        "gradtone bench: seed CNN, SGD lr 0.01 momentum 0.5, {} steps ({} warm-up), Burn flex CPU, {} threads available, load {}\n",
        opts.steps,
        opts.warmup,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    out(&format!(
        "{:>6} {:>12} {:>12} {:>10} {:>12} {:>12} {:>12}\n",
        "batch", "ms/step", "no-norms ms", "data ms", "seed µs", "cents µs", "sound+norm %"
    ));
    for &batch in &opts.batch {
        let t = train::time_batch(batch, opts.steps, opts.warmup, data, device)?;
        let (ms, ms_no_norms, data_ms) = (t.ms, t.ms_no_norms, t.data_ms);
        let (seed_us, cents_us, overhead) = (t.seed_us, t.cents_us, t.overhead_pct());
        out(&format!(
            "{batch:>6} {ms:>12.3} {ms_no_norms:>12.3} {data_ms:>10.3} {seed_us:>12.1} {cents_us:>12.1} {overhead:>12.2}\n"
        ));
        out(&format!(
            "RESULT batch={batch} ms_per_step={ms:.4} ms_per_step_no_norms={ms_no_norms:.4} sound_us_per_step={cents_us:.2}\n"
        ));
    }
    if let Some(mib) = train::peak_rss_mib() {
        out(&format!("peak memory {mib:.0} MiB\n"));
    }
    Ok(())
}

/// `--serve`: median ms per step (train + sinks) with and without the server.
fn serve(
    opts: &Options,
    data: &Dataset,
    device: &Device,
    out: &mut dyn FnMut(&str),
) -> Result<(), BenchError> {
    let batch = opts.batch.first().copied().unwrap_or(10).max(1);
    let cfg = train::config(batch, None);
    let mut trainer = Trainer::new(&SeedParams::init(1), cfg.optim, cfg.lr, device);
    let mut batches = gradtone_train::batches(&cfg, data.len());
    out(&format!(
        "gradtone bench --serve: batch {batch}, {} steps in blocks of {}, alternating with and without the page served to one client\n",
        opts.steps * 2,
        serve_cost::BLOCK
    ));
    let c = serve_cost::measure(opts.steps * 2 + opts.warmup, opts.warmup, |step| {
        let idx = batches.next()?;
        Some(train::step_frame(
            &mut trainer,
            data,
            &idx,
            step,
            Readback::Weights,
        ))
    })?;
    let (a, b, pa, pb) = (c.plain_ms, c.served_ms, c.push_plain_us, c.push_served_us);
    let (d_med, d_max, overhead) = (c.delay_median_ms, c.delay_max_ms, c.overhead_pct());
    out(&format!("{:>22} {:>10}\n", "", "ms/step"));
    out(&format!("{:>22} {a:>10.3}\n", "without --serve"));
    out(&format!("{:>22} {b:>10.3}\n", "served, 1 client"));
    out(&format!(
        "sinks per step: {pa:.1} µs without, {pb:.1} µs served: the server's share of a step on the training thread {:.2} %\n",
        c.push_share_pct()
    ));
    out(&format!(
        "overhead {overhead:+.2} % of a step; client got {} messages, {} samples; push → client median {d_med:.2} ms, max {d_max:.2} ms\n",
        c.messages, c.audio_samples
    ));
    out(&format!(
        "RESULT serve batch={batch} ms_plain={a:.4} ms_served={b:.4} overhead_pct={overhead:.3} push_us_plain={pa:.2} push_us_served={pb:.2} delay_ms_median={d_med:.3} delay_ms_max={d_max:.3}\n"
    ));
    Ok(())
}

/// `--profile`: a table per batch size of where a step's time goes.
fn profile(
    opts: &Options,
    data: &Dataset,
    device: &Device,
    out: &mut dyn FnMut(&str),
) -> Result<(), BenchError> {
    for &batch in &opts.batch {
        if batch == 0 {
            return Err(BenchError::ZeroBatch);
        }
        out(&profile::profile(batch, opts.steps, data, device).report());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_must_exceed_the_warm_up() {
        let opts = |steps, warmup| Options {
            batch: vec![10],
            steps,
            warmup,
            mode: Mode::Steps,
        };
        assert!(opts(11, 10).check().is_ok());
        assert_eq!(
            opts(10, 10).check().map_err(|e| e.to_string()),
            Err("--steps (10) must exceed --warmup (10)".to_string())
        );
    }

    /// 40 synthetic 28×28 images, labels 0–9.
    fn images() -> Dataset {
        let n = 40;
        let px = (0..n * 784).map(|i| (i * 7 % 256) as u8).collect();
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        Dataset::from_parts(px, labels).unwrap_or_else(|e| panic!("{e}"))
    }

    fn report(mode: Mode, batch: Vec<usize>) -> (String, Result<(), BenchError>) {
        let opts = Options {
            batch,
            steps: 3,
            warmup: 1,
            mode,
        };
        let mut text = String::new();
        let r = run(
            &opts,
            &images(),
            &gradtone_train::default_device(),
            &mut |s| {
                assert!(s.ends_with('\n'), "a piece ends its line: {s:?}");
                text.push_str(s);
            },
        );
        (text, r)
    }

    #[test]
    fn the_default_mode_reports_a_row_and_a_result_per_batch_size() {
        let (text, r) = report(Mode::Steps, vec![2, 4]);
        assert!(r.is_ok(), "{r:?}");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with(
            "gradtone bench: seed CNN, SGD lr 0.01 momentum 0.5, 3 steps (1 warm-up)"
        ));
        assert!(lines[1].trim_start().starts_with("batch      ms/step"));
        for batch in [2, 4] {
            let result = format!("RESULT batch={batch} ms_per_step=");
            assert_eq!(
                lines.iter().filter(|l| l.starts_with(&result)).count(),
                1,
                "{text}"
            );
        }
    }

    #[test]
    fn the_profile_mode_reports_a_table_per_batch_size_and_refuses_batch_zero() {
        let (text, r) = report(Mode::Profile, vec![2, 0]);
        assert!(matches!(r, Err(BenchError::ZeroBatch)), "{r:?}");
        assert!(text.starts_with("\nbatch 2: whole step "), "{text}");
        // The table's head, its rule and the seven parts, then nothing for batch 0.
        assert_eq!(
            text.lines().filter(|l| l.starts_with('|')).count(),
            9,
            "{text}"
        );
    }
}
