//! The synthesised mappings, measured on their stereo output: pitch and pan per voice, click-free
//! boundaries, no clipping with many voices, nothing at or above Nyquist, the cents law, scale
//! snapping, grouping of a 150-tensor model.

use gradtone_frame::Frame;
use gradtone_sound::Mapping;
use gradtone_sound::analysis::{dominant_frequency, goertzel_power, peak};
use gradtone_sound::config::{Layout, Range, Scale, SoundConfig};
use gradtone_sound::mapping::{
    self, CentsMapping, DepthMapping, MappingKind, depth_pan, hz_to_cents,
};
use gradtone_sound::synth::{SAMPLE_RATE, Synth, Timbre, VoiceSettings, pan_gains};

const SR: u32 = SAMPLE_RATE;

fn frame(step: u64, values: &[f64]) -> Frame {
    values
        .iter()
        .enumerate()
        .fold(Frame::new(step), |f, (i, &v)| {
            f.with_value(format!("layer{i}"), v)
        })
}

fn channels(stereo: &[f32]) -> (Vec<f32>, Vec<f32>) {
    (
        stereo.iter().step_by(2).copied().collect(),
        stereo.iter().skip(1).step_by(2).copied().collect(),
    )
}

fn cents_config(f: impl FnOnce(&mut SoundConfig)) -> SoundConfig {
    let mut cfg = SoundConfig::default();
    cfg.synth.timbre = Timbre::Sine;
    cfg.cents.range = Range::Absolute;
    f(&mut cfg);
    cfg
}

/// Renders `steps` copies of `values` and returns the held part of the last step (after the
/// attack/glide settle, before the gap), split into L and R.
fn steady(m: &mut dyn Mapping, values: &[f64], steps: u64) -> (Vec<f32>, Vec<f32>) {
    let mut out = Vec::new();
    for s in 0..steps {
        out.clear();
        m.render(&frame(s, values), &mut out);
    }
    let (l, r) = channels(&out);
    // 80 ms tone − 15 ms gap; skip the first 15 ms (attack).
    let (a, b) = (samples(15.0), samples(65.0));
    (l[a..b].to_vec(), r[a..b].to_vec())
}

/// Power at `f` of the Hann-windowed signal (×(8/3)·… irrelevant: only ratios are compared).
/// The window keeps other voices' leakage ~80 dB down, so a quiet voice can be measured next
/// to a loud one.
fn hann_power(x: &[f32], f: f64) -> f64 {
    let n = x.len() as f64;
    let w: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, &s)| s * (std::f64::consts::PI * i as f64 / n).sin().powi(2) as f32)
        .collect();
    goertzel_power(&w, SR, f)
}

fn samples(ms: f64) -> usize {
    (ms * 1e-3 * f64::from(SR)).round() as usize
}

#[test]
fn cents_chord_pitch_and_pan_per_voice() {
    let cfg = cents_config(|_| {});
    let mut m = CentsMapping::new(&cfg);
    let norms = [0.3, 1.7, 6.0];
    let (l, r) = steady(&mut m, &norms, 3);
    for (i, &norm) in norms.iter().enumerate() {
        // 1200 cents per decade: an octave (×2) per factor 10 of norm, norm 1 = 440 Hz.
        let want = 440.0 * 2f64.powf(norm.log10());
        let f = m.pitch_hz(norm).expect("finite norm");
        assert!(
            (f - want).abs() < 1e-6,
            "voice {i}: formula gives {f}, want {want}"
        );
        // Measure: the peak near the expected pitch in the mono sum…
        let mono: Vec<f32> = l.iter().zip(&r).map(|(a, b)| a + b).collect();
        let got = dominant_frequency(&mono, SR, want * 0.9, want * 1.1);
        println!("voice {i}: norm {norm} → want {want:.2} Hz, measured {got:.2} Hz");
        assert!(
            (got - want).abs() < 1.0,
            "voice {i}: measured {got}, want {want}"
        );
        // …and the L/R energy ratio at that pitch follows the equal-power law.
        let (pl, pr) = (hann_power(&l, want), hann_power(&r, want));
        let (gl, gr) = pan_gains(depth_pan(i, norms.len()));
        let want_ratio = f64::from(gr * gr / (gl * gl));
        let ratio = pr / pl;
        println!("voice {i}: R/L power {ratio:.4}, pan law {want_ratio:.4}");
        assert!(
            (ratio / want_ratio - 1.0).abs() < 0.02,
            "voice {i}: R/L {ratio} vs {want_ratio}"
        );
    }
}

#[test]
fn depth_voices_sit_at_their_registers_and_norm_sets_loudness() {
    let mut cfg = SoundConfig::default();
    cfg.synth.timbre = Timbre::Sine;
    let mut m = DepthMapping::new(&cfg);
    let n = 4;
    let freqs: Vec<f64> = (0..n).map(|i| m.voice_freq(i, n)).collect();
    assert!((freqs[0] - 150.0).abs() < 1e-9 && (freqs[3] - 2500.0).abs() < 1e-6);
    // Build a history so each voice's range is 0.1…10, then play layer 0 at the top of its range
    // and layer 1 at the bottom.
    let mut out = Vec::new();
    for s in 0..40u64 {
        let v = if s % 2 == 0 { 0.1 } else { 10.0 };
        m.render(&frame(s, &[v, v, v, v]), &mut out);
    }
    let (l, r) = steady(&mut m, &[10.0, 0.1, 1.0, 1.0], 1);
    let mono: Vec<f32> = l.iter().zip(&r).map(|(a, b)| a + b).collect();
    let powers: Vec<f64> = freqs.iter().map(|&f| hann_power(&mono, f)).collect();
    for (i, &f) in freqs.iter().enumerate() {
        let got = dominant_frequency(&mono, SR, f * 0.93, f * 1.07);
        println!(
            "depth voice {i}: {f:.1} Hz measured {got:.1} Hz, power {:.3e}",
            powers[i]
        );
        assert!((got - f).abs() < 1.5, "voice {i}: {got} vs {f}");
    }
    // Top of range = 0 dB, bottom = −30 dB, after the pan law's effect on the mono sum.
    let mono_gain = |i: usize| {
        let (l, r) = pan_gains(depth_pan(i, n));
        f64::from(l + r)
    };
    let pan_db = 20.0 * (mono_gain(0) / mono_gain(1)).log10();
    let db = 10.0 * (powers[0] / powers[1]).log10() - pan_db;
    println!("loud vs quiet layer: {db:.2} dB (want 30)");
    assert!((db - 30.0).abs() < 0.5, "{db} dB");
}

#[test]
fn tone_boundaries_have_no_clicks() {
    // Sequence layout: each tone starts and stops within the step, the worst case for clicks.
    let cfg = cents_config(|c| {
        c.cents.layout = Layout::Sequence;
        c.synth.volume = 1.0;
    });
    let mut m = CentsMapping::new(&cfg);
    let norms = [0.5, 0.7, 0.6];
    let mut out = Vec::new();
    for s in 0..3 {
        m.render(&frame(s, &norms), &mut out);
    }
    let (l, _) = channels(&out);
    let f_max = norms
        .iter()
        .map(|&v| m.pitch_hz(v).unwrap_or(0.0))
        .fold(0.0, f64::max);
    let amp = f64::from(l.iter().fold(0.0f32, |a, x| a.max(x.abs())));
    // A sine of amplitude A at f moves at most 2πfA/fs per sample; the envelope adds at most
    // A per ramp length (8 ms).
    let bound =
        2.0 * std::f64::consts::PI * f_max * amp / f64::from(SR) + amp / (0.008 * f64::from(SR));
    let tone = samples(80.0);
    let hold = samples(65.0);
    let mut worst = 0.0f64;
    for k in 0..9 {
        for edge in [k * tone, k * tone + hold] {
            let (a, b) = (edge.saturating_sub(200).max(1), (edge + 600).min(l.len()));
            for n in a..b {
                worst = worst.max(f64::from((l[n] - l[n - 1]).abs()));
            }
        }
    }
    // A hard switch at a random phase would jump by up to `amp`.
    println!("max |Δx| near tone boundaries {worst:.5}, bound {bound:.5}, amplitude {amp:.3}");
    assert!(worst <= bound * 1.05, "{worst} > {bound}");
    assert!(worst < amp / 10.0);
}

#[test]
fn pitch_changes_glide_without_jumps() {
    let mut s = Synth::new(SR, 8.0);
    let mut out = Vec::new();
    let set = |s: &mut Synth, f: f32| {
        s.set(
            0,
            VoiceSettings {
                freq_hz: f,
                amp: 1.0,
                pan: 0.0,
                timbre: Timbre::Soft,
            },
        )
    };
    set(&mut s, 300.0);
    s.render(4410, &mut out);
    set(&mut s, 1200.0);
    s.render(4410, &mut out);
    let (l, _) = channels(&out);
    let worst = l
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0f32, f32::max);
    let amp = peak(&l);
    // The steepest a (normalised, band-limited) voice at 1200 Hz can move, with slack for the
    // harmonics: 2π·f·A/fs × 1.2.
    let bound = 2.0 * std::f32::consts::PI * 1200.0 * amp / SR as f32 * 1.2;
    println!("glide 300 → 1200 Hz: max |Δx| {worst:.4}, bound {bound:.4}");
    assert!(worst < bound, "{worst} ≥ {bound}");
    let got = dominant_frequency(&l[4410 + 2205..], SR, 100.0, 3000.0);
    assert!((got - 1200.0).abs() < 2.0, "{got}");
}

#[test]
fn twelve_and_sixteen_loud_voices_never_clip() {
    for voices in [12usize, 16] {
        for timbre in [Timbre::Sine, Timbre::Reed] {
            // Worst case: all voices at the same pitch, in phase, full amplitude, volume 1.
            let cfg = cents_config(|c| {
                c.synth.volume = 1.0;
                c.synth.timbre = timbre;
                c.grouping.max_voices = 16;
            });
            let mut m = CentsMapping::new(&cfg);
            let mut out = Vec::new();
            for s in 0..5 {
                m.render(&frame(s, &vec![1.0; voices]), &mut out);
                let spread: Vec<f64> = (0..voices).map(|i| 0.2 + i as f64 * 0.37).collect();
                m.render(&frame(s, &spread), &mut out);
            }
            let p = peak(&out);
            println!("{voices} voices, {timbre:?}: peak {p:.4}");
            assert!(p <= 1.0, "{voices} voices {timbre:?}: peak {p}");
            assert!(p > 0.5, "and it is not silent: {p}");
        }
        let mut cfg = SoundConfig::default();
        cfg.synth.volume = 1.0;
        cfg.grouping.max_voices = 16;
        let mut m = DepthMapping::new(&cfg);
        let mut out = Vec::new();
        for s in 0..20 {
            // Alternating low/high so every voice's latest norm is at the top of its range.
            let v = if s % 2 == 0 { 0.01 } else { 100.0 };
            m.render(&frame(s, &vec![v; voices]), &mut out);
        }
        let p = peak(&out);
        println!("depth, {voices} voices at max loudness: peak {p:.4}");
        assert!(p <= 1.0 && p > 0.3, "{p}");
    }
}

/// Power at every 10 Hz from `lo` to Nyquist, as a fraction of the total power.
fn power_above(x: &[f32], lo: f64) -> f64 {
    let total: f64 = x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64;
    let mut worst = 0.0f64;
    let mut f = lo;
    while f <= f64::from(SR) / 2.0 {
        worst = worst.max(goertzel_power(x, SR, f));
        f += 10.0;
    }
    worst / total
}

#[test]
fn nothing_reaches_nyquist() {
    // A norm that would map far above Nyquist (absolute mode, huge norm, 19 kHz ceiling).
    let cfg = cents_config(|c| {
        c.synth.timbre = Timbre::Reed;
        c.cents.max_hz = 19_000.0;
        c.cents.tone_ms = 1000.0;
    });
    let mut m = CentsMapping::new(&cfg);
    let f = m.pitch_hz(1e12).expect("finite");
    assert!((f - 19_000.0).abs() < 1e-6, "clamped to max_hz: {f}");
    let mut out = Vec::new();
    m.render(&frame(0, &[1e12]), &mut out);
    let (l, _) = channels(&out);
    let body = &l[samples(20.0)..samples(980.0)];
    let got = dominant_frequency(body, SR, 1000.0, 22_050.0);
    let above = power_above(body, 20_000.0);
    println!("norm 1e12 → {got:.1} Hz; strongest component above 20 kHz: {above:.2e} of the power");
    assert!((got - 19_000.0).abs() < 1.0);
    assert!(above < 1e-5, "{above}");

    // A reed at 5.3 kHz: harmonic 3 (15.9 kHz) is there, harmonic 5 (26.5 kHz) is not, and
    // neither is its alias at 44.1 − 26.5 = 17.6 kHz.
    let mut s = Synth::new(SR, 8.0);
    s.set(
        0,
        VoiceSettings {
            freq_hz: 5300.0,
            amp: 1.0,
            pan: 0.0,
            timbre: Timbre::Reed,
        },
    );
    let mut out = Vec::new();
    s.render(44_100, &mut out);
    let (l, _) = channels(&out);
    let body = &l[4410..];
    let p1 = goertzel_power(body, SR, 5300.0);
    let p3 = goertzel_power(body, SR, 15_900.0);
    let alias = goertzel_power(body, SR, 44_100.0 - 26_500.0);
    println!(
        "reed 5.3 kHz: 3rd harmonic {:.3e}, alias of the 5th {:.3e} (of fundamental)",
        p3 / p1,
        alias / p1
    );
    assert!(
        p3 / p1 > 0.01,
        "3rd harmonic kept (band-limited, not removed)"
    );
    assert!(alias / p1 < 1e-7, "no alias: {}", alias / p1);
    assert!(power_above(body, 20_000.0) < 1e-6);
    // Asking the synth for more than 0.45·fs clamps it there.
    s.set(
        0,
        VoiceSettings {
            freq_hz: 30_000.0,
            amp: 1.0,
            pan: 0.0,
            timbre: Timbre::Sine,
        },
    );
    s.render(4410, &mut out);
    assert!((s.voices()[0].freq_hz() - 0.45 * 44_100.0).abs() < 1.0);
}

#[test]
fn doubling_the_norm_adds_361_cents_in_absolute_mode() {
    let cfg = cents_config(|_| {});
    let want = 1200.0 * 2f64.log10();
    for base in [0.05, 0.4, 1.3, 9.0] {
        let mut m = CentsMapping::new(&cfg);
        let (a, _) = steady(&mut m, &[base], 2);
        let (b, _) = steady(&mut m, &[2.0 * base], 2);
        let fa = dominant_frequency(&a, SR, 90.0, 4100.0);
        let fb = dominant_frequency(&b, SR, 90.0, 4100.0);
        let cents = hz_to_cents(fb, fa);
        println!("norm {base} → {fa:.2} Hz, ×2 → {fb:.2} Hz: {cents:.2} cents (want {want:.2})");
        assert!((cents - want).abs() < 3.0, "{cents}");
    }
    // Absolute mode has no memory: the same norm sounds the same after other norms.
    let mut m = CentsMapping::new(&cfg);
    let first = m.pitch_hz(0.8);
    for s in 0..50 {
        m.render(&frame(s, &[100.0 * (s as f64 + 1.0)]), &mut Vec::new());
    }
    assert_eq!(m.pitch_hz(0.8), first);
}

#[test]
fn scale_snapping_lands_on_scale_degrees() {
    for scale in [Scale::Chromatic, Scale::Major, Scale::Pentatonic] {
        let cfg = cents_config(|c| c.cents.scale = scale);
        let mut m = CentsMapping::new(&cfg);
        let mut seen = Vec::new();
        for k in 0..12 {
            let norm = 0.2 * 1.23f64.powi(k);
            let (l, r) = steady(&mut m, &[norm], 1);
            let mono: Vec<f32> = l.iter().zip(&r).map(|(a, b)| a + b).collect();
            let f = dominant_frequency(&mono, SR, 90.0, 4100.0);
            let cents = hz_to_cents(f, 440.0).rem_euclid(1200.0);
            let off = scale
                .degrees()
                .iter()
                .chain(&[1200.0])
                .map(|d| (cents - d).abs())
                .fold(f64::INFINITY, f64::min);
            assert!(
                off < 3.0,
                "{scale:?}: norm {norm} → {f:.2} Hz, {off:.2} cents off a degree"
            );
            seen.push(f);
        }
        println!(
            "{scale:?}: {:?}",
            seen.iter().map(|f| f.round()).collect::<Vec<_>>()
        );
        let distinct = {
            let mut v: Vec<i64> = seen.iter().map(|f| f.round() as i64).collect();
            v.dedup();
            v.len()
        };
        assert!(distinct >= 6, "snapping kept the pitch moving: {distinct}");
    }
}

#[test]
fn auto_range_spreads_the_running_percentiles() {
    // Norms of very different magnitude all land in 220–1760 Hz once their range is known.
    let mut cfg = SoundConfig::default();
    cfg.synth.timbre = Timbre::Sine;
    let mut m = CentsMapping::new(&cfg);
    for s in 0..100u64 {
        let x = 1e-4 * 10f64.powf((s % 10) as f64 / 9.0); // 1e-4 … 1e-3
        m.render(&frame(s, &[x]), &mut Vec::new());
    }
    let lo = m.pitch_hz(1.2e-4).expect("finite");
    let hi = m.pitch_hz(0.9e-3).expect("finite");
    println!("auto: 1.2e-4 → {lo:.1} Hz, 9e-4 → {hi:.1} Hz");
    assert!((200.0..330.0).contains(&lo), "{lo}");
    assert!((1300.0..1800.0).contains(&hi), "{hi}");
}

#[test]
fn by_name_gives_stereo_and_seed_stays_mono() {
    let cfg = SoundConfig::default();
    assert_eq!(cfg.mapping, MappingKind::Cents);
    for kind in MappingKind::ALL {
        let m = mapping::build(kind, &cfg);
        let want = if kind == MappingKind::Seed { 1 } else { 2 };
        assert_eq!((m.sample_rate(), m.channels()), (44_100, want), "{kind}");
    }
    // Sequence layout: a step lasts voices × tone_ms.
    let cfg = cents_config(|c| c.cents.layout = Layout::Sequence);
    let mut m = CentsMapping::new(&cfg);
    let mut out = Vec::new();
    m.render(&frame(0, &[1.0, 2.0, 3.0]), &mut out);
    assert_eq!(out.len(), 2 * 3 * samples(80.0));
    assert_eq!(m.samples_per_step(3), 3 * samples(80.0));
}

#[test]
fn a_150_tensor_model_groups_into_12_voices_and_renders_clean() {
    let mut names = vec!["embed.weight".to_owned()];
    for b in 0..30 {
        for p in ["attn.weight", "attn.bias", "mlp.weight", "mlp.bias"] {
            names.push(format!("blocks.{b}.{p}"));
        }
    }
    names.extend(
        (0..29)
            .take(28)
            .map(|b| format!("blocks.{b}.norm.weight"))
            .chain(["head.weight".to_owned()]),
    );
    assert_eq!(names.len(), 150);
    let cfg = SoundConfig::default();
    let g = gradtone_detect::grouping::Grouping::new(&names, &cfg.grouping);
    println!("{}", g.legend_text());
    assert!(g.voices() <= 12 && g.voices() >= 6, "{} voices", g.voices());
    let legend = g.legend();
    assert_eq!(legend[0].0, "embed");
    assert_eq!(legend.last().map(|l| l.0.as_str()), Some("head"));
    assert_eq!(legend[1].0, "blocks.0-2");
    let members: usize = legend.iter().map(|(_, m)| m.len()).sum();
    assert_eq!(members, 150, "every tensor in exactly one voice");
    assert!(legend[1].1.contains(&"blocks.1.mlp.bias".to_owned()));

    // Aggregation is the L2 norm of the members.
    let values: Vec<f64> = (0..150).map(|i| 0.01 * (i as f64 + 1.0)).collect();
    let agg = g.aggregate(&values);
    let want0 = values[0];
    let want1: f64 = names
        .iter()
        .zip(&values)
        .filter(|(n, _)| legend[1].1.contains(n))
        .map(|(_, v)| v * v)
        .sum::<f64>()
        .sqrt();
    assert!((agg[0] - want0).abs() < 1e-12 && (agg[1] - want1).abs() < 1e-12);

    // Both mappings render it, loud, without clipping, with one pitch per voice.
    for kind in [MappingKind::Cents, MappingKind::Depth] {
        let mut cfg = SoundConfig::default();
        cfg.synth.volume = 1.0;
        let mut m = mapping::build(kind, &cfg);
        let mut out = Vec::new();
        for s in 0..20u64 {
            let f = names.iter().zip(&values).fold(Frame::new(s), |f, (n, &v)| {
                f.with_value(n.clone(), v * (1.0 + 0.3 * ((s as f64) * 1.7).sin()))
            });
            m.render(&f, &mut out);
        }
        let p = peak(&out);
        println!("{kind}: 150 tensors, 20 steps: peak {p:.3}");
        assert!(p <= 1.0 && p > 0.2, "{kind}: {p}");
    }
    let mut m = DepthMapping::new(&cfg);
    let f = names
        .iter()
        .fold(Frame::new(0), |f, n| f.with_value(n.clone(), 1.0));
    m.render(&f, &mut Vec::new());
    assert_eq!(m.grouping().map(|g| g.voices()), Some(g.voices()));
}

/// Values named `term/layer` are instruments: with two terms, the first sounds on the left in
/// the soft timbre (3rd harmonic present), the second on the right in the reed timbre (3rd
/// harmonic much stronger), whatever the layers' depth order.
#[test]
fn loss_terms_are_instruments_with_their_own_side_and_timbre() {
    let cfg = cents_config(|_| {});
    let mut m = CentsMapping::new(&cfg);
    let f = |s| {
        Frame::new(s)
            .with_value("nll/conv1", 1.0)
            .with_value("l2/conv1", 0.1)
    };
    let mut out = Vec::new();
    for s in 0..3 {
        out.clear();
        m.render(&f(s), &mut out);
    }
    let (l, r) = channels(&out);
    let (a, b) = (samples(15.0), samples(65.0));
    let (l, r) = (&l[a..b], &r[a..b]);
    let (f_nll, f_l2) = (440.0, 220.0);
    // nll left, l2 right (equal-power pan ±0.8).
    assert!(hann_power(l, f_nll) > 20.0 * hann_power(r, f_nll));
    assert!(hann_power(r, f_l2) > 20.0 * hann_power(l, f_l2));
    // Timbre: 3rd harmonic relative to the fundamental, soft (1/9) vs reed (1/3).
    let third = |x: &[f32], f0: f64| (hann_power(x, 3.0 * f0) / hann_power(x, f0)).sqrt();
    let (soft, reed) = (third(l, f_nll), third(r, f_l2));
    println!("3rd/1st amplitude: nll {soft:.3}, l2 {reed:.3}");
    assert!(soft < 0.15 && reed > 0.25, "soft {soft}, reed {reed}");
}
