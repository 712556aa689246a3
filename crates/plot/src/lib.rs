//! PNG pictures of a gradtone run, to put beside its sound.
//!
//! [`render_png`] draws one 1400×900 image: what the sound voices (per-layer gradient norms, or
//! the voices they are grouped into) over steps on a log scale with alarm [`Marker`]s, the
//! losses in a small panel of their own, and a spectrogram of the rendered audio underneath. It needs no system libraries: text is drawn with an
//! embedded subset of DejaVu Sans (see `assets/`), pixels are encoded by the `png` crate.
//!
//! ```no_run
//! use gradtone_plot::{Marker, PlotInput, render_png};
//! use gradtone_frame::Frame;
//!
//! let frames: Vec<Frame> = (0..100)
//!     .map(|s| Frame::new(s).with_value("conv1", 1.0 / (s + 1) as f64).with_loss("loss", 2.3))
//!     .collect();
//! let markers = [Marker { step: 40, label: "spike".into() }];
//! let input = PlotInput { title: "demo", frames: &frames, markers: &markers, audio: None, grouping: None };
//! render_png("demo.png".as_ref(), &input)?;
//! # Ok::<(), gradtone_plot::PlotError>(())
//! ```
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod draw;
mod error;
mod series;
mod sink;
pub mod spectrum;
mod text;

use std::io::{BufWriter, Write};
use std::path::Path;

pub use error::PlotError;
use gradtone_detect::grouping::GroupingConfig;
use gradtone_frame::Frame;

/// The bitmap every panel draws on, and the plotters results reduced to their text.
pub(crate) type Area<'a> =
    plotters::prelude::DrawingArea<plotters::prelude::BitMapBackend<'a>, plotters::coord::Shift>;
pub(crate) type R<T> = Result<T, String>;
pub use sink::{PlotArgs, PlotFile};

/// Width of the picture, pixels.
pub const WIDTH: u32 = 1400;
/// Height of the picture, pixels.
pub const HEIGHT: u32 = 900;

/// A vertical line at a step, e.g. where an alarm fired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    /// The step the line is drawn at.
    pub step: u64,
    /// Text beside the line (keep it short: long labels are cut to fit).
    pub label: String,
}

/// What to draw.
#[derive(Clone, Copy, Debug)]
pub struct PlotInput<'a> {
    /// The picture's title.
    pub title: &'a str,
    /// The run: each frame's values are one point per layer, its losses go to the loss panel.
    pub frames: &'a [Frame],
    /// Alarm markers.
    pub markers: &'a [Marker],
    /// The rendered sound for the spectrogram: interleaved samples, sample rate (Hz), channels.
    /// Marker lines are drawn on it assuming the audio spans the frames at a constant rate
    /// (true for `gradtone_sound::SeedMapping` when every frame has the same number of values).
    pub audio: Option<(&'a [f32], u32, u16)>,
    /// How the sound groups values into voices (`cents`, `depth`:
    /// `gradtone_detect::grouping::Voicing::groups_values`), so the picture draws the voices heard, one
    /// line each, labelled as in the console legend (`1 embed`, `2 layers.0-1`…). `None`
    /// draws every value (what `seed` plays).
    pub grouping: Option<&'a GroupingConfig>,
}

/// Draws `input` as a [`WIDTH`]×[`HEIGHT`] RGB PNG at `path` (created or overwritten).
///
/// The top panel shows each voice ([`PlotInput::grouping`]) or value over steps on a log
/// scale: non-finite values are left out
/// (the line breaks) and ticked in a "non-finite" row at the panel's foot, values ≤ 0 are drawn on
/// the floor one decade below the smallest positive value. More steps than pixel columns are
/// reduced to each column's minimum and maximum, so spikes stay visible. The legend lists
/// every voice (in two columns when they do not fit in one; beyond that it says how many more
/// there are), labels cut in the middle and never two alike. A loss panel, its axis fitted to
/// the losses' range, appears when frames have losses; a spectrogram (Hann 2048 / hop 512, 0–5 kHz, dB relative to its peak) when `audio` is
/// given.
///
/// # Errors
/// [`PlotError::Io`] if the file cannot be written, [`PlotError::InvalidAudio`] for audio with
/// zero channels or sample rate; every error names `path`.
pub fn render_png(path: &Path, input: &PlotInput) -> Result<(), PlotError> {
    // Checked before the file is made: a bad call writes nothing.
    check_audio(path, input)?;
    let file = std::fs::File::create(path).map_err(|source| PlotError::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    render_png_into(file, path, input)
}

/// [`render_png`] into `file`, already open (an output written beside its path); errors name
/// `path`.
///
/// # Errors
/// As [`render_png`].
pub fn render_png_into(
    file: std::fs::File,
    path: &Path,
    input: &PlotInput,
) -> Result<(), PlotError> {
    check_audio(path, input)?;
    let rgb = draw::render_rgb(input).map_err(|message| PlotError::Draw {
        path: path.to_path_buf(),
        message,
    })?;
    encode_png(file, path, &rgb, WIDTH, HEIGHT, png::ColorType::Rgb)
}

/// [`PlotError::InvalidAudio`] for audio with zero channels or sample rate.
fn check_audio(path: &Path, input: &PlotInput) -> Result<(), PlotError> {
    match input.audio {
        Some((_, sample_rate, channels)) if sample_rate == 0 || channels == 0 => {
            Err(PlotError::InvalidAudio {
                path: path.to_path_buf(),
                sample_rate,
                channels,
            })
        }
        _ => Ok(()),
    }
}

/// Encodes 8-bit pixels (`color` RGB or grayscale) as a PNG at `path`.
fn write_png(
    path: &Path,
    pixels: &[u8],
    width: u32,
    height: u32,
    color: png::ColorType,
) -> Result<(), PlotError> {
    let file = std::fs::File::create(path).map_err(|source| PlotError::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    encode_png(file, path, pixels, width, height, color)
}

/// Encodes 8-bit pixels into `file`; errors name `path`.
fn encode_png(
    file: std::fs::File,
    path: &Path,
    pixels: &[u8],
    width: u32,
    height: u32,
    color: png::ColorType,
) -> Result<(), PlotError> {
    let io_err = |source| PlotError::Io {
        path: path.to_path_buf(),
        cause: source,
    };
    let mut out = BufWriter::new(file);
    let encode_err = |e: png::EncodingError| match e {
        png::EncodingError::IoError(source) => io_err(source),
        other => PlotError::Encode {
            path: path.to_path_buf(),
            source: Box::new(other),
        },
    };
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    // Plots are flat colour: the fast deflate compresses them well at a fraction of the time.
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header().map_err(encode_err)?;
    writer.write_image_data(pixels).map_err(encode_err)?;
    writer.finish().map_err(encode_err)?;
    out.flush().map_err(io_err)
}

/// Writes square grayscale images as a grid PNG at `path`: `images` holds `side × side` pixels
/// per image, row-major, 0 (black) … 1 (white; values outside are clamped, NaN is black), laid
/// out `cols` per row with a 2-pixel gap, each pixel drawn `scale × scale`. A GAN's samples,
/// for example: 64 MNIST digits with `side` 28, `cols` 8, `scale` 2 make a 466×466 picture.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("grid-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let images = vec![0.5f32; 4 * 28 * 28];
/// gradtone_plot::image_grid_png(&dir.join("g.png"), &images, 28, 2, 1)?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`PlotError::Io`] if the file cannot be written; [`PlotError::Draw`] if `images` is empty,
/// not whole images, or `cols`/`scale`/`side` is 0.
pub fn image_grid_png(
    path: &Path,
    images: &[f32],
    side: usize,
    cols: usize,
    scale: usize,
) -> Result<(), PlotError> {
    let per = side * side;
    if per == 0 || cols == 0 || scale == 0 || images.is_empty() || !images.len().is_multiple_of(per)
    {
        return Err(PlotError::Draw {
            path: path.to_path_buf(),
            message: format!(
                "image grid needs whole {side}×{side} images and cols, scale ≥ 1 (got {} values, cols {cols}, scale {scale})",
                images.len()
            ),
        });
    }
    const GAP: usize = 2;
    let n = images.len() / per;
    let rows = n.div_ceil(cols);
    let cell = side * scale + GAP;
    let (w, h) = (cols * cell + GAP, rows * cell + GAP);
    // A mid-grey background tells the gaps from black pixels.
    let mut px = vec![96u8; w * h];
    for (k, img) in images.chunks_exact(per).enumerate() {
        let (x0, y0) = (GAP + (k % cols) * cell, GAP + (k / cols) * cell);
        for (i, &v) in img.iter().enumerate() {
            let g = if v.is_nan() {
                0
            } else {
                (v.clamp(0.0, 1.0) * 255.0).round() as u8
            };
            let (x, y) = (x0 + (i % side) * scale, y0 + (i / side) * scale);
            for dy in 0..scale {
                let row = (y + dy) * w + x;
                px[row..row + scale].fill(g);
            }
        }
    }
    write_png(path, &px, w as u32, h as u32, png::ColorType::Grayscale)
}

// Compiles the README's example as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
