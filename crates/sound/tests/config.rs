//! TOML config: the example file is the defaults, and errors name the file, line and field.

use std::path::Path;

use gradtone_sound::config::{Layout, MappingKind, Range, Scale, SoundConfig};
use gradtone_sound::synth::Timbre;

fn err(text: &str) -> String {
    match SoundConfig::from_toml_str(text, "test.toml") {
        Ok(cfg) => panic!("accepted {text:?} as {cfg:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn example_file_documents_exactly_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sound.toml");
    let cfg = SoundConfig::from_file(&path).expect("the example parses");
    assert_eq!(cfg, SoundConfig::default());
    assert_eq!(
        SoundConfig::from_toml_str("", "empty").expect("empty is fine"),
        SoundConfig::default()
    );
}

#[test]
fn fields_are_read() {
    let cfg = SoundConfig::from_toml_str(
        r#"
mapping = "depth"
[synth]
timbre = "reed"
[cents]
range = "absolute"
scale = "pentatonic"
layout = "sequence"
tone_ms = 120
[grouping]
patterns = ["blocks.*", "head"]
[alarms.explosion]
factor = 20
"#,
        "t",
    )
    .expect("valid");
    assert_eq!(cfg.mapping, MappingKind::Depth);
    assert_eq!(cfg.synth.timbre, Timbre::Reed);
    assert_eq!(cfg.cents.range, Range::Absolute);
    assert_eq!(cfg.cents.scale, Scale::Pentatonic);
    assert_eq!(cfg.cents.layout, Layout::Sequence);
    assert_eq!(cfg.cents.tone_ms, 120.0, "integers are accepted for floats");
    assert_eq!(cfg.grouping.patterns, ["blocks.*", "head"]);
    assert_eq!(cfg.alarms.explosion.factor, 20.0);
    // The default warm-up changed from 2 to 1 (issue 13: alarms judged from step 1).
    assert_eq!(
        cfg.alarms.explosion.warmup, 1,
        "untouched fields keep their defaults"
    );
}

/// A config written before the divergence, layer-death and plateau-patience settings existed
/// still parses, keeping its values; the new settings read and validate like the others.
#[test]
fn older_alarm_configs_still_parse_and_new_fields_validate() {
    let old = "[alarms]
enabled = true
volume = 0.5
rearm_after = 10
               [alarms.non_finite]
enabled = true
               [alarms.explosion]
enabled = true
factor = 12.0
warmup = 2
window = 40
               [alarms.dead]
enabled = true
epsilon = 1e-8
               [alarms.plateau]
enabled = true
window = 30
min_improvement_pct = 2.0
";
    let cfg = SoundConfig::from_toml_str(old, "old.toml").expect("an old config parses");
    let a = &cfg.alarms;
    assert_eq!((a.volume, a.rearm_after), (0.5, 10));
    assert_eq!(
        (a.explosion.factor, a.explosion.warmup, a.explosion.window),
        (12.0, 2, 40)
    );
    assert_eq!((a.plateau.window, a.plateau.min_improvement_pct), (30, 2.0));
    assert_eq!(a.divergence, Default::default());
    let new = "[alarms.divergence]
start_factor = 4
smooth_steps = 5
               [alarms.layer_dead]
enabled = false
[alarms.plateau]
patience = 300
";
    let cfg = SoundConfig::from_toml_str(new, "new.toml").expect("new fields parse");
    assert_eq!(cfg.alarms.divergence.start_factor, 4.0);
    assert_eq!(cfg.alarms.divergence.smooth_steps, 5);
    assert!(!cfg.alarms.layer_dead.enabled);
    assert_eq!(cfg.alarms.plateau.patience, 300);
    for (text, field) in [
        (
            "[alarms.divergence]
start_factor = 1.0
",
            "alarms.divergence.start_factor",
        ),
        (
            "[alarms.divergence]
smooth_steps = 0
",
            "alarms.divergence.smooth_steps",
        ),
        (
            "[alarms.explosion]
early_factor = 0.5
",
            "alarms.explosion.early_factor",
        ),
        (
            "[alarms.plateau]
patience = 0
",
            "alarms.plateau.patience",
        ),
        (
            "[alarms]
forget_after = 0
",
            "alarms.forget_after",
        ),
    ] {
        let msg = err(text);
        assert!(msg.contains(&format!("line 2: field `{field}`")), "{msg}");
    }
}

#[test]
fn errors_name_file_line_and_field() {
    let cases = [
        // (text, expected fragments)
        (
            "[cents]\ntone_ms = \"long\"\n",
            vec!["test.toml line 2", "field `cents.tone_ms`", "invalid type"],
        ),
        (
            "[cents]\ntone_msec = 80\n",
            vec!["test.toml line 2", "unknown field `tone_msec`", "tone_ms"],
        ),
        (
            "[synth]\ntimbre = \"flute\"\n",
            vec!["field `synth.timbre`", "unknown variant `flute`", "sine"],
        ),
        (
            "# which mapping\nmapping = \"loud\"\n",
            vec![
                "test.toml line 2: field `mapping`",
                "unknown mapping \"loud\"",
                "seed, depth, cents",
            ],
        ),
        (
            "[alarms.explosion]\nfactor = 0.5\n",
            vec!["line 2: field `alarms.explosion.factor`", "must be > 1"],
        ),
        (
            "[cents]\ngap_ms = 90\n",
            vec![
                "test.toml line 2: field `cents.gap_ms`",
                "below cents.tone_ms",
            ],
        ),
        (
            "[depth]\nhigh_hz = 100\n",
            vec!["field `depth.high_hz`", "above depth.low_hz"],
        ),
        (
            "[grouping]\nmax_voices = 0\n",
            vec!["field `grouping.max_voices`", "1–32"],
        ),
        ("[alarms]\nvolume = 2.0\n", vec!["field `alarms.volume`"]),
        (
            "[cents\ntone_ms = 1\n",
            vec!["test.toml line 1", "field `(document)`"],
        ),
    ];
    for (text, want) in cases {
        let msg = err(text);
        println!("{msg}");
        for w in want {
            assert!(msg.contains(w), "{text:?}: {msg:?} lacks {w:?}");
        }
    }
}

#[test]
fn missing_file_names_the_path() {
    let e = SoundConfig::from_file(Path::new("/nonexistent/sound.toml")).expect_err("missing");
    assert!(e.to_string().contains("/nonexistent/sound.toml"), "{e}");
}
