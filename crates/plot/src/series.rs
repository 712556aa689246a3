//! Frames → named series → per-pixel-column polylines (min/max decimation).

use std::collections::HashMap;

use gradtone_detect::grouping::{Grouping, GroupingConfig};
use gradtone_frame::naming::shorten_middle;
use gradtone_frame::{Frame, Named};

/// One named quantity over steps, in frame order.
pub(crate) struct Series {
    pub name: String,
    pub points: Vec<(u64, f64)>,
}

/// Which list of a frame a panel shows.
#[derive(Clone, Copy)]
pub(crate) enum Field {
    Values,
    Losses,
}

/// The values panel's series: what the sound voices. With `grouping` (the mapping groups), a
/// frame whose values [`Grouping::applies`] to becomes one point per voice (the L2 norm of its
/// members, as the mapping computes it), the series named after the voices; otherwise one
/// series per value. Returns the series and whether any frame was grouped.
pub(crate) fn collect_values(
    frames: &[Frame],
    grouping: Option<&GroupingConfig>,
) -> (Vec<Series>, bool) {
    let Some(cfg) = grouping else {
        return (collect(frames, Field::Values), false);
    };
    let mut grouped = false;
    let mut current: Option<Grouping> = None;
    let mut voiced: Vec<Frame> = Vec::with_capacity(frames.len());
    for f in frames {
        if !Grouping::applies(f.values.len(), cfg) {
            voiced.push(Frame {
                losses: Vec::new(),
                ..f.clone()
            });
            continue;
        }
        grouped = true;
        let names = || f.values.iter().map(|n| n.name.as_str());
        if !current.as_ref().is_some_and(|g| g.matches(names())) {
            let list: Vec<&str> = names().collect();
            current = Some(Grouping::new(&list, cfg));
        }
        let Some(g) = current.as_ref() else {
            continue;
        };
        let raw: Vec<f64> = f.values.iter().map(|n| n.value).collect();
        let mut frame = Frame::new(f.step);
        for ((voice, _), v) in g.legend().iter().zip(g.aggregate(&raw)) {
            frame = frame.with_value(voice.as_str(), v);
        }
        voiced.push(frame);
    }
    (collect(&voiced, Field::Values), grouped)
}

/// Legend labels for the values panel, at most about `max` characters, all distinct: voices
/// are numbered as in the console legend (`3 layers.0-1`); plain values keep their names, cut
/// in the middle where too long, numbered only where cutting made two of them equal.
pub(crate) fn value_labels(series: &[Series], grouped: bool, max: usize) -> Vec<String> {
    if grouped {
        return series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let number = format!("{} ", i + 1);
                let room = max.saturating_sub(number.len()).max(4);
                format!("{number}{}", shorten_middle(&s.name, room))
            })
            .collect();
    }
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    unique_cut(&names, max)
}

/// `texts` cut in the middle to about `max` characters; where cutting makes two equal, all are
/// numbered by position (`14 tran…_weight`) so no two labels read the same.
pub(crate) fn unique_cut<S: AsRef<str>>(texts: &[S], max: usize) -> Vec<String> {
    let cut: Vec<String> = texts
        .iter()
        .map(|t| shorten_middle(t.as_ref(), max))
        .collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for c in &cut {
        *count.entry(c.as_str()).or_default() += 1;
    }
    if count.values().all(|&n| n < 2) {
        return cut;
    }
    cut.iter()
        .zip(texts)
        .enumerate()
        .map(|(i, (_, t))| {
            let number = format!("{} ", i + 1);
            let room = max.saturating_sub(number.len()).max(4);
            format!("{number}{}", shorten_middle(t.as_ref(), room))
        })
        .collect()
}

/// Splits frames into series by name, in first-seen order.
pub(crate) fn collect(frames: &[Frame], field: Field) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    // Frames almost always repeat the previous frame's names in the same order: check that
    // first, so 10^5 × 12 values cost no hashing.
    let mut last: Vec<usize> = Vec::new();
    for f in frames {
        let list: &[Named] = match field {
            Field::Values => &f.values,
            Field::Losses => &f.losses,
        };
        for (j, named) in list.iter().enumerate() {
            let cached = last
                .get(j)
                .copied()
                .filter(|&i| series[i].name == named.name);
            let i = match cached {
                Some(i) => i,
                None => {
                    let i = *index.entry(named.name.clone()).or_insert_with(|| {
                        series.push(Series {
                            name: named.name.clone(),
                            points: Vec::with_capacity(frames.len()),
                        });
                        series.len() - 1
                    });
                    if j < last.len() {
                        last[j] = i;
                    } else {
                        last.push(i);
                    }
                    i
                }
            };
            series[i].points.push((f.step, named.value));
        }
    }
    series
}

/// How a panel maps values to its y axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Scale {
    /// y = log10(value); values ≤ 0 sit on the floor `lo`.
    Log { lo: f64, hi: f64 },
    /// y = value.
    Linear { lo: f64, hi: f64 },
}

impl Scale {
    /// Axis range in plot units.
    pub fn range(self) -> (f64, f64) {
        match self {
            Scale::Log { lo, hi } | Scale::Linear { lo, hi } => (lo, hi),
        }
    }

    /// Plot y of a finite value.
    fn y(self, v: f64) -> f64 {
        match self {
            Scale::Log { lo, .. } => {
                if v > 0.0 {
                    v.log10()
                } else {
                    lo
                }
            }
            Scale::Linear { .. } => v,
        }
    }

    /// Picks the scale for a panel: log with whole decades when `prefer_log` or every finite
    /// value is positive, else linear with 5 % padding. Values ≤ 0 on a log scale get a floor one
    /// decade below the smallest positive value, so they stand apart from real data.
    pub fn choose(series: &[Series], prefer_log: bool) -> Scale {
        let (mut min_pos, mut min, mut max) = (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        let mut non_positive = false;
        for &(_, v) in series.iter().flat_map(|s| &s.points) {
            if !v.is_finite() {
                continue;
            }
            min = min.min(v);
            max = max.max(v);
            if v > 0.0 {
                min_pos = min_pos.min(v);
            } else {
                non_positive = true;
            }
        }
        if !min.is_finite() {
            // Nothing finite to show: any sensible decade range will do.
            return Scale::Log { lo: -1.0, hi: 1.0 };
        }
        if prefer_log || !non_positive {
            if !min_pos.is_finite() {
                // Only zeros (or negatives): put the floor at 10^-1 so they show.
                return Scale::Log { lo: -1.0, hi: 0.0 };
            }
            let mut lo = min_pos.log10().floor();
            let mut hi = max.log10().ceil();
            if non_positive {
                lo -= 1.0;
            }
            if hi <= lo {
                hi = lo + 1.0;
            }
            // Clamp absurd spans (1e-300 … 1e300) so tick labels stay readable.
            lo = lo.max(hi - 40.0);
            return Scale::Log { lo, hi };
        }
        linear_fit(min, max)
    }

    /// The loss panel's scale: fitted to the losses' own range. Linear with 5 % padding (a
    /// 9.8 → 6.3 drop fills the panel instead of lying flat on a 1–100 axis), unless the
    /// positive losses span more than a factor of 30 (e.g. 2.3 → 0.01), where whole decades
    /// on a log scale show the fall better.
    pub fn fit_losses(series: &[Series]) -> Scale {
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for &(_, v) in series.iter().flat_map(|s| &s.points) {
            if v.is_finite() {
                min = min.min(v);
                max = max.max(v);
            }
        }
        if !min.is_finite() {
            return Scale::Linear { lo: 0.0, hi: 1.0 };
        }
        if min > 0.0 && max / min > 30.0 {
            return Scale::choose(series, true);
        }
        linear_fit(min, max)
    }
}

/// A linear range around `[min, max]` with 5 % padding (never empty).
fn linear_fit(min: f64, max: f64) -> Scale {
    let pad = ((max - min) * 0.05)
        .max(1e-3 * max.abs().max(min.abs()))
        .max(1e-12);
    Scale::Linear {
        lo: min - pad,
        hi: max + pad,
    }
}

/// A series reduced to what fits in `buckets` pixel columns.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Decimated {
    /// Polylines in plot units (x = step); a new segment starts after a bucket holding only
    /// non-finite values.
    pub segments: Vec<Vec<(f64, f64)>>,
    /// Buckets (as steps) that held a non-finite value.
    pub non_finite: Vec<f64>,
    /// Whether the series had any finite value.
    pub any_finite: bool,
}

/// Min/max decimation over `buckets` equal step ranges in `[x0, x1]`: each bucket keeps its
/// smallest and largest value (in the order they occurred), so spikes survive at any zoom.
pub(crate) fn decimate(s: &Series, scale: Scale, x0: f64, x1: f64, buckets: usize) -> Decimated {
    let mut out = Decimated::default();
    let buckets = buckets.max(1);
    let width = (x1 - x0).max(f64::MIN_POSITIVE);
    let bucket_of = |step: u64| -> usize {
        let b = ((step as f64 - x0) / width * buckets as f64) as usize;
        b.min(buckets - 1)
    };
    // Per bucket: (first index, y) of the min and of the max, and whether a non-finite occurred.
    struct Acc {
        bucket: usize,
        min: Option<(usize, f64, f64)>,
        max: Option<(usize, f64, f64)>,
        bad: bool,
    }
    let mut current: Option<Acc> = None;
    let mut segment: Vec<(f64, f64)> = Vec::new();
    let flush = |acc: Acc, out: &mut Decimated, segment: &mut Vec<(f64, f64)>| {
        match (acc.min, acc.max) {
            (Some(mn), Some(mx)) => {
                let (a, b) = if mn.0 <= mx.0 { (mn, mx) } else { (mx, mn) };
                segment.push((a.1, a.2));
                if a.0 != b.0 {
                    segment.push((b.1, b.2));
                }
            }
            _ => {
                // Only non-finite values here: break the line.
                if !segment.is_empty() {
                    out.segments.push(std::mem::take(segment));
                }
            }
        }
        if acc.bad {
            let x = x0 + (acc.bucket as f64 + 0.5) / buckets as f64 * width;
            out.non_finite.push(x.min(x1));
        }
    };
    for (i, &(step, v)) in s.points.iter().enumerate() {
        let b = bucket_of(step);
        if current.as_ref().is_some_and(|c| c.bucket != b)
            && let Some(acc) = current.take()
        {
            flush(acc, &mut out, &mut segment);
        }
        let acc = current.get_or_insert(Acc {
            bucket: b,
            min: None,
            max: None,
            bad: false,
        });
        if !v.is_finite() {
            acc.bad = true;
            continue;
        }
        out.any_finite = true;
        let y = scale.y(v);
        let x = step as f64;
        if acc.min.is_none_or(|m| y < m.2) {
            acc.min = Some((i, x, y));
        }
        if acc.max.is_none_or(|m| y > m.2) {
            acc.max = Some((i, x, y));
        }
    }
    if let Some(acc) = current.take() {
        flush(acc, &mut out, &mut segment);
    }
    if !segment.is_empty() {
        out.segments.push(segment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(u64, f64)]) -> Series {
        Series {
            name: "s".into(),
            points: points.to_vec(),
        }
    }

    #[test]
    fn collect_keeps_order_and_handles_changing_names() {
        let frames = vec![
            Frame::new(0).with_value("a", 1.0).with_value("b", 2.0),
            Frame::new(1).with_value("a", 3.0).with_value("b", 4.0),
            // Names change order and a new one appears.
            Frame::new(2).with_value("c", 5.0).with_value("a", 6.0),
            Frame::new(3).with_loss("loss", 0.5),
        ];
        let v = collect(&frames, Field::Values);
        let names: Vec<&str> = v.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(v[0].points, [(0, 1.0), (1, 3.0), (2, 6.0)]);
        assert_eq!(v[1].points, [(0, 2.0), (1, 4.0)]);
        assert_eq!(v[2].points, [(2, 5.0)]);
        let l = collect(&frames, Field::Losses);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].points, [(3, 0.5)]);
    }

    #[test]
    fn loss_axis_fits_the_loss_range() {
        // The word-language-model run: 10.2 at step 0 falling to 6.3. Before, a 1–100 log axis.
        let loss = [series(&[
            (0, 10.2),
            (1, 9.8),
            (50, 7.1),
            (99, 6.3),
            (100, f64::NAN),
        ])];
        let Scale::Linear { lo, hi } = Scale::fit_losses(&loss) else {
            panic!("{:?}", Scale::fit_losses(&loss))
        };
        assert!(
            (5.9..6.3).contains(&lo) && (10.2..10.6).contains(&hi),
            "{lo} {hi}"
        );
        // The drop spans most of the axis.
        assert!((10.2 - 6.3) / (hi - lo) > 0.85);
        // Two decades and more: log.
        let wide = [series(&[(0, 2.3), (1, 0.01)])];
        assert_eq!(Scale::fit_losses(&wide), Scale::Log { lo: -2.0, hi: 1.0 });
        // Negative terms (a GAN's or an ELBO's): linear. Constant: a non-empty range.
        let neg = [series(&[(0, -3.0), (1, 2.0)])];
        assert!(matches!(Scale::fit_losses(&neg), Scale::Linear { lo, .. } if lo < -3.0));
        let flat = [series(&[(0, 2.0), (1, 2.0)])];
        assert!(
            matches!(Scale::fit_losses(&flat), Scale::Linear { lo, hi } if lo < 2.0 && hi > 2.0)
        );
        let none = [series(&[(0, f64::NAN)])];
        assert_eq!(Scale::fit_losses(&none), Scale::Linear { lo: 0.0, hi: 1.0 });
    }

    #[test]
    fn values_are_drawn_as_the_voices_heard() {
        // 27 tensors of a small Transformer, as the hook's group_by="tensor" names them.
        let names = gradtone_testkit::transformer_names();
        assert_eq!(names.len(), 27);
        let frames: Vec<Frame> = (0..5)
            .map(|s| {
                names.iter().enumerate().fold(Frame::new(s), |f, (i, n)| {
                    f.with_value(n.as_str(), (i + 1) as f64)
                })
            })
            .collect();
        let cfg = GroupingConfig::default();
        let (voices, grouped) = collect_values(&frames, Some(&cfg));
        let g = Grouping::new(&names, &cfg);
        assert!(grouped);
        assert_eq!(voices.len(), g.voices());
        assert!(voices.len() < 12, "{}", voices.len());
        let labels = value_labels(&voices, grouped, 40);
        for (i, ((voice, _), label)) in g.legend().iter().zip(&labels).enumerate() {
            assert_eq!(*label, format!("{} {voice}", i + 1)); // the console legend's words
        }
        // The voice's value is what the mapping plays: the members' L2 norm.
        let raw: Vec<f64> = (1..=27).map(f64::from).collect();
        let want = g.aggregate(&raw);
        for (s, w) in voices.iter().zip(want) {
            assert_eq!(s.points.len(), 5);
            assert!((s.points[0].1 - w).abs() < 1e-12);
        }
        // seed (no grouping): every value, labels unique even where the names are cut.
        let (raw_series, grouped) = collect_values(&frames, None);
        assert!(!grouped && raw_series.len() == 27);
        let labels = value_labels(&raw_series, false, 16);
        let unique: std::collections::HashSet<&String> = labels.iter().collect();
        assert_eq!(unique.len(), 27, "{labels:?}");
        assert!(labels.iter().all(|l| l.chars().count() <= 16), "{labels:?}");
    }

    #[test]
    fn scale_choice() {
        let pos = [series(&[(0, 0.03), (1, 7.0), (2, f64::NAN)])];
        assert_eq!(Scale::choose(&pos, false), Scale::Log { lo: -2.0, hi: 1.0 });
        // Zeros push the floor one decade down.
        let zero = [series(&[(0, 0.03), (1, 0.0)])];
        assert_eq!(
            Scale::choose(&zero, true),
            Scale::Log { lo: -3.0, hi: -1.0 }
        );
        // Negatives without prefer_log: linear.
        let neg = [series(&[(0, -1.0), (1, 1.0)])];
        assert!(
            matches!(Scale::choose(&neg, false), Scale::Linear { lo, hi } if lo < -1.0 && hi > 1.0)
        );
        // All NaN and empty: a default log range, no NaN in it.
        let nan = [series(&[(0, f64::NAN), (1, f64::INFINITY)])];
        assert_eq!(Scale::choose(&nan, true), Scale::Log { lo: -1.0, hi: 1.0 });
        assert_eq!(Scale::choose(&[], true), Scale::Log { lo: -1.0, hi: 1.0 });
        let zeros = [series(&[(0, 0.0)])];
        assert_eq!(
            Scale::choose(&zeros, true),
            Scale::Log { lo: -1.0, hi: 0.0 }
        );
    }

    #[test]
    fn decimation_keeps_spikes_and_bounds_points() {
        let n = 100_000u64;
        let mut pts: Vec<(u64, f64)> = (0..n).map(|i| (i, 1.0)).collect();
        pts[54_321].1 = 1000.0; // one spike
        pts[77_777].1 = 0.001; // one dip
        let s = series(&pts);
        let scale = Scale::Log { lo: -3.0, hi: 3.0 };
        let d = decimate(&s, scale, 0.0, (n - 1) as f64, 1000);
        let total: usize = d.segments.iter().map(Vec::len).sum();
        assert!(total <= 2000, "{total} points for 1000 columns");
        assert_eq!(d.segments.len(), 1);
        let ys: Vec<f64> = d.segments[0].iter().map(|p| p.1).collect();
        assert!(ys.contains(&3.0), "spike kept");
        assert!(ys.contains(&-3.0), "dip kept");
        assert!(d.non_finite.is_empty() && d.any_finite);
    }

    #[test]
    fn nan_breaks_lines_and_zero_sits_on_floor() {
        let s = series(&[(0, 1.0), (1, 10.0), (2, f64::NAN), (3, 0.0), (4, 100.0)]);
        let scale = Scale::Log { lo: -1.0, hi: 2.0 };
        let d = decimate(&s, scale, 0.0, 4.0, 1000);
        assert_eq!(
            d.segments,
            vec![vec![(0.0, 0.0), (1.0, 1.0)], vec![(3.0, -1.0), (4.0, 2.0)]]
        );
        assert_eq!(d.non_finite.len(), 1);
        assert!((d.non_finite[0] - 2.0).abs() < 0.01);
        let all_nan = series(&[(0, f64::NAN), (1, f64::NAN)]);
        let d = decimate(&all_nan, scale, 0.0, 1.0, 10);
        assert!(d.segments.is_empty() && !d.any_finite);
        assert_eq!(d.non_finite.len(), 2);
    }
}
