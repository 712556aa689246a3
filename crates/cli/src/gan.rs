//! `gradtone train --model gan`: the GAN source wired to the sinks, plus what only a GAN has:
//! pictures of its generated digits and a diagnostics CSV (D(real), D(fake), diversity).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use gradtone_sound::{Frame, Shared};
use gradtone_train::gan::{self, D_LAYERS, GanConfig, GanLoss, GanPreset, GanStats, TERMS};

use crate::outputs::{Outputs, check_parent};
use crate::{FrameDriver, TrainArgs};

/// Flags of `train --model gan`.
#[derive(Args, Debug, Clone)]
pub struct GanArgs {
    /// GAN: starting point; the GAN flags below override its fields (batch 64, 2000 steps).
    #[arg(long, value_enum, default_value_t = GanPreset::Balanced)]
    gan_preset: GanPreset,
    /// GAN: generator learning rate (Adam).
    #[arg(long)]
    g_lr: Option<f64>,
    /// GAN: discriminator learning rate (Adam).
    #[arg(long)]
    d_lr: Option<f64>,
    /// GAN: the generator's loss form.
    #[arg(long, value_enum)]
    gan_loss: Option<GanLoss>,
    /// GAN: write 64 generated digits (after the last step) to this PNG, and beside it
    /// <name>-progress.png: the same 10 codes' digits every --sample-every steps, a row each.
    #[arg(long, value_name = "FILE")]
    samples: Option<PathBuf>,
    /// GAN: steps between the rows of the progress picture (default: steps / 10).
    #[arg(long, value_name = "STEPS")]
    sample_every: Option<usize>,
    /// GAN: per-step CSV of D(real), D(fake), sample diversity and the discriminator's total
    /// gradient norms (d_real + d_fake).
    #[arg(long, value_name = "FILE")]
    diagnostics: Option<PathBuf>,
}

/// The GAN configuration that `train`'s flags describe.
fn config(args: &TrainArgs) -> Result<GanConfig> {
    for (given, flag) in [
        (args.optim.is_some(), "--optim"),
        (args.momentum.is_some(), "--momentum"),
        (args.epochs.is_some(), "--epochs"),
        (args.init_params.is_some(), "--init-params"),
        (args.lr.is_some(), "--lr (use --g-lr / --d-lr)"),
    ] {
        if given {
            bail!("{flag} does not apply to --model gan");
        }
    }
    let g = &args.gan;
    let mut cfg = g.gan_preset.config(args.seed);
    if let Some(s) = args.steps {
        cfg.steps = s;
    }
    if let Some(b) = args.batch {
        cfg.batch = b;
    }
    if let Some(lr) = g.g_lr {
        cfg.g_lr = lr;
    }
    if let Some(lr) = g.d_lr {
        cfg.d_lr = lr;
    }
    if let Some(loss) = g.gan_loss {
        cfg.loss = loss;
    }
    set_weights(&mut cfg, args.loss_weights.iter().flat_map(|w| &w.0))?;
    if cfg.batch == 0 || cfg.steps == 0 {
        bail!("--batch and --steps must be at least 1 for --model gan");
    }
    Ok(cfg)
}

/// Applies `name=weight` pairs to a GAN configuration (names: [`TERMS`]).
pub(crate) fn set_weights<'a>(
    cfg: &mut GanConfig,
    weights: impl Iterator<Item = &'a (String, f64)>,
) -> Result<()> {
    for (name, w) in weights {
        let Some(i) = TERMS.iter().position(|t| t == name) else {
            bail!(
                "--loss-weights: the gan has the terms {}, not {name:?}",
                TERMS.join(", ")
            );
        };
        cfg.weights[i] = *w;
    }
    Ok(())
}

/// What a GAN run left behind.
pub(crate) struct GanRun {
    /// Every step's frame (steps offset as asked).
    pub frames: Vec<Frame>,
    /// Every step's statistics.
    pub stats: Vec<GanStats>,
    /// Rows of 10 samples (fixed codes), one every `sample_every` steps and one at the end.
    pub progress: Vec<f32>,
    /// 64 samples after the last step.
    pub final_samples: Vec<f32>,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
}

/// Seed of the fixed codes the pictures use, so rows are comparable.
const SAMPLE_SEED: u64 = 2019;

/// Trains `cfg` with every frame going to `outputs` (steps numbered from `step_offset`), watched
/// by a [`gan::GanWatch`] added to them.
pub(crate) fn run_with_outputs(
    cfg: &GanConfig,
    train: &gradtone_mnist::Dataset,
    outputs: &mut Outputs,
    label: &str,
    step_offset: u64,
    sample_every: usize,
) -> Result<GanRun> {
    let mut driver = FrameDriver::new(cfg.steps, label);
    let (mut stats, mut progress) = (Vec::new(), Vec::new());
    let watch = Shared::new(gan::GanWatch::default());
    outputs.add_watch(Box::new(watch.clone()));
    let trainer = gan::run_gan(cfg, train, &gradtone_train::default_device(), |t, s| {
        let step = step_offset + s.step;
        if s.step % sample_every as u64 == 0 {
            progress.extend(t.samples(10, SAMPLE_SEED));
        }
        watch.lock().note(s.step, &s.stats);
        let message = format!(
            "D(real) {:.2} D(fake) {:.2}",
            s.stats.p_real, s.stats.p_fake
        );
        let flow = driver.push(outputs, s.stats.frame(step), message);
        stats.push(s.stats);
        flow
    });
    let (frames, interrupted) = driver.finish()?;
    progress.extend(trainer.samples(10, SAMPLE_SEED));
    Ok(GanRun {
        frames,
        stats,
        progress,
        final_samples: trainer.samples(64, SAMPLE_SEED),
        interrupted,
    })
}

/// `<dir>/<stem>-progress.png` beside `samples`.
fn progress_path(samples: &Path) -> PathBuf {
    let stem = samples
        .file_stem()
        .map_or("samples".into(), |s| s.to_string_lossy().into_owned());
    samples.with_file_name(format!("{stem}-progress.png"))
}

/// Whole-network gradient norm of term `t` at one step: `√Σ layer²`.
pub(crate) fn term_norm(s: &GanStats, t: usize) -> f64 {
    s.norms[t].iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// `train --model gan`.
pub fn train(args: &TrainArgs) -> Result<()> {
    let cfg = config(args)?;
    let g = &args.gan;
    // Bad paths fail before any training.
    if let Some(p) = &g.samples {
        check_parent(p, "samples picture")?;
    }
    let mut diagnostics = match &g.diagnostics {
        Some(p) => Some((
            p,
            std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot write the CSV file {}", p.display()))?,
            ),
        )),
        None => None,
    };
    let train_set = args.data.load(gradtone_mnist::Split::Train)?;
    if train_set.len() < cfg.batch {
        bail!(
            "--model gan: batch {} is larger than the training set ({} images): no full batch; \
             use --batch {} or less",
            cfg.batch,
            train_set.len(),
            train_set.len()
        );
    }
    let mut spec = args.sinks.spec(
        args.live.pace(),
        &format!(
            "gradtone train --model gan ({}, D lr {} G lr {}, weights {:?})",
            g.gan_preset.name(),
            cfg.d_lr,
            cfg.g_lr,
            cfg.weights
        ),
    );
    spec.no_plateau = true;
    let mut outputs = Outputs::create(&spec)?;
    let every = g.sample_every.unwrap_or(cfg.steps / 10).max(1);
    let started = std::time::Instant::now();
    let run = match run_with_outputs(&cfg, &train_set, &mut outputs, "gan", 0, every) {
        Ok(r) => r,
        Err(e) => {
            outputs.discard();
            return Err(e);
        }
    };
    let secs = started.elapsed().as_secs_f64();
    let written = outputs.finish()?;
    if run.interrupted {
        eprintln!(
            "interrupted after {} steps; outputs finalised",
            run.stats.len()
        );
    }
    let mut lines = written;
    if let Some((path, w)) = &mut diagnostics {
        write_diagnostics(w, &run.stats).with_context(|| format!("writing {}", path.display()))?;
        lines.push(path.display().to_string());
    }
    if let Some(p) = &g.samples {
        gradtone_plot::image_grid_png(p, &run.final_samples, 28, 8, 2)?;
        let prog = progress_path(p);
        gradtone_plot::image_grid_png(&prog, &run.progress, 28, 10, 2)?;
        lines.push(format!("{} (64 samples)", p.display()));
        lines.push(format!(
            "{} (10 fixed codes every {every} steps, a row each)",
            prog.display()
        ));
    }
    println!(
        "{} GAN steps ({}), {:.1} ms/step",
        run.stats.len(),
        g.gan_preset.name(),
        secs * 1e3 / run.stats.len().max(1) as f64
    );
    print!("{}", phases_table(&run.stats, 10));
    for line in lines {
        println!("  wrote {line}");
    }
    Ok(())
}

fn write_diagnostics(w: &mut impl Write, stats: &[GanStats]) -> std::io::Result<()> {
    write!(w, "step,p_real,p_fake,diversity")?;
    for l in D_LAYERS {
        write!(w, ",d_total/{l}")?;
    }
    writeln!(w)?;
    for (i, s) in stats.iter().enumerate() {
        write!(w, "{i},{},{},{}", s.p_real, s.p_fake, s.diversity)?;
        for v in s.d_total {
            write!(w, ",{v}")?;
        }
        writeln!(w)?;
    }
    w.flush()
}

/// The run in `parts` equal stretches: mean D(real), D(fake), diversity and each term's
/// whole-network gradient norm (median), so the phases heard can be read as numbers.
pub(crate) fn phases_table(stats: &[GanStats], parts: usize) -> String {
    let mut out = format!(
        "  {:>11} {:>8} {:>8} {:>9} {:>10} {:>10} {:>10}\n",
        "steps", "D(real)", "D(fake)", "diversity", "|d_real|", "|d_fake|", "|g_adv|"
    );
    if stats.is_empty() {
        return out;
    }
    let len = stats.len().div_ceil(parts.max(1));
    for (k, chunk) in stats.chunks(len).enumerate() {
        let mean =
            |f: &dyn Fn(&GanStats) -> f64| chunk.iter().map(f).sum::<f64>() / chunk.len() as f64;
        let median = |t: usize| {
            let mut v: Vec<f64> = chunk.iter().map(|s| term_norm(s, t)).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        out.push_str(&format!(
            "  {:>5}-{:<5} {:>8.3} {:>8.3} {:>9.3} {:>10.4} {:>10.4} {:>10.4}\n",
            k * len,
            k * len + chunk.len() - 1,
            mean(&|s| s.p_real),
            mean(&|s| s.p_fake),
            mean(&|s| s.diversity),
            median(0),
            median(1),
            median(2)
        ));
    }
    out
}
