//! `gradtone experiments`: the five settings of the 2019 article, side by side.

use anyhow::{Context, Result, bail};
use gradtone_mnist::Split;
use gradtone_train::experiments::{Row, summary_markdown};
use gradtone_train::summary::RunStats;
use gradtone_train::{Preset, SeedParams};

use crate::args::{ExperimentsArgs, SinkArgs};
use crate::train::train_with_outputs;

/// `gradtone experiments`.
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
        let title = format!("{} (seed {})", preset.name(), args.seed);
        let mut sinks = SinkArgs::default();
        sinks.sound.mapping = Some(gradtone_sound::mapping::MappingKind::Seed);
        sinks.wav.wav = Some(args.out.join(format!("{}.wav", preset.name())));
        sinks.wav.wav_format = args.wav_format;
        sinks.csv.csv = Some(args.out.join(format!("{}.csv", preset.name())));
        let mut outputs = sinks.open(None, &title)?;
        let label = format!("[{}/5] {}", i + 1, preset.name());
        // The run's heading comes first: its alarms print under it, as they fire.
        eprintln!("{label} (seed {})", args.seed);
        let params = SeedParams::init(args.seed);
        let (frames, trainer, interrupted) =
            train_with_outputs(&cfg, &params, &train, &mut outputs, &label, 0)?;
        outputs.finish()?;
        // The same run through the default mapping, with its picture, from the frames.
        let stem = format!(
            "{}.{}",
            preset.name(),
            gradtone_sound::mapping::DEFAULT_MAPPING
        );
        let mut sinks = SinkArgs::default();
        sinks.sound.mapping = Some(gradtone_sound::mapping::DEFAULT_MAPPING);
        sinks.wav.wav = Some(args.out.join(format!("{stem}.wav")));
        sinks.wav.wav_format = args.wav_format;
        sinks.plot.plot = Some(args.out.join(format!("{}.png", preset.name())));
        let mut informed = sinks.open(None, &title)?;
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
