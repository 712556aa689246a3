//! Rate conversion in the audio thread, so the stream reaches the server at its sink's rate
//! and the server does not resample (its resampler runs in the sound server's process, on the
//! cores training uses; this one is a 4-point cubic over 10 ms blocks, a few µs each).

use crate::queue::{Fill, QueueReader};

/// Converts the queue's audio from `from` Hz to `to` Hz block by block, continuous across
/// blocks (Catmull-Rom interpolation between input frames).
#[derive(Debug)]
pub(crate) struct Resampler {
    /// Input frames per output frame.
    step: f64,
    channels: usize,
    /// Input frames not yet fully used, interleaved; `buf[0..channels]` is the frame before
    /// the current position's integer part.
    buf: Vec<f32>,
    /// Position of the next output frame in `buf`, in frames (≥ 1).
    pos: f64,
    scratch: Vec<f32>,
}

impl Resampler {
    pub(crate) fn new(from: u32, to: u32, channels: usize) -> Self {
        Self {
            step: f64::from(from) / f64::from(to),
            channels,
            // One frame of silence before the first sample.
            buf: vec![0.0; channels],
            pos: 1.0,
            scratch: Vec::new(),
        }
    }

    /// Fills `out` (whole frames at the output rate) from `reader`; the returned [`Fill`]
    /// counts the input samples taken (audio) and skipped.
    pub(crate) fn fill(&mut self, reader: &mut QueueReader, out: &mut [f32]) -> Fill {
        let ch = self.channels;
        let frames = out.len() / ch;
        if frames == 0 {
            return Fill::default();
        }
        // Input frames needed: up to the last output's position plus two after it.
        let last = self.pos + (frames - 1) as f64 * self.step;
        let need = last as usize + 3;
        let have = self.buf.len() / ch;
        let mut fill = Fill::default();
        if need > have {
            self.scratch.clear();
            self.scratch.resize((need - have) * ch, 0.0);
            fill = reader.fill(&mut self.scratch);
            self.buf.extend_from_slice(&self.scratch);
        }
        for (j, frame) in out.chunks_exact_mut(ch).enumerate() {
            let x = self.pos + j as f64 * self.step;
            let i = x as usize;
            let t = (x - i as f64) as f32;
            for (c, o) in frame.iter_mut().enumerate() {
                let p = |k: usize| self.buf[k * ch + c];
                let (p0, p1, p2, p3) = (p(i - 1), p(i), p(i + 1), p(i + 2));
                *o = p1
                    + 0.5
                        * t
                        * (p2 - p0
                            + t * (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3
                                + t * (3.0 * (p1 - p2) + p3 - p0)));
            }
        }
        // Keep from the frame before the next position on.
        let next = self.pos + frames as f64 * self.step;
        let drop = (next as usize).saturating_sub(1);
        self.buf.drain(..drop * ch);
        self.pos = next - drop as f64;
        fill
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pace;
    use crate::queue::{QueueParams, queue};

    #[test]
    fn a_tone_keeps_its_pitch_and_level_and_every_sample_is_used() {
        let (from, to) = (44_100u32, 48_000u32);
        let (mut w, mut r) = queue(QueueParams {
            channels: 1,
            sample_rate: from,
            pace: Pace::Realtime,
            max_lead_ms: 2_000,
        });
        let f = 440.0;
        let n = 44_100;
        let tone: Vec<f32> = (0..n)
            .map(|i| {
                (0.5 * (2.0 * std::f64::consts::PI * f * i as f64 / f64::from(from)).sin()) as f32
            })
            .collect();
        w.push(&tone).expect("push");
        let mut rs = Resampler::new(from, to, 1);
        let mut out = Vec::new();
        let mut taken = 0;
        for _ in 0..100 {
            let mut block = vec![0.0f32; 480];
            taken += rs.fill(&mut r, &mut block).audio;
            out.extend_from_slice(&block);
        }
        // 100 blocks of 10 ms at 48 kHz = 1 s: the whole second of input (and no more).
        assert!((taken as i64 - n as i64).abs() <= 4, "took {taken} of {n}");
        // The output is the same tone at the new rate: compare with the ideal, away from the
        // start (one frame of leading silence) and the end (trailing silence).
        let mut worst = 0.0f64;
        for (j, &v) in out.iter().enumerate().skip(100).take(46_000) {
            let t = j as f64 * f64::from(from) / f64::from(to); // input sample index
            let want = 0.5 * (2.0 * std::f64::consts::PI * f * t / f64::from(from)).sin();
            worst = worst.max((f64::from(v) - want).abs());
        }
        assert!(worst < 1e-3, "worst error {worst}");
    }
}
