//! [`PlotError`]: why a picture could not be made.

use std::path::PathBuf;

/// Why [`render_png`](crate::render_png) failed; every variant names the output file.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The PNG file could not be created or written.
    #[error(
        "cannot write plot {}: {cause} (check that the folder exists and is writable)",
        path.display()
    )]
    Io {
        /// The output file.
        path: PathBuf,
        /// The underlying I/O error, shown in the message (before the hint), so not the
        /// `source()`.
        cause: std::io::Error,
    },
    /// The pixels could not be encoded as PNG.
    #[error("cannot encode plot {} as PNG", path.display())]
    Encode {
        /// The output file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Drawing failed (the embedded font or the plotting library refused); a bug, not bad input.
    #[error("cannot draw plot {}: {message} (a bug in gradtone-plot: please report it)", path.display())]
    Draw {
        /// The output file.
        path: PathBuf,
        /// What the plotting library said.
        message: String,
    },
    /// The audio for the spectrogram has no channels or no sample rate.
    #[error(
        "cannot plot the spectrogram for {}: audio has {channels} channel(s) at {sample_rate} Hz; \
         both must be positive",
        path.display()
    )]
    InvalidAudio {
        /// The output file.
        path: PathBuf,
        /// The sample rate given.
        sample_rate: u32,
        /// The channel count given.
        channels: u16,
    },
}
