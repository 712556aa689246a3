//! [`SoundConfig`]: every sound setting, read from TOML, each with a default.
//!
//! All tables and fields are optional; an empty file is the default configuration. Unknown
//! fields are errors (a typo must not be silently ignored), and every error names the file, the
//! line when known, and the dotted field (`cents.tone_ms`). `crates/sound/examples/sound.toml`
//! is a commented example listing every field with its default.
//!
//! ```
//! use gradtone_sound::config::{Layout, SoundConfig};
//! let cfg = SoundConfig::from_toml_str("mapping = \"cents\"\n[cents]\nlayout = \"sequence\"\n", "inline")?;
//! assert_eq!(cfg.cents.layout, Layout::Sequence);
//! assert_eq!(cfg.cents.tone_ms, 80.0); // the default
//! let err = SoundConfig::from_toml_str("[cents]\ntone_ms = \"long\"\n", "my.toml").unwrap_err();
//! assert!(err.to_string().contains("my.toml line 2: field `cents.tone_ms`"), "{err}");
//! # Ok::<(), gradtone_sound::SoundError>(())
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::SoundError;
use crate::synth::Timbre;
use gradtone_detect::AlarmConfig;
use gradtone_detect::grouping::GroupingConfig;

/// Which mapping turns frames into sound: the `mapping` field of a config, and `--mapping`.
///
/// Read from TOML as its name (`mapping = "seed"`); an unknown name is an error that lists the
/// names. With the `clap` feature it is also a `clap::ValueEnum` (the names, without help text).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MappingKind {
    /// `seed`: the 2019 original, sample-exact ([`SeedMapping`](crate::SeedMapping)).
    Seed,
    /// `depth`: layer → fixed pitch, norm → loudness ([`DepthMapping`](crate::mapping::DepthMapping)).
    Depth,
    /// `cents`: norm → pitch ([`CentsMapping`](crate::mapping::CentsMapping)); the default.
    #[default]
    Cents,
}

impl MappingKind {
    /// Every mapping, in the order the names are listed.
    pub const ALL: [MappingKind; 3] = [MappingKind::Seed, MappingKind::Depth, MappingKind::Cents];

    /// The name in configs and on the command line: `seed`, `depth` or `cents`.
    pub fn name(self) -> &'static str {
        match self {
            MappingKind::Seed => "seed",
            MappingKind::Depth => "depth",
            MappingKind::Cents => "cents",
        }
    }
}

impl std::fmt::Display for MappingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MappingKind {
    /// What is wrong and what to use instead.
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        MappingKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let names = MappingKind::ALL.map(MappingKind::name);
                format!("unknown mapping {name:?}; use one of {}", names.join(", "))
            })
    }
}

impl<'de> Deserialize<'de> for MappingKind {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        // By hand rather than derived: an unknown name keeps the message that lists the names.
        String::deserialize(de)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// By hand rather than derived: a derived `ValueEnum` takes the variants' docs as help, which
/// would change `--help`; the flag's own doc already says what each mapping is.
#[cfg(feature = "clap")]
impl clap::ValueEnum for MappingKind {
    fn value_variants<'a>() -> &'a [Self] {
        &MappingKind::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

/// The mapping new users get.
pub const DEFAULT_MAPPING: MappingKind = MappingKind::Cents;

/// All sound settings. See the [module docs](self) and each field.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SoundConfig {
    /// Which mapping: `seed` (the 2019 original), `depth` or `cents` (default `cents`).
    pub mapping: MappingKind,
    /// The oscillator bank (`[synth]`).
    pub synth: SynthConfig,
    /// The `depth` mapping (`[depth]`).
    pub depth: DepthConfig,
    /// The `cents` mapping (`[cents]`).
    pub cents: CentsConfig,
    /// Grouping many values into few voices (`[grouping]`).
    pub grouping: GroupingConfig,
    /// Alarm detectors and earcons (`[alarms]`).
    pub alarms: AlarmConfig,
}

impl gradtone_detect::grouping::Voicing for SoundConfig {
    fn grouping(&self) -> &GroupingConfig {
        &self.grouping
    }

    fn groups_values(&self) -> bool {
        self.mapping != MappingKind::Seed
    }
}

impl Default for SoundConfig {
    fn default() -> Self {
        SoundConfig {
            mapping: DEFAULT_MAPPING,
            synth: SynthConfig::default(),
            depth: DepthConfig::default(),
            cents: CentsConfig::default(),
            grouping: GroupingConfig::default(),
            alarms: AlarmConfig::default(),
        }
    }
}

/// Oscillator settings shared by the `depth` and `cents` mappings.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    /// Waveform: `sine`, `soft` (triangle-like, default) or `reed` (odd harmonics, bright).
    pub timbre: Timbre,
    /// Attack/release and glide time, ms (0.5–100, default 8): shorter clicks, longer smears.
    pub ramp_ms: f32,
    /// Master volume before the limiter, 0–1 (default 0.8).
    pub volume: f32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            timbre: Timbre::Soft,
            ramp_ms: 8.0,
            volume: 0.8,
        }
    }
}

/// The `depth` mapping: layer → fixed pitch, norm → loudness.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DepthConfig {
    /// Pitch of the first (input-side) voice, Hz (default 150).
    pub low_hz: f64,
    /// Pitch of the last (output-side) voice, Hz (default 2500); voices between are log-spaced.
    pub high_hz: f64,
    /// Length of one step's chord, ms (default 80).
    pub tone_ms: f64,
    /// Silence at the end of each step so steps are heard apart, ms (default 15; < `tone_ms`).
    pub gap_ms: f64,
    /// Steps of history for each voice's loudness range (default 200).
    pub window: usize,
    /// Loudness of a norm at or below its voice's 5th percentile, dB (default −30; the 95th
    /// percentile and above play at 0 dB).
    pub floor_db: f64,
}

impl Default for DepthConfig {
    fn default() -> Self {
        DepthConfig {
            low_hz: 150.0,
            high_hz: 2500.0,
            tone_ms: 80.0,
            gap_ms: 15.0,
            window: 200,
            floor_db: -30.0,
        }
    }
}

/// How the `cents` mapping scales norms to pitch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Range {
    /// Running P_low…P_high of `log10(norm)` (all voices pooled) spans `auto_low_hz`…
    /// `auto_high_hz`: always uses the whole range, but the same norm can sound different later.
    #[default]
    Auto,
    /// Fixed: `reference_norm` sounds at `reference_hz`, and every decade of norm adds
    /// `cents_per_decade` cents, so two runs (or two moments) compare directly.
    Absolute,
}

/// Musical scale the `cents` mapping may snap pitches to (degrees relative to `reference_hz`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// No snapping: the pitch is continuous (default).
    #[default]
    None,
    /// The nearest semitone.
    Chromatic,
    /// The nearest degree of the major scale (0, 200, 400, 500, 700, 900, 1100 cents).
    Major,
    /// The nearest degree of the major pentatonic (0, 200, 400, 700, 900 cents).
    Pentatonic,
}

impl Scale {
    /// The scale's degrees within one octave, cents; empty for [`Scale::None`].
    pub fn degrees(self) -> &'static [f64] {
        match self {
            Scale::None => &[],
            Scale::Chromatic => &[
                0.0, 100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0, 1100.0,
            ],
            Scale::Major => &[0.0, 200.0, 400.0, 500.0, 700.0, 900.0, 1100.0],
            Scale::Pentatonic => &[0.0, 200.0, 400.0, 700.0, 900.0],
        }
    }
}

/// How the `cents` mapping lays voices out in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// All voices at once, one chord per step (default): a step lasts `tone_ms`.
    #[default]
    Chord,
    /// One voice after another, input side first: a step lasts `voices × tone_ms`.
    Sequence,
}

/// The `cents` mapping: `log(norm)` → pitch.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CentsConfig {
    /// `auto` (running percentiles, default) or `absolute` (fixed scale).
    pub range: Range,
    /// Pitch of `reference_norm` in absolute mode, and the root of `scale`, Hz (default 440).
    pub reference_hz: f64,
    /// Norm that sounds at `reference_hz` in absolute mode (default 1.0).
    pub reference_norm: f64,
    /// Absolute mode: cents per factor 10 of norm (default 1200, one octave per decade, so
    /// doubling a norm raises it by `1200·log10 2` ≈ 361.2 cents).
    pub cents_per_decade: f64,
    /// Auto mode: pitch of the `low_percentile` norm, Hz (default 220).
    pub auto_low_hz: f64,
    /// Auto mode: pitch of the `high_percentile` norm, Hz (default 1760, three octaves up).
    pub auto_high_hz: f64,
    /// Auto mode: steps of history (default 200).
    pub window: usize,
    /// Auto mode: the percentile that maps to `auto_low_hz` (default 5).
    pub low_percentile: f64,
    /// Auto mode: the percentile that maps to `auto_high_hz` (default 95).
    pub high_percentile: f64,
    /// Snap to `none` (default), `chromatic`, `major` or `pentatonic`.
    pub scale: Scale,
    /// `chord` (default) or `sequence`.
    pub layout: Layout,
    /// Length of one tone, ms (default 80; ≥ 60 ms lets the ear settle on a pitch).
    pub tone_ms: f64,
    /// Silence at the end of each tone so repeated pitches are heard as steps, ms (default 15).
    pub gap_ms: f64,
    /// Lowest pitch, Hz (default 100); lower pitches are clamped.
    pub min_hz: f64,
    /// Highest pitch, Hz (default 4000); also always below 0.45 × the sample rate.
    pub max_hz: f64,
}

impl Default for CentsConfig {
    fn default() -> Self {
        CentsConfig {
            range: Range::Auto,
            reference_hz: 440.0,
            reference_norm: 1.0,
            cents_per_decade: 1200.0,
            auto_low_hz: 220.0,
            auto_high_hz: 1760.0,
            window: 200,
            low_percentile: 5.0,
            high_percentile: 95.0,
            scale: Scale::None,
            layout: Layout::Chord,
            tone_ms: 80.0,
            gap_ms: 15.0,
            min_hz: 100.0,
            max_hz: 4000.0,
        }
    }
}

impl SoundConfig {
    /// Parses and validates TOML text; `source` names it in errors (a path or e.g. `--sound`).
    pub fn from_toml_str(text: &str, source: &str) -> Result<Self, SoundError> {
        let err = |line: Option<u64>, field: String, message: String| SoundError::Config {
            file: source.to_owned(),
            line,
            field,
            message,
        };
        let de = toml::Deserializer::parse(text).map_err(|e| {
            err(
                line_of(text, e.span()),
                "(document)".into(),
                e.message().trim().to_owned(),
            )
        })?;
        let cfg: SoundConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            err(
                line_of(text, inner.span()),
                field,
                inner.message().trim().to_owned(),
            )
        })?;
        cfg.validate().map_err(|(field, message)| {
            err(line_of_field(text, field), field.to_owned(), message)
        })?;
        Ok(cfg)
    }

    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, SoundError> {
        let text = std::fs::read_to_string(path).map_err(|source| SoundError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Checks ranges; the error is `(field, what is allowed)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        fn check(ok: bool, field: &'static str, msg: &str) -> Result<(), (&'static str, String)> {
            if ok {
                Ok(())
            } else {
                Err((field, msg.to_owned()))
            }
        }
        let fin_pos = |x: f64| x.is_finite() && x > 0.0;
        let s = &self.synth;
        check(
            (0.5..=100.0).contains(&s.ramp_ms),
            "synth.ramp_ms",
            "must be 0.5–100 ms",
        )?;
        check(
            (0.0..=1.0).contains(&s.volume),
            "synth.volume",
            "must be 0–1",
        )?;
        let d = &self.depth;
        check(
            fin_pos(d.low_hz) && d.low_hz >= 20.0,
            "depth.low_hz",
            "must be ≥ 20 Hz",
        )?;
        check(
            fin_pos(d.high_hz) && d.high_hz > d.low_hz && d.high_hz <= 19_000.0,
            "depth.high_hz",
            "must be above depth.low_hz and ≤ 19000 Hz",
        )?;
        check(
            d.tone_ms.is_finite() && (10.0..=10_000.0).contains(&d.tone_ms),
            "depth.tone_ms",
            "must be 10–10000 ms",
        )?;
        check(
            d.gap_ms.is_finite() && d.gap_ms >= 0.0 && d.gap_ms < d.tone_ms,
            "depth.gap_ms",
            "must be ≥ 0 and below depth.tone_ms",
        )?;
        check(d.window >= 1, "depth.window", "must be ≥ 1 step")?;
        check(
            d.floor_db.is_finite() && (-120.0..=0.0).contains(&d.floor_db),
            "depth.floor_db",
            "must be −120–0 dB",
        )?;
        let c = &self.cents;
        check(
            fin_pos(c.reference_hz),
            "cents.reference_hz",
            "must be a positive frequency",
        )?;
        check(
            fin_pos(c.reference_norm),
            "cents.reference_norm",
            "must be a positive norm",
        )?;
        check(
            c.cents_per_decade.is_finite() && c.cents_per_decade > 0.0,
            "cents.cents_per_decade",
            "must be > 0",
        )?;
        check(
            fin_pos(c.auto_low_hz),
            "cents.auto_low_hz",
            "must be a positive frequency",
        )?;
        check(
            fin_pos(c.auto_high_hz) && c.auto_high_hz > c.auto_low_hz,
            "cents.auto_high_hz",
            "must be above cents.auto_low_hz",
        )?;
        check(c.window >= 1, "cents.window", "must be ≥ 1 step")?;
        check(
            (0.0..100.0).contains(&c.low_percentile),
            "cents.low_percentile",
            "must be 0–100 and below cents.high_percentile",
        )?;
        check(
            c.high_percentile > c.low_percentile && c.high_percentile <= 100.0,
            "cents.high_percentile",
            "must be above cents.low_percentile and ≤ 100",
        )?;
        check(
            c.tone_ms.is_finite() && (10.0..=10_000.0).contains(&c.tone_ms),
            "cents.tone_ms",
            "must be 10–10000 ms",
        )?;
        check(
            c.gap_ms.is_finite() && c.gap_ms >= 0.0 && c.gap_ms < c.tone_ms,
            "cents.gap_ms",
            "must be ≥ 0 and below cents.tone_ms",
        )?;
        check(
            fin_pos(c.min_hz) && c.min_hz >= 20.0,
            "cents.min_hz",
            "must be ≥ 20 Hz",
        )?;
        check(
            fin_pos(c.max_hz) && c.max_hz > c.min_hz && c.max_hz <= 19_000.0,
            "cents.max_hz",
            "must be above cents.min_hz and ≤ 19000 Hz",
        )?;
        check(
            (1..=32).contains(&self.grouping.max_voices),
            "grouping.max_voices",
            "must be 1–32",
        )?;
        check(
            self.grouping.patterns.iter().all(|p| !p.is_empty()),
            "grouping.patterns",
            "patterns must not be empty strings",
        )?;
        self.alarms.validate()
    }
}

/// 1-based line where `field` (dotted, e.g. `cents.gap_ms`) is set in `text`, if it is.
fn line_of_field(text: &str, field: &str) -> Option<u64> {
    let (table, key) = field.rsplit_once('.').unwrap_or(("", field));
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            current = header.trim_end_matches(']').trim().to_owned();
        } else if current == table
            && line
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return Some(i as u64 + 1);
        }
    }
    None
}

/// 1-based line of a byte offset.
fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> Option<u64> {
    let start = span?.start.min(text.len());
    Some(
        text.as_bytes()[..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64
            + 1,
    )
}
