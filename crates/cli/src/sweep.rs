//! `gradtone sweep`: the same seed trained at several weights of one loss term, rendered into
//! one WAV (each setting announced by as many pings as its number), with a per-step CSV, a
//! picture and a table of what the weight changed (`gradtone_train::sweep`).

use anyhow::{Context, Result};
use gradtone_mnist::Split;
use gradtone_train::gan::GanPreset;
use gradtone_train::sweep::{Plan, Row, cnn_columns, gan_columns, report, table, verdict};
use gradtone_train::{Preset, SeedParams};

use crate::args::SinkArgs;
use crate::args::{ModelArg, SweepArgs};
use crate::{gan, train::train_with_outputs};

/// `gradtone sweep`.
pub fn run(args: &SweepArgs) -> Result<()> {
    let gan = args.model == ModelArg::Gan;
    let plan = Plan::new(gan, args.term.as_deref(), &args.weights, args.steps)?;
    let (term, other, weights, steps) = (&plan.term, plan.other, &plan.weights, plan.steps);
    let train = args.data.load(Split::Train)?;
    let test = if gan {
        None
    } else {
        Some(args.data.load(Split::Test)?)
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the output folder {}", args.out.display()))?;
    let mut sinks = SinkArgs::default();
    sinks.sound.sound_config = args.sound_config.clone();
    sinks.wav.wav = Some(args.out.join("sweep.wav"));
    sinks.wav.wav_format = args.wav_format;
    sinks.csv.csv = Some(args.out.join("sweep.csv"));
    sinks.plot.plot = Some(args.out.join("sweep.png"));
    let mut config = sinks.sound.config()?;
    if args.sound_config.is_none() {
        // The same norm, the same pitch across the file: the parts compare by ear.
        config.cents.range = gradtone_sound::config::Range::Absolute;
    }
    // A GAN's losses are not meant to fall: no plateau alarm.
    config.alarms.plateau.enabled &= !gan;
    let title = format!("gradtone sweep: {}, {term} weight {weights:?}", plan.what());
    let mut outputs = sinks.open_with(config, None, &title)?;
    let mut rows = Vec::new();
    let mut offset = 0u64;
    for (i, &w) in weights.iter().enumerate() {
        let label = format!("[{}/{}] {term}={w}", i + 1, weights.len());
        // The part's heading first, so its alarms print under it.
        eprintln!("{label}");
        let result = (|| -> Result<(Row, bool)> {
            outputs.begin_part(i, &format!("{term}={w}"), offset)?;
            let (row, interrupted) = if gan {
                let mut cfg = GanPreset::Balanced.config(args.seed);
                cfg.steps = steps;
                cfg.set_weights([(term.clone(), w)].iter())?;
                let run = gan::run_with_outputs(&cfg, &train, &mut outputs, &label, offset, steps)?;
                let extra = gan_columns(&run.stats);
                (
                    Row::new(&plan, w, offset, &run.frames, extra),
                    run.interrupted,
                )
            } else {
                let mut cfg = Preset::SgdLr01.config(args.seed);
                cfg.steps = Some(steps);
                cfg.l2 = w;
                let params = SeedParams::init(args.seed);
                let (frames, trainer, interrupted) =
                    train_with_outputs(&cfg, &params, &train, &mut outputs, &label, offset)?;
                let extra = cnn_columns(&frames, test.as_ref().map(|t| trainer.accuracy(t)));
                (Row::new(&plan, w, offset, &frames, extra), interrupted)
            };
            Ok((row, interrupted))
        })();
        let (row, interrupted) = result?;
        offset += row.steps as u64;
        rows.push(row);
        if interrupted {
            eprintln!("interrupted during {label}; writing what was done");
            break;
        }
    }
    let written = outputs.finish()?;
    let table = table(&rows, term, other, plan.extra_heads());
    let md_path = args.out.join("sweep.md");
    std::fs::write(&md_path, report(&plan, args.seed, &table))
        .with_context(|| format!("cannot write the table {}", md_path.display()))?;
    println!("{table}");
    if let Some(line) = verdict(&rows, term, other) {
        println!("{line}");
    }
    for line in written {
        println!("  wrote {line}");
    }
    println!("  wrote {}", md_path.display());
    Ok(())
}
