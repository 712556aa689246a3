//! What serving the live page (`--serve`) costs a training loop: steps timed in alternating
//! blocks through outputs with the page served to one connected client and without, and the
//! delay from a push to that client (`gradtone bench --serve`).

use std::time::{Duration, Instant};

use gradtone_frame::Frame;
use gradtone_frame::stats::median;

use gradtone_pipeline::Outputs;

use crate::BenchError;
use crate::probe::Probe;

/// Steps per block; blocks alternate between the two outputs.
pub const BLOCK: usize = 25;

/// The measured cost; times are medians over the steps after the warm-up.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeCost {
    /// ms per step (the frame made, then pushed) without the server.
    pub plain_ms: f64,
    /// The same with the page served to one client.
    pub served_ms: f64,
    /// µs of the push alone, without the server.
    pub push_plain_us: f64,
    /// The same with it.
    pub push_served_us: f64,
    /// Messages the client received.
    pub messages: u64,
    /// Audio samples the client received.
    pub audio_samples: u64,
    /// Median ms from a push to the client.
    pub delay_median_ms: f64,
    /// Longest such delay, ms (0 without any).
    pub delay_max_ms: f64,
}

impl ServeCost {
    /// What the server adds to a step, percent.
    pub fn overhead_pct(&self) -> f64 {
        (self.served_ms - self.plain_ms) / self.plain_ms * 100.0
    }

    /// The server's share of a step on the training thread, percent (the pushes' difference
    /// over a plain step).
    pub fn push_share_pct(&self) -> f64 {
        (self.push_served_us - self.push_plain_us) / self.plain_ms / 10.0
    }
}

fn med(mut v: Vec<f64>) -> f64 {
    median(&mut v).unwrap_or(f64::NAN)
}

/// Runs `steps` steps (the first `warmup` not counted), `make_frame(step)` making each step's
/// frame (timed with the push; `None` ends early), in blocks of [`BLOCK`] alternating between
/// plain outputs and outputs serving the page (on a free loopback port) to a client of ours.
pub fn measure(
    steps: usize,
    warmup: usize,
    mut make_frame: impl FnMut(u64) -> Option<Frame>,
) -> Result<ServeCost, BenchError> {
    let config = gradtone_sound::SoundConfig::default();
    let voice = || Box::new(gradtone_sound::SoundVoice::new(config.clone()));
    let mut plain = Outputs::new(voice(), Vec::new());
    let mut served = Outputs::new(voice(), Vec::new());
    let (rate, channels) = served.audio_format();
    let mut opts = gradtone_serve::ServeOptions::new(([127, 0, 0, 1], 0).into(), rate, channels);
    opts.title = "gradtone".into();
    let server = gradtone_serve::Server::start(opts)?;
    let addr = server.local_addr();
    served.add_sink(Box::new(gradtone_serve::ServeSink::new(
        server,
        config.grouping.clone(),
        0.0,
        Default::default(),
        gradtone_frame::silent_report(),
    )));
    let probe = Probe::connect(addr, None)?;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let (mut push_with, mut push_without) = (Vec::new(), Vec::new());
    for step in 0..steps {
        let serve_now = (step / BLOCK) % 2 == 1;
        let t0 = Instant::now();
        let Some(f) = make_frame(step as u64) else {
            break;
        };
        let t1 = Instant::now();
        if serve_now {
            served.push(&f)?;
        } else {
            plain.push(&f)?;
        }
        let t2 = Instant::now();
        let ms = (t2 - t0).as_secs_f64() * 1e3;
        let push_us = (t2 - t1).as_secs_f64() * 1e6;
        if step >= warmup {
            if serve_now {
                with.push(ms);
                push_with.push(push_us);
            } else {
                without.push(ms);
                push_without.push(push_us);
            }
        }
    }
    // Let the last chunks arrive before counting.
    std::thread::sleep(Duration::from_millis(300));
    let st = probe.stop();
    plain.finish()?;
    served.finish()?;
    Ok(ServeCost {
        plain_ms: med(without),
        served_ms: med(with),
        push_plain_us: med(push_without),
        push_served_us: med(push_with),
        messages: st.messages,
        audio_samples: st.audio_samples,
        delay_max_ms: st.delays_ms.iter().copied().fold(0.0, f64::max),
        delay_median_ms: med(st.delays_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_outputs_are_timed_and_the_client_hears_the_served_blocks() {
        let frame = |s: u64| {
            Frame::new(s)
                .with_loss("loss", 1.0)
                .with_value("conv1", 0.5)
        };
        let cost = measure(4 * BLOCK, 2, |s| Some(frame(s))).unwrap();
        assert!(cost.plain_ms > 0.0 && cost.served_ms > 0.0, "{cost:?}");
        assert!(cost.push_served_us > 0.0 && cost.push_plain_us > 0.0);
        assert!(cost.messages > 0 && cost.audio_samples > 0, "{cost:?}");
        assert!(cost.delay_max_ms >= cost.delay_median_ms);
        assert!(cost.overhead_pct().is_finite() && cost.push_share_pct().is_finite());
    }
}
