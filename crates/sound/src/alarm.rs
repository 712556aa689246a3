//! Alarms made audible: an earcon for each [`AlarmKind`], and [`WithAlarms`], which mixes the
//! earcons of the alarms it is given into a mapping's audio.
//!
//! What fires an alarm is decided elsewhere: by the gradient detector
//! ([`gradtone_detect::AlarmDetector`]) and the other watches. The earcons:
//!
//! | kind | earcon |
//! |---|---|
//! | [`NonFinite`](AlarmKind::NonFinite) | fast two-tone siren, 1000/1500 Hz |
//! | [`Explosion`](AlarmKind::Explosion) | rising sweep 250 → 3000 Hz |
//! | [`Divergence`](AlarmKind::Divergence) | a climbing four-note figure, 330 → 784 Hz |
//! | [`Dead`](AlarmKind::Dead) | three low falling thuds |
//! | [`LayerDead`](AlarmKind::LayerDead) | a glide falling away, 880 → 110 Hz, then a dull knock |
//! | [`Vanishing`](AlarmKind::Vanishing) | three fading bells, 1320 → 1175 Hz |
//! | [`Frozen`](AlarmKind::Frozen) | six stuck buzzes at 262 Hz |
//! | [`Plateau`](AlarmKind::Plateau) | soft double beep, 660 Hz |
//! | [`Rank`](AlarmKind::Rank) | knocks |
//! | [`Imbalance`](AlarmKind::Imbalance) | a slow up-and-down seesaw |
//! | [`Collapse`](AlarmKind::Collapse) | a trill that narrows to one note |
//! | [`Oscillation`](AlarmKind::Oscillation) | a wide, fast vibrato |
//!
//! [`WithAlarms`] wraps any [`Mapping`] and plays the alarms it is given: it mixes each one's
//! earcon into the audio of the step where it fired (ducking the music under it, so the sum
//! stays within ±1); an earcon longer than a step carries on into the next steps' audio.

use std::collections::VecDeque;

use crate::Mapping;
use crate::synth::sin_cycles;
use gradtone_detect::AlarmConfig;
use gradtone_frame::{AlarmEvent, AlarmKind, Frame};

/// An earcon: mono samples with the level they occupy (`|sample| ≤ level ≤ 1`), so the music
/// can be ducked by exactly that much.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Earcon {
    /// Mono samples.
    pub samples: Vec<f32>,
    /// Envelope level at each sample.
    pub level: Vec<f32>,
}

/// Builds earcons by appending tone segments with a continuous phase.
struct EarconBuilder {
    sr: f32,
    phase: f32,
    out: Earcon,
}

impl EarconBuilder {
    fn new(sample_rate: u32) -> Self {
        EarconBuilder {
            sr: sample_rate as f32,
            phase: 0.0,
            out: Earcon::default(),
        }
    }

    /// `ms` of a tone gliding exponentially from `f0` to `f1` Hz with odd-harmonic `partials`
    /// (normalised; harmonics above 0.45·fs dropped) under the envelope `env(t ∈ [0,1))`.
    fn tone(&mut self, ms: f32, f0: f32, f1: f32, partials: &[f32], env: impl Fn(f32) -> f32) {
        let n = (ms * 1e-3 * self.sr) as usize;
        let limit = crate::synth::BAND_LIMIT * self.sr;
        for i in 0..n {
            let t = i as f32 / n as f32;
            let f = f0 * (f1 / f0).powf(t);
            let (mut acc, mut norm) = (0.0f32, 0.0f32);
            for (j, &w) in partials.iter().enumerate() {
                let k = (2 * j + 1) as f32;
                if k * f < limit {
                    acc += w * sin_cycles(k * self.phase);
                    norm += w.abs();
                }
            }
            let level = env(t).clamp(0.0, 1.0);
            self.out
                .samples
                .push(if norm > 0.0 { level * acc / norm } else { 0.0 });
            self.out.level.push(level);
            self.phase = (self.phase + f / self.sr).fract();
        }
    }

    fn silence(&mut self, ms: f32) {
        let n = (ms * 1e-3 * self.sr) as usize;
        self.out.samples.resize(self.out.samples.len() + n, 0.0);
        self.out.level.resize(self.out.level.len() + n, 0.0);
    }
}

/// Linear attack/release of `ramp` (fraction of the segment) around a flat top.
fn flat(ramp: f32) -> impl Fn(f32) -> f32 {
    move |t: f32| (t / ramp).min((1.0 - t) / ramp).min(1.0)
}

/// The earcon for `kind` at `sample_rate`, peak `volume`. Durations: siren 440 ms, sweep
/// 400 ms, climbing figure 400 ms, thuds 570 ms, falling glide and knock 490 ms, fading
/// bells 440 ms, stuck buzzes 395 ms, double beep 250 ms.
pub fn earcon(kind: AlarmKind, sample_rate: u32, volume: f32) -> Earcon {
    let mut b = EarconBuilder::new(sample_rate);
    let v = volume.clamp(0.0, 1.0);
    match kind {
        AlarmKind::NonFinite => {
            // Siren: 8 × 55 ms alternating 1500/1000 Hz, a reed-like buzz; ramps only at the ends.
            for i in 0..8 {
                let f = if i % 2 == 0 { 1500.0 } else { 1000.0 };
                let env = move |t: f32| {
                    let edge = if i == 0 {
                        t / 0.1
                    } else if i == 7 {
                        (1.0 - t) / 0.1
                    } else {
                        1.0
                    };
                    v * edge.min(1.0)
                };
                b.tone(55.0, f, f, &[1.0, 0.33, 0.2], env);
            }
        }
        AlarmKind::Explosion => {
            // Rising exponential sweep, 250 → 3000 Hz.
            let env = flat(0.03);
            b.tone(400.0, 250.0, 3000.0, &[1.0, 0.25], move |t| v * env(t));
        }
        AlarmKind::Dead => {
            // Three falling thuds, each lower than the last, with a fast decay.
            for (i, f) in [110.0f32, 90.0, 70.0].into_iter().enumerate() {
                b.tone(130.0, f, f * 0.6, &[1.0, 0.15], move |t| {
                    v * (t / 0.04).min(1.0) * (-5.0 * t).exp() * ((1.0 - t) / 0.05).min(1.0)
                });
                if i < 2 {
                    b.silence(90.0);
                }
            }
        }
        AlarmKind::Divergence => {
            // A climbing figure of four bright notes a fourth apart, "the loss climbs":
            // stepped where the explosion glides, and in the middle register.
            for (i, f) in [330.0f32, 440.0, 587.0, 784.0].into_iter().enumerate() {
                b.tone(85.0, f, f, &[1.0, 0.4, 0.25], move |t| {
                    v * (t / 0.08).min(1.0) * ((1.0 - t) / 0.1).min(1.0)
                });
                if i < 3 {
                    b.silence(20.0);
                }
            }
        }
        AlarmKind::LayerDead => {
            // A glide falling away, 880 → 110 Hz (the explosion's sweep upside down: "some
            // voices drop out"), then one dull knock where the full death has three thuds.
            let env = flat(0.05);
            b.tone(300.0, 880.0, 110.0, &[1.0, 0.2], move |t| v * env(t));
            b.silence(60.0);
            b.tone(130.0, 80.0, 55.0, &[1.0, 0.15], move |t| {
                v * (t / 0.04).min(1.0) * (-5.0 * t).exp() * ((1.0 - t) / 0.05).min(1.0)
            });
        }
        AlarmKind::Rank => {
            // Knocks: three short, fast-decaying 880 Hz ticks, "someone is out of step".
            for i in 0..3 {
                b.tone(35.0, 880.0, 880.0, &[1.0, 0.5], move |t| {
                    v * (t / 0.1).min(1.0) * (-6.0 * t).exp() * ((1.0 - t) / 0.1).min(1.0)
                });
                if i < 2 {
                    b.silence(70.0);
                }
            }
        }
        AlarmKind::Imbalance => {
            // Seesaw: a slow glide up an octave and back down, "the balance tipped".
            let env = flat(0.08);
            b.tone(200.0, 330.0, 660.0, &[1.0, 0.3], |t| v * env(t));
            b.tone(200.0, 660.0, 330.0, &[1.0, 0.3], |t| v * env(t));
        }
        AlarmKind::Collapse => {
            // A trill whose notes slow down and narrow into one held note: "all the same".
            let pairs = [(523.0f32, 784.0f32), (587.0, 698.0), (622.0, 659.0)];
            for (i, (lo, hi)) in pairs.into_iter().enumerate() {
                let ms = 45.0 + 15.0 * i as f32;
                let edge = move |t: f32, first: bool| if first { (t / 0.2).min(1.0) } else { 1.0 };
                b.tone(ms, lo, lo, &[1.0, 0.2], move |t| v * edge(t, i == 0));
                b.tone(ms, hi, hi, &[1.0, 0.2], move |t| v * edge(t, false));
            }
            b.tone(180.0, 640.0, 640.0, &[1.0, 0.2], move |t| {
                v * ((1.0 - t) / 0.15).min(1.0)
            });
        }
        AlarmKind::Oscillation => {
            // Wide vibrato: 480 Hz swinging ±3 semitones, 8 times a second, for 400 ms.
            let env = flat(0.06);
            for i in 0..8 {
                let (f0, f1) = if i % 2 == 0 {
                    (404.0, 571.0)
                } else {
                    (571.0, 404.0)
                };
                let env = &env;
                b.tone(50.0, f0, f1, &[1.0, 0.2], move |t| {
                    v * env((i as f32 + t) / 8.0)
                });
            }
        }
        AlarmKind::Vanishing => {
            // Fading away: a high bell-like tone, 1320 → 1175 Hz, that dies out three times,
            // each fainter ("the signal thins out before it reaches the first layers").
            for (i, gain) in [1.0f32, 0.55, 0.3].into_iter().enumerate() {
                b.tone(120.0, 1320.0, 1175.0, &[1.0, 0.1], move |t| {
                    gain * v * (t / 0.05).min(1.0) * (-4.0 * t).exp() * ((1.0 - t) / 0.05).min(1.0)
                });
                if i < 2 {
                    b.silence(40.0);
                }
            }
        }
        AlarmKind::Frozen => {
            // A stuck note: six identical short buzzes at 262 Hz, like a record that skips
            // ("the same step, again and again").
            for i in 0..6 {
                b.tone(45.0, 262.0, 262.0, &[1.0, 0.5, 0.3], move |t| {
                    v * (t / 0.1).min(1.0) * ((1.0 - t) / 0.1).min(1.0)
                });
                if i < 5 {
                    b.silence(25.0);
                }
            }
        }
        AlarmKind::Plateau => {
            // Soft double beep: two short pure tones at 60 % of the alarm level.
            let env = flat(0.1);
            b.tone(90.0, 660.0, 660.0, &[1.0], |t| 0.6 * v * env(t));
            b.silence(70.0);
            b.tone(90.0, 660.0, 660.0, &[1.0], |t| 0.6 * v * env(t));
        }
    }
    b.out
}

/// A separator between the parts of one file (the settings of a sweep): `count` bright
/// 1760 Hz pings, 60 ms each and 110 ms apart, so the listener can count which part begins.
/// Peak `volume`; mono at `sample_rate`.
///
/// ```
/// let m = gradtone_sound::alarm::marker(3, 44_100, 0.5);
/// assert_eq!(m.samples.len(), m.level.len());
/// assert!(m.samples.iter().all(|s| s.abs() <= 0.5));
/// ```
pub fn marker(count: usize, sample_rate: u32, volume: f32) -> Earcon {
    let mut b = EarconBuilder::new(sample_rate);
    let v = volume.clamp(0.0, 1.0);
    for i in 0..count.max(1) {
        if i > 0 {
            b.silence(50.0);
        }
        b.tone(60.0, 1760.0, 1760.0, &[1.0], move |t| {
            v * (t / 0.08).min(1.0) * (-3.0 * t).exp() * ((1.0 - t) / 0.1).min(1.0)
        });
    }
    b.out
}

/// A [`Mapping`] that plays alarms: renders `M` and mixes the [`earcon`] of each alarm it is
/// given into the audio from the start of that step. It judges nothing: the watches (the
/// [`gradtone_detect::AlarmDetector`] among them) decide what fires, and the
/// pipeline hands their alarms here.
///
/// Mixing ducks the music by the earcon's level: `out = music·(1 − level) + earcon`, so if
/// the music stays within ±1 the sum does too. Alarms of one step tell one story (a diverging
/// step raises the norm and the loss alarms together): of the gradient alarms
/// ([`AlarmKind::DETECTOR`]) given at one step only the first, the most urgent, sounds, so that
/// the next step's news is not queued behind a chain of earcons; every alarm of another kind (a
/// rank's, a GAN's) sounds. Earcons play after what is still ringing, 50 ms apart; one
/// outlasting the step continues in the next steps' audio (call [`WithAlarms::flush`] at the
/// end of a stream for the rest).
///
/// ```
/// use gradtone_detect::{AlarmConfig, AlarmDetector};
/// use gradtone_frame::{AlarmKind, Frame, Watch};
/// use gradtone_sound::SeedMapping;
/// use gradtone_sound::alarm::WithAlarms;
/// let config = AlarmConfig::default();
/// let (mut detector, mut m) = (AlarmDetector::new(&config), WithAlarms::new(SeedMapping::new(), &config));
/// let mut out = Vec::new();
/// for f in [Frame::new(0).with_value("fc1", 1.0), Frame::new(1).with_value("fc1", f64::NAN)] {
///     let alarms = detector.observe(&f);
///     m.play(&f, &alarms, &mut out);
///     if f.step == 1 {
///         assert_eq!((alarms[0].step, alarms[0].kind), (1, AlarmKind::NonFinite));
///         assert!(alarms[0].message.contains("fc1 = NaN"));
///     }
/// }
/// ```
pub struct WithAlarms<M> {
    inner: M,
    volume: f32,
    /// Earcon samples still to be mixed, with their levels.
    pending: VecDeque<(f32, f32)>,
}

impl<M: Mapping> WithAlarms<M> {
    /// Wraps `inner`; earcons peak at `config.volume`.
    pub fn new(inner: M, config: &AlarmConfig) -> Self {
        WithAlarms {
            inner,
            volume: config.volume,
            pending: VecDeque::new(),
        }
    }

    /// The wrapped mapping.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// Unwraps the mapping.
    pub fn into_inner(self) -> M {
        self.inner
    }

    /// Sample rate of the output, Hz (the wrapped mapping's).
    pub fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }

    /// Interleaved channels of the output (the wrapped mapping's).
    pub fn channels(&self) -> u16 {
        self.inner.channels()
    }

    /// Appends `frame`'s audio to `out` with the earcons of `alarms` (what the watches fired at
    /// this step) mixed in, as the type's docs say.
    pub fn play(&mut self, frame: &Frame, alarms: &[AlarmEvent], out: &mut Vec<f32>) {
        let start = out.len();
        self.inner.render(frame, out);
        let mut gradient_sounded = false;
        for event in alarms {
            if AlarmKind::DETECTOR.contains(&event.kind) {
                if gradient_sounded {
                    continue;
                }
                gradient_sounded = true;
            }
            self.queue(event.kind);
        }
        self.mix_pending(&mut out[start..]);
    }

    /// Appends what is left of a ringing earcon (silence under it), so a stream's end does not
    /// cut it off.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        let ch = usize::from(self.inner.channels().max(1));
        out.reserve(self.pending.len() * ch);
        for (s, _) in self.pending.drain(..) {
            out.extend(std::iter::repeat_n(s, ch));
        }
    }

    /// Queues an earcon after what is already ringing (50 ms apart).
    fn queue(&mut self, kind: AlarmKind) {
        let sr = self.inner.sample_rate();
        if !self.pending.is_empty() {
            let gap = (0.05 * sr as f32) as usize;
            self.pending.extend(std::iter::repeat_n((0.0, 0.0), gap));
        }
        let e = earcon(kind, sr, self.volume);
        self.pending.extend(e.samples.into_iter().zip(e.level));
    }

    fn mix_pending(&mut self, out: &mut [f32]) {
        let ch = usize::from(self.inner.channels().max(1));
        for frame in out.chunks_mut(ch) {
            let Some((s, level)) = self.pending.pop_front() else {
                break;
            };
            for x in frame {
                *x = *x * (1.0 - level) + s;
            }
        }
    }
}
