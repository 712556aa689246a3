//! What a GAN run leaves besides its sound: the diagnostics CSV, the progress picture's path and
//! the phases table printed at the end.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{D_LAYERS, GanStats};

/// Seed of the fixed codes the sample pictures use, so that their rows are comparable.
pub const SAMPLE_SEED: u64 = 2019;

/// Whole-network gradient norm of term `t` ([`super::TERMS`] order) at one step: `√Σ layer²`.
pub fn term_norm(s: &GanStats, t: usize) -> f64 {
    s.norms[t].iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// `<dir>/<stem>-progress.png` beside the `samples` picture.
pub fn progress_path(samples: &Path) -> PathBuf {
    let stem = samples
        .file_stem()
        .map_or("samples".into(), |s| s.to_string_lossy().into_owned());
    samples.with_file_name(format!("{stem}-progress.png"))
}

/// The diagnostics CSV: a row per step of D(real), D(fake), diversity and the discriminator's
/// total gradient norm per layer (`d_real + d_fake`).
pub fn write_diagnostics(w: &mut impl Write, stats: &[GanStats]) -> std::io::Result<()> {
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
/// whole-network gradient norm (the upper median), so the phases heard can be read as numbers.
pub fn phases_table(stats: &[GanStats], parts: usize) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(i: u32) -> GanStats {
        let x = f64::from(i);
        GanStats {
            losses: [1.0; 3],
            norms: [[3.0 * x, 4.0 * x, 0.0], [x, 0.0, 0.0], [0.0, 0.0, 2.0]],
            d_total: [x, 2.0, 3.0],
            p_real: 0.5 + x / 10.0,
            p_fake: 0.5,
            diversity: 1.0,
        }
    }

    #[test]
    fn term_norm_is_the_whole_network_norm() {
        assert_eq!(term_norm(&stats(1), 0), 5.0);
        assert_eq!(term_norm(&stats(2), 0), 10.0);
        assert_eq!(term_norm(&stats(2), 2), 2.0);
    }

    #[test]
    fn progress_picture_sits_beside_the_samples() {
        assert_eq!(
            progress_path(Path::new("out/digits.png")),
            Path::new("out/digits-progress.png")
        );
    }

    #[test]
    fn diagnostics_csv_has_a_row_per_step() {
        let mut out = Vec::new();
        write_diagnostics(&mut out, &[stats(0), stats(1)]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "step,p_real,p_fake,diversity,d_total/D.fc1,d_total/D.fc2,d_total/D.fc3\n\
             0,0.5,0.5,1,0,2,3\n\
             1,0.6,0.5,1,1,2,3\n"
        );
    }

    #[test]
    fn phases_table_means_and_medians_per_stretch() {
        let s: Vec<GanStats> = (0..4).map(stats).collect();
        let t = phases_table(&s, 2);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        // Steps 0–1: D(real) mean 0.55, |d_real| upper median of 0 and 5 → 5.
        assert_eq!(
            lines[1],
            "      0-1        0.550    0.500     1.000     5.0000     1.0000     2.0000"
        );
        assert!(lines[2].starts_with("      2-3        0.750"));
        assert_eq!(phases_table(&[], 10).lines().count(), 1);
    }
}
