//! The picture shows what is heard: one line per voice when the sound groups values, and a loss
//! axis fitted to the loss. Measured on the decoded PNG.

use std::collections::HashSet;
use std::path::Path;

use gradtone_detect::grouping::{Grouping, GroupingConfig};
use gradtone_frame::Frame;
use gradtone_plot::{HEIGHT, PlotInput, WIDTH, render_png};
use gradtone_testkit::transformer_names;

const LEGEND_W: u32 = 230;
const TITLE_H: u32 = 36;

fn decode(path: &Path) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
    buf.truncate(info.buffer_size());
    buf
}

fn pixel(rgb: &[u8], x: u32, y: u32) -> (u8, u8, u8) {
    let i = ((y * WIDTH + x) * 3) as usize;
    (rgb[i], rgb[i + 1], rgb[i + 2])
}

/// Distinct clearly coloured (not grey) pixels' colours in a rectangle.
fn colours(
    rgb: &[u8],
    xs: std::ops::Range<u32>,
    ys: std::ops::Range<u32>,
) -> HashSet<(u8, u8, u8)> {
    let mut out = HashSet::new();
    for y in ys {
        for x in xs.clone() {
            let (r, g, b) = pixel(rgb, x, y);
            let (hi, lo) = (r.max(g).max(b), r.min(g).min(b));
            if hi - lo > 60 {
                out.insert((r, g, b));
            }
        }
    }
    out
}

fn frames(names: &[String]) -> Vec<Frame> {
    (0..200u64)
        .map(|s| {
            // The word-language-model loss: 10.2 falling to about 6.3.
            let loss = 6.3 + 3.9 * (-(s as f64) / 40.0).exp();
            names
                .iter()
                .enumerate()
                .fold(Frame::new(s).with_loss("loss", loss), |f, (i, n)| {
                    let v = (1.0 + i as f64) * (1.0 + 0.5 * ((s + i as u64) as f64 * 0.2).sin());
                    f.with_value(n.as_str(), v)
                })
        })
        .collect()
}

#[test]
fn values_panel_draws_one_line_per_voice_heard() {
    let dir = std::env::temp_dir().join(format!("gradtone-voices-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let names = transformer_names();
    let frames = frames(&names);
    let cfg = GroupingConfig::default();
    let voices = Grouping::new(&names, &cfg).voices();
    assert!(voices < 12);
    let input = |grouping| PlotInput {
        title: "voices",
        frames: &frames,
        markers: &[],
        audio: None,
        grouping,
    };
    let grouped = dir.join("grouped.png");
    render_png(&grouped, &input(Some(&cfg))).unwrap();
    let raw = dir.join("raw.png");
    render_png(&raw, &input(None)).unwrap();
    let (g, r) = (decode(&grouped), decode(&raw));
    if std::env::var_os("GRADTONE_KEEP_PLOTS").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }

    // The values panel's legend: one coloured swatch per series (the palette has one grey).
    // Without audio the panels share 900 − 36 px as 5 : 2; the values panel is the upper one.
    let panel = TITLE_H..TITLE_H + (HEIGHT - TITLE_H) * 5 / 7;
    let legend = WIDTH - LEGEND_W..WIDTH;
    let in_legend = colours(&g, legend.clone(), panel.clone()).len();
    assert!(
        in_legend + 1 >= voices && in_legend <= voices,
        "{in_legend} colours for {voices} voices"
    );
    let raw_legend = colours(&r, legend, panel.clone()).len();
    assert!(raw_legend >= 24, "seed draws every value: {raw_legend}");
}

#[test]
fn loss_panel_axis_fits_the_loss() {
    let names: Vec<String> = vec!["fc1.weight".into(), "fc2.weight".into()];
    let frames = frames(&names);
    let path = std::env::temp_dir().join(format!("gradtone-loss-{}.png", std::process::id()));
    let input = PlotInput {
        title: "loss",
        frames: &frames,
        markers: &[],
        audio: None,
        grouping: None,
    };
    render_png(&path, &input).unwrap();
    let rgb = decode(&path);
    let _ = std::fs::remove_file(&path);
    // Without audio the panels share 900 − 36 px as 5 : 2; the loss panel is the lower one.
    let body = HEIGHT - TITLE_H;
    let top = TITLE_H + body * 5 / 7;
    let loss_colour = (31, 119, 180); // the first series' colour
    let rows: Vec<u32> = (top..HEIGHT)
        .filter(|&y| (90..WIDTH - LEGEND_W - 10).any(|x| pixel(&rgb, x, y) == loss_colour))
        .collect();
    let (lo, hi) = (rows[0], *rows.last().unwrap());
    let panel_plot_h = (HEIGHT - top) - 8 - 8 - 42;
    // A 10.2 → 6.3 drop spans most of the panel (on a 1–100 log axis it took a tenth of it).
    assert!(
        f64::from(hi - lo) > 0.7 * f64::from(panel_plot_h),
        "the loss line spans {} of {panel_plot_h} px",
        hi - lo
    );
}
