//! End-to-end: render PNGs, decode them, and check what a reader would see.

use std::path::{Path, PathBuf};
use std::time::Instant;

use gradtone_frame::Frame;
use gradtone_plot::{HEIGHT, Marker, PlotError, PlotInput, WIDTH, render_png};
use gradtone_sound::SeedMapping;

/// A fresh, empty folder for this test's files.
/// Kept when `GRADTONE_KEEP_PLOTS` is set, to look at them; removed otherwise.
struct OutDir(PathBuf);

impl OutDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("gradtone-plot-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        OutDir(dir)
    }
}

impl std::ops::Deref for OutDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if std::env::var_os("GRADTONE_KEEP_PLOTS").is_some() {
            eprintln!("plots kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn out_dir(test: &str) -> OutDir {
    OutDir::new(test)
}

/// Decodes an 8-bit RGB PNG: (width, height, pixels).
fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// Variance of the grey level over all pixels: 0 for a blank picture.
fn variance(rgb: &[u8]) -> f64 {
    let grey: Vec<f64> = rgb
        .chunks_exact(3)
        .map(|p| (f64::from(p[0]) + f64::from(p[1]) + f64::from(p[2])) / 3.0)
        .collect();
    let mean = grey.iter().sum::<f64>() / grey.len() as f64;
    grey.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / grey.len() as f64
}

fn differing_pixels(a: &[u8], b: &[u8]) -> usize {
    a.chunks_exact(3)
        .zip(b.chunks_exact(3))
        .filter(|(x, y)| x != y)
        .count()
}

/// `n` frames of `layers` decaying values with a loss.
fn frames(n: u64, layers: usize, scale: f64) -> Vec<Frame> {
    (0..n)
        .map(|s| {
            let mut f = Frame::new(s).with_loss("loss", 2.3 / (1.0 + s as f64 * 0.01));
            for l in 0..layers {
                let v = scale * (1.0 + l as f64) / (1.0 + s as f64 * 0.02)
                    * (1.0 + 0.3 * ((s + l as u64) as f64 * 0.1).sin());
                f = f.with_value(format!("layer{l}"), v);
            }
            f
        })
        .collect()
}

fn render(dir: &Path, name: &str, input: &PlotInput) -> (PathBuf, Vec<u8>) {
    let path = dir.join(name);
    render_png(&path, input).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (w, h, rgb) = decode(&path);
    assert_eq!((w, h), (WIDTH, HEIGHT), "{name}");
    assert_eq!((w, h), (1400, 900));
    (path, rgb)
}

#[test]
fn png_decodes_has_size_and_is_not_blank() {
    let dir = out_dir("basic");
    let f = frames(300, 4, 1.0);
    let markers = [Marker {
        step: 120,
        label: "spike".into(),
    }];
    let input = PlotInput {
        title: "basic",
        frames: &f,
        markers: &markers,
        audio: None,
        grouping: None,
    };
    let (path, rgb) = render(&dir, "basic.png", &input);
    assert!(
        path.metadata().unwrap().len() > 10_000,
        "a real picture, not a stub"
    );
    let var = variance(&rgb);
    assert!(var > 100.0, "grey-level variance {var}");
    // Deterministic: the same input gives the same pixels.
    let (_, again) = render(&dir, "again.png", &input);
    assert_eq!(rgb, again);
}

#[test]
fn the_data_changes_the_picture() {
    let dir = out_dir("data");
    let (a, b) = (frames(300, 4, 1.0), frames(300, 4, 50.0));
    let base = |f| PlotInput {
        title: "same title",
        frames: f,
        markers: &[],
        audio: None,
        grouping: None,
    };
    let (_, pa) = render(&dir, "a.png", &base(&a));
    let (_, pb) = render(&dir, "b.png", &base(&b));
    let diff = differing_pixels(&pa, &pb);
    assert!(
        diff > 1000,
        "only {diff} pixels differ between different data"
    );

    // One NaN in the middle adds the non-finite row and breaks the line.
    let mut c = a.clone();
    c[150].values[2].value = f64::NAN;
    let (_, pc) = render(&dir, "c.png", &base(&c));
    let diff = differing_pixels(&pa, &pc);
    assert!(diff > 20, "a NaN changed only {diff} pixels");

    // A marker changes it too.
    let markers = [Marker {
        step: 200,
        label: "alarm".into(),
    }];
    let with_marker = PlotInput {
        markers: &markers,
        ..base(&a)
    };
    let (_, pm) = render(&dir, "m.png", &with_marker);
    assert!(differing_pixels(&pa, &pm) > 100);
}

#[test]
fn edge_cases_render() {
    let dir = out_dir("edges");
    let mut cases: Vec<(&str, Vec<Frame>)> = vec![
        ("empty", vec![]),
        (
            "one",
            vec![Frame::new(7).with_value("a", 0.5).with_loss("loss", 1.0)],
        ),
        (
            "all_nan",
            (0..50)
                .map(|s| {
                    Frame::new(s)
                        .with_value("dead", f64::NAN)
                        .with_value("inf", f64::INFINITY)
                })
                .collect(),
        ),
        (
            "zeros_and_negatives",
            (0..50)
                .map(|s| {
                    Frame::new(s)
                        .with_value("a", if s % 5 == 0 { 0.0 } else { 0.1 * s as f64 })
                        .with_value("b", -1.0)
                        .with_loss("elbo", -100.0 + s as f64)
                })
                .collect(),
        ),
        ("forty_series", frames(100, 40, 1.0)),
    ];
    // Steps that start late and skip: the axis follows the steps, not the indices.
    cases.push((
        "sparse",
        (0..30)
            .map(|i| Frame::new(1_000_000 + i * 1000).with_value("a", 1.0 + i as f64))
            .collect(),
    ));
    for (name, f) in &cases {
        let input = PlotInput {
            title: name,
            frames: f,
            markers: &[Marker {
                step: 3,
                label: "a very long alarm label that must be cut to fit the picture".into(),
            }],
            audio: Some((&[], 44_100, 1)),
            grouping: None,
        };
        let (_, rgb) = render(&dir, &format!("{name}.png"), &input);
        let var = variance(&rgb);
        assert!(var > 50.0, "{name}: variance {var}");
    }
}

#[test]
fn series_count_changes_picture_even_beyond_the_legend() {
    // 40 series: the legend caps, but every series is still drawn, so adding the 40th changes it.
    let dir = out_dir("many");
    let f40 = frames(100, 40, 1.0);
    let f39: Vec<Frame> = f40
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f.values.pop();
            f
        })
        .collect();
    let input = |f| PlotInput {
        title: "many",
        frames: f,
        markers: &[],
        audio: None,
        grouping: None,
    };
    let (_, a) = render(&dir, "40.png", &input(&f40));
    let (_, b) = render(&dir, "39.png", &input(&f39));
    assert!(differing_pixels(&a, &b) > 50);
}

#[test]
fn spectrogram_panel_shows_the_tone() {
    // Same frames, different audio: only the spectrogram panel (lower part) may differ.
    let dir = out_dir("spec");
    let f = frames(100, 2, 1.0);
    let tone = |hz: f64| -> Vec<f32> {
        (0..44_100 * 3)
            .map(|i| 0.3 * (2.0 * std::f64::consts::PI * hz * i as f64 / 44_100.0).sin() as f32)
            .collect()
    };
    let (low, high) = (tone(1000.0), tone(3000.0));
    let input = |a: &[f32]| {
        let (_, rgb) = render(
            &dir,
            "tmp.png",
            &PlotInput {
                title: "tone",
                frames: &f,
                markers: &[],
                audio: Some((a, 44_100, 1)),
                grouping: None,
            },
        );
        rgb
    };
    let (pl, ph) = (input(&low), input(&high));
    let row_bytes = WIDTH as usize * 3;
    let first_diff_row = pl
        .chunks_exact(row_bytes)
        .zip(ph.chunks_exact(row_bytes))
        .position(|(a, b)| a != b)
        .unwrap();
    assert!(
        first_diff_row > HEIGHT as usize / 2,
        "audio changed row {first_diff_row}, above the spectrogram"
    );
    // The spectrogram's plot area: rows whose pixel at x = 600 is coloured (viridis has no greys).
    let coloured = |rgb: &[u8], y: usize| {
        let p = &rgb[y * row_bytes + 600 * 3..][..3];
        !(p[0] == p[1] && p[1] == p[2])
    };
    // From the bottom up: the axis labels, then the spectrogram's block (series lines above it
    // may be coloured too, so stop at its first uncoloured row).
    let last = (0..HEIGHT as usize)
        .rev()
        .find(|&y| coloured(&pl, y))
        .unwrap();
    let first = (0..=last).rev().find(|&y| !coloured(&pl, y)).unwrap() + 1;
    let rows: Vec<usize> = (first..=last).collect();
    let (top, bottom) = (first as f64, last as f64);
    assert!(rows.len() > 150, "spectrogram {} rows tall", rows.len());
    // The brightest (most yellow) row, read back as a frequency on the linear 0–5 kHz axis.
    let brightest_hz = |rgb: &[u8]| -> f64 {
        let y = rows
            .iter()
            .copied()
            .max_by_key(|&y| {
                // Viridis' top end is yellow: high red + green, low blue.
                rgb[y * row_bytes + 150 * 3..y * row_bytes + 1000 * 3]
                    .chunks_exact(3)
                    .map(|p| i64::from(p[0]) + i64::from(p[1]) - i64::from(p[2]))
                    .sum::<i64>()
            })
            .unwrap();
        (bottom + 0.5 - y as f64) / (bottom - top + 1.0) * 5000.0
    };
    let (hl, hh) = (brightest_hz(&pl), brightest_hz(&ph));
    // One pixel row is ~20 Hz here, one FFT bin 21.5 Hz.
    assert!((hl - 1000.0).abs() < 50.0, "1 kHz tone drawn at {hl:.0} Hz");
    assert!((hh - 3000.0).abs() < 50.0, "3 kHz tone drawn at {hh:.0} Hz");
}

#[test]
fn bad_path_names_the_path() {
    let f = frames(10, 2, 1.0);
    let input = PlotInput {
        title: "x",
        frames: &f,
        markers: &[],
        audio: None,
        grouping: None,
    };
    let path = Path::new("/nonexistent-gradtone-dir/sub/plot.png");
    let err = render_png(path, &input).unwrap_err();
    assert!(matches!(err, PlotError::Io { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent-gradtone-dir/sub/plot.png"),
        "{msg}"
    );
    assert!(msg.contains("folder exists"), "says what to do: {msg}");

    // A folder where the file should be.
    let dir = out_dir("badpath");
    let err = render_png(&dir, &input).unwrap_err();
    assert!(err.to_string().contains(&dir.display().to_string()));

    let bad_audio = PlotInput {
        audio: Some((&[0.0; 10], 44_100, 0)),
        grouping: None,
        ..input
    };
    let err = render_png(&dir.join("a.png"), &bad_audio).unwrap_err();
    assert!(
        matches!(err, PlotError::InvalidAudio { channels: 0, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("a.png"));
    assert!(!dir.join("a.png").exists(), "nothing written on error");
}

#[test]
fn hundred_thousand_frames_of_twelve_values_render_quickly() {
    let dir = out_dir("big");
    let mut f = frames(100_000, 12, 1.0);
    f[40_000].values[3].value = f64::NAN;
    f[70_000].values[5].value = 0.0;
    let markers: Vec<Marker> = (0..20)
        .map(|i| Marker {
            step: i * 5000,
            label: format!("alarm {i}"),
        })
        .collect();
    // Ten minutes of audio: the spectrogram analyses at most one window per pixel column.
    let audio: Vec<f32> = (0..44_100 * 600)
        .map(|i| 0.1 * (i as f32 * 0.05).sin())
        .collect();
    let input = PlotInput {
        title: "10^5 frames × 12 values",
        frames: &f,
        markers: &markers,
        audio: Some((&audio, 44_100, 1)),
        grouping: None,
    };
    let start = Instant::now();
    render_png(&dir.join("big.png"), &input).unwrap();
    let secs = start.elapsed().as_secs_f64();
    eprintln!("10^5 frames × 12 values + 600 s audio: {secs:.3} s");
    // The release-build target is < 2 s (see README); tests run at opt-level 2 with debug
    // assertions on a shared 2-core machine, so allow headroom here.
    assert!(secs < 6.0, "took {secs:.2} s");
    let start = Instant::now();
    render_png(
        &dir.join("big-silent.png"),
        &PlotInput {
            audio: None,
            grouping: None,
            ..input
        },
    )
    .unwrap();
    let silent = start.elapsed().as_secs_f64();
    eprintln!("10^5 frames × 12 values, no audio: {silent:.3} s");
    assert!(silent < 6.0, "took {silent:.2} s");
    let (w, h, rgb) = decode(&dir.join("big.png"));
    assert_eq!((w, h), (WIDTH, HEIGHT));
    assert!(variance(&rgb) > 100.0);
}

/// A real diverging run (SGD, lr 1.0) with its seed-mapping sound.
#[test]
fn real_trajectory_with_sound() {
    let Some(csv) = gradtone_testkit::shared(
        "real_trajectory_with_sound",
        "reference/pytorch/trajectories/sgd_lr1.0_bs10_seed1.csv",
    ) else {
        return;
    };
    let f = gradtone_csv::read_frames(&csv).unwrap();
    let mut mapping = SeedMapping::new();
    let mut audio = Vec::new();
    for frame in &f {
        mapping.render(frame, &mut audio);
    }
    let dir = out_dir("real");
    let (_, rgb) = render(
        &dir,
        "real.png",
        &PlotInput {
            title: "sgd_lr1.0_bs10_seed1",
            frames: &f,
            markers: &[Marker {
                step: 1,
                label: "loss ×10".into(),
            }],
            audio: Some((&audio, SeedMapping::SAMPLE_RATE, 1)),
            grouping: None,
        },
    );
    assert!(variance(&rgb) > 100.0);
}

/// The grid puts each image in its cell, pixel for pixel (scaled), on a grey background, and
/// refuses shapes that are not whole images.
#[test]
fn image_grid_places_each_image_in_its_cell() {
    let dir = out_dir("image_grid");
    let path = dir.0.join("grid.png");
    // Three 4×4 images: black, white, and a left-to-right ramp.
    let mut images = vec![0.0f32; 16];
    images.extend([1.0f32; 16]);
    images.extend((0..16).map(|i| (i % 4) as f32 / 3.0));
    gradtone_plot::image_grid_png(&path, &images, 4, 2, 3).expect("grid writes");
    let file = std::fs::File::open(&path).expect("png exists");
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png data");
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    // 2 columns × (4·3 + 2) + 2 = 30 wide; 2 rows → 30 high.
    assert_eq!((info.width, info.height), (30, 30));
    let at = |x: usize, y: usize| buf[y * 30 + x];
    assert_eq!(at(0, 0), 96, "gap is grey");
    assert_eq!(at(2, 2), 0, "image 0 black");
    assert_eq!(at(16 + 5, 2 + 5), 255, "image 1 white");
    // Image 2 (second row, first cell): the ramp 0, 85, 170, 255 across, 3 pixels per step.
    let y = 16 + 4;
    let ramp: Vec<u8> = (0..4).map(|k| at(2 + 3 * k + 1, y)).collect();
    assert_eq!(ramp, [0, 85, 170, 255]);
    // Empty second-row cell stays background.
    assert_eq!(at(16 + 5, y), 96);
    let err =
        gradtone_plot::image_grid_png(&path, &images[..20], 4, 2, 3).expect_err("not whole images");
    assert!(err.to_string().contains("4×4"), "{err}");
}
