//! `gradtone sweep`: the same seed trained at several weights of one loss term, rendered into
//! one WAV (each setting announced by as many pings as its number), with a per-step CSV, a
//! picture and a table of what the weight changed.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use gradtone_mnist::Split;
use gradtone_sound::Frame;
use gradtone_sound::mapping::instrument_of;
use gradtone_train::gan::GanPreset;
use gradtone_train::{Preset, SeedParams};

use crate::data::DataArgs;
use crate::outputs::{OutputSpec, Outputs};
use crate::{ModelArg, gan, train_with_outputs};
use gradtone_sound::SampleFormat;

/// `gradtone sweep` flags.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// What to train: the seed CNN (sgd_lr0.1_bs10 plus an L2 term) or the balanced GAN.
    #[arg(long, value_enum, default_value_t = ModelArg::Cnn)]
    model: ModelArg,
    /// The loss term whose weight varies: cnn `l2`; gan `d_real` or `d_fake` (default: l2 / d_fake).
    #[arg(long)]
    term: Option<String>,
    /// The weights to try, in order, comma-separated (default: cnn 1e-4,1e-3,1e-2,1e-1; gan
    /// 0.25,1,4).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    weights: Vec<f64>,
    /// Steps per setting (default: cnn 201, gan 600).
    #[arg(long)]
    steps: Option<usize>,
    /// Seed of every setting (the same initial weights and batches for all).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output folder: sweep.wav, sweep.csv (every step), sweep.png, sweep.md (the table).
    #[arg(long)]
    out: PathBuf,
    /// WAV sample format.
    #[arg(long, value_enum, default_value_t = SampleFormat::Pcm16)]
    wav_format: SampleFormat,
    /// TOML sound configuration (default: cents mapping with absolute pitch, so the same norm
    /// has the same pitch in every setting).
    #[arg(long, value_name = "FILE")]
    sound_config: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
}

/// One setting's measured outcome.
struct Row {
    weight: f64,
    first_step: u64,
    steps: usize,
    /// Median over all steps of ‖∇term‖ / ‖∇other‖.
    ratio: f64,
    /// The same over the last quarter of the steps.
    late_ratio: f64,
    /// Model-specific columns, already formatted.
    extra: Vec<String>,
}

/// Whole-network norm of one instrument's values in a frame: `√Σ v²`.
fn instrument_norm(f: &Frame, inst: &str) -> f64 {
    f.values
        .iter()
        .filter(|v| instrument_of(&v.name) == inst)
        .map(|v| v.value * v.value)
        .sum::<f64>()
        .sqrt()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median of ‖∇term‖/‖∇other‖ over `frames`, and over their last quarter.
fn ratios(frames: &[Frame], term: &str, other: &str) -> (f64, f64) {
    let r: Vec<f64> = frames
        .iter()
        .map(|f| instrument_norm(f, term) / instrument_norm(f, other))
        .collect();
    let late = r[r.len() - r.len().div_ceil(4).max(1).min(r.len())..].to_vec();
    (median(r), median(late))
}

/// Mean of `f` over the last fifth of `items`.
fn late_mean<T>(items: &[T], f: impl Fn(&T) -> f64) -> f64 {
    let k = items.len().div_ceil(5).max(1).min(items.len());
    let tail = &items[items.len() - k..];
    tail.iter().map(f).sum::<f64>() / tail.len().max(1) as f64
}

/// `gradtone sweep`.
pub fn run(args: &SweepArgs) -> Result<()> {
    let gan = args.model == ModelArg::Gan;
    let term = args
        .term
        .clone()
        .unwrap_or_else(|| if gan { "d_fake" } else { "l2" }.to_string());
    let other = match (gan, term.as_str()) {
        (false, "l2") => "nll",
        (true, "d_fake") => "d_real",
        (true, "d_real") => "d_fake",
        (false, t) => bail!("--term {t:?}: the cnn sweep varies l2 (its nll weight stays 1)"),
        (true, t) => bail!(
            "--term {t:?}: the gan sweep varies d_real or d_fake (g_adv alone only rescales the generator's step under Adam)"
        ),
    };
    let weights = if args.weights.is_empty() {
        if gan {
            vec![0.25, 1.0, 4.0]
        } else {
            vec![1e-4, 1e-3, 1e-2, 1e-1]
        }
    } else {
        args.weights.clone()
    };
    if let Some(w) = weights.iter().find(|w| !w.is_finite() || **w <= 0.0) {
        bail!(
            "--weights: every weight must be finite and > 0, got {w} (a weight of 0 removes the term, and its instrument with it)"
        );
    }
    let steps = args.steps.unwrap_or(if gan { 600 } else { 201 });
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    let train = args.data.load(Split::Train)?;
    let test = if gan {
        None
    } else {
        Some(args.data.load(Split::Test)?)
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the output folder {}", args.out.display()))?;
    let what = if gan {
        "GAN (balanced)"
    } else {
        "seed CNN (sgd lr 0.1)"
    };
    let mut outputs = Outputs::create(&OutputSpec {
        sound_config: args.sound_config.clone(),
        wav: Some(args.out.join("sweep.wav")),
        wav_format: crate::SinkArgs {
            wav_format: args.wav_format,
            ..crate::SinkArgs::default()
        }
        .format(),
        csv: Some(args.out.join("sweep.csv")),
        plot: Some(args.out.join("sweep.png")),
        title: format!("gradtone sweep: {what}, {term} weight {weights:?}"),
        no_plateau: gan,
        absolute_pitch: true,
        ..OutputSpec::default()
    })?;
    let mut rows = Vec::new();
    let mut offset = 0u64;
    for (i, &w) in weights.iter().enumerate() {
        let label = format!("[{}/{}] {term}={w}", i + 1, weights.len());
        // The part's heading first, so its alarms print under it.
        eprintln!("{label}");
        let result = (|| -> Result<(Row, bool)> {
            outputs.begin_part(i, &format!("{term}={w}"), offset)?;
            if gan {
                let mut cfg = GanPreset::Balanced.config(args.seed);
                cfg.steps = steps;
                gan::set_weights(&mut cfg, [(term.clone(), w)].iter())?;
                let run = gan::run_with_outputs(&cfg, &train, &mut outputs, &label, offset, steps)?;
                let (ratio, late_ratio) = ratios(&run.frames, &term, other);
                let extra = vec![
                    format!("{:.3}", late_mean(&run.stats, |s| s.p_real)),
                    format!("{:.3}", late_mean(&run.stats, |s| s.p_fake)),
                    format!("{:.3}", late_mean(&run.stats, |s| s.diversity)),
                    format!("{:.3}", late_mean(&run.stats, |s| gan::term_norm(s, 2))),
                ];
                let row = Row {
                    weight: w,
                    first_step: offset,
                    steps: run.frames.len(),
                    ratio,
                    late_ratio,
                    extra,
                };
                Ok((row, run.interrupted))
            } else {
                let mut cfg = Preset::SgdLr01.config(args.seed);
                cfg.steps = Some(steps);
                cfg.l2 = w;
                let (frames, trainer, interrupted) = train_with_outputs(
                    &cfg,
                    &SeedParams::init(args.seed),
                    &train,
                    &mut outputs,
                    &label,
                    offset,
                )?;
                let (ratio, late_ratio) = ratios(&frames, &term, other);
                let nll = |f: &Frame| {
                    f.losses
                        .iter()
                        .find(|l| l.name == "loss_nll")
                        .map_or(f64::NAN, |l| l.value)
                };
                let mut extra = vec![format!("{:.4}", late_mean(&frames, nll))];
                if let Some(test) = &test {
                    extra.push(format!("{:.4}", trainer.accuracy(test)));
                }
                let row = Row {
                    weight: w,
                    first_step: offset,
                    steps: frames.len(),
                    ratio,
                    late_ratio,
                    extra,
                };
                Ok((row, interrupted))
            }
        })();
        let (row, interrupted) = match result {
            Ok(r) => r,
            Err(e) => {
                outputs.discard();
                return Err(e);
            }
        };
        offset += row.steps as u64;
        rows.push(row);
        if interrupted {
            eprintln!("interrupted during {label}; writing what was done");
            break;
        }
    }
    let written = outputs.finish()?;
    let extra_heads: &[&str] = if gan {
        &["D(real)", "D(fake)", "diversity", "‖∇g_adv‖"]
    } else {
        &["late NLL", "test acc"]
    };
    let table = table(&rows, &term, other, extra_heads);
    let md = format!(
        "# gradtone sweep: {what}, weight of `{term}`\n\nSeed {}, {steps} steps per setting. In `sweep.wav` each setting begins with as many pings as its number; `sweep.png` marks where each begins.\n\n{table}\n\nThe ratio column is the median over the setting's steps of ‖∇{term}‖ / ‖∇{other}‖ (each term's weighted gradient, whole network); \"late\" is the median over its last quarter. Below 1 the {other} term steers the weights; above 1 the {term} term does. The tipping point lies between the settings whose ratios straddle 1.{}\n",
        args.seed,
        if gan {
            " Late columns average the last fifth of the steps."
        } else {
            " Late NLL averages the last fifth of the steps; test accuracy is on the test set after the last step."
        }
    );
    let md_path = args.out.join("sweep.md");
    std::fs::write(&md_path, &md)
        .with_context(|| format!("cannot write the table {}", md_path.display()))?;
    println!("{table}");
    if let Some(tip) = rows
        .windows(2)
        .find(|p| (p[0].ratio - 1.0).signum() != (p[1].ratio - 1.0).signum())
    {
        println!(
            "the balance tips between {term}={} (ratio {:.3}) and {term}={} (ratio {:.3})",
            tip[0].weight, tip[0].ratio, tip[1].weight, tip[1].ratio
        );
    } else if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        println!(
            "the ratio stays {} 1 ({:.4} → {:.4}): the {} term's gradient leads in every setting; compare the other columns, or widen the range",
            if first.ratio < 1.0 { "below" } else { "above" },
            first.ratio,
            last.ratio,
            if first.ratio < 1.0 {
                other
            } else {
                term.as_str()
            }
        );
    }
    for line in written {
        println!("  wrote {line}");
    }
    println!("  wrote {}", md_path.display());
    Ok(())
}

fn table(rows: &[Row], term: &str, other: &str, extra: &[&str]) -> String {
    let mut t = format!("| # | {term} weight | steps | ‖∇{term}‖/‖∇{other}‖ | late ratio |");
    for h in extra {
        let _ = write!(t, " {h} |");
    }
    t.push_str("\n|---:|---:|---|---:|---:|");
    t.push_str(&"---:|".repeat(extra.len()));
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            t,
            "\n| {} | {} | {}–{} | {:.4} | {:.4} |",
            i + 1,
            r.weight,
            r.first_step,
            r.first_step + r.steps.max(1) as u64 - 1,
            r.ratio,
            r.late_ratio
        );
        for e in &r.extra {
            let _ = write!(t, " {e} |");
        }
    }
    t
}
