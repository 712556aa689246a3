//! The hand-off between the caller's (training) thread and the audio thread.
//!
//! A single-producer single-consumer `rtrb` ring carries interleaved samples. The producer side
//! ([`QueueWriter`]) never locks and never allocates; the consumer side ([`QueueReader`]) is
//! driven by whatever sink pulls audio (the PulseAudio thread, or a fake sink in tests) and
//! applies the [`Pace`] policy. Both share counters through [`Shared`] (atomics only, plus a
//! mutex that is touched only when the audio thread fails).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{LiveError, Pace, PushStats};

/// "Not set" marker for the nanosecond timestamps in [`Shared`].
const UNSET: u64 = u64::MAX;

/// How long a Realtime `push` waits without the audio thread taking any audio before it gives up
/// with [`LiveError::Stalled`]: long enough for a busy machine, short enough that a dead sound
/// server does not freeze training.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Length of the fades around audio skipped in [`Pace::Live`]: 3 ms removes the click of a
/// waveform jump and is too short to hear as a dip.
const FADE: Duration = Duration::from_millis(3);

/// Extra ring capacity beyond `max_lead`, so that in [`Pace::Live`] a burst of pushes between two
/// audio-thread wake-ups (10 ms apart) still fits and the audio thread can skip the *oldest*.
const SLACK: Duration = Duration::from_secs(2);

/// State shared by the producer, the consumer and the backend thread.
#[derive(Debug)]
pub(crate) struct Shared {
    epoch: Instant,
    producer_closed: AtomicBool,
    stop_now: AtomicBool,
    in_push: AtomicBool,
    failed: AtomicBool,
    fail_reason: Mutex<Option<String>>,
    played: AtomicU64,
    dropped: AtomicU64,
    underruns: AtomicU64,
    gaps: AtomicU64,
    consumer_beat_ns: AtomicU64,
    first_push_ns: AtomicU64,
}

impl Shared {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            producer_closed: AtomicBool::new(false),
            stop_now: AtomicBool::new(false),
            in_push: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            fail_reason: Mutex::new(None),
            played: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            underruns: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            consumer_beat_ns: AtomicU64::new(0),
            first_push_ns: AtomicU64::new(UNSET),
        }
    }

    /// Nanoseconds since this queue was made (a monotonic clock that fits in an atomic).
    pub(crate) fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(UNSET - 1)
    }

    /// The instant `ns` (from [`Shared::now_ns`]) stands for.
    pub(crate) fn instant_at(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }

    /// When the first `push` with samples happened, if any.
    pub(crate) fn first_push(&self) -> Option<Instant> {
        match self.first_push_ns.load(Ordering::Acquire) {
            UNSET => None,
            ns => Some(self.instant_at(ns)),
        }
    }

    /// Marks the stream as failed; pushes return the reason from now on.
    pub(crate) fn fail(&self, reason: String) {
        let mut slot = self.fail_reason.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(reason);
        self.failed.store(true, Ordering::Release);
    }

    /// The failure recorded by [`Shared::fail`], if any.
    pub(crate) fn failure(&self) -> Option<LiveError> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        let slot = self.fail_reason.lock().unwrap_or_else(|e| e.into_inner());
        Some(LiveError::Stream {
            reason: slot.clone().unwrap_or_else(|| "unknown failure".into()),
        })
    }

    /// The producer has finished: play out what is queued, then stop.
    pub(crate) fn close_producer(&self) {
        self.producer_closed.store(true, Ordering::Release);
    }

    /// Whether [`Shared::close_producer`] was called.
    pub(crate) fn producer_closed(&self) -> bool {
        self.producer_closed.load(Ordering::Acquire)
    }

    /// Asks the audio thread to stop at once, without playing out the queue.
    pub(crate) fn request_stop(&self) {
        self.stop_now.store(true, Ordering::Release);
    }

    /// Whether [`Shared::request_stop`] was called.
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop_now.load(Ordering::Acquire)
    }

    /// Counts one device-side underrun (reported by the sound server).
    pub(crate) fn add_underrun(&self) {
        self.underruns.fetch_add(1, Ordering::Relaxed);
    }

    /// Snapshot of the counters.
    pub(crate) fn counters(&self) -> Counters {
        Counters {
            played: self.played.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            underruns: self.underruns.load(Ordering::Relaxed),
            gaps: self.gaps.load(Ordering::Relaxed),
        }
    }
}

/// Counter values at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub played: u64,
    pub dropped: u64,
    pub underruns: u64,
    pub gaps: u64,
}

/// Sizes derived from the configuration, all in interleaved samples.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueParams {
    pub channels: usize,
    pub sample_rate: u32,
    pub pace: Pace,
    pub max_lead_ms: u32,
}

impl QueueParams {
    fn samples_for(&self, d: Duration) -> usize {
        let frames = (d.as_secs_f64() * f64::from(self.sample_rate)).round() as usize;
        frames * self.channels
    }

    fn max_lead(&self) -> usize {
        self.samples_for(Duration::from_millis(u64::from(self.max_lead_ms)))
            .max(self.channels)
    }
}

/// Makes a queue: the producer half for the caller, the consumer half for the audio thread.
pub(crate) fn queue(p: QueueParams) -> (QueueWriter, QueueReader) {
    let max_lead = p.max_lead();
    let capacity = max_lead + p.samples_for(SLACK);
    let (prod, cons) = rtrb::RingBuffer::new(capacity);
    let shared = Arc::new(Shared::new());
    let fade_frames = (p.samples_for(FADE) / p.channels).max(1);
    let writer = QueueWriter {
        prod,
        shared: Arc::clone(&shared),
        pace: p.pace,
        channels: p.channels,
        sample_rate: p.sample_rate,
        max_lead,
        capacity,
        seen_dropped: 0,
        stall_timeout: STALL_TIMEOUT,
    };
    let reader = QueueReader {
        cons,
        shared,
        pace: p.pace,
        channels: p.channels,
        max_lead,
        // Skip down to half the bound, so skips come in bursts with stretches of continuous sound
        // between them instead of a fade every block.
        low_water: (max_lead / 2 / p.channels) * p.channels,
        fade_frames,
        fade_in_left: 0,
        playing: false,
        gap_open: false,
    };
    (writer, reader)
}

/// The caller's half: queues samples under the [`Pace`] policy.
#[derive(Debug)]
pub(crate) struct QueueWriter {
    prod: rtrb::Producer<f32>,
    shared: Arc<Shared>,
    pace: Pace,
    channels: usize,
    sample_rate: u32,
    max_lead: usize,
    capacity: usize,
    seen_dropped: u64,
    stall_timeout: Duration,
}

impl QueueWriter {
    /// The state shared with the audio thread.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Samples currently queued (not yet taken by the audio thread).
    pub(crate) fn queued(&self) -> usize {
        self.capacity - self.prod.slots()
    }

    /// Queues `samples` (interleaved, whole frames). See [`crate::LivePlayer::push`].
    pub(crate) fn push(&mut self, samples: &[f32]) -> Result<PushStats, LiveError> {
        if !samples.len().is_multiple_of(self.channels) {
            return Err(LiveError::PartialFrame {
                len: samples.len(),
                channels: self.channels as u16,
            });
        }
        if let Some(e) = self.shared.failure() {
            return Err(e);
        }
        if !samples.is_empty() {
            let now = self.shared.now_ns();
            // Only the first push sets it; later ones see a value and leave it.
            let _ = self.shared.first_push_ns.compare_exchange(
                UNSET,
                now,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        match self.pace {
            Pace::Live => {
                let n = self.fitting(samples.len());
                self.write(&samples[..n]);
                if n < samples.len() {
                    // Only when the ring itself is full (audio thread stalled, or one push larger
                    // than the slack): the part that does not fit is lost.
                    let lost = (samples.len() - n) as u64;
                    self.shared.dropped.fetch_add(lost, Ordering::Relaxed);
                }
            }
            Pace::Realtime => {
                self.shared.in_push.store(true, Ordering::Release);
                let r = self.push_waiting(samples);
                self.shared.in_push.store(false, Ordering::Release);
                r?;
            }
        }
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        let delta = dropped - self.seen_dropped;
        self.seen_dropped = dropped;
        Ok(PushStats {
            dropped_samples: delta,
            queued_samples: self.queued(),
        })
    }

    /// Largest whole-frame prefix of `len` samples that fits in the ring now.
    fn fitting(&self, len: usize) -> usize {
        let n = len.min(self.prod.slots());
        n - n % self.channels
    }

    fn write(&mut self, s: &[f32]) {
        // `fitting` checked the space and only this thread adds samples, so this cannot fail;
        // if it ever did, the samples would be lost rather than the training thread panicking.
        if self.prod.push_entire_slice(s).is_err() {
            self.shared
                .dropped
                .fetch_add(s.len() as u64, Ordering::Relaxed);
        }
    }

    /// Realtime: enqueue everything, waiting (asleep) while more than `max_lead` is queued.
    fn push_waiting(&mut self, mut rest: &[f32]) -> Result<(), LiveError> {
        // (consumer heartbeat seen, when we first saw it) for stall detection.
        let mut watch: Option<(u64, Instant)> = None;
        while !rest.is_empty() {
            let queued = self.queued();
            if queued <= self.max_lead {
                let n = self.fitting(rest.len());
                if n > 0 {
                    self.write(&rest[..n]);
                    rest = &rest[n..];
                    watch = None;
                    continue;
                }
            }
            if let Some(e) = self.shared.failure() {
                return Err(e);
            }
            let beat = self.shared.consumer_beat_ns.load(Ordering::Acquire);
            match watch {
                Some((seen, since)) if seen == beat => {
                    let waited = since.elapsed();
                    if waited >= self.stall_timeout {
                        return Err(LiveError::Stalled {
                            waited_ms: waited.as_millis() as u64,
                        });
                    }
                }
                _ => watch = Some((beat, Instant::now())),
            }
            // Sleep about as long as the excess takes to play, within [1, 20] ms: short enough
            // to resume promptly, long enough not to spin.
            let excess = queued.saturating_sub(self.max_lead).max(self.channels);
            let secs = excess as f64 / (self.sample_rate as f64 * self.channels as f64);
            std::thread::sleep(
                Duration::from_secs_f64(secs)
                    .clamp(Duration::from_millis(1), Duration::from_millis(20)),
            );
        }
        Ok(())
    }
}

/// What one [`QueueReader::fill`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fill {
    /// Samples at the start of the block that came from the queue (the rest is silence).
    pub audio: usize,
    /// Samples skipped (dropped, oldest first) by [`Pace::Live`] during this fill.
    pub skipped: usize,
}

/// The audio thread's half: fills device blocks from the queue.
#[derive(Debug)]
pub(crate) struct QueueReader {
    cons: rtrb::Consumer<f32>,
    shared: Arc<Shared>,
    pace: Pace,
    channels: usize,
    max_lead: usize,
    low_water: usize,
    fade_frames: usize,
    fade_in_left: usize,
    /// The last sample handed out came from the queue.
    playing: bool,
    /// The queue ran dry after audio; the next audio closes a gap.
    gap_open: bool,
}

impl QueueReader {
    /// The state shared with the producer.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.cons.is_empty()
    }

    /// Samples currently queued.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.cons.slots()
    }

    /// Fills `out` (whole frames) with the next audio, silence where the queue is empty.
    ///
    /// In [`Pace::Live`], when more than `max_lead` is queued, the block after this one and as
    /// many further whole blocks as needed to get down to `max_lead / 2` are skipped; this
    /// block fades out over its last 3 ms and the audio after the skip fades in.
    pub(crate) fn fill(&mut self, out: &mut [f32]) -> Fill {
        debug_assert_eq!(out.len() % self.channels, 0);
        let now = self.shared.now_ns();
        self.shared.consumer_beat_ns.store(now, Ordering::Release);

        let avail = self.cons.slots();
        let block = out.len();
        let mut skip = 0;
        if self.pace == Pace::Live && avail > self.max_lead && block > 0 {
            let excess = avail.saturating_sub(block + self.low_water);
            let whole = excess.div_ceil(block) * block;
            let most = avail.saturating_sub(block);
            skip = whole.min(most - most % self.channels);
        }

        let (got, rest) = self.cons.pop_partial_slice(out);
        let n = got.len();
        rest.fill(0.0);

        if self.fade_in_left > 0 && n > 0 {
            self.fade_in(&mut out[..n]);
        }
        if skip > 0 {
            self.fade_out(&mut out[..n]);
            if let Ok(chunk) = self.cons.read_chunk(skip) {
                chunk.commit_all();
            }
            self.shared
                .dropped
                .fetch_add(skip as u64, Ordering::Relaxed);
            self.fade_in_left = self.fade_frames;
        }

        // Gap/underrun bookkeeping (see `LiveStats` for the definitions).
        if n > 0 && self.gap_open && !self.playing {
            self.shared.gaps.fetch_add(1, Ordering::Relaxed);
            self.gap_open = false;
        }
        if n < block && (n > 0 || self.playing) {
            self.gap_open = true;
            if self.shared.in_push.load(Ordering::Acquire) {
                // The producer is inside `push` right now, yet the queue ran dry.
                self.shared.underruns.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.playing = n == block && n > 0;

        self.shared.played.fetch_add(n as u64, Ordering::Relaxed);
        Fill {
            audio: n,
            skipped: skip,
        }
    }

    fn fade_in(&mut self, s: &mut [f32]) {
        let total = self.fade_frames as f32;
        for frame in s.chunks_exact_mut(self.channels) {
            if self.fade_in_left == 0 {
                break;
            }
            let done = self.fade_frames - self.fade_in_left;
            let g = (done + 1) as f32 / total;
            frame.iter_mut().for_each(|x| *x *= g);
            self.fade_in_left -= 1;
        }
    }

    fn fade_out(&self, s: &mut [f32]) {
        let frames = s.len() / self.channels;
        let f = self.fade_frames.min(frames);
        let start = frames - f;
        for (j, frame) in s.chunks_exact_mut(self.channels).skip(start).enumerate() {
            let g = 1.0 - (j + 1) as f32 / f as f32;
            frame.iter_mut().for_each(|x| *x *= g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    const RATE: u32 = 48_000;

    fn params(pace: Pace, max_lead_ms: u32) -> QueueParams {
        QueueParams {
            channels: 1,
            sample_rate: RATE,
            pace,
            max_lead_ms,
        }
    }

    /// Samples whose value tells their position: sample i is i as f32 (exact below 2^24).
    fn ramp(from: usize, n: usize) -> Vec<f32> {
        (from..from + n).map(|i| i as f32).collect()
    }

    #[test]
    fn live_push_never_blocks_and_the_oldest_is_dropped() {
        let (mut w, mut r) = queue(params(Pace::Live, 100));
        let max_lead = 4_800;
        // 1.5 s of audio in 60 ms steps, with nothing consuming: training far ahead of the sound.
        let step = 2_880;
        let mut worst = Duration::ZERO;
        for k in 0..25 {
            let s = ramp(k * step, step);
            let t = Instant::now();
            let stats = w.push(&s).expect("push");
            worst = worst.max(t.elapsed());
            assert_eq!(
                stats.dropped_samples, 0,
                "nothing consumed yet, so nothing skipped"
            );
        }
        let total = 25 * step;
        println!("live: worst push {worst:?} for {total} samples queued");
        assert!(worst < Duration::from_millis(5), "push took {worst:?}");
        assert_eq!(w.queued(), total);

        // The sink pulls one 10 ms block: the oldest block plays, the audio after it is skipped
        // down to half the lead, and what follows is the newest audio.
        let mut out = vec![0.0; 480];
        let f = r.fill(&mut out);
        assert_eq!(f.audio, 480);
        assert!(f.skipped > 0 && f.skipped % 480 == 0, "whole blocks: {f:?}");
        assert_eq!(out[0], 0.0, "the current block is the oldest audio");
        let left = r.queued();
        assert!(
            left <= max_lead / 2,
            "queue after skip {left} > {}",
            max_lead / 2
        );
        assert!(
            left > max_lead / 2 - 480,
            "skipped more than whole blocks need: {left}"
        );
        assert_eq!(480 + f.skipped + left, total);

        // Fade-out at the end of the played block, fade-in after the skip: no jump.
        assert!(out[479].abs() < 1e-3, "block ends faded to 0: {}", out[479]);
        let mut next = vec![0.0; 480];
        r.fill(&mut next);
        let resume = (total - left) as f32;
        assert!(
            next[0] < resume * 0.01 + 1.0,
            "fade-in starts low: {}",
            next[0]
        );
        assert_eq!(
            next[479],
            resume + 479.0,
            "after the fade: the newest audio, unchanged"
        );

        // The producer learns about the drop on its next push.
        let stats = w.push(&ramp(0, 480)).expect("push");
        assert_eq!(stats.dropped_samples, f.skipped as u64);
        assert_eq!(r.shared().counters().dropped, f.skipped as u64);
    }

    #[test]
    fn live_skip_is_click_free_on_a_sine() {
        let (mut w, mut r) = queue(params(Pace::Live, 50));
        let tone: Vec<f32> = (0..RATE as usize)
            .map(|i| (i as f32 * 2.0 * std::f32::consts::PI * 997.0 / RATE as f32).sin() * 0.8)
            .collect();
        w.push(&tone).expect("push");
        let mut played = Vec::new();
        let mut out = vec![0.0; 480];
        let mut skipped = 0;
        while !r.is_empty() {
            skipped += r.fill(&mut out).skipped;
            played.extend_from_slice(&out);
        }
        assert!(skipped > 0);
        // A 997 Hz sine at 0.8 moves at most 0.8 * 2π * 997 / 48000 ≈ 0.104 per sample.
        let worst = played
            .windows(2)
            .map(|p| (p[1] - p[0]).abs())
            .fold(0.0f32, f32::max);
        println!("live skip: {skipped} samples skipped, largest step {worst:.4}");
        assert!(worst < 0.12, "click: step of {worst}");
    }

    #[test]
    fn live_ring_full_drops_the_newest_without_blocking() {
        let (mut w, _r) = queue(params(Pace::Live, 10));
        let cap = 480 + 96_000;
        let t = Instant::now();
        let stats = w.push(&vec![0.5; cap + 1_000]).expect("push");
        assert!(t.elapsed() < Duration::from_millis(50));
        assert_eq!(stats.dropped_samples, 1_000);
        assert_eq!(stats.queued_samples, cap);
    }

    /// A fake device: pulls 10 ms blocks on a real-time clock, like the PulseAudio thread.
    fn fake_sink(mut r: QueueReader, blocks: usize) -> thread::JoinHandle<Vec<f32>> {
        thread::spawn(move || {
            let mut out = vec![0.0; 480];
            let mut all = Vec::new();
            let start = Instant::now();
            for b in 0..blocks {
                r.fill(&mut out);
                all.extend_from_slice(&out);
                let next = start + Duration::from_millis(10 * (b as u64 + 1));
                thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            all
        })
    }

    #[test]
    fn realtime_bounds_the_lead_and_slows_the_producer() {
        let (mut w, r) = queue(params(Pace::Realtime, 100));
        let max_lead = 4_800;
        let sink = fake_sink(r, 120);
        let step = 2_880; // 60 ms per step
        let steps = 15; // 900 ms of audio
        let start = Instant::now();
        let mut worst_lead = 0;
        for k in 0..steps {
            let stats = w.push(&ramp(k * step, step)).expect("push");
            assert_eq!(stats.dropped_samples, 0);
            worst_lead = worst_lead.max(stats.queued_samples);
        }
        let took = start.elapsed();
        let played = sink.join().expect("sink thread");
        println!("realtime: 900 ms of audio pushed in {took:?}, worst lead {worst_lead} samples");
        // The queue never holds more than max_lead plus the one push that was let in.
        assert!(worst_lead <= max_lead + step, "lead {worst_lead}");
        // Training slowed to the sound: the last push could only go in once all but
        // ~max_lead + step of the audio had played (900 - 160 ms), minus scheduling slack.
        assert!(
            took >= Duration::from_millis(700),
            "producer not slowed: {took:?}"
        );
        // Nothing dropped or reordered: the audio comes out as the ramp, in order.
        let audio: Vec<f32> = played.into_iter().filter(|&x| x != 0.0).collect();
        assert_eq!(
            audio.len(),
            steps * step - 1,
            "all audio but the 0.0 sample"
        );
        assert!(audio.windows(2).all(|p| p[1] == p[0] + 1.0), "in order");
    }

    #[test]
    fn realtime_push_reports_a_stalled_sink_instead_of_hanging() {
        let (mut w, _r) = queue(params(Pace::Realtime, 20));
        w.stall_timeout = Duration::from_millis(200);
        let t = Instant::now();
        let e = w
            .push(&vec![0.1; 4_800])
            .and_then(|_| w.push(&vec![0.1; 4_800]));
        assert!(matches!(e, Err(LiveError::Stalled { .. })), "{e:?}");
        let took = t.elapsed();
        assert!(took < Duration::from_millis(600), "{took:?}");
    }

    #[test]
    fn gaps_and_underruns_are_told_apart() {
        let (mut w, mut r) = queue(params(Pace::Realtime, 100));
        let mut out = vec![0.0; 480];
        r.fill(&mut out); // silence before any audio: neither
        w.push(&[0.5; 720]).expect("push");
        r.fill(&mut out); // full block
        r.fill(&mut out); // runs dry half-way: the producer is not pushing, so a gap
        r.fill(&mut out); // silence
        w.push(&[0.5; 480]).expect("push");
        r.fill(&mut out); // audio again: the gap closes
        let c = r.shared().counters();
        assert_eq!((c.gaps, c.underruns, c.played), (1, 0, 1_200));

        // The producer is mid-push while the queue runs dry: an underrun.
        r.shared().in_push.store(true, Ordering::Release);
        r.fill(&mut out);
        r.shared().in_push.store(false, Ordering::Release);
        assert_eq!(r.shared().counters().underruns, 1);
    }

    #[test]
    fn partial_frames_are_rejected() {
        let p = QueueParams {
            channels: 2,
            ..params(Pace::Live, 100)
        };
        let (mut w, _r) = queue(p);
        assert!(matches!(
            w.push(&[0.0; 3]),
            Err(LiveError::PartialFrame {
                len: 3,
                channels: 2
            })
        ));
    }
}
