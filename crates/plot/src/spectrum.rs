//! Short-time Fourier transform for the spectrogram panel, on the shared [`Fft`] (at most one
//! 2048-point transform per pixel column).

use gradtone_dsp::Fft;

/// Samples per STFT window (a power of two: the FFT is radix-2).
pub const WINDOW: usize = 2048;
/// Nominal hop between windows, samples; larger when the audio has more windows than columns.
pub const HOP: usize = 512;

/// A magnitude spectrogram in dB, column-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Spectrogram {
    /// Sample rate of the analysed audio, Hz.
    pub sample_rate: u32,
    /// Samples between the starts of consecutive columns (≥ [`HOP`]).
    pub hop: usize,
    /// Number of columns (windows).
    pub columns: usize,
    /// Bins per column: `WINDOW / 2 + 1`, bin `k` at `k · bin_hz()` Hz.
    pub bins: usize,
    /// Level of each bin, dB relative to a full-scale sine (0 dBFS), `columns × bins`,
    /// column `c` at `db[c * bins .. (c + 1) * bins]`. Silence is floored at −200 dB.
    pub db: Vec<f32>,
    /// Length of the mono audio, in samples.
    pub len: usize,
}

impl Spectrogram {
    /// Width of one frequency bin, Hz.
    pub fn bin_hz(&self) -> f64 {
        f64::from(self.sample_rate) / WINDOW as f64
    }

    /// Duration of the analysed audio, seconds.
    pub fn duration_s(&self) -> f64 {
        self.len as f64 / f64::from(self.sample_rate)
    }

    /// Centre time of column `c`, seconds.
    pub fn column_time_s(&self, c: usize) -> f64 {
        (c * self.hop + WINDOW / 2) as f64 / f64::from(self.sample_rate)
    }

    /// The levels of column `c`.
    pub fn column(&self, c: usize) -> &[f32] {
        &self.db[c * self.bins..(c + 1) * self.bins]
    }

    /// The loudest level anywhere, dB (−200 for silence or no columns).
    pub fn max_db(&self) -> f32 {
        self.db.iter().copied().fold(FLOOR_DB, f32::max)
    }
}

/// Level given to silent bins, so `log10(0)` never reaches the picture.
const FLOOR_DB: f32 = -200.0;

/// Spectrogram of interleaved audio: mono mix (mean of the channels), Hann window of
/// [`WINDOW`] samples, hop [`HOP`].
///
/// At most `max_columns` windows are analysed (the picture has no more pixel columns): longer
/// audio gets a proportionally larger hop, so a three-hour run costs no more than a minute's
/// worth. Audio shorter than one window is zero-padded to one column; empty audio (or
/// `channels == 0`, `sample_rate == 0`, `max_columns == 0`) gives no columns. A trailing
/// partial sample frame is ignored.
pub fn spectrogram(
    samples: &[f32],
    sample_rate: u32,
    channels: u16,
    max_columns: usize,
) -> Spectrogram {
    let ch = usize::from(channels);
    let len = samples.len().checked_div(ch).unwrap_or(0);
    let mut out = Spectrogram {
        sample_rate,
        hop: HOP,
        columns: 0,
        bins: WINDOW / 2 + 1,
        db: Vec::new(),
        len,
    };
    if len == 0 || sample_rate == 0 || max_columns == 0 {
        return out;
    }
    let natural = if len <= WINDOW {
        1
    } else {
        (len - WINDOW) / HOP + 1
    };
    let (columns, hop) = if natural <= max_columns {
        (natural, HOP)
    } else {
        // Spread max_columns windows evenly over the whole signal.
        let hop = (len - WINDOW) / (max_columns - 1).max(1);
        (
            max_columns.min((len - WINDOW) / hop.max(1) + 1),
            hop.max(HOP),
        )
    };
    out.columns = columns;
    out.hop = hop;

    let window = hann(WINDOW);
    // Hann-windowed full-scale sine peaks at |X| = N/4: that is 0 dB.
    let norm = (WINDOW as f64 / 4.0).powi(2);
    let fft = Fft::new(WINDOW);
    let mut buf = vec![(0.0f64, 0.0f64); WINDOW];
    out.db.reserve(columns * out.bins);
    for c in 0..columns {
        let start = c * hop;
        for (i, (slot, w)) in buf.iter_mut().zip(&window).enumerate() {
            let n = start + i;
            let x = if n < len {
                let frame = &samples[n * ch..(n + 1) * ch];
                frame.iter().map(|&s| f64::from(s)).sum::<f64>() / ch as f64
            } else {
                0.0
            };
            // A NaN sample would poison the whole column; treat it as silence.
            let x = if x.is_finite() { x } else { 0.0 };
            *slot = (x * w, 0.0);
        }
        fft.run(&mut buf);
        out.db.extend(buf[..out.bins].iter().map(|&(re, im)| {
            let p = (re * re + im * im) / norm;
            if p > 0.0 {
                ((10.0 * p.log10()) as f32).max(FLOOR_DB)
            } else {
                FLOOR_DB
            }
        }));
    }
    out
}

/// Periodic Hann window (the STFT convention: overlapping windows at N/4 hops sum to a constant).
fn hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, sr: u32, n: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(sr)).sin() as f32
            })
            .collect()
    }

    /// Bin with the highest mean level over all columns.
    fn brightest_bin(s: &Spectrogram) -> usize {
        let mut mean = vec![0.0f64; s.bins];
        for c in 0..s.columns {
            for (m, &v) in mean.iter_mut().zip(s.column(c)) {
                *m += f64::from(v);
            }
        }
        (0..s.bins)
            .max_by(|&a, &b| mean[a].total_cmp(&mean[b]))
            .unwrap_or(0)
    }

    #[test]
    fn pure_1khz_tone_peaks_at_1khz() {
        let sr = 44_100;
        let s = spectrogram(&tone(1000.0, sr, sr as usize, 0.5), sr, 1, 10_000);
        assert_eq!(s.columns, (44_100 - WINDOW) / HOP + 1, "one column per hop");
        let peak_hz = brightest_bin(&s) as f64 * s.bin_hz();
        assert!(
            (peak_hz - 1000.0).abs() <= s.bin_hz(),
            "peak {peak_hz} Hz, bin width {} Hz",
            s.bin_hz()
        );
        // 0.5 amplitude is −6 dBFS; the peak bin of a Hann window loses at most 1.5 dB
        // (scalloping) when the tone falls between bins.
        assert!(
            (-7.6..=-5.9).contains(&s.max_db()),
            "peak level {} dB",
            s.max_db()
        );
        // A pure tone leaves the far bins > 60 dB down.
        let far = (5000.0 / s.bin_hz()) as usize;
        assert!(s.column(5)[far] < s.max_db() - 60.0);
    }

    #[test]
    fn stereo_is_mixed_to_mono() {
        let sr = 48_000;
        let left = tone(3000.0, sr, 20_000, 0.4);
        // Tone on the left, silence on the right: found, 6 dB down (the mean of the channels).
        let interleaved: Vec<f32> = left.iter().flat_map(|&l| [l, 0.0]).collect();
        let s = spectrogram(&interleaved, sr, 2, 1000);
        assert_eq!(s.len, 20_000);
        let peak_hz = brightest_bin(&s) as f64 * s.bin_hz();
        assert!((peak_hz - 3000.0).abs() <= s.bin_hz(), "peak {peak_hz} Hz");
        let mono = spectrogram(&left, sr, 1, 1000);
        assert!((mono.max_db() - s.max_db() - 6.02).abs() < 0.1);
        // Opposite channels cancel: the mix is silent.
        let cancel: Vec<f32> = left.iter().flat_map(|&l| [l, -l]).collect();
        assert!(spectrogram(&cancel, sr, 2, 1000).max_db() < -150.0);
    }

    #[test]
    fn long_audio_is_decimated_to_max_columns() {
        let sr = 8000;
        let audio = tone(440.0, sr, 600 * sr as usize, 0.1); // ten minutes
        let s = spectrogram(&audio, sr, 1, 500);
        assert!(
            s.columns <= 500 && s.columns >= 490,
            "{} columns",
            s.columns
        );
        // The last window still reaches the end of the audio (within one hop).
        let last_end = (s.columns - 1) * s.hop + WINDOW;
        assert!(last_end <= s.len && s.len - last_end < s.hop);
        assert!((s.duration_s() - 600.0).abs() < 1e-9);
    }

    #[test]
    fn short_empty_and_degenerate_audio() {
        let short = spectrogram(&tone(1000.0, 44_100, 100, 0.5), 44_100, 1, 100);
        assert_eq!(short.columns, 1, "zero-padded to one window");
        assert!(short.db.iter().all(|v| v.is_finite()));
        assert_eq!(spectrogram(&[], 44_100, 1, 100).columns, 0);
        assert_eq!(spectrogram(&[0.1; 4096], 44_100, 0, 100).columns, 0);
        assert_eq!(spectrogram(&[0.1; 4096], 0, 1, 100).columns, 0);
        let silent = spectrogram(&[0.0; 4096], 44_100, 1, 100);
        assert!(silent.db.iter().all(|&v| v == FLOOR_DB));
        // NaN samples count as silence instead of poisoning the picture.
        let mut nan = tone(1000.0, 44_100, 4096, 0.5);
        nan[100] = f32::NAN;
        assert!(
            spectrogram(&nan, 44_100, 1, 100)
                .db
                .iter()
                .all(|v| v.is_finite())
        );
    }
}
