//! PNG pictures of a gradtone run, to put beside its sound.
//!
//! [`render_png`] draws one 1400×900 image: each value (per-layer gradient norm) over steps on a
//! log scale with alarm [`Marker`]s, the losses in a small panel of their own, and a spectrogram
//! of the rendered audio underneath. It needs no system libraries: text is drawn with an
//! embedded subset of DejaVu Sans (see `assets/`), pixels are encoded by the `png` crate.
//!
//! ```no_run
//! use gradtone_plot::{Marker, PlotInput, render_png};
//! use gradtone_sound::Frame;
//!
//! let frames: Vec<Frame> = (0..100)
//!     .map(|s| Frame::new(s).with_value("conv1", 1.0 / (s + 1) as f64).with_loss("loss", 2.3))
//!     .collect();
//! let markers = [Marker { step: 40, label: "spike".into() }];
//! let input = PlotInput { title: "demo", frames: &frames, markers: &markers, audio: None };
//! render_png("demo.png".as_ref(), &input)?;
//! # Ok::<(), gradtone_plot::PlotError>(())
//! ```
#![warn(missing_docs)]

mod draw;
mod error;
mod series;
pub mod spectrum;
mod text;

use std::io::{BufWriter, Write};
use std::path::Path;

pub use error::PlotError;
use gradtone_sound::Frame;

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
    /// (true for [`gradtone_sound::SeedMapping`] when every frame has the same number of values).
    pub audio: Option<(&'a [f32], u32, u16)>,
}

/// Draws `input` as a [`WIDTH`]×[`HEIGHT`] RGB PNG at `path` (created or overwritten).
///
/// The top panel shows each value over steps on a log scale: non-finite values are left out
/// (the line breaks) and ticked in a "non-finite" row at the panel's foot, values ≤ 0 are drawn on
/// the floor one decade below the smallest positive value. More steps than pixel columns are
/// reduced to each column's minimum and maximum, so spikes stay visible. The legend lists as
/// many series as fit and says how many more there are. A loss panel appears when frames have
/// losses; a spectrogram (Hann 2048 / hop 512, 0–5 kHz, dB relative to its peak) when `audio` is
/// given.
///
/// # Errors
/// [`PlotError::Io`] if the file cannot be written, [`PlotError::InvalidAudio`] for audio with
/// zero channels or sample rate; every error names `path`.
pub fn render_png(path: &Path, input: &PlotInput) -> Result<(), PlotError> {
    if let Some((_, sample_rate, channels)) = input.audio
        && (sample_rate == 0 || channels == 0)
    {
        return Err(PlotError::InvalidAudio {
            path: path.to_path_buf(),
            sample_rate,
            channels,
        });
    }
    let rgb = draw::render_rgb(input).map_err(|message| PlotError::Draw {
        path: path.to_path_buf(),
        message,
    })?;
    let io_err = |source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io_err)?;
    let mut out = BufWriter::new(file);
    let encode_err = |e: png::EncodingError| match e {
        png::EncodingError::IoError(source) => io_err(source),
        other => PlotError::Encode {
            path: path.to_path_buf(),
            source: Box::new(other),
        },
    };
    let mut enc = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    // Plots are flat colour: the fast deflate compresses them well at a fraction of the time.
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header().map_err(encode_err)?;
    writer.write_image_data(&rgb).map_err(encode_err)?;
    writer.finish().map_err(encode_err)?;
    out.flush().map_err(io_err)
}

// Compiles the README's example as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
