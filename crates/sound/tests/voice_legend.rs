//! The console legend says what plays, checked by measuring the audio: `seed` plays every value
//! as its own tone (and says so), `depth`/`cents` play the voices the legend lists.

use gradtone_frame::Frame;
use gradtone_sound::Mapping;
use gradtone_sound::analysis::{dominant_frequency, goertzel_power};
use gradtone_sound::config::SoundConfig;
use gradtone_sound::mapping::{self, DepthMapping, MappingKind, voice_legend};
use gradtone_sound::synth::Timbre;
use gradtone_testkit::transformer_names;

const SR: u32 = 44_100;

#[test]
fn seed_legend_says_every_value_plays_and_it_does() {
    let names = transformer_names();
    assert_eq!(names.len(), 27);
    let cfg = SoundConfig {
        mapping: MappingKind::Seed,
        ..SoundConfig::default()
    };
    let legend = voice_legend(&cfg, &names).expect("27 > 12 values: a legend");
    assert!(
        legend.starts_with("27 values, each its own 10 ms tone"),
        "{legend}"
    );
    assert!(!legend.contains("grouped into"), "{legend}");

    // Measure: 27 tones of 441 samples, each at 200 + 100·v Hz, then 882 samples of silence.
    let mut m = mapping::build(MappingKind::Seed, &cfg);
    let frame = names.iter().enumerate().fold(Frame::new(0), |f, (i, n)| {
        f.with_value(n.as_str(), 1.0 + 0.5 * i as f64)
    });
    let mut out = Vec::new();
    m.render(&frame, &mut out);
    assert_eq!(out.len(), 27 * 441 + 882);
    for (i, slot) in out[..27 * 441].chunks(441).enumerate() {
        let want = 200.0 + 100.0 * (1.0 + 0.5 * i as f64);
        let got = dominant_frequency(slot, SR, 100.0, 2000.0);
        assert!(
            (got - want).abs() < 0.05 * want,
            "slot {i}: {got} Hz, want {want}"
        );
    }
}

#[test]
fn depth_legend_names_the_voices_that_play() {
    let names = transformer_names();
    let mut cfg = SoundConfig {
        mapping: MappingKind::Depth,
        ..SoundConfig::default()
    };
    cfg.synth.timbre = Timbre::Sine;
    let legend = voice_legend(&cfg, &names).expect("a legend");
    let first = legend.lines().next().unwrap();
    let voices: usize = first
        .strip_prefix("27 values grouped into ")
        .and_then(|r| r.strip_suffix(" voices:"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{first}"));
    assert!(voices < 12 && voices > 1, "{voices}");
    assert_eq!(legend.lines().count(), 1 + voices);

    // Measure: depth gives voice i of n a fixed pitch; with the legend's n, every one of those
    // pitches sounds, and the pitches 27 raw tones would have had (n = 27) mostly do not.
    let mut m = DepthMapping::new(&cfg);
    let frame = names
        .iter()
        .fold(Frame::new(0), |f, n| f.with_value(n.as_str(), 1.0));
    let mut out = Vec::new();
    for _ in 0..3 {
        out.clear();
        m.render(&frame, &mut out);
    }
    let mono: Vec<f32> = out.chunks(2).map(|c| c[0] + c[1]).collect();
    let body = &mono[..mono.len() * 3 / 4];
    let heard: Vec<f64> = (0..voices)
        .map(|i| goertzel_power(body, SR, m.voice_freq(i, voices)))
        .collect();
    let floor = heard.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(floor > 0.0, "{heard:?}");
    let raw_pitches_heard = (0..27)
        .map(|i| m.voice_freq(i, 27))
        .filter(|&f| (0..voices).all(|k| (m.voice_freq(k, voices) - f).abs() > 30.0))
        .filter(|&f| goertzel_power(body, SR, f) > 0.1 * floor)
        .count();
    assert_eq!(raw_pitches_heard, 0, "27 separate tones would be heard");
    assert_eq!(m.grouping().map(|g| g.voices()), Some(voices));
}
