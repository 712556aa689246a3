//! Layout and drawing of the picture into an RGB buffer.
//!
//! plotters maps coordinates and draws lines and pixels; axes, ticks and all text are drawn here
//! (see `text.rs` for why text is not plotters').

use std::ops::Range;

use plotters::coord::CoordTranslate;
use plotters::prelude::*;

use crate::series::{self, Decimated, Field, Scale, Series};
use crate::spectrum::{self, Spectrogram};
use crate::text::{self, Anchor};
use crate::{Area, HEIGHT, Marker, PlotInput, R, WIDTH};
use gradtone_frame::naming::shorten_middle;

/// plotters' errors are generic over the backend; the caller only needs the text.
fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

const TITLE_H: u32 = 36;
const LEGEND_W: u32 = 230;
const Y_LABEL_W: u32 = 78;
const X_LABEL_H: u32 = 42;
const MARGIN: u32 = 8;
/// Room above the values panel for marker labels (two staggered rows).
const MARKER_LABEL_H: u32 = 34;
/// Height of the "non-finite" tick row at the foot of a series panel, pixels.
const NAN_ROW: i32 = 10;
/// Lowest level shown in the spectrogram, dB below its peak.
const DB_RANGE: f32 = 80.0;
/// Highest frequency shown in the spectrogram, Hz (the seed mapping's tones sit below it).
const MAX_HZ: f64 = 5000.0;

const LABEL_PX: f32 = 13.0;
/// Characters of a legend label in one column (the legend is [`LEGEND_W`] wide).
const LABEL_CHARS: usize = 26;
const MARKER_COLOR: RGBColor = RGBColor(200, 0, 30);
const NAN_COLOR: RGBColor = RGBColor(0, 0, 0);
const TEXT: RGBColor = RGBColor(25, 25, 25);
const TOP_LEFT: Anchor = (0.0, 0.0);
const MID_LEFT: Anchor = (0.0, 0.5);

/// Renders the picture; `Err` carries the plotting library's message.
pub(crate) fn render_rgb(input: &PlotInput) -> R<Vec<u8>> {
    let mut buf = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(s)?;
        let title = truncate(input.title, 110);
        text::draw(
            &root,
            &title,
            ((WIDTH / 2) as i32, 7),
            22.0,
            TEXT,
            (0.5, 0.0),
            false,
        )?;
        let (_, body) = root.split_vertically(TITLE_H);
        draw_body(&root, &body, input)?;
        root.present().map_err(s)?;
    }
    Ok(buf)
}

fn draw_body(root: &Area, body: &Area, input: &PlotInput) -> R<()> {
    let (values, grouped) = series::collect_values(input.frames, input.grouping);
    let value_labels = series::value_labels(&values, grouped, LABEL_CHARS);
    let losses = series::collect(input.frames, Field::Losses);
    let (x0, x1) = step_range(input);

    // Panel heights by weight; the values panel always shows, the others when they have data.
    let mut weights = vec![5u32];
    if !losses.is_empty() {
        weights.push(2);
    }
    if input.audio.is_some() {
        weights.push(4);
    }
    let total: u32 = weights.iter().sum();
    let height = HEIGHT - TITLE_H;
    let mut rest = body.clone();
    let mut areas = Vec::new();
    for (i, w) in weights.iter().enumerate() {
        if i + 1 == weights.len() {
            areas.push(rest.clone());
        } else {
            let (a, b) = rest.split_vertically(height * w / total);
            areas.push(a);
            rest = b;
        }
    }
    let mut areas = areas.into_iter();

    let panel = StepsPanel {
        root,
        x0,
        x1,
        markers: input.markers,
    };
    if let Some(area) = areas.next() {
        let scale = Scale::choose(&values, true);
        let empty = input.frames.is_empty().then_some("no frames");
        let desc = match scale {
            Scale::Log { .. } => "value (log scale)",
            Scale::Linear { .. } => "value",
        };
        panel.draw(&area, (&values, &value_labels), scale, desc, true, empty)?;
    }
    if !losses.is_empty()
        && let Some(area) = areas.next()
    {
        let scale = Scale::fit_losses(&losses);
        let desc = match scale {
            Scale::Log { .. } => "loss (log)",
            Scale::Linear { .. } => "loss",
        };
        let labels = series::value_labels(&losses, false, LABEL_CHARS);
        panel.draw(&area, (&losses, &labels), scale, desc, false, None)?;
    }
    if let Some((samples, rate, channels)) = input.audio
        && let Some(area) = areas.next()
    {
        draw_spectrogram(root, &area, samples, rate, channels, input)?;
    }
    Ok(())
}

/// The step range shown: the frames' steps (markers outside them are not drawn), or the markers'
/// when there are no frames; widened when it is a single step.
fn step_range(input: &PlotInput) -> (f64, f64) {
    let fold = |it: &mut dyn Iterator<Item = u64>| {
        it.fold((u64::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)))
    };
    let (mut lo, mut hi) = fold(&mut input.frames.iter().map(|f| f.step));
    if lo > hi {
        (lo, hi) = fold(&mut input.markers.iter().map(|m| m.step));
    }
    if lo > hi {
        return (0.0, 1.0);
    }
    if lo == hi {
        return (lo as f64 - 0.5, hi as f64 + 0.5);
    }
    (lo as f64, hi as f64)
}

/// Colour of series `i`: a 12-colour qualitative palette, then golden-angle hues.
fn color(i: usize) -> RGBColor {
    const PALETTE: [(u8, u8, u8); 12] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
        (57, 59, 121),
        (99, 121, 57),
        (214, 97, 107),
    ];
    if let Some(&(r, g, b)) = PALETTE.get(i) {
        return RGBColor(r, g, b);
    }
    let hue = (i as f64 * 0.618_034).fract();
    let (r, g, b) = HSLColor(hue, 0.65, 0.45).rgb();
    RGBColor(r, g, b)
}

/// A chart's plotting rectangle in absolute pixels.
struct Plot {
    x: Range<i32>,
    y: Range<i32>,
}

/// Frame, grid, ticks, tick labels and axis titles around `plot`.
fn draw_axes(
    root: &Area,
    plot: &Plot,
    x_ticks: &[(i32, String)],
    y_ticks: &[(i32, String)],
    (x_desc, y_desc): (&str, &str),
    grid: bool,
) -> R<()> {
    let (x, y) = (&plot.x, &plot.y);
    let grid_style = BLACK.mix(0.08).stroke_width(1);
    let tick_style = BLACK.mix(0.7).stroke_width(1);
    for (px, label) in x_ticks {
        if grid {
            root.draw(&PathElement::new(
                vec![(*px, y.start), (*px, y.end)],
                grid_style,
            ))
            .map_err(s)?;
        }
        root.draw(&PathElement::new(
            vec![(*px, y.end), (*px, y.end + 4)],
            tick_style,
        ))
        .map_err(s)?;
        text::draw(
            root,
            label,
            (*px, y.end + 6),
            LABEL_PX,
            TEXT,
            (0.5, 0.0),
            false,
        )?;
    }
    for (py, label) in y_ticks {
        if grid {
            root.draw(&PathElement::new(
                vec![(x.start, *py), (x.end, *py)],
                grid_style,
            ))
            .map_err(s)?;
        }
        root.draw(&PathElement::new(
            vec![(x.start - 4, *py), (x.start, *py)],
            tick_style,
        ))
        .map_err(s)?;
        text::draw(
            root,
            label,
            (x.start - 7, *py),
            LABEL_PX,
            TEXT,
            (1.0, 0.5),
            false,
        )?;
    }
    root.draw(&Rectangle::new(
        [(x.start, y.start), (x.end, y.end)],
        BLACK.mix(0.6).stroke_width(1),
    ))
    .map_err(s)?;
    let mid_x = (x.start + x.end) / 2;
    text::draw(
        root,
        x_desc,
        (mid_x, y.end + 23),
        14.0,
        TEXT,
        (0.5, 0.0),
        false,
    )?;
    let mid_y = (y.start + y.end) / 2;
    let left = x.start - Y_LABEL_W as i32 + 2;
    text::draw(root, y_desc, (left, mid_y), 14.0, TEXT, (0.5, 0.0), true)
}

/// "Nice" ticks (1, 2, 5 × 10^k apart) in `[lo, hi]`, about `target` of them; `integer` keeps
/// them on whole numbers (steps).
fn linear_ticks(lo: f64, hi: f64, target: usize, integer: bool) -> Vec<f64> {
    let span = hi - lo;
    if span.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !span.is_finite() {
        return vec![lo];
    }
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let mut step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&st| st >= raw)
        .unwrap_or(10.0 * mag);
    if integer {
        step = step.max(1.0);
    }
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Ticks for a log axis in plot units (log10): whole decades, every n-th when there are many;
/// plus ×2 and ×5 when the axis spans two decades or less.
fn log_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let (a, b) = (lo.ceil() as i64, hi.floor() as i64);
    let n = (b - a + 1).max(1) as usize;
    let every = n.div_ceil(target.max(1)).max(1);
    let mut out: Vec<f64> = (a..=b)
        .filter(|k| ((k - a) as usize).is_multiple_of(every))
        .map(|k| k as f64)
        .collect();
    if hi - lo <= 2.0 {
        for k in (lo.floor() as i64)..=(hi.ceil() as i64) {
            for m in [2f64, 5.0] {
                let y = k as f64 + m.log10();
                if (lo..=hi).contains(&y) {
                    out.push(y);
                }
            }
        }
        out.sort_by(f64::total_cmp);
    }
    out
}

struct StepsPanel<'a, 'b> {
    root: &'a Area<'b>,
    x0: f64,
    x1: f64,
    markers: &'a [Marker],
}

impl StepsPanel<'_, '_> {
    /// One panel of series over steps, with its legend on the right.
    fn draw(
        &self,
        area: &Area,
        (series, labels): (&[Series], &[String]),
        scale: Scale,
        y_desc: &str,
        label_markers: bool,
        message: Option<&str>,
    ) -> R<()> {
        let root = self.root;
        let (main, side) = area.split_horizontally(WIDTH - LEGEND_W);
        let top = if label_markers {
            MARKER_LABEL_H
        } else {
            MARGIN
        };
        let (lo, hi) = scale.range();
        // Extend the range below the floor by NAN_ROW and a little for the non-finite row.
        let plot_h = main
            .dim_in_pixel()
            .1
            .saturating_sub(top + MARGIN + X_LABEL_H)
            .max(20);
        let pad = (hi - lo) * f64::from(NAN_ROW as u32 + 6) / f64::from(plot_h);
        let (x0, x1) = (self.x0, self.x1);
        let mut chart = ChartBuilder::on(&main)
            .margin_top(top)
            .margin_bottom(MARGIN)
            .margin_left(MARGIN)
            .margin_right(MARGIN)
            .x_label_area_size(X_LABEL_H)
            .y_label_area_size(Y_LABEL_W)
            .build_cartesian_2d(x0..x1, (lo - pad)..hi)
            .map_err(s)?;
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let plot = Plot {
            x: xr.clone(),
            y: yr.clone(),
        };
        // A copy of the mapping, so the chart stays free to draw series.
        let coord = chart.as_coord_spec().clone();
        let px_of = |x: f64| coord.translate(&(x, hi)).0;
        let py_of = |y: f64| coord.translate(&(x0, y)).1;

        let x_ticks: Vec<(i32, String)> = linear_ticks(x0, x1, 10, true)
            .into_iter()
            .map(|x| (px_of(x), fmt_step(x)))
            .collect();
        let target = (plot_h / 28).max(2) as usize;
        let has_floor = matches!(scale, Scale::Log { .. })
            && series
                .iter()
                .any(|sr| sr.points.iter().any(|&(_, v)| v <= 0.0));
        let y_ticks: Vec<(i32, String)> = match scale {
            Scale::Log { .. } => log_ticks(lo, hi, target)
                .into_iter()
                .map(|y| {
                    // The floor stands for every value ≤ 0, not for its decade.
                    let label = if has_floor && y == lo {
                        "\u{2264} 0".to_string()
                    } else {
                        fmt_pow10(y)
                    };
                    (py_of(y), label)
                })
                .collect(),
            Scale::Linear { .. } => linear_ticks(lo, hi, target, false)
                .into_iter()
                .map(|y| (py_of(y), fmt_num(y)))
                .collect(),
        };
        draw_axes(root, &plot, &x_ticks, &y_ticks, ("step", y_desc), true)?;

        // Marker lines under the data, labels above the plot in two staggered rows.
        let mut row_end = [i32::MIN; 2];
        for m in self.markers {
            let x = m.step as f64;
            if x < x0 || x > x1 {
                continue;
            }
            let px = px_of(x);
            let line = vec![(px, yr.start), (px, yr.end)];
            root.draw(&PathElement::new(
                line,
                MARKER_COLOR.mix(0.7).stroke_width(1),
            ))
            .map_err(s)?;
            if label_markers && !m.label.is_empty() {
                let label = truncate(&m.label, 28);
                let w = text::width(&label, 12.0)?.ceil() as i32;
                // Centred on the line, kept inside the plot's width.
                let lx = (px - w / 2).min(xr.end - w).max(xr.start);
                let Some(row) = (0..2).find(|&r| row_end[r] < lx) else {
                    continue; // no room: the line alone marks it
                };
                row_end[row] = lx + w + 6;
                let ly = yr.start - MARKER_LABEL_H as i32 + 2 + 15 * row as i32;
                text::draw(root, &label, (lx, ly), 12.0, MARKER_COLOR, TOP_LEFT, false)?;
            }
        }

        // The series, reduced to the plot's pixel columns.
        let buckets = (xr.end - xr.start).max(1) as usize;
        let decimated: Vec<Decimated> = series
            .iter()
            .map(|sr| series::decimate(sr, scale, x0, x1, buckets))
            .collect();
        let dense = series.iter().any(|sr| sr.points.len() > buckets / 2);
        let width = if dense || series.len() > 8 { 1 } else { 2 };
        for (i, d) in decimated.iter().enumerate() {
            let c = color(i);
            for seg in &d.segments {
                if seg.len() == 1 {
                    // A lone point has no line: show it as a dot.
                    chart
                        .draw_series(std::iter::once(Circle::new(seg[0], 3, c.filled())))
                        .map_err(s)?;
                } else {
                    chart
                        .draw_series(LineSeries::new(seg.iter().copied(), c.stroke_width(width)))
                        .map_err(s)?;
                }
            }
        }

        // Non-finite row: a tick for each pixel column where any series was NaN or infinite.
        let mut nan_px: Vec<i32> = decimated
            .iter()
            .flat_map(|d| d.non_finite.iter().map(|&x| px_of(x)))
            .collect();
        nan_px.sort_unstable();
        nan_px.dedup();
        for &px in &nan_px {
            let line = vec![(px, yr.end - 1), (px, yr.end - NAN_ROW)];
            root.draw(&PathElement::new(line, NAN_COLOR.stroke_width(1)))
                .map_err(s)?;
        }
        let label_style = |t: &str, pos: (i32, i32), anchor: Anchor| {
            text::draw(root, t, pos, 11.0, TEXT, anchor, false)
        };
        if !nan_px.is_empty() {
            label_style("non-finite", (xr.end - 4, yr.end - NAN_ROW - 2), (1.0, 1.0))?;
        }
        if has_floor {
            let py = py_of(lo);
            let line = vec![(xr.start, py), (xr.end, py)];
            root.draw(&PathElement::new(line, BLACK.mix(0.35).stroke_width(1)))
                .map_err(s)?;
        }
        if let Some(msg) = message {
            let centre = ((xr.start + xr.end) / 2, (yr.start + yr.end) / 2);
            text::draw(
                root,
                msg,
                centre,
                18.0,
                RGBColor(110, 110, 110),
                (0.5, 0.5),
                false,
            )?;
        }

        let entries: Vec<LegendEntry> = labels
            .iter()
            .zip(&decimated)
            .enumerate()
            .map(|(i, (label, d))| LegendEntry {
                text: if d.any_finite {
                    label.clone()
                } else {
                    format!("{} (no finite value)", shorten_middle(label, 12))
                },
                color: color(i),
            })
            .collect();
        let mut extra = Vec::new();
        if self
            .markers
            .iter()
            .any(|m| (x0..=x1).contains(&(m.step as f64)))
        {
            extra.push(LegendEntry {
                text: "alarm".into(),
                color: MARKER_COLOR,
            });
        }
        if !nan_px.is_empty() {
            extra.push(LegendEntry {
                text: "non-finite (tick at foot)".into(),
                color: NAN_COLOR,
            });
        }
        draw_legend(&side, yr.start - side.get_base_pixel().1, &entries, &extra)
    }
}

struct LegendEntry {
    text: String,
    color: RGBColor,
}

/// The legend from `top`: one column of 17-pixel rows; when the entries do not fit, tighter
/// rows in two columns (labels cut to half the width, in the middle, the voice numbers keeping
/// them distinct); series that still do not fit become "+N more".
fn draw_legend(side: &Area, top: i32, entries: &[LegendEntry], extra: &[LegendEntry]) -> R<()> {
    let bottom = side.dim_in_pixel().1 as i32 - X_LABEL_H as i32 - MARGIN as i32;
    let rows_of = |row: i32| ((bottom - top) / row).max(1) as usize;
    let needed = entries.len() + extra.len();
    let (row_h, px, cols) = if needed <= rows_of(17) {
        (17, LABEL_PX, 1)
    } else {
        (13, 11.0, 2)
    };
    let rows = rows_of(row_h);
    let capacity = rows * cols;
    let series_slots = capacity.saturating_sub(extra.len()).max(1);
    let (shown, more) = if entries.len() > series_slots {
        (series_slots - 1, entries.len() - (series_slots - 1))
    } else {
        (entries.len(), 0)
    };
    let col_w = (LEGEND_W as i32) / cols as i32;
    let chars = if cols == 1 { LABEL_CHARS } else { 15 };
    let place = |slot: usize| -> (i32, i32) {
        let (c, r) = (slot / rows, slot % rows);
        (c as i32 * col_w, top + row_h / 2 + r as i32 * row_h)
    };
    let draw_row = |label: &str, color: Option<RGBColor>, (x, y): (i32, i32)| -> R<()> {
        if let Some(c) = color {
            side.draw(&PathElement::new(
                vec![(x + 6, y), (x + 24, y)],
                c.stroke_width(3),
            ))
            .map_err(s)?;
        }
        text::draw(side, label, (x + 29, y), px, TEXT, MID_LEFT, false)
    };
    let texts: Vec<&str> = entries[..shown].iter().map(|e| e.text.as_str()).collect();
    let mut slot = 0;
    for (e, label) in entries[..shown]
        .iter()
        .zip(series::unique_cut(&texts, chars))
    {
        draw_row(&label, Some(e.color), place(slot))?;
        slot += 1;
    }
    if more > 0 {
        draw_row(&format!("+{more} more"), None, place(slot))?;
        slot += 1;
    }
    for e in extra {
        draw_row(&shorten_middle(&e.text, chars), Some(e.color), place(slot))?;
        slot += 1;
    }
    Ok(())
}

fn draw_spectrogram(
    root: &Area,
    area: &Area,
    samples: &[f32],
    rate: u32,
    channels: u16,
    input: &PlotInput,
) -> R<()> {
    let (main, side) = area.split_horizontally(WIDTH - LEGEND_W);
    let len = samples.len() / usize::from(channels.max(1));
    let duration = len as f64 / f64::from(rate.max(1));
    let fmax = MAX_HZ.min(f64::from(rate) / 2.0);
    let t1 = if duration > 0.0 { duration } else { 1.0 };
    let chart = ChartBuilder::on(&main)
        .margin_top(MARGIN)
        .margin_bottom(MARGIN)
        .margin_left(MARGIN)
        .margin_right(MARGIN)
        .x_label_area_size(X_LABEL_H)
        .y_label_area_size(Y_LABEL_W)
        .build_cartesian_2d(0.0..t1, 0.0..fmax)
        .map_err(s)?;
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let plot = Plot {
        x: xr.clone(),
        y: yr.clone(),
    };
    let (w, h) = ((xr.end - xr.start).max(1), (yr.end - yr.start).max(1));
    let x_ticks: Vec<(i32, String)> = linear_ticks(0.0, t1, 10, false)
        .into_iter()
        .map(|t| (chart.backend_coord(&(t, 0.0)).0, fmt_num(t)))
        .collect();
    let y_ticks: Vec<(i32, String)> = linear_ticks(0.0, fmax, (h / 28).max(2) as usize, false)
        .into_iter()
        .map(|f| (chart.backend_coord(&(0.0, f)).1, fmt_num(f)))
        .collect();

    let spec = spectrum::spectrogram(samples, rate, channels, w as usize);
    if spec.columns == 0 {
        draw_axes(
            root,
            &plot,
            &x_ticks,
            &y_ticks,
            ("time (s)", "frequency (Hz)"),
            false,
        )?;
        let centre = ((xr.start + xr.end) / 2, (yr.start + yr.end) / 2);
        return text::draw(
            root,
            "no audio samples",
            centre,
            18.0,
            TEXT,
            (0.5, 0.5),
            false,
        );
    }
    let top_db = spec.max_db();
    let lut: Vec<RGBColor> = (0..256).map(|i| viridis(i as f32 / 255.0)).collect();
    let colour_of = |db: f32| -> RGBColor {
        let t = ((db - (top_db - DB_RANGE)) / DB_RANGE).clamp(0.0, 1.0);
        lut[(t * 255.0) as usize]
    };
    // Row → interpolated bin position, computed once for all columns.
    let rows: Vec<(usize, usize, f32)> = (0..h)
        .map(|r| {
            let f = (f64::from(h - 1 - r) + 0.5) / f64::from(h) * fmax;
            let p = f / spec.bin_hz();
            let k = (p.floor() as usize).min(spec.bins - 1);
            (k, (k + 1).min(spec.bins - 1), (p - k as f64) as f32)
        })
        .collect();
    for px in 0..w {
        let t = (f64::from(px) + 0.5) / f64::from(w) * duration;
        let c = ((t * f64::from(rate) - (spectrum::WINDOW / 2) as f64) / spec.hop as f64).round();
        let col = spec.column((c.max(0.0) as usize).min(spec.columns - 1));
        for (r, &(k0, k1, frac)) in rows.iter().enumerate() {
            let db = col[k0] * (1.0 - frac) + col[k1] * frac;
            root.draw_pixel((xr.start + px, yr.start + r as i32), &colour_of(db))
                .map_err(s)?;
        }
    }
    draw_axes(
        root,
        &plot,
        &x_ticks,
        &y_ticks,
        ("time (s)", "frequency (Hz)"),
        false,
    )?;

    // Markers, placed assuming the audio spans the frames' steps evenly.
    let steps = input.frames.iter().map(|f| f.step);
    let (s0, s1) = steps.fold((u64::MAX, 0), |(a, b), st| (a.min(st), b.max(st)));
    if s0 <= s1 {
        for m in input.markers {
            if m.step < s0 || m.step > s1 {
                continue;
            }
            let t = (m.step - s0) as f64 / (s1 - s0 + 1) as f64 * duration;
            let px = chart.backend_coord(&(t, 0.0)).0;
            let line = vec![(px, yr.start), (px, yr.end)];
            root.draw(&PathElement::new(line, WHITE.mix(0.7).stroke_width(1)))
                .map_err(s)?;
        }
    }
    let top = yr.start - side.get_base_pixel().1;
    draw_colour_bar(&side, top, h, top_db, &colour_of, &spec)
}

/// The dB scale beside the spectrogram, `h` pixels tall from `top`.
fn draw_colour_bar(
    side: &Area,
    top: i32,
    h: i32,
    top_db: f32,
    colour_of: &dyn Fn(f32) -> RGBColor,
    spec: &Spectrogram,
) -> R<()> {
    let x = 8;
    let bar_top = top + 20;
    let bar_h = (h - 20).max(2);
    text::draw(
        side,
        "level (dBFS)",
        (x, top),
        LABEL_PX,
        TEXT,
        TOP_LEFT,
        false,
    )?;
    for r in 0..bar_h {
        let db = top_db - DB_RANGE * r as f32 / (bar_h - 1) as f32;
        side.draw(&PathElement::new(
            vec![(x, bar_top + r), (x + 16, bar_top + r)],
            colour_of(db).stroke_width(1),
        ))
        .map_err(s)?;
    }
    for i in 0..=4 {
        let db = top_db - DB_RANGE * i as f32 / 4.0;
        let y = bar_top + (bar_h - 1) * i / 4;
        text::draw(
            side,
            &format!("{db:.0}"),
            (x + 22, y),
            LABEL_PX,
            TEXT,
            MID_LEFT,
            false,
        )?;
    }
    let note = [
        format!("Hann {}", spectrum::WINDOW),
        format!("hop {}", spec.hop),
        "mono mix".to_string(),
    ];
    for (i, line) in note.iter().enumerate() {
        let pos = (x + 70, bar_top + bar_h / 2 - 20 + 15 * i as i32);
        text::draw(side, line, pos, 11.0, TEXT, MID_LEFT, false)?;
    }
    Ok(())
}

/// The viridis colour map (perceptually uniform, readable in grey and by colour-blind readers),
/// as 9 stops interpolated linearly; `t` in [0, 1].
fn viridis(t: f32) -> RGBColor {
    const STOPS: [(f32, f32, f32); 9] = [
        (68.0, 1.0, 84.0),
        (71.0, 44.0, 122.0),
        (59.0, 81.0, 139.0),
        (44.0, 113.0, 142.0),
        (33.0, 144.0, 141.0),
        (39.0, 173.0, 129.0),
        (92.0, 200.0, 99.0),
        (170.0, 220.0, 50.0),
        (253.0, 231.0, 37.0),
    ];
    let p = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (p.floor() as usize).min(STOPS.len() - 2);
    let f = p - i as f32;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f32, y: f32| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// `text`, cut to `max` characters with an ellipsis.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
    t.push('\u{2026}');
    t
}

/// Tick label for a log-scale position `y` (the value is 10^y).
fn fmt_pow10(y: f64) -> String {
    let k = y.round();
    if (y - k).abs() < 1e-6 {
        let k = k as i32;
        return match k {
            0..=4 => format!("{}", 10i64.pow(k as u32)),
            -3..=-1 => format!("{:.*}", (-k) as usize, 10f64.powi(k)),
            _ => format!("1e{k}"),
        };
    }
    fmt_num(10f64.powf(y))
}

/// A step tick label: the whole number while it fits, so 1005000 and 1010000 stay apart.
fn fmt_step(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{}", v as i64)
    } else {
        fmt_num(v)
    }
}

/// A short, readable number: up to 3 significant digits, exponent form when tiny or huge.
fn fmt_num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{}", if v == 0.0 { 0.0 } else { v });
    }
    let mag = v.abs().log10().floor();
    if !(-3.0..6.0).contains(&mag) {
        return format!("{v:.1e}");
    }
    let decimals = (2.0 - mag).max(0.0) as usize;
    let t = format!("{v:.decimals$}");
    if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(fmt_pow10(0.0), "1");
        assert_eq!(fmt_pow10(3.0), "1000");
        assert_eq!(fmt_pow10(-2.0), "0.01");
        assert_eq!(fmt_pow10(-7.0), "1e-7");
        assert_eq!(fmt_pow10(9.0), "1e9");
        assert_eq!(fmt_pow10(2f64.log10()), "2");
        assert_eq!(fmt_num(1500.0), "1500");
        assert_eq!(fmt_step(1_005_000.0), "1005000");
        assert_eq!(fmt_step(2e12), "2.0e12");
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(fmt_num(2.0), "2");
        assert_eq!(fmt_num(-0.0), "0");
        assert_eq!(fmt_num(1234567.0), "1.2e6");
        assert_eq!(fmt_num(-0.0001), "-1.0e-4");
        assert_eq!(truncate("abcdef", 4), "abc\u{2026}");
        assert_eq!(truncate("abc", 4), "abc");
    }

    #[test]
    fn ticks() {
        assert_eq!(
            linear_ticks(0.0, 200.0, 10, true),
            (0..=10).map(|k| k as f64 * 20.0).collect::<Vec<_>>()
        );
        // A single step widened to ±0.5 still gets whole-number ticks only.
        assert_eq!(linear_ticks(6.5, 7.5, 10, true), vec![7.0]);
        assert_eq!(linear_ticks(0.0, 1.0, 4, false), vec![0.0, 0.5, 1.0]);
        assert_eq!(
            log_ticks(-3.0, 5.0, 10),
            (-3..=5).map(f64::from).collect::<Vec<_>>()
        );
        assert_eq!(
            log_ticks(-20.0, 20.0, 5),
            (-20..=20).step_by(9).map(f64::from).collect::<Vec<_>>()
        );
        let few = log_ticks(0.0, 1.0, 5);
        assert_eq!(few.len(), 4, "1, 2, 5, 10: {few:?}");
    }

    #[test]
    fn palette_colours_are_distinct() {
        let c: Vec<RGBColor> = (0..40).map(color).collect();
        for i in 0..c.len() {
            for j in 0..i {
                assert_ne!(c[i], c[j], "colours {i} and {j}");
            }
        }
    }
}
