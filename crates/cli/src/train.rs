//! `gradtone train` (the seed CNN): the trainer's frames through the sinks, then a summary.

use anyhow::{Context, Result};
use gradtone_train::summary::RunStats;
use gradtone_train::{RunConfig, SeedParams};

use crate::args::TrainArgs;
use gradtone_pipeline::Outputs;

/// Trains one configuration with sound, returns the frames, the trainer and whether Ctrl-C
/// stopped it. Steps are numbered from `step_offset` (a sweep's parts follow each other).
pub(crate) fn train_with_outputs(
    cfg: &RunConfig,
    params: &SeedParams,
    train: &gradtone_mnist::Dataset,
    outputs: &mut Outputs,
    label: &str,
    step_offset: u64,
) -> Result<(Vec<gradtone_frame::Frame>, gradtone_train::Trainer, bool)> {
    let mut driver = crate::driver(cfg.total_steps(train.len()), label);
    let device = gradtone_train::default_device();
    let trainer = gradtone_train::run(cfg, params, train, &device, |mut frame| {
        frame.step += step_offset;
        let message = frame
            .loss()
            .map_or(String::new(), |l| format!("loss {l:.4}"));
        driver.push(outputs, frame, message)
    });
    let (frames, interrupted) = driver.finish()?;
    Ok((frames, trainer, interrupted))
}

/// `gradtone train` (`--model cnn`).
pub fn train(args: &TrainArgs) -> Result<()> {
    let cfg = args
        .run
        .preset
        .config_with(args.run.seed, &args.run.overrides())?;
    // Everything that can fail on bad input is read before any output file is created.
    let params = match &args.run.init_params {
        Some(dir) => SeedParams::load_dir(dir)
            .with_context(|| format!("loading --init-params {}", dir.display()))?,
        None => SeedParams::init(cfg.seed),
    };
    let train_set = args.data.load(gradtone_mnist::Split::Train)?;
    cfg.check_plan(train_set.len()).context("gradtone train")?;
    let test_set = if args.run.no_eval {
        None
    } else {
        Some(args.data.load(gradtone_mnist::Split::Test)?)
    };
    let l2 = if cfg.l2 > 0.0 {
        format!(", l2 {}", cfg.l2)
    } else {
        String::new()
    };
    let title = format!(
        "gradtone train ({:?} lr {} batch {}{l2})",
        cfg.optim, cfg.lr, cfg.batch
    );
    let mut outputs = args.sinks.open(Some(&args.live), &title)?;
    let started = std::time::Instant::now();
    // An error drops the outputs unfinished, which discards what they had begun.
    let (frames, trainer, interrupted) =
        train_with_outputs(&cfg, &params, &train_set, &mut outputs, "train", 0)?;
    let train_secs = started.elapsed().as_secs_f64();
    let written = outputs.finish()?;
    let stats = RunStats::of(&frames);
    if interrupted {
        let n = frames.len();
        eprintln!("interrupted after {n} steps; outputs finalised");
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
    print!("{}", stats.report());
    if let Some(test) = test_set {
        let acc = trainer.accuracy(&test);
        println!("  test accuracy {acc:.4} on {} images", test.len());
    }
    for line in written {
        println!("  wrote {line}");
    }
    Ok(())
}
