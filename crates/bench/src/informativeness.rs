//! Informativeness, measured: can the five reference training settings, their outcome, and the
//! moment they blow up be told apart from the **rendered audio alone**?
//!
//! `cargo run --release -p gradtone-bench --example informativeness [TRAJECTORY_DIR]` prints
//! [`report`] for the reference runs; the test `tests/informativeness.rs` checks a few of them.
//!
//! Each of the 15 PyTorch reference trajectories (`<setting>_seed{1,2,3}.csv` in
//! `$GRADTONE_SHARED/reference/pytorch/trajectories`, `shared/` beside the repository by
//! default) is rendered three ways: the default `cents` mapping with alarms, the `seed` (2019)
//! mapping with alarms, and the bare `seed` mapping as the 2019 script had it. From then on
//! only the samples are looked at; the norms are used solely as ground truth for scoring. What
//! the analysis may know is what a listener knows: the mapping's step length and the sound of
//! each earcon.
//!
//! 1. **Features** (per run, from per-step windows): fraction of silent steps, of noisy steps
//!    (spectral flatness), median pitch (spectral centroid), its spread, step-to-step jitter,
//!    trend (last third − first third), loudness, stereo balance and the number of earcons heard.
//! 2. **Classifier**: nearest centroid on standardised features, leave-one-seed-out (train on
//!    two seeds, test on the third). Also the 3-class outcome (trains / diverges / dies): a
//!    heard NaN siren or hiss means *diverges*; otherwise nearest centroid between *trains* and
//!    *dies*.
//! 3. **Alarm delay**: the onset of trouble from the CSV (the first step with a non-finite norm
//!    or loss, a total norm above 5× step 0's, a loss above 2× step 0's, or half the norms
//!    exactly 0) against the first step at which a trouble earcon (any but the plateau beep)
//!    is found in the audio by spectrogram template matching.
//!
//! [`analyse`] takes a run's frames (read by the caller: this crate reads no CSV) and returns
//! its [`Run`]; [`report`] prints the Markdown tables for many.

use std::fmt::Write as _;

use gradtone_detect::AlarmDetector;
use gradtone_frame::stats;
use gradtone_frame::{AlarmEvent, AlarmKind, Frame, Watch};
use gradtone_sound::alarm::earcon;
use gradtone_sound::analysis::{Spectrum, rms};
use gradtone_sound::mapping::{self, CentsMapping};
use gradtone_sound::{Mapping, SeedMapping, SoundConfig, SoundError};
use gradtone_testkit::onset::onset_of_trouble;

/// The five original training settings, in table order.
pub const SETTINGS: [&str; 5] = [
    "sgd_lr0.01_bs10",
    "sgd_lr0.1_bs10",
    "sgd_lr1.0_bs10",
    "sgd_lr1.0_bs256",
    "adam_lr0.01_bs10",
];
/// Seeds of the reference runs.
pub const SEEDS: [u32; 3] = [1, 2, 3];

/// How a run is rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The default: `cents`, stereo, with alarms (`mapping::with_alarms(&SoundConfig::default())`).
    CentsAlarms,
    /// The `seed` mapping (mono) with the same alarms.
    SeedAlarms,
    /// The `seed` mapping alone, as the 2019 script sounded.
    SeedBare,
}

impl Variant {
    /// All variants, in table order.
    pub const ALL: [Variant; 3] = [Variant::CentsAlarms, Variant::SeedAlarms, Variant::SeedBare];

    /// Label for the tables.
    pub fn label(self) -> &'static str {
        match self {
            Variant::CentsAlarms => "cents + alarms (default)",
            Variant::SeedAlarms => "seed + alarms",
            Variant::SeedBare => "seed, bare (2019)",
        }
    }
}

/// A rendered run, reduced to what the analysis may use.
#[derive(Clone, Debug)]
pub struct Audio {
    /// Mono downmix (mean of the channels), including the tail of a ringing earcon.
    pub mono: Vec<f32>,
    /// Mono samples per training step: a property of the mapping (and the layer count).
    pub step_len: usize,
    /// Number of steps rendered.
    pub steps: usize,
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// `(right − left) / (right + left)` energy over the run; 0 for mono.
    pub balance: f64,
}

/// Renders `frames` with `variant`; also returns the alarms the renderer fired (used only to
/// score the audio detector, never as a feature).
pub fn render(frames: &[Frame], variant: Variant) -> Result<(Audio, Vec<AlarmEvent>), SoundError> {
    let mut config = SoundConfig::default();
    let layers = frames.first().map_or(0, |f| f.values.len());
    if variant == Variant::SeedAlarms {
        config.mapping = gradtone_sound::config::MappingKind::Seed;
    }
    let step_len = match variant {
        Variant::CentsAlarms => CentsMapping::new(&config).samples_per_step(layers),
        Variant::SeedAlarms | Variant::SeedBare => SeedMapping::new().samples_per_frame(layers),
    };
    let mut out = Vec::new();
    let mut events = Vec::new();
    let (ch, sample_rate) = if variant == Variant::SeedBare {
        let mut m = SeedMapping::new();
        for f in frames {
            Mapping::render(&mut m, f, &mut out);
        }
        (1, Mapping::sample_rate(&m))
    } else {
        let mut m = mapping::with_alarms(&config);
        let mut detector = AlarmDetector::new(&config.alarms);
        for f in frames {
            let alarms = detector.observe(f);
            m.play(f, &alarms, &mut out);
            events.extend(alarms);
        }
        m.flush(&mut out); // the rest of a ringing earcon
        (usize::from(m.channels().max(1)), m.sample_rate())
    };
    let (mut left, mut right) = (0.0f64, 0.0f64);
    let mono: Vec<f32> = out
        .chunks(ch)
        .map(|c| {
            if ch == 2 {
                left += f64::from(c[0]).powi(2);
                right += f64::from(c[1]).powi(2);
            }
            c.iter().sum::<f32>() / ch as f32
        })
        .collect();
    let balance = if left + right > 0.0 {
        (right - left) / (right + left)
    } else {
        0.0
    };
    Ok((
        Audio {
            mono,
            step_len,
            steps: frames.len(),
            sample_rate,
            balance,
        },
        events,
    ))
}

/// Names of the [`Features`] fields, in [`Features::to_vec`] order.
pub const FEATURE_NAMES: [&str; 9] = [
    "silent", "noisy", "pitch", "spread", "jitter", "trend", "level", "balance", "earcons",
];

/// Per-run features, all from the audio.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// Fraction of steps whose window is silent (RMS < −60 dBFS).
    pub silent: f64,
    /// Fraction of steps whose window is noise rather than tone (spectral flatness > 0.2).
    pub noisy: f64,
    /// Median spectral centroid of the sounding steps, octaves relative to 440 Hz.
    pub pitch: f64,
    /// Interquartile range of that pitch, octaves.
    pub spread: f64,
    /// Median |pitch change| between consecutive sounding steps, octaves.
    pub jitter: f64,
    /// Median pitch of the last third minus the first third of the run, octaves.
    pub trend: f64,
    /// Median RMS of the sounding steps, dBFS.
    pub level: f64,
    /// Stereo balance, −1 (left) … +1 (right); 0 for mono.
    pub balance: f64,
    /// Number of earcons detected (see [`detect_earcons`]).
    pub earcons: f64,
}

impl Features {
    /// The features as a vector, in [`FEATURE_NAMES`] order.
    pub fn to_vec(&self) -> Vec<f64> {
        vec![
            self.silent,
            self.noisy,
            self.pitch,
            self.spread,
            self.jitter,
            self.trend,
            self.level,
            self.balance,
            self.earcons,
        ]
    }
}

/// RMS below which a step counts as silent (−60 dBFS).
const SILENT_RMS: f64 = 1e-3;
/// Flatness above which a step counts as noise: tones and chords measure < 0.01, white noise
/// about 0.56, so 0.2 means "mostly hiss".
const NOISY_FLATNESS: f64 = 0.2;

/// Median of `v` (NaN when empty); `v` is reordered.
fn median(v: &mut [f64]) -> f64 {
    stats::median(v).unwrap_or(f64::NAN)
}

/// Linear-interpolated quantile `q` of `v` (NaN when empty); `v` is sorted in place.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let x = q * (v.len() - 1) as f64;
    let (i, frac) = (x.floor() as usize, x.fract());
    let next = v.get(i + 1).copied().unwrap_or(v[i]);
    v[i] + frac * (next - v[i])
}

/// NaN (an undefined statistic, e.g. a run with no sounding step in a third) → 0.
fn or_zero(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// Computes [`Features`] from `audio`, given the earcons detected in it.
pub fn features(audio: &Audio, earcons: &[Detection]) -> Features {
    let n = audio.steps.max(1);
    let (mut silent, mut noisy) = (0usize, 0usize);
    // Pitch (octaves re 440 Hz) and level of each sounding step, with its index.
    let mut pitch: Vec<(usize, f64)> = Vec::new();
    let mut level = Vec::new();
    for (i, w) in audio
        .mono
        .chunks(audio.step_len.max(1))
        .take(audio.steps)
        .enumerate()
    {
        let r = rms(w);
        if r < SILENT_RMS {
            silent += 1;
            continue;
        }
        let spec = Spectrum::of(w, audio.sample_rate);
        if spec.flatness() > NOISY_FLATNESS {
            noisy += 1;
        }
        pitch.push((i, (spec.centroid() / 440.0).log2()));
        level.push(20.0 * r.log10());
    }
    let mut p: Vec<f64> = pitch.iter().map(|&(_, x)| x).collect();
    let spread = quantile(&mut p.clone(), 0.75) - quantile(&mut p, 0.25);
    let mut jumps: Vec<f64> = pitch.windows(2).map(|w| (w[1].1 - w[0].1).abs()).collect();
    let third = |k: usize| -> f64 {
        let mut v: Vec<f64> = pitch
            .iter()
            .filter(|&&(i, _)| i * 3 / n == k)
            .map(|&(_, x)| x)
            .collect();
        median(&mut v)
    };
    let trend = third(2) - third(0);
    Features {
        silent: silent as f64 / n as f64,
        noisy: noisy as f64 / n as f64,
        pitch: or_zero(median(&mut p)),
        spread: or_zero(spread),
        jitter: or_zero(median(&mut jumps)),
        trend: or_zero(trend),
        level: if level.is_empty() {
            -120.0
        } else {
            median(&mut level)
        },
        balance: audio.balance,
        earcons: earcons.len() as f64,
    }
}

/// Analysis frame for earcon detection: 1024 samples (23 ms at 44.1 kHz).
const FRAME: usize = 1024;
/// Hop between analysis frames: 441 samples (10 ms), a divisor of both mappings' step lengths.
const HOP: usize = 441;
/// Cosine similarity above which a template match counts as a heard earcon.
pub const MATCH_THRESHOLD: f64 = 0.8;

/// An earcon found in the audio.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// Which earcon it matched.
    pub kind: AlarmKind,
    /// Its first sample.
    pub onset: usize,
    /// The step whose audio it starts in.
    pub step: usize,
    /// Cosine similarity with the template, 0–1.
    pub score: f64,
}

/// Third-octave band of a frequency, starting at 50 Hz (everything below is band 0).
fn band_of(hz: f64) -> usize {
    if hz <= 50.0 {
        0
    } else {
        ((3.0 * (hz / 50.0).log2()) as usize).min(BANDS - 1)
    }
}
/// Number of third-octave bands: 50 Hz to 50 · 2^(28/3) ≈ 32 kHz, i.e. to Nyquist.
const BANDS: usize = 28;

/// Band-amplitude spectrogram: per 10 ms hop, `√(power)` in each third-octave band.
fn spectrogram(samples: &[f32], sample_rate: u32) -> Vec<[f64; BANDS]> {
    let frames = samples.len().saturating_sub(FRAME) / HOP + 1;
    (0..frames)
        .map(|t| {
            let end = (t * HOP + FRAME).min(samples.len());
            let spec = Spectrum::of(&samples[t * HOP..end], sample_rate);
            let mut bands = [0.0f64; BANDS];
            for (k, p) in spec.power.iter().enumerate().skip(1) {
                bands[band_of(k as f64 * spec.bin_hz)] += p;
            }
            bands.map(f64::sqrt)
        })
        .collect()
}

/// The band spectrogram of `kind`'s earcon, as [`detect_earcons`] looks for it.
fn earcon_template(kind: AlarmKind, sample_rate: u32) -> Vec<[f64; BANDS]> {
    spectrogram(&earcon(kind, sample_rate, 0.6).samples, sample_rate)
}

/// Cosine similarity of `template` with `spec` at every hop offset (0 where either is silent);
/// empty when the audio is shorter than the template.
fn template_scores(spec: &[[f64; BANDS]], template: &[[f64; BANDS]]) -> Vec<f64> {
    let t_norm = template.iter().flatten().map(|x| x * x).sum::<f64>().sqrt();
    if spec.len() < template.len() || t_norm == 0.0 {
        return Vec::new();
    }
    (0..=spec.len() - template.len())
        .map(|lag| {
            let (mut dot, mut norm) = (0.0, 0.0);
            for (a, b) in spec[lag..].iter().zip(template) {
                for (x, y) in a.iter().zip(b) {
                    dot += x * y;
                    norm += x * x;
                }
            }
            if norm > 0.0 {
                dot / (norm.sqrt() * t_norm)
            } else {
                0.0
            }
        })
        .collect()
}

/// Finds earcons in `audio` by matching each earcon's band spectrogram (the designs of
/// [`earcon`]: what a listener has learnt to recognise) against the audio's, hop by hop, with
/// cosine similarity. A match is a local maximum ≥ [`MATCH_THRESHOLD`] with no better match of
/// any kind overlapping it. The alarm wrapper ducks the music under an earcon, so the sweep and
/// siren match at 0.95–1.0, while music alone reaches at most 0.64 on the reference runs. The
/// soft plateau beep is the weak one: under the four-voice `cents` chord it matches only
/// ~0.7, as well as some music does (up to 0.78), so it is often missed there.
pub fn detect_earcons(audio: &Audio) -> Vec<Detection> {
    detect_in(&spectrogram(&audio.mono, audio.sample_rate), audio)
}

/// [`detect_earcons`] on the audio's band spectrogram `spec`.
fn detect_in(spec: &[[f64; BANDS]], audio: &Audio) -> Vec<Detection> {
    let mut candidates = Vec::new();
    for kind in AlarmKind::DETECTOR {
        let template = earcon_template(kind, audio.sample_rate);
        let scores = template_scores(spec, &template);
        for (lag, &s) in scores.iter().enumerate() {
            let left = lag.checked_sub(1).map_or(0.0, |i| scores[i]);
            let right = scores.get(lag + 1).copied().unwrap_or(0.0);
            if s >= MATCH_THRESHOLD && s >= left && s > right {
                candidates.push((kind, lag, template.len(), s));
            }
        }
    }
    // Best first; drop any candidate overlapping an accepted one (one earcon, one detection).
    candidates.sort_by(|a, b| b.3.total_cmp(&a.3));
    let mut accepted: Vec<(AlarmKind, usize, usize, f64)> = Vec::new();
    for c in candidates {
        let overlaps = accepted.iter().any(|a| c.1 < a.1 + a.2 && a.1 < c.1 + c.2);
        if !overlaps {
            accepted.push(c);
        }
    }
    accepted.sort_by_key(|a| a.1);
    accepted
        .into_iter()
        .map(|(kind, lag, _, score)| Detection {
            kind,
            onset: lag * HOP,
            step: lag * HOP / audio.step_len.max(1),
            score,
        })
        .collect()
}

/// The three outcomes of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Ends with live gradients and no NaN.
    Trains,
    /// Some norm or loss becomes NaN/±∞.
    Diverges,
    /// Most gradient norms end exactly 0 (or < 1e-7): the network stopped learning.
    Dies,
}

impl Outcome {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Trains => "trains",
            Outcome::Diverges => "diverges",
            Outcome::Dies => "dies",
        }
    }
}

/// Ground truth from the CSV: *diverges* if any norm or loss is non-finite; *dies* if over the
/// last third of the steps the median fraction of norms below 1e-7 is at least one half;
/// otherwise *trains*.
pub fn outcome_truth(frames: &[Frame]) -> Outcome {
    let non_finite = frames.iter().any(|f| {
        f.values
            .iter()
            .chain(&f.losses)
            .any(|n| !n.value.is_finite())
    });
    if non_finite {
        return Outcome::Diverges;
    }
    let start = frames.len() * 2 / 3;
    let mut dead: Vec<f64> = frames[start..]
        .iter()
        .map(|f| {
            let small = f.values.iter().filter(|n| n.value.abs() < 1e-7).count();
            small as f64 / f.values.len().max(1) as f64
        })
        .collect();
    if median(&mut dead) >= 0.5 {
        Outcome::Dies
    } else {
        Outcome::Trains
    }
}

/// Ground truth trouble, the onset as the alarms are judged against it (issue 13; see
/// `onset_of_trouble`). Returns the step index and which of
/// `"non_finite"`, `"explosion"`, `"divergence"`, `"dead"`.
pub fn first_trouble(frames: &[Frame]) -> Option<(usize, &'static str)> {
    onset_of_trouble(frames).map(|(i, why)| {
        let kind = match why {
            "non-finite" => "non_finite",
            "norm > 5× step 0" => "explosion",
            "loss > 2× step 0" => "divergence",
            _ => "dead",
        };
        (i, kind)
    })
}

/// The first trouble earcon (any kind but the plateau beep) found in the audio: the step it
/// starts in.
pub fn first_alarm_heard(detections: &[Detection]) -> Option<&Detection> {
    detections.iter().find(|d| d.kind.is_trouble())
}

/// Outcome from the audio: a heard NaN siren, or hiss in at least a quarter of the steps,
/// means *diverges* (the two sounds the mappings give NaN); otherwise `music` decides.
pub fn heard_diverging(f: &Features, detections: &[Detection]) -> bool {
    detections.iter().any(|d| d.kind == AlarmKind::NonFinite) || f.noisy >= 0.25
}

/// One analysed run.
#[derive(Clone, Debug)]
pub struct Run {
    /// Index into [`SETTINGS`].
    pub setting: usize,
    /// Seed.
    pub seed: u32,
    /// Ground-truth outcome.
    pub outcome: Outcome,
    /// Ground-truth first trouble step.
    pub trouble: Option<(usize, &'static str)>,
    /// Ground-truth first step with a non-finite norm.
    pub first_non_finite: Option<usize>,
    /// Features of the audio.
    pub features: Features,
    /// Earcons found in the audio.
    pub detections: Vec<Detection>,
    /// Alarms the renderer fired (to score the detector).
    pub events: Vec<AlarmEvent>,
    /// Best cosine match of any trouble earcon's template anywhere in the audio: in a run where
    /// none fired, how close the music alone comes to a false alarm.
    pub best_alarm_match: f64,
}

/// The file name of a reference run: `<setting>_seed<seed>.csv` (`setting` indexes
/// [`SETTINGS`]; `None` beyond it).
pub fn run_file(setting: usize, seed: u32) -> Option<String> {
    SETTINGS.get(setting).map(|s| format!("{s}_seed{seed}.csv"))
}

/// Renders `frames` (the run of setting `setting`, seed `seed`: labels only) with `variant` and
/// analyses the audio.
pub fn analyse(
    frames: &[Frame],
    setting: usize,
    seed: u32,
    variant: Variant,
) -> Result<Run, SoundError> {
    let (audio, events) = render(frames, variant)?;
    let spec = spectrogram(&audio.mono, audio.sample_rate);
    let detections = detect_in(&spec, &audio);
    let features = features(&audio, &detections);
    let best_alarm_match = AlarmKind::DETECTOR
        .into_iter()
        .filter(|k| k.is_trouble())
        .flat_map(|k| template_scores(&spec, &earcon_template(k, audio.sample_rate)))
        .fold(0.0, f64::max);
    Ok(Run {
        setting,
        seed,
        outcome: outcome_truth(frames),
        trouble: first_trouble(frames),
        first_non_finite: frames
            .iter()
            .position(|f| f.values.iter().any(|n| !n.value.is_finite())),
        features,
        detections,
        events,
        best_alarm_match,
    })
}

/// Nearest-centroid classifier on features standardised with the training set's mean and
/// standard deviation (a constant feature keeps unit scale).
pub struct NearestCentroid {
    mean: Vec<f64>,
    std: Vec<f64>,
    centroids: Vec<(usize, Vec<f64>)>,
}

impl NearestCentroid {
    /// Fits on `(features, label)` pairs.
    pub fn fit(train: &[(Vec<f64>, usize)]) -> NearestCentroid {
        let d = train.first().map_or(0, |t| t.0.len());
        let n = train.len().max(1) as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| train.iter().map(|t| t.0[j]).sum::<f64>() / n)
            .collect();
        let std: Vec<f64> = (0..d)
            .map(|j| {
                let v = train
                    .iter()
                    .map(|t| (t.0[j] - mean[j]).powi(2))
                    .sum::<f64>()
                    / n;
                if v > 1e-12 { v.sqrt() } else { 1.0 }
            })
            .collect();
        let mut labels: Vec<usize> = train.iter().map(|t| t.1).collect();
        labels.sort_unstable();
        labels.dedup();
        let mut nc = NearestCentroid {
            mean,
            std,
            centroids: Vec::new(),
        };
        for l in labels {
            let members: Vec<Vec<f64>> = train
                .iter()
                .filter(|t| t.1 == l)
                .map(|t| nc.z(&t.0))
                .collect();
            let c = (0..d)
                .map(|j| members.iter().map(|m| m[j]).sum::<f64>() / members.len() as f64)
                .collect();
            nc.centroids.push((l, c));
        }
        nc
    }

    fn z(&self, x: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(&self.mean)
            .zip(&self.std)
            .map(|((x, m), s)| (x - m) / s)
            .collect()
    }

    /// The label of the nearest centroid (Euclidean, standardised); `None` if never fitted
    /// on anything.
    pub fn predict(&self, x: &[f64]) -> Option<usize> {
        let z = self.z(x);
        self.centroids
            .iter()
            .map(|(l, c)| {
                (
                    l,
                    z.iter().zip(c).map(|(a, b)| (a - b).powi(2)).sum::<f64>(),
                )
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(l, _)| *l)
    }
}

/// Leave-one-seed-out predictions of the setting, in `runs` order.
pub fn loso_settings(runs: &[Run]) -> Vec<Option<usize>> {
    runs.iter()
        .map(|test| {
            let train: Vec<(Vec<f64>, usize)> = runs
                .iter()
                .filter(|r| r.seed != test.seed)
                .map(|r| (r.features.to_vec(), r.setting))
                .collect();
            NearestCentroid::fit(&train).predict(&test.features.to_vec())
        })
        .collect()
}

/// Leave-one-seed-out outcome predictions, in `runs` order: [`heard_diverging`] first, then
/// nearest centroid between *trains* and *dies* fitted on the other seeds' non-diverged runs.
pub fn loso_outcomes(runs: &[Run]) -> Vec<Outcome> {
    let label = |o: Outcome| usize::from(o == Outcome::Dies);
    runs.iter()
        .map(|test| {
            if heard_diverging(&test.features, &test.detections) {
                return Outcome::Diverges;
            }
            let train: Vec<(Vec<f64>, usize)> = runs
                .iter()
                .filter(|r| r.seed != test.seed && r.outcome != Outcome::Diverges)
                .map(|r| (r.features.to_vec(), label(r.outcome)))
                .collect();
            match NearestCentroid::fit(&train).predict(&test.features.to_vec()) {
                Some(1) => Outcome::Dies,
                _ => Outcome::Trains,
            }
        })
        .collect()
}

/// Median of the finite delays (NaN when none).
pub fn median_delay(delays: &[i64]) -> f64 {
    median(&mut delays.iter().map(|&d| d as f64).collect::<Vec<_>>())
}

/// Alarm delay of a run, in steps: first heard trouble earcon − onset of trouble.
/// `None` when either is missing.
pub fn alarm_delay(run: &Run) -> Option<i64> {
    let (truth, _) = run.trouble?;
    let heard = first_alarm_heard(&run.detections)?;
    Some(heard.step as i64 - truth as i64)
}

/// How many of the renderer's sounded alarms were found in the audio (same kind, starting within
/// 12 steps after the event: an earcon queued behind another starts late), and how many
/// detections match no fired alarm.
pub fn detector_score(run: &Run) -> (usize, usize, usize) {
    let mut used = vec![false; run.detections.len()];
    let mut found = 0;
    // Only the first gradient alarm of a step sounds (see `WithAlarms`); the others are silent
    // by design.
    let sounded: Vec<&AlarmEvent> = run
        .events
        .iter()
        .enumerate()
        .filter(|(i, e)| *i == 0 || run.events[i - 1].step != e.step)
        .map(|(_, e)| e)
        .collect();
    for e in &sounded {
        let hit = run.detections.iter().enumerate().find(|(i, d)| {
            !used[*i]
                && d.kind == e.kind
                && (e.step as usize..=e.step as usize + 12).contains(&d.step)
        });
        if let Some((i, _)) = hit {
            used[i] = true;
            found += 1;
        }
    }
    (found, sounded.len(), used.iter().filter(|u| !**u).count())
}

/// A setting's name (`?` beyond [`SETTINGS`]).
fn setting_name(setting: usize) -> &'static str {
    SETTINGS.get(setting).copied().unwrap_or("?")
}

/// A setting's short label for the tables.
fn short(setting: usize) -> &'static str {
    ["sgd .01", "sgd .1", "sgd 1", "sgd 1/256", "adam .01"]
        .get(setting)
        .copied()
        .unwrap_or("?")
}

/// The Markdown tables of the analysis: one line per rendering (setting and outcome
/// accuracy, alarm delay, earcons heard), then confusion matrices, per-run predictions, alarm
/// delays and the NaN siren. `all` holds each rendering's runs, every rendering the same runs
/// in the same order (the reference set: the 15 of [`SETTINGS`] × [`SEEDS`]).
pub fn report(all: &[(Variant, Vec<Run>)]) -> String {
    let mut out = String::new();
    // Writing to a `String` cannot fail.
    macro_rules! say {
        ($($arg:tt)*) => {
            let _ = writeln!(out, $($arg)*);
        };
    }
    // Runs in every rendering (the same runs, in the same order).
    let n = all.iter().map(|(_, runs)| runs.len()).min().unwrap_or(0);
    if n == 0 {
        return out;
    }
    say!("## Informativeness, measured (from the rendered audio alone)\n");
    say!(
        "15 reference runs (5 settings × seeds 1–3), 201 steps each. Features per run from \
         per-step windows: {}. Nearest centroid on standardised features, leave-one-seed-out \
         (3 folds: train on two seeds, test on the third).\n",
        FEATURE_NAMES.join(", ")
    );
    say!(
        "| rendering | setting (5 classes) | outcome (3 classes) | median alarm delay, steps | \
         earcons heard / sounded | false detections | best trouble-earcon match without trouble |"
    );
    say!("|---|---|---|---|---|---|---|");
    for (variant, runs) in all {
        let total = runs.len();
        let pred = loso_settings(runs);
        let correct = runs
            .iter()
            .zip(&pred)
            .filter(|(r, p)| **p == Some(r.setting))
            .count();
        let outcomes = loso_outcomes(runs);
        let oc = runs
            .iter()
            .zip(&outcomes)
            .filter(|(r, o)| r.outcome == **o)
            .count();
        let delays: Vec<i64> = runs.iter().filter_map(alarm_delay).collect();
        let (mut found, mut fired, mut false_pos) = (0, 0, 0);
        for r in runs {
            let (f, e, fp) = detector_score(r);
            (found, fired, false_pos) = (found + f, fired + e, false_pos + fp);
        }
        // How close music alone came to a false trouble earcon (detection needs ≥ MATCH_THRESHOLD).
        let margin = runs
            .iter()
            .filter(|r| r.events.iter().all(|e| !e.kind.is_trouble()))
            .map(|r| r.best_alarm_match)
            .fold(0.0, f64::max);
        let delay = if delays.is_empty() {
            "— (no alarm)".to_owned()
        } else {
            format!("{:.0}", median_delay(&delays))
        };
        say!(
            "| {} | {correct}/{total} | {oc}/{total} | {delay} | {found}/{fired} | {false_pos} | {margin:.2} |",
            variant.label()
        );
    }

    for (variant, runs) in all {
        let pred = loso_settings(runs);
        say!(
            "\n### Confusion, {} (rows: true setting, columns: predicted)\n",
            variant.label()
        );
        say!(
            "| true \\ predicted | {} |",
            (0..5).map(short).collect::<Vec<_>>().join(" | ")
        );
        say!("|---|---|---|---|---|---|");
        for s in 0..5 {
            let counts: Vec<String> = (0..5)
                .map(|p| {
                    runs.iter()
                        .zip(&pred)
                        .filter(|(r, q)| r.setting == s && **q == Some(p))
                        .count()
                        .to_string()
                })
                .collect();
            say!("| {} | {} |", short(s), counts.join(" | "));
        }
    }

    say!("\n### Per run\n");
    let head: Vec<String> = all
        .iter()
        .map(|(v, _)| format!("{}: setting / outcome", v.label()))
        .collect();
    say!("| run | true outcome | {} |", head.join(" | "));
    say!("|---|---|{}", "---|".repeat(all.len()));
    let preds: Vec<(Vec<Option<usize>>, Vec<Outcome>)> = all
        .iter()
        .map(|(_, runs)| (loso_settings(runs), loso_outcomes(runs)))
        .collect();
    for i in 0..n {
        let r = &all[0].1[i];
        let cells: Vec<String> = preds
            .iter()
            .map(|(p, o)| {
                let s = p[i].map_or("?", short);
                let mark = |ok: bool| if ok { "" } else { " ✗" };
                format!(
                    "{s}{} / {}{}",
                    mark(p[i] == Some(r.setting)),
                    o[i].name(),
                    mark(o[i] == r.outcome)
                )
            })
            .collect();
        say!(
            "| {} s{} | {} | {} |",
            setting_name(r.setting),
            r.seed,
            r.outcome.name(),
            cells.join(" | ")
        );
    }

    say!("\n### Alarm delay (first heard trouble earcon − onset of trouble in the CSV)\n");
    let head: Vec<String> = all
        .iter()
        .filter(|(v, _)| *v != Variant::SeedBare)
        .map(|(v, _)| format!("{}: heard at (delay)", v.label()))
        .collect();
    say!("| run | trouble (CSV) | {} |", head.join(" | "));
    say!("|---|---|{}", "---|".repeat(head.len()));
    for i in 0..n {
        let r = &all[0].1[i];
        let truth = r
            .trouble
            .map_or("none".to_owned(), |(s, k)| format!("step {s} ({k})"));
        let cells: Vec<String> = all
            .iter()
            .filter(|(v, _)| *v != Variant::SeedBare)
            .map(|(_, runs)| {
                let run = &runs[i];
                match (first_alarm_heard(&run.detections), alarm_delay(run)) {
                    (Some(d), Some(delay)) => {
                        format!(
                            "step {} {} ({delay:+}, match {:.2})",
                            d.step, d.kind, d.score
                        )
                    }
                    (Some(d), None) => format!("step {} {} (false alarm)", d.step, d.kind),
                    // The onset rule also trips on single noisy batches of healthy runs,
                    // where rightly no alarm fires.
                    (None, _) if run.events.iter().all(|e| !e.kind.is_trouble()) => {
                        "— (no alarm fired)".to_owned()
                    }
                    (None, _) if run.trouble.is_some() => "not heard".to_owned(),
                    (None, _) => "—".to_owned(),
                }
            })
            .collect();
        say!(
            "| {} s{} | {truth} | {} |",
            setting_name(r.setting),
            r.seed,
            cells.join(" | ")
        );
    }

    say!("\n### The NaN siren (runs whose norms go non-finite)\n");
    say!(
        "| run | first non-finite norm (CSV) | siren heard, cents + alarms | siren heard, seed + alarms | hiss heard, seed bare |"
    );
    say!("|---|---|---|---|---|");
    for i in 0..n {
        let r = &all[0].1[i];
        let Some(nan_step) = r.first_non_finite else {
            continue;
        };
        let cells: Vec<String> = all
            .iter()
            .map(|(v, runs)| {
                let run = &runs[i];
                if *v == Variant::SeedBare {
                    return format!("{:.0} % of steps noisy", 100.0 * run.features.noisy);
                }
                match run
                    .detections
                    .iter()
                    .find(|d| d.kind == AlarmKind::NonFinite)
                {
                    Some(d) => format!("step {} ({:+})", d.step, d.step as i64 - nan_step as i64),
                    None => "not heard".to_owned(),
                }
            })
            .collect();
        say!(
            "| {} s{} | step {nan_step} | {} |",
            setting_name(r.setting),
            r.seed,
            cells.join(" | ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What trouble does to a norm, `k` steps after it began.
    type Trouble = fn(u64, f64) -> f64;

    /// A synthetic run of `steps` steps: four layers whose norms wobble gently around 0.5–1 and
    /// a falling loss, changed from step `at` on by `trouble` (when given).
    fn run_frames(steps: u64, trouble: Option<(u64, Trouble)>) -> Vec<Frame> {
        (0..steps)
            .map(|s| {
                let mut f = Frame::new(s).with_loss("loss", 2.3 / (1.0 + 0.02 * s as f64));
                for (i, layer) in ["conv1", "conv2", "fc1", "fc2"].into_iter().enumerate() {
                    let base = 0.5 + 0.1 * i as f64 + 0.05 * ((s as f64) * 0.7 + i as f64).sin();
                    let v = match trouble {
                        Some((at, change)) if s >= at => change(s - at, base),
                        _ => base,
                    };
                    f = f.with_value(layer, v);
                }
                f
            })
            .collect()
    }

    #[test]
    fn a_healthy_run_sounds_like_training_and_raises_no_earcon() {
        let frames = run_frames(60, None);
        let r = analyse(&frames, 0, 1, Variant::CentsAlarms).unwrap();
        assert_eq!(r.outcome, Outcome::Trains);
        assert_eq!(r.trouble, None);
        assert!(r.events.is_empty(), "{:?}", r.events);
        assert!(r.detections.is_empty(), "{:?}", r.detections);
        assert!(
            r.best_alarm_match < MATCH_THRESHOLD,
            "{}",
            r.best_alarm_match
        );
        assert!(
            r.features.silent < 0.01 && r.features.noisy < 0.01,
            "{:?}",
            r.features
        );
    }

    #[test]
    fn an_explosion_is_heard_where_it_fires_and_the_nan_siren_after() {
        // ×40 at step 20, non-finite from step 30.
        let explode: Trouble = |k, v| if k >= 10 { f64::NAN } else { 40.0 * v };
        let frames = run_frames(60, Some((20, explode)));
        for variant in [Variant::CentsAlarms, Variant::SeedAlarms] {
            let r = analyse(&frames, 2, 1, variant).unwrap();
            assert_eq!(r.outcome, Outcome::Diverges, "{variant:?}");
            assert_eq!(r.trouble, Some((20, "explosion")), "{variant:?}");
            assert_eq!(r.first_non_finite, Some(30), "{variant:?}");
            let kinds: Vec<AlarmKind> = r.events.iter().map(|e| e.kind).collect();
            assert_eq!(
                kinds.first(),
                Some(&AlarmKind::Explosion),
                "{variant:?}: {kinds:?}"
            );
            let heard = first_alarm_heard(&r.detections)
                .unwrap_or_else(|| panic!("{variant:?}: nothing heard; fired {:?}", r.events));
            assert_eq!(
                (heard.kind, heard.step),
                (AlarmKind::Explosion, 20),
                "{variant:?}: {:?}",
                r.detections
            );
            assert!(heard.score > 0.9, "{variant:?}: weak match {}", heard.score);
            assert_eq!(alarm_delay(&r), Some(0), "{variant:?}");
            let siren = r.detections.iter().find(|d| d.kind == AlarmKind::NonFinite);
            assert!(
                siren.is_some_and(|d| (30..=36).contains(&d.step)),
                "{variant:?}: {:?}",
                r.detections
            );
            assert!(heard_diverging(&r.features, &r.detections), "{variant:?}");
            // Every sounded alarm is found in the audio, and nothing else.
            let (found, sounded, false_detections) = detector_score(&r);
            assert_eq!(
                (found, false_detections),
                (sounded, 0),
                "{variant:?}: {r:?}"
            );
        }
    }

    #[test]
    fn a_dying_run_falls_silent_and_is_told_apart_from_training() {
        let die: Trouble = |_, _| 0.0;
        let dead = run_frames(60, Some((10, die)));
        let r = analyse(&dead, 4, 1, Variant::CentsAlarms).unwrap();
        assert_eq!(r.outcome, Outcome::Dies);
        assert!(r.features.silent > 0.7, "{:?}", r.features);
        assert!(
            r.events.iter().any(|e| e.kind == AlarmKind::Dead),
            "{:?}",
            r.events
        );
        // Leave one seed out over two seeds of each: the dead runs and the healthy ones apart.
        let mut runs = Vec::new();
        for seed in [1, 2] {
            let shift: Trouble = |_, v| v * 1.01;
            let healthy = run_frames(60, Some((0, shift)));
            runs.push(analyse(&healthy, 0, seed, Variant::CentsAlarms).unwrap());
            runs.push(analyse(&dead, 4, seed, Variant::CentsAlarms).unwrap());
        }
        assert_eq!(
            loso_outcomes(&runs),
            [
                Outcome::Trains,
                Outcome::Dies,
                Outcome::Trains,
                Outcome::Dies
            ]
        );
        assert_eq!(loso_settings(&runs), [Some(0), Some(4), Some(0), Some(4)]);
        let table = report(&[(Variant::CentsAlarms, runs)]);
        assert!(
            table.contains("| cents + alarms (default) | 4/4 | 4/4 |"),
            "{table}"
        );
    }

    #[test]
    fn nearest_centroid_standardises_each_feature() {
        // Feature 0 separates the classes by 1 on a spread of 1; feature 1 is noise 1000× wider.
        let train = vec![
            (vec![0.0, 0.0], 0),
            (vec![0.2, 1000.0], 0),
            (vec![1.0, 500.0], 1),
            (vec![1.2, -500.0], 1),
        ];
        let nc = NearestCentroid::fit(&train);
        assert_eq!(nc.predict(&[0.1, 900.0]), Some(0));
        assert_eq!(nc.predict(&[1.1, 0.0]), Some(1));
        assert_eq!(NearestCentroid::fit(&[]).predict(&[1.0]), None);
    }
}
