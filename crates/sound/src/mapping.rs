//! The mappings by name, and the two synthesised ones: [`DepthMapping`] and [`CentsMapping`].
//!
//! | name | what it does |
//! |---|---|
//! | `seed` | [`SeedMapping`]: the 2019 original, mono, sample-exact; never groups (every value its own tone, see [`voice_legend`]) |
//! | `depth` | [`DepthMapping`]: each layer a fixed pitch by depth, its norm → loudness |
//! | `cents` | [`CentsMapping`]: each layer's `log(norm)` → pitch (the default) |
//!
//! `depth` and `cents` render stereo at 44.1 kHz through a [`Synth`], with layers panned from
//! left (input side) to right (output side), and group frames with more than
//! `grouping.max_voices` values into voices ([`Grouping`]). They render a zero or non-finite
//! norm as silence in its voice; the alarms ([`with_alarms`]) are what sound those.
//!
//! **Instruments.** A value named `term/layer` (e.g. `d_real/D.fc1`, `l2/conv1`) belongs to the
//! instrument `term`: the gradient of one weighted loss term. When a frame's voices carry two or
//! more instruments, each instrument gets its own timbre (soft, reed, sine, in order of first
//! appearance) and its own place in the stereo field (left to right), so the balance between
//! the losses can be heard; within an instrument, layers keep their pitches. Frames from any
//! source get this, so a JSONL stream naming its values `term/layer` sounds the same.
//!
//! ```
//! use gradtone_frame::Frame;
//! use gradtone_sound::{mapping::{self, MappingKind}, config::SoundConfig, Mapping};
//! let mut m = mapping::build(MappingKind::Cents, &SoundConfig::default());
//! assert_eq!((m.sample_rate(), m.channels()), (44_100, 2));
//! let mut out = Vec::new();
//! m.render(&Frame::new(0).with_value("conv1", 0.3).with_value("fc1", 2.0), &mut out);
//! assert_eq!(out.len(), 2 * 3528); // 80 ms, stereo
//! ```

use crate::alarm::WithAlarms;
use crate::config::{CentsConfig, DepthConfig, Layout, Range, Scale, SoundConfig};
use crate::synth::{SAMPLE_RATE, Synth, Timbre, VoiceSettings};
use crate::{Mapping, SeedMapping};
use gradtone_detect::grouping::{Grouping, GroupingConfig};
use gradtone_detect::stats::RunningPercentiles;
use gradtone_frame::Frame;

// The kinds live with the configuration that reads them (config must not import mappings).
pub use crate::config::{DEFAULT_MAPPING, MappingKind};
/// Smallest log10 range the auto-ranging spreads over (a constant norm must not blow up).
const MIN_SPAN_DECADES: f64 = 0.1;

/// The mapping `kind`, set up from `config`.
pub fn build(kind: MappingKind, config: &SoundConfig) -> Box<dyn Mapping + Send> {
    match kind {
        MappingKind::Seed => Box::new(SeedMapping::new()),
        MappingKind::Depth => Box::new(DepthMapping::new(config)),
        MappingKind::Cents => Box::new(CentsMapping::new(config)),
    }
}

/// [`build`] with `config.mapping`, wrapped in [`WithAlarms`] to play alarms at
/// `config.alarms.volume`.
pub fn with_alarms(config: &SoundConfig) -> WithAlarms<Box<dyn Mapping + Send>> {
    WithAlarms::new(build(config.mapping, config), &config.alarms)
}

use gradtone_frame::naming::instrument_of;

/// What the console says about how a frame with these value names is voiced by the mapping
/// `config.mapping`, or `None` when there is nothing to say (each value its own voice, and
/// few of them).
///
/// `depth` and `cents` group many values into voices ([`Grouping`]): the text is
/// `"27 values grouped into 7 voices:"` and the (bounded) legend. `seed` is the 2019 original
/// and stays sample-exact: it never groups, it plays every value as its own 10 ms tone in turn,
/// and says so (`"27 values, each its own 10 ms tone in turn (mapping seed does not group; ..."`).
///
/// ```
/// use gradtone_sound::{config::SoundConfig, mapping::{MappingKind, voice_legend}};
/// let names: Vec<String> = (0..27).map(|i| format!("layers.{i}.weight")).collect();
/// let mut cfg = SoundConfig::default();
/// assert!(voice_legend(&cfg, &names).unwrap().starts_with("27 values grouped into"));
/// cfg.mapping = MappingKind::Seed;
/// assert!(voice_legend(&cfg, &names).unwrap().starts_with("27 values, each its own"));
/// ```
pub fn voice_legend<S: AsRef<str>>(config: &SoundConfig, names: &[S]) -> Option<String> {
    let n = names.len();
    if config.mapping == MappingKind::Seed {
        return (n > config.grouping.max_voices).then(|| {
            format!(
                "{n} values, each its own 10 ms tone in turn (mapping seed does not group; \
                 --mapping cents or depth groups them into at most {} voices)\n",
                config.grouping.max_voices
            )
        });
    }
    let g = Grouping::for_values(names, &config.grouping)?;
    Some(format!(
        "{n} values grouped into {} voices:\n{}",
        g.voices(),
        g.legend_text()
    ))
}

/// Timbres given to instruments, in order of first appearance (cycling).
const INSTRUMENT_TIMBRES: [Timbre; 3] = [Timbre::Soft, Timbre::Reed, Timbre::Sine];

/// How each voice sounds: its timbre and pan.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Voicing {
    timbre: Timbre,
    pan: f32,
}

/// Timbre and pan of each of `names`' voices: by instrument when there are two or more
/// ([`instrument_of`]), else `timbre` for all, panned by depth.
fn voicings<S: AsRef<str>>(names: &[S], timbre: Timbre) -> Vec<Voicing> {
    let mut seen: Vec<&str> = Vec::new();
    let index: Vec<usize> = names
        .iter()
        .map(|n| {
            let inst = instrument_of(n.as_ref());
            seen.iter().position(|s| *s == inst).unwrap_or_else(|| {
                seen.push(inst);
                seen.len() - 1
            })
        })
        .collect();
    let n = names.len();
    if seen.len() < 2 {
        return (0..n)
            .map(|i| Voicing {
                timbre,
                pan: depth_pan(i, n),
            })
            .collect();
    }
    index
        .iter()
        .map(|&k| Voicing {
            timbre: INSTRUMENT_TIMBRES[k % INSTRUMENT_TIMBRES.len()],
            pan: depth_pan(k, seen.len()),
        })
        .collect()
}

/// Milliseconds → whole samples at the synth rate.
fn samples(ms: f64) -> usize {
    (ms * 1e-3 * f64::from(SAMPLE_RATE)).round().max(0.0) as usize
}

/// Pan of voice `i` of `n`: spread −0.8 (left, input side) … +0.8 (right, output side).
pub fn depth_pan(i: usize, n: usize) -> f32 {
    if n <= 1 {
        0.0
    } else {
        -0.8 + 1.6 * i as f32 / (n - 1) as f32
    }
}

/// The values a frame sounds: its own values, or per-voice L2 norms once grouped.
#[derive(Clone, Debug)]
struct VoiceSource {
    config: GroupingConfig,
    grouping: Option<Grouping>,
    /// Voicings for `voiced_names`, recomputed only when the names change.
    voiced_names: Vec<String>,
    voicings: Vec<Voicing>,
}

impl VoiceSource {
    fn new(config: &GroupingConfig) -> Self {
        VoiceSource {
            config: config.clone(),
            grouping: None,
            voiced_names: Vec::new(),
            voicings: Vec::new(),
        }
    }

    /// Timbre and pan of each voice of the last [`values`](Self::values) call, given the
    /// mapping's own `timbre`.
    fn voicings(&mut self, frame: &Frame, timbre: Timbre) -> &[Voicing] {
        let names: Vec<&str> = match &self.grouping {
            Some(g) => g.legend().iter().map(|(v, _)| v.as_str()).collect(),
            None => frame.values.iter().map(|n| n.name.as_str()).collect(),
        };
        let same = names.len() == self.voiced_names.len()
            && names.iter().zip(&self.voiced_names).all(|(a, b)| a == b);
        if !same || self.voicings.first().is_some_and(|v| v.timbre != timbre) {
            self.voicings = voicings(&names, timbre);
            self.voiced_names = names.iter().map(|s| (*s).to_owned()).collect();
        }
        &self.voicings
    }

    fn values(&mut self, frame: &Frame) -> Vec<f64> {
        let raw: Vec<f64> = frame.values.iter().map(|n| n.value).collect();
        if !Grouping::applies(raw.len(), &self.config) {
            self.grouping = None;
            return raw;
        }
        let names = || frame.values.iter().map(|n| n.name.as_str());
        if !self.grouping.as_ref().is_some_and(|g| g.matches(names())) {
            let names: Vec<&str> = names().collect();
            self.grouping = Some(Grouping::new(&names, &self.config));
        }
        self.grouping
            .as_ref()
            .map_or(raw.clone(), |g| g.aggregate(&raw))
    }
}

/// `log10 |v|` for a usable norm (finite, non-zero); `None` means "silent".
fn log_norm(v: f64) -> Option<f64> {
    (v.is_finite() && v != 0.0).then(|| v.abs().log10())
}

/// Widens `(lo, hi)` to at least [`MIN_SPAN_DECADES`] around its middle.
fn widen(lo: f64, hi: f64) -> (f64, f64) {
    if hi - lo >= MIN_SPAN_DECADES {
        (lo, hi)
    } else {
        let mid = 0.5 * (lo + hi);
        (mid - MIN_SPAN_DECADES / 2.0, mid + MIN_SPAN_DECADES / 2.0)
    }
}

/// **`depth`**: layer depth → pitch, norm → loudness.
///
/// Voice `i` of `n` (input side first) has a fixed pitch, log-spaced from `depth.low_hz` (150)
/// to `depth.high_hz` (2500) whatever `n` is, and a fixed pan, left to right. Its loudness
/// follows `log10(norm)` within that voice's own running 5th–95th percentile range over the
/// last `depth.window` steps: the 5th percentile and below sound at `depth.floor_db` (−30 dB),
/// the 95th and above at 0 dB. A step is one chord of `depth.tone_ms` (80 ms), the last
/// `depth.gap_ms` (15 ms) of it silent so steps pulse.
#[derive(Clone, Debug)]
pub struct DepthMapping {
    cfg: DepthConfig,
    timbre: Timbre,
    synth: Synth,
    source: VoiceSource,
    ranges: Vec<RunningPercentiles>,
}

impl DepthMapping {
    /// The mapping, with `config.depth`, `config.synth` and `config.grouping`.
    pub fn new(config: &SoundConfig) -> Self {
        DepthMapping {
            cfg: config.depth.clone(),
            timbre: config.synth.timbre,
            synth: Synth::new(SAMPLE_RATE, config.synth.ramp_ms).with_volume(config.synth.volume),
            source: VoiceSource::new(&config.grouping),
            ranges: Vec::new(),
        }
    }

    /// Pitch of voice `i` of `n`, Hz.
    pub fn voice_freq(&self, i: usize, n: usize) -> f64 {
        let (lo, hi) = (self.cfg.low_hz, self.cfg.high_hz);
        if n <= 1 {
            (lo * hi).sqrt()
        } else {
            lo * (hi / lo).powf(i as f64 / (n - 1) as f64)
        }
    }

    /// The current grouping, when the frames had to be grouped.
    pub fn grouping(&self) -> Option<&Grouping> {
        self.source.grouping.as_ref()
    }

    /// Stereo samples one step renders to.
    pub fn samples_per_step(&self) -> usize {
        samples(self.cfg.tone_ms)
    }
}

impl Mapping for DepthMapping {
    fn sample_rate(&self) -> u32 {
        SAMPLE_RATE
    }

    fn channels(&self) -> u16 {
        2
    }

    fn render(&mut self, frame: &Frame, out: &mut Vec<f32>) {
        let values = self.source.values(frame);
        let voicings = self.source.voicings(frame, self.timbre).to_vec();
        let n = values.len();
        if self.ranges.len() != n {
            // The voices changed meaning: start their statistics afresh.
            self.ranges = (0..n)
                .map(|_| RunningPercentiles::new(self.cfg.window))
                .collect();
        }
        for (i, &v) in values.iter().enumerate() {
            let Some(x) = log_norm(v) else {
                self.synth.release(i);
                continue;
            };
            let range = &mut self.ranges[i];
            range.push([x]);
            let (lo, hi) = range.range(5.0, 95.0).map_or((x, x), |r| r);
            let (lo, hi) = widen(lo, hi);
            let level = ((x - lo) / (hi - lo)).clamp(0.0, 1.0);
            let amp = 10f64.powf(self.cfg.floor_db * (1.0 - level) / 20.0);
            self.synth.set(
                i,
                VoiceSettings {
                    freq_hz: self.voice_freq(i, n) as f32,
                    amp: amp as f32,
                    pan: voicings[i].pan,
                    timbre: voicings[i].timbre,
                },
            );
        }
        for i in n..self.synth.voices().len() {
            self.synth.release(i);
        }
        let total = samples(self.cfg.tone_ms);
        let gap = samples(self.cfg.gap_ms).min(total);
        self.synth.render(total - gap, out);
        self.synth.release_all();
        self.synth.render(gap, out);
    }
}

/// Cents of `norm` relative to `cfg.reference_hz` in absolute mode:
/// `cents_per_decade · log10(norm / reference_norm)` (uses `|norm|`; `None` for 0 or
/// non-finite). With the default 1200 cents per decade, doubling a norm adds 361.24 cents.
///
/// ```
/// use gradtone_sound::{config::CentsConfig, mapping::absolute_cents};
/// let cfg = CentsConfig::default();
/// assert_eq!(absolute_cents(1.0, &cfg), Some(0.0));
/// assert!((absolute_cents(10.0, &cfg).unwrap() - 1200.0).abs() < 1e-9);
/// ```
pub fn absolute_cents(norm: f64, cfg: &CentsConfig) -> Option<f64> {
    log_norm(norm).map(|x| cfg.cents_per_decade * (x - cfg.reference_norm.log10()))
}

/// Cents of `hz` relative to `reference_hz`.
pub fn hz_to_cents(hz: f64, reference_hz: f64) -> f64 {
    1200.0 * (hz / reference_hz).log2()
}

/// `cents` relative to `reference_hz`, in Hz.
pub fn cents_to_hz(cents: f64, reference_hz: f64) -> f64 {
    reference_hz * (cents / 1200.0).exp2()
}

/// Snaps `cents` to the nearest degree of `scale` (rooted at 0 cents, repeating every 1200),
/// staying within `[lo, hi]` (the nearest in-range degree when the nearest is outside).
/// [`Scale::None`] only clamps.
///
/// ```
/// use gradtone_sound::{config::Scale, mapping::snap_cents};
/// assert_eq!(snap_cents(260.0, Scale::Major, -5000.0, 5000.0), 200.0);
/// assert_eq!(snap_cents(-160.0, Scale::Pentatonic, -5000.0, 5000.0), -300.0); // 900 − 1200
/// ```
pub fn snap_cents(cents: f64, scale: Scale, lo: f64, hi: f64) -> f64 {
    let c = cents.clamp(lo, hi);
    let degrees = scale.degrees();
    if degrees.is_empty() {
        return c;
    }
    let octave = (c / 1200.0).floor();
    // Candidates from the octave below to the one above, so the wrap is covered.
    let mut best: Option<f64> = None;
    for o in [octave - 1.0, octave, octave + 1.0] {
        for &d in degrees {
            let cand = 1200.0 * o + d;
            if cand < lo - 1e-9 || cand > hi + 1e-9 {
                continue;
            }
            if best.is_none_or(|b| (cand - c).abs() < (b - c).abs()) {
                best = Some(cand);
            }
        }
    }
    best.unwrap_or(c)
}

/// **`cents`**: `log10(norm)` → pitch.
///
/// - `range = "absolute"`: `cents = cents_per_decade · log10(norm / reference_norm)` above
///   `reference_hz`; by default a norm of 1 is A4 = 440 Hz and each factor 10 is one octave
///   (doubling a norm: +361.24 cents), so the same norm always has the same pitch, across steps
///   and across runs.
/// - `range = "auto"` (default): the running `low_percentile`…`high_percentile` (5–95) of
///   `log10(norm)` over the last `window` (200) steps, all voices pooled (so louder layers stay
///   higher than quieter ones), spans `auto_low_hz`…`auto_high_hz` (220–1760 Hz, three
///   octaves); norms outside the range go beyond it, up to the clamp.
///
/// Then optional `scale` snapping, and a clamp to `min_hz`…`max_hz` (100–4000 Hz, and
/// always below 0.45 × 44 100 Hz). Voices are panned by depth (input side left). `layout =
/// "chord"` sounds all voices for `tone_ms` (80 ms) per step; `"sequence"` sounds them one after
/// another, `tone_ms` each. The last `gap_ms` (15 ms) of every tone is silent, so repeated
/// pitches are heard as separate steps.
#[derive(Clone, Debug)]
pub struct CentsMapping {
    cfg: CentsConfig,
    timbre: Timbre,
    synth: Synth,
    source: VoiceSource,
    stats: RunningPercentiles,
}

impl CentsMapping {
    /// The mapping, with `config.cents`, `config.synth` and `config.grouping`.
    pub fn new(config: &SoundConfig) -> Self {
        CentsMapping {
            cfg: config.cents.clone(),
            timbre: config.synth.timbre,
            synth: Synth::new(SAMPLE_RATE, config.synth.ramp_ms).with_volume(config.synth.volume),
            source: VoiceSource::new(&config.grouping),
            stats: RunningPercentiles::new(config.cents.window),
        }
    }

    /// The current grouping, when the frames had to be grouped.
    pub fn grouping(&self) -> Option<&Grouping> {
        self.source.grouping.as_ref()
    }

    /// Lowest and highest pitch, in cents relative to `reference_hz`.
    fn cents_limits(&self) -> (f64, f64) {
        let top = self.cfg.max_hz.min(0.449 * f64::from(SAMPLE_RATE));
        (
            hz_to_cents(self.cfg.min_hz, self.cfg.reference_hz),
            hz_to_cents(top, self.cfg.reference_hz),
        )
    }

    /// The pitch `norm` gets now (with the auto range as it stands), Hz; `None` for silence.
    pub fn pitch_hz(&mut self, norm: f64) -> Option<f64> {
        let x = log_norm(norm)?;
        let c = &self.cfg;
        let cents = match c.range {
            Range::Absolute => absolute_cents(norm, c)?,
            Range::Auto => {
                let (lo, hi) = self
                    .stats
                    .range(c.low_percentile, c.high_percentile)
                    .map_or((x, x), |r| r);
                let (lo, hi) = widen(lo, hi);
                let c_lo = hz_to_cents(c.auto_low_hz, c.reference_hz);
                let c_hi = hz_to_cents(c.auto_high_hz, c.reference_hz);
                c_lo + (x - lo) / (hi - lo) * (c_hi - c_lo)
            }
        };
        let (lo, hi) = self.cents_limits();
        Some(cents_to_hz(
            snap_cents(cents, c.scale, lo, hi),
            c.reference_hz,
        ))
    }

    /// Stereo samples one step of `voices` voices renders to.
    pub fn samples_per_step(&self, voices: usize) -> usize {
        match self.cfg.layout {
            Layout::Chord => samples(self.cfg.tone_ms),
            Layout::Sequence => voices * samples(self.cfg.tone_ms),
        }
    }

    fn settings(freq: Option<f64>, voicing: Voicing) -> Option<VoiceSettings> {
        Some(VoiceSettings {
            freq_hz: freq? as f32,
            amp: 1.0,
            pan: voicing.pan,
            timbre: voicing.timbre,
        })
    }
}

impl Mapping for CentsMapping {
    fn sample_rate(&self) -> u32 {
        SAMPLE_RATE
    }

    fn channels(&self) -> u16 {
        2
    }

    fn render(&mut self, frame: &Frame, out: &mut Vec<f32>) {
        let values = self.source.values(frame);
        let voicings = self.source.voicings(frame, self.timbre).to_vec();
        let n = values.len();
        if self.cfg.range == Range::Auto {
            // This step's values count already, so the first step is centred.
            self.stats.push(values.iter().filter_map(|&v| log_norm(v)));
        }
        let freqs: Vec<Option<f64>> = values.iter().map(|&v| self.pitch_hz(v)).collect();
        let tone = samples(self.cfg.tone_ms);
        let gap = samples(self.cfg.gap_ms).min(tone);
        for i in n..self.synth.voices().len() {
            self.synth.release(i);
        }
        match self.cfg.layout {
            Layout::Chord => {
                for (i, &f) in freqs.iter().enumerate() {
                    match Self::settings(f, voicings[i]) {
                        Some(s) => self.synth.set(i, s),
                        None => self.synth.release(i),
                    }
                }
                self.synth.render(tone - gap, out);
                self.synth.release_all();
                self.synth.render(gap, out);
            }
            Layout::Sequence => {
                for (i, &f) in freqs.iter().enumerate() {
                    if let Some(s) = Self::settings(f, voicings[i]) {
                        self.synth.set(i, s);
                    }
                    self.synth.render(tone - gap, out);
                    self.synth.release(i);
                    self.synth.render(gap, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_from_their_names_and_unknown_names_list_them() {
        for kind in MappingKind::ALL {
            assert_eq!(kind.name().parse::<MappingKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.name());
        }
        assert_eq!(
            "loud".parse::<MappingKind>(),
            Err("unknown mapping \"loud\"; use one of seed, depth, cents".to_owned())
        );
        assert_eq!(MappingKind::default(), DEFAULT_MAPPING);
    }

    #[test]
    fn snapping_wraps_octaves_and_respects_limits() {
        assert_eq!(snap_cents(1150.0, Scale::Major, -5000.0, 5000.0), 1100.0);
        assert_eq!(snap_cents(1160.0, Scale::Major, -5000.0, 5000.0), 1200.0);
        assert_eq!(snap_cents(1160.0, Scale::Major, -5000.0, 1150.0), 1100.0);
        assert_eq!(snap_cents(49.0, Scale::Chromatic, -5000.0, 5000.0), 0.0);
        assert_eq!(snap_cents(51.0, Scale::Chromatic, -5000.0, 5000.0), 100.0);
        assert_eq!(snap_cents(9999.0, Scale::None, -10.0, 10.0), 10.0);
    }

    #[test]
    fn instruments_get_their_own_timbre_and_side() {
        let names = [
            "d_real/D.fc1",
            "d_real/D.fc2",
            "d_fake/D.fc1",
            "g_adv/G.fc1",
        ];
        let v = voicings(&names, Timbre::Sine);
        let timbres: Vec<Timbre> = v.iter().map(|v| v.timbre).collect();
        assert_eq!(
            timbres,
            [Timbre::Soft, Timbre::Soft, Timbre::Reed, Timbre::Sine]
        );
        let pans: Vec<f32> = v.iter().map(|v| v.pan).collect();
        assert_eq!(pans, [-0.8, -0.8, 0.0, 0.8]);
        // One instrument (or none): the mapping's timbre, panned by depth.
        let plain = voicings(&["conv1", "conv2", "fc1"], Timbre::Reed);
        assert!(plain.iter().all(|v| v.timbre == Timbre::Reed));
        assert_eq!(plain[0].pan, -0.8);
        assert_eq!(plain[2].pan, 0.8);
        assert!(
            voicings(&["l2/a", "l2/b"], Timbre::Sine)
                .iter()
                .all(|v| v.timbre == Timbre::Sine)
        );
    }

    #[test]
    fn depth_pitches_span_the_range_for_any_count() {
        let m = DepthMapping::new(&SoundConfig::default());
        for n in [2, 4, 12] {
            assert!((m.voice_freq(0, n) - 150.0).abs() < 1e-9);
            assert!((m.voice_freq(n - 1, n) - 2500.0).abs() < 1e-6);
        }
        assert!((m.voice_freq(0, 1) - (150.0f64 * 2500.0).sqrt()).abs() < 1e-9);
    }
}
