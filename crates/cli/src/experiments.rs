//! `gradtone experiments`: the five settings of the 2019 article, side by side.

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use gradtone_mnist::Split;
use gradtone_train::summary::RunStats;
use gradtone_train::{Preset, SeedParams};

use crate::outputs::{OutputSpec, Outputs};
use crate::{ExperimentsArgs, train_with_outputs};

/// One finished setting.
struct Row {
    preset: Preset,
    stats: RunStats,
    accuracy: f64,
}

pub fn run(args: &ExperimentsArgs) -> Result<()> {
    let train = args.data.load(Split::Train)?;
    let test = args.data.load(Split::Test)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the output folder {}", args.out.display()))?;
    let mut rows = Vec::new();
    for (i, preset) in Preset::ALL.into_iter().enumerate() {
        let mut cfg = preset.config(args.seed);
        if let Some(n) = args.steps {
            cfg.steps = usize::try_from(n).ok();
        }
        let spec = OutputSpec {
            mapping: Some("seed".into()),
            wav: Some(args.out.join(format!("{}.wav", preset.name()))),
            wav_format: args.format(),
            csv: Some(args.out.join(format!("{}.csv", preset.name()))),
            title: format!("{} (seed {})", preset.name(), args.seed),
            ..OutputSpec::default()
        };
        let mut outputs = Outputs::create(&spec)?;
        let label = format!("[{}/5] {}", i + 1, preset.name());
        // The run's heading comes first: its alarms print under it, as they fire.
        eprintln!("{label} (seed {})", args.seed);
        let result = train_with_outputs(
            &cfg,
            &SeedParams::init(args.seed),
            &train,
            &mut outputs,
            &label,
            0,
        );
        let (frames, trainer, interrupted) = match result {
            Ok(r) => r,
            Err(e) => {
                outputs.discard();
                return Err(e);
            }
        };
        outputs.finish()?;
        // The same run through the default mapping, with its picture, from the frames.
        let stem = format!(
            "{}.{}",
            preset.name(),
            gradtone_sound::mapping::DEFAULT_MAPPING
        );
        let mut informed = Outputs::create(&OutputSpec {
            mapping: Some(gradtone_sound::mapping::DEFAULT_MAPPING.into()),
            wav: Some(args.out.join(format!("{stem}.wav"))),
            wav_format: args.format(),
            plot: Some(args.out.join(format!("{}.png", preset.name()))),
            title: format!("{} (seed {})", preset.name(), args.seed),
            ..OutputSpec::default()
        })?;
        // Same frames, same alarm settings: the same alarms, already printed during training.
        for f in &frames {
            informed.push(f)?;
        }
        informed.finish()?;
        if interrupted {
            bail!(
                "interrupted during {}; its WAV and CSV hold the steps done",
                preset.name()
            );
        }
        let stats = RunStats::of(&frames);
        let accuracy = trainer.accuracy(&test);
        eprintln!(
            "{:18} final loss {:>8}  test accuracy {:.4}",
            preset.name(),
            stats.final_loss.map_or("-".into(), |l| format!("{l:.4}")),
            accuracy
        );
        rows.push(Row {
            preset,
            stats,
            accuracy,
        });
    }
    let md = summary_markdown(&rows, args.seed, train.len(), test.len());
    let path = args.out.join("summary.md");
    std::fs::write(&path, md).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote 5 WAVs, 5 CSVs and {}", path.display());
    Ok(())
}

fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "-".into()
    }
}

fn opt_step(s: Option<u64>) -> String {
    s.map_or("-".into(), |s| s.to_string())
}

fn summary_markdown(rows: &[Row], seed: u64, n_train: usize, n_test: usize) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# gradtone experiments: the five settings of the 2019 article\n\n\
         Seed {seed}, {n_train} training images, test accuracy on {n_test} test images. \
         Norms are L2 norms of each layer's weight gradient; medians and maxima over finite steps.\n"
    );
    let layers = rows
        .first()
        .map(|r| {
            r.stats
                .values
                .iter()
                .map(|v| v.name.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut header = String::from(
        "| setting | steps | final loss | test acc | first non-finite step | all-zero steps |",
    );
    let mut rule = String::from("|---|---:|---:|---:|---:|---:|");
    for l in &layers {
        let _ = write!(header, " {l} median | {l} max |");
        rule.push_str("---:|---:|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for r in rows {
        let _ = write!(
            md,
            "| {} | {} | {} | {:.4} | {} | {} |",
            r.preset.name(),
            r.stats.steps,
            r.stats.final_loss.map_or("-".into(), fmt),
            r.accuracy,
            opt_step(r.stats.first_non_finite),
            r.stats.all_zero_steps
        );
        for v in &r.stats.values {
            let _ = write!(md, " {} | {} |", fmt(v.median), fmt(v.max));
        }
        md.push('\n');
    }
    md
}
