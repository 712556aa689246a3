//! `gradtone train --model gan`: the GAN source wired to the sinks, plus what only a GAN has:
//! pictures of its generated digits and a diagnostics CSV (D(real), D(fake), diversity).

use anyhow::{Context, Result, bail};
use gradtone_frame::{Frame, Shared};
use gradtone_train::gan::report::{SAMPLE_SEED, phases_table, progress_path, write_diagnostics};
use gradtone_train::gan::{self, GanConfig, GanStats};

use crate::args::TrainArgs;
use gradtone_frame::check_parent;
use gradtone_pipeline::Outputs;

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
    let mut driver = crate::driver(cfg.steps, label);
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

/// `train --model gan`.
pub fn train(args: &TrainArgs) -> Result<()> {
    let overrides = args.run.gan_overrides().map_err(anyhow::Error::msg)?;
    let g = &args.run.gan;
    let cfg = g.gan_preset.config_with(args.run.seed, &overrides)?;
    // Bad paths fail before any training.
    if let Some(p) = &g.samples {
        check_parent(p, "samples picture")?;
    }
    let mut diagnostics = None;
    if let Some(p) = &g.diagnostics {
        let file = std::fs::File::create(p);
        let file = file.with_context(|| format!("cannot write the CSV file {}", p.display()))?;
        diagnostics = Some((p, std::io::BufWriter::new(file)));
    }
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
    let title = format!(
        "gradtone train --model gan ({}, D lr {} G lr {}, weights {:?})",
        g.gan_preset.name(),
        cfg.d_lr,
        cfg.g_lr,
        cfg.weights
    );
    let mut config = args.sinks.sound.config()?;
    // A GAN's losses are not meant to fall: no plateau alarm.
    config.alarms.plateau.enabled = false;
    let mut outputs = args.sinks.open_with(config, Some(&args.live), &title)?;
    let every = g.sample_every.unwrap_or(cfg.steps / 10).max(1);
    let started = std::time::Instant::now();
    let run = run_with_outputs(&cfg, &train_set, &mut outputs, "gan", 0, every)?;
    let secs = started.elapsed().as_secs_f64();
    let mut lines = outputs.finish()?;
    if run.interrupted {
        let n = run.stats.len();
        eprintln!("interrupted after {n} steps; outputs finalised");
    }
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
