//! `gradtone sweep`'s plan and analysis: one seed trained at several weights of one loss term, and what
//! the weight changed. Each setting becomes a [`Row`]; [`table`] lays the rows out in markdown,
//! [`report`] wraps the table in its explanation and [`verdict`] says where the balance tips.

use std::fmt::Write as _;

use gradtone_frame::Frame;
use gradtone_frame::naming::instrument_of;

use crate::gan::GanStats;
use crate::gan::report::term_norm;

/// Why a sweep cannot be run as asked (messages name `gradtone sweep`'s flags).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The term cannot be swept on this model (`--term`).
    #[error("{0}")]
    Term(String),
    /// A weight is not finite and positive (`--weights`).
    #[error(
        "--weights: every weight must be finite and > 0, got {0} (a weight of 0 removes the term, and its instrument with it)"
    )]
    Weight(f64),
    /// Zero steps per setting (`--steps`).
    #[error("--steps must be at least 1")]
    NoSteps,
}

/// What a sweep varies: the term, the term it is compared with, its weights and steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The GAN (`true`) or the seed CNN.
    pub gan: bool,
    /// The loss term whose weight varies.
    pub term: String,
    /// The term it is weighed against (`nll` for `l2`; the other of `d_real`/`d_fake`).
    pub other: &'static str,
    /// The weights, in order.
    pub weights: Vec<f64>,
    /// Steps per setting.
    pub steps: usize,
}

impl Plan {
    /// The plan for a model with the asked term, weights and steps, each defaulted when not
    /// given (cnn: `l2` at 1e-4…1e-1, 201 steps; gan: `d_fake` at 0.25, 1, 4, 600 steps).
    pub fn new(
        gan: bool,
        term: Option<&str>,
        weights: &[f64],
        steps: Option<usize>,
    ) -> Result<Plan, SweepError> {
        let term = term
            .unwrap_or(if gan { "d_fake" } else { "l2" })
            .to_string();
        let other = match (gan, term.as_str()) {
            (false, "l2") => "nll",
            (true, "d_fake") => "d_real",
            (true, "d_real") => "d_fake",
            (false, t) => {
                return Err(SweepError::Term(format!(
                    "--term {t:?}: the cnn sweep varies l2 (its nll weight stays 1)"
                )));
            }
            (true, t) => {
                return Err(SweepError::Term(format!(
                    "--term {t:?}: the gan sweep varies d_real or d_fake (g_adv alone only rescales the generator's step under Adam)"
                )));
            }
        };
        let weights = match (weights.is_empty(), gan) {
            (false, _) => weights.to_vec(),
            (true, true) => vec![0.25, 1.0, 4.0],
            (true, false) => vec![1e-4, 1e-3, 1e-2, 1e-1],
        };
        if let Some(w) = weights.iter().find(|w| !w.is_finite() || **w <= 0.0) {
            return Err(SweepError::Weight(*w));
        }
        let steps = steps.unwrap_or(if gan { 600 } else { 201 });
        if steps == 0 {
            return Err(SweepError::NoSteps);
        }
        Ok(Plan {
            gan,
            term,
            other,
            weights,
            steps,
        })
    }

    /// The model in words, for titles.
    pub fn what(&self) -> &'static str {
        if self.gan {
            "GAN (balanced)"
        } else {
            "seed CNN (sgd lr 0.1)"
        }
    }

    /// Headings of the model-specific columns of [`Row::extra`].
    pub fn extra_heads(&self) -> &'static [&'static str] {
        if self.gan {
            &["D(real)", "D(fake)", "diversity", "‖∇g_adv‖"]
        } else {
            &["late NLL", "test acc"]
        }
    }
}

/// One setting's measured outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The term's weight.
    pub weight: f64,
    /// The setting's first step in the whole sweep.
    pub first_step: u64,
    /// Steps it made.
    pub steps: usize,
    /// Median over all steps of ‖∇term‖ / ‖∇other‖.
    pub ratio: f64,
    /// The same over the last quarter of the steps.
    pub late_ratio: f64,
    /// Model-specific columns, already formatted.
    pub extra: Vec<String>,
}

impl Row {
    /// The row of a setting at `weight` whose frames begin at `first_step`: its step count and
    /// gradient-norm ratios of `plan`'s terms, and the `extra` columns.
    pub fn new(
        plan: &Plan,
        weight: f64,
        first_step: u64,
        frames: &[Frame],
        extra: Vec<String>,
    ) -> Row {
        let (ratio, late_ratio) = ratios(frames, &plan.term, plan.other);
        Row {
            weight,
            first_step,
            steps: frames.len(),
            ratio,
            late_ratio,
            extra,
        }
    }
}

/// The GAN's extra columns ([`Plan::extra_heads`]): late means of D(real), D(fake), diversity
/// and ‖∇g_adv‖, to 3 decimals.
pub fn gan_columns(stats: &[GanStats]) -> Vec<String> {
    vec![
        format!("{:.3}", late_mean(stats, |s| s.p_real)),
        format!("{:.3}", late_mean(stats, |s| s.p_fake)),
        format!("{:.3}", late_mean(stats, |s| s.diversity)),
        format!("{:.3}", late_mean(stats, |s| term_norm(s, 2))),
    ]
}

/// The CNN's extra columns: the late mean of the `loss_nll` loss (NaN where a frame has none)
/// and the test accuracy when there is one, to 4 decimals.
pub fn cnn_columns(frames: &[Frame], accuracy: Option<f64>) -> Vec<String> {
    let nll = |f: &Frame| {
        f.losses
            .iter()
            .find(|l| l.name == "loss_nll")
            .map_or(f64::NAN, |l| l.value)
    };
    let mut extra = vec![format!("{:.4}", late_mean(frames, nll))];
    extra.extend(accuracy.map(|a| format!("{a:.4}")));
    extra
}

/// Whole-network norm of one instrument's values in a frame: `√Σ v²`.
pub fn instrument_norm(f: &Frame, inst: &str) -> f64 {
    f.values
        .iter()
        .filter(|v| instrument_of(&v.name) == inst)
        .map(|v| v.value * v.value)
        .sum::<f64>()
        .sqrt()
}

/// The upper median of the finite values (`v[n / 2]` sorted: no averaging of the middle two);
/// NaN if none is finite.
fn upper_median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median of ‖∇term‖/‖∇other‖ over `frames`, and over their last quarter (finite ratios only,
/// the upper of two middle ones).
pub fn ratios(frames: &[Frame], term: &str, other: &str) -> (f64, f64) {
    let r: Vec<f64> = frames
        .iter()
        .map(|f| instrument_norm(f, term) / instrument_norm(f, other))
        .collect();
    let late = r[r.len() - r.len().div_ceil(4).max(1).min(r.len())..].to_vec();
    (upper_median(r), upper_median(late))
}

/// Mean of `f` over the last fifth of `items` (0 without items).
pub fn late_mean<T>(items: &[T], f: impl Fn(&T) -> f64) -> f64 {
    let k = items.len().div_ceil(5).max(1).min(items.len());
    let tail = &items[items.len() - k..];
    tail.iter().map(f).sum::<f64>() / tail.len().max(1) as f64
}

/// The rows as a markdown table: number, weight, step range, the two ratios, then the `extra`
/// columns.
pub fn table(rows: &[Row], term: &str, other: &str, extra: &[&str]) -> String {
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

/// `sweep.md`: a heading, the setting, `table` and how to read it.
pub fn report(plan: &Plan, seed: u64, table: &str) -> String {
    let (term, other, steps) = (&plan.term, plan.other, plan.steps);
    format!(
        "# gradtone sweep: {what}, weight of `{term}`\n\nSeed {seed}, {steps} steps per setting. In `sweep.wav` each setting begins with as many pings as its number; `sweep.png` marks where each begins.\n\n{table}\n\nThe ratio column is the median over the setting's steps of ‖∇{term}‖ / ‖∇{other}‖ (each term's weighted gradient, whole network); \"late\" is the median over its last quarter. Below 1 the {other} term steers the weights; above 1 the {term} term does. The tipping point lies between the settings whose ratios straddle 1.{}\n",
        if plan.gan {
            " Late columns average the last fifth of the steps."
        } else {
            " Late NLL averages the last fifth of the steps; test accuracy is on the test set after the last step."
        },
        what = plan.what(),
    )
}

/// Where the balance tips (the first neighbours whose ratios straddle 1), or that it does not;
/// `None` without rows.
pub fn verdict(rows: &[Row], term: &str, other: &str) -> Option<String> {
    if let Some(tip) = rows
        .windows(2)
        .find(|p| (p[0].ratio - 1.0).signum() != (p[1].ratio - 1.0).signum())
    {
        return Some(format!(
            "the balance tips between {term}={} (ratio {:.3}) and {term}={} (ratio {:.3})",
            tip[0].weight, tip[0].ratio, tip[1].weight, tip[1].ratio
        ));
    }
    let (first, last) = (rows.first()?, rows.last()?);
    let below = first.ratio < 1.0;
    Some(format!(
        "the ratio stays {} 1 ({:.4} → {:.4}): the {} term's gradient leads in every setting; compare the other columns, or widen the range",
        if below { "below" } else { "above" },
        first.ratio,
        last.ratio,
        if below { other } else { term }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame whose `l2` layers have norm `l2` and whose `nll` layers have norm `nll`.
    fn frame(step: u64, l2: f64, nll: f64) -> Frame {
        Frame::new(step)
            .with_loss("loss_nll", 1.0)
            .with_value("l2/fc1", l2 * 0.6)
            .with_value("l2/fc2", l2 * 0.8)
            .with_value("nll/fc1", nll)
    }

    fn row(weight: f64, first_step: u64, ratio: f64) -> Row {
        Row {
            weight,
            first_step,
            steps: 4,
            ratio,
            late_ratio: ratio,
            extra: vec!["0.5000".into()],
        }
    }

    #[test]
    fn instrument_norm_is_the_norm_over_the_instruments_layers() {
        let f = frame(0, 5.0, 2.0);
        assert!((instrument_norm(&f, "l2") - 5.0).abs() < 1e-12);
        assert_eq!(instrument_norm(&f, "nll"), 2.0);
        assert_eq!(instrument_norm(&f, "g_adv"), 0.0);
    }

    #[test]
    fn ratios_take_the_upper_median_of_finite_ratios_overall_and_late() {
        // Ratios 1, 2, 3, 4, ∞ (nll 0), 8, 10, 12: the infinite one is left out.
        let frames: Vec<Frame> = [(1.0, 1.0), (2.0, 1.0), (3.0, 1.0), (4.0, 1.0)]
            .into_iter()
            .chain([(1.0, 0.0), (8.0, 1.0), (10.0, 1.0), (12.0, 1.0)])
            .enumerate()
            .map(|(i, (l2, nll))| frame(i as u64, l2, nll))
            .collect();
        let (all, late) = ratios(&frames, "l2", "nll");
        // Finite: 1 2 3 4 8 10 12 → the 4th; last quarter (2 steps): 10, 12 → the upper, 12.
        assert!((all - 4.0).abs() < 1e-12, "{all}");
        assert!((late - 12.0).abs() < 1e-12, "{late}");
        assert!(ratios(&[], "l2", "nll").0.is_nan());
    }

    #[test]
    fn rows_and_columns_of_a_setting() {
        let plan = Plan::new(false, None, &[], None).unwrap();
        let frames: Vec<Frame> = (0..5).map(|i| frame(i, 1.0, 2.0)).collect();
        let extra = cnn_columns(&frames, Some(0.875));
        assert_eq!(extra, ["1.0000", "0.8750"]);
        assert_eq!(cnn_columns(&frames, None), ["1.0000"]);
        let r = Row::new(&plan, 0.01, 10, &frames, extra);
        assert_eq!((r.weight, r.first_step, r.steps), (0.01, 10, 5));
        assert!((r.ratio - 0.5).abs() < 1e-12 && (r.late_ratio - 0.5).abs() < 1e-12);
        let g = GanStats {
            losses: [1.0; 3],
            norms: [[1.0; 3], [1.0; 3], [3.0, 4.0, 0.0]],
            d_total: [1.0; 3],
            p_real: 0.75,
            p_fake: 0.25,
            diversity: 0.5,
        };
        assert_eq!(gan_columns(&[g]), ["0.750", "0.250", "0.500", "5.000"]);
    }

    #[test]
    fn late_mean_averages_the_last_fifth() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(late_mean(&v, |x| *x), 9.5);
        assert_eq!(late_mean(&[3.0], |x| *x), 3.0);
        assert_eq!(late_mean(&[] as &[f64], |x| *x), 0.0);
    }

    #[test]
    fn plan_defaults_and_refusals() {
        let p = Plan::new(false, None, &[], None).unwrap();
        assert_eq!((p.term.as_str(), p.other, p.steps), ("l2", "nll", 201));
        assert_eq!(p.weights, [1e-4, 1e-3, 1e-2, 1e-1]);
        let g = Plan::new(true, Some("d_real"), &[2.0], Some(5)).unwrap();
        assert_eq!(
            (g.other, g.weights.as_slice(), g.steps),
            ("d_fake", &[2.0][..], 5)
        );
        assert_eq!(g.extra_heads().len(), 4);
        let e = Plan::new(false, Some("nll"), &[], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--term \"nll\": the cnn sweep varies l2 (its nll weight stays 1)"
        );
        assert!(matches!(
            Plan::new(true, None, &[1.0, 0.0], None),
            Err(SweepError::Weight(0.0))
        ));
    }

    #[test]
    fn table_lays_out_rows_and_extra_columns() {
        let rows = [row(0.001, 0, 0.25), row(0.01, 4, 2.0)];
        let t = table(&rows, "l2", "nll", &["late NLL"]);
        assert_eq!(
            t,
            "| # | l2 weight | steps | ‖∇l2‖/‖∇nll‖ | late ratio | late NLL |\n\
             |---:|---:|---|---:|---:|---:|\n\
             | 1 | 0.001 | 0–3 | 0.2500 | 0.2500 | 0.5000 |\n\
             | 2 | 0.01 | 4–7 | 2.0000 | 2.0000 | 0.5000 |"
        );
    }

    #[test]
    fn verdict_finds_the_tip_or_says_who_leads() {
        let tip = [row(0.001, 0, 0.25), row(0.01, 4, 2.0)];
        assert_eq!(
            verdict(&tip, "l2", "nll").unwrap(),
            "the balance tips between l2=0.001 (ratio 0.250) and l2=0.01 (ratio 2.000)"
        );
        let below = [row(0.001, 0, 0.25), row(0.01, 4, 0.5)];
        assert_eq!(
            verdict(&below, "l2", "nll").unwrap(),
            "the ratio stays below 1 (0.2500 → 0.5000): the nll term's gradient leads in every \
             setting; compare the other columns, or widen the range"
        );
        assert_eq!(verdict(&[], "l2", "nll"), None);
    }

    #[test]
    fn report_names_the_setting_and_embeds_the_table() {
        let p = Plan::new(false, None, &[], Some(3)).unwrap();
        let md = report(&p, 7, "TABLE");
        assert!(md.starts_with("# gradtone sweep: seed CNN (sgd lr 0.1), weight of `l2`\n\nSeed 7, 3 steps per setting."));
        assert!(md.contains("\n\nTABLE\n\n"));
        assert!(md.ends_with("test accuracy is on the test set after the last step.\n"));
    }
}
