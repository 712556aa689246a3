//! `gradtone experiments`' summary: the five settings of the 2019 article side by side, as the
//! markdown table of `summary.md`.

use std::fmt::Write as _;

use crate::Preset;
use crate::summary::RunStats;

/// One finished setting.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The setting.
    pub preset: Preset,
    /// Its run's statistics.
    pub stats: RunStats,
    /// Test-set accuracy after the last step.
    pub accuracy: f64,
}

/// `v` to 4 decimals, `-` when not finite.
fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "-".into()
    }
}

/// The step, or `-`.
fn opt_step(s: Option<u64>) -> String {
    s.map_or("-".into(), |s| s.to_string())
}

/// `summary.md`: a heading, the setting (seed, set sizes) and a row per setting with its steps,
/// final loss, accuracy, first non-finite step, dead steps, and each layer's median and maximum
/// norm (layers named after the first row's).
pub fn summary_markdown(rows: &[Row], seed: u64, n_train: usize, n_test: usize) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use gradtone_frame::Frame;

    #[test]
    fn summary_has_a_row_per_setting_and_two_columns_per_layer() {
        let frames = [
            Frame::new(0)
                .with_loss("loss", 2.0)
                .with_value("conv1", 1.0),
            Frame::new(1)
                .with_loss("loss", 0.5)
                .with_value("conv1", f64::NAN),
            Frame::new(2)
                .with_loss("loss", 0.25)
                .with_value("conv1", 3.0),
        ];
        let healthy = Row {
            preset: Preset::ALL[0],
            stats: RunStats::of(&frames),
            accuracy: 0.9,
        };
        let empty = Row {
            preset: Preset::ALL[1],
            stats: RunStats::of(&[]),
            accuracy: 0.1,
        };
        let md = summary_markdown(&[healthy, empty], 1, 60, 10);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "# gradtone experiments: the five settings of the 2019 article"
        );
        assert!(
            lines[2].starts_with("Seed 1, 60 training images, test accuracy on 10 test images.")
        );
        assert_eq!(
            lines[4],
            "| setting | steps | final loss | test acc | first non-finite step | all-zero steps | conv1 median | conv1 max |"
        );
        assert_eq!(lines[5], "|---|---:|---:|---:|---:|---:|---:|---:|");
        assert_eq!(
            lines[6],
            format!(
                "| {} | 3 | 0.2500 | 0.9000 | 1 | 0 | 2.0000 | 3.0000 |",
                Preset::ALL[0].name()
            )
        );
        assert_eq!(
            lines[7],
            format!("| {} | 0 | - | 0.1000 | - | 0 |", Preset::ALL[1].name())
        );
        assert!(md.ends_with("|\n"));
    }
}
