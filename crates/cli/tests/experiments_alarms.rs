//! `gradtone experiments` prints each alarm once, under its own run's heading, in step order.

mod common;
use common::{gradtone, text};
use gradtone_testkit::TempDir;

#[test]
fn experiments_print_each_alarm_once_under_its_run() {
    let Some(data) = gradtone_testkit::shared("experiments_alarms", "data/mnist-20k") else {
        return;
    };
    let tmp = TempDir::new("experiments_alarms");
    let out = tmp.path().join("out");
    let o = gradtone(&[
        "experiments",
        "--steps",
        "12",
        "--out",
        out.to_str().expect("utf-8 path"),
        "--data",
        data.to_str().expect("utf-8 path"),
    ]);
    let t = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{}", text(&o));
    // Walk the lines: a heading `[i/5] preset (seed 1)` opens a run; alarms belong to it.
    let mut runs: Vec<(String, Vec<String>)> = Vec::new();
    for line in t.lines() {
        if line.starts_with('[') && line.contains("/5] ") {
            runs.push((line.to_owned(), Vec::new()));
        } else if let Some(a) = line.trim().strip_prefix("alarm: ") {
            let Some(run) = runs.last_mut() else {
                panic!("alarm before any heading: {line}\n{t}");
            };
            run.1.push(a.to_owned());
        }
    }
    println!("{t}");
    let names: Vec<&str> = runs.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(runs.len(), 5, "{names:?}");
    for (heading, alarms) in &runs {
        let steps: Vec<u64> = alarms
            .iter()
            .map(|a| {
                a.strip_prefix("step ")
                    .and_then(|r| r.split(':').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{heading}: unparsable alarm {a}"))
            })
            .collect();
        assert!(
            steps.windows(2).all(|w| w[0] <= w[1]),
            "{heading}: {steps:?}"
        );
        let mut unique = alarms.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            alarms.len(),
            "{heading}: printed twice: {alarms:?}"
        );
        // The lr 1.0 and Adam lr 0.01 runs blow up within 12 steps (their alarms are theirs);
        // the healthy SGD ones raise none, so nothing of a run before them leaks under their
        // headings (the second healthy run follows the first, the Adam run the two lr 1.0).
        let diverging = !heading.contains("sgd_lr0.");
        assert_eq!(
            alarms
                .iter()
                .any(|a| a.contains("ALARM explosion") || a.contains("ALARM divergence")),
            diverging,
            "{heading}: {alarms:?}"
        );
    }
}

/// End to end through `render`: a JSONL stream that says it clips (`"clip"`) does not sound
/// an explosion for a clipped spike; the same stream without `clip` does.
#[test]
fn a_clipped_spike_in_a_stream_is_not_an_explosion() {
    let tmp = TempDir::new("clipped_spike");
    for (clip, expect) in [(Some(5.0), false), (None, true)] {
        let mut lines = String::new();
        for s in 0..30 {
            let norm = if s == 20 {
                50.0
            } else {
                1.0 + 0.1 * f64::from(s % 3)
            };
            let loss = 2.0 - 0.02 * f64::from(s);
            let clip = clip.map_or(String::new(), |c| format!(",\"clip\":{c}"));
            lines.push_str(&format!(
                "{{\"step\":{s},\"values\":{{\"fc1\":{norm}}},\"losses\":{{\"loss\":{loss}}}{clip}}}\n"
            ));
        }
        let path = tmp.path().join("run.jsonl");
        std::fs::write(&path, lines).expect("write");
        let wav = tmp.path().join("run.wav");
        let o = gradtone(&[
            "render",
            path.to_str().expect("utf-8"),
            "--wav",
            wav.to_str().expect("utf-8"),
        ]);
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert_eq!(t.contains("ALARM explosion"), expect, "clip {clip:?}: {t}");
    }
}

/// End to end through `render --alarms`: a stream whose `params` stop changing at step 30 while
/// its gradients flow writes one `frozen` line (step 34) to the alarms file, and nothing else.
#[test]
fn render_writes_the_frozen_alarm_of_a_stream_with_params_as_json() {
    let tmp = TempDir::new("alarms_frozen");
    let mut lines = String::new();
    for s in 0..60 {
        let t = f64::from(s.min(29));
        let norm = 0.5 + 0.05 * f64::from(s % 3);
        let loss = 2.0 - 0.01 * t;
        let p = 12.0 + 0.01 * t;
        lines.push_str(&format!(
            "{{\"step\":{s},\"values\":{{\"fc1\":{norm}}},\"params\":{{\"fc1\":{p}}},\"losses\":{{\"loss\":{loss}}}}}\n"
        ));
    }
    let path = tmp.path().join("run.jsonl");
    std::fs::write(&path, lines).expect("write");
    let alarms = tmp.path().join("alarms.jsonl");
    let o = gradtone(&[
        "render",
        path.to_str().expect("utf-8"),
        "--alarms",
        alarms.to_str().expect("utf-8"),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let written = std::fs::read_to_string(&alarms).expect("the alarms file");
    let events: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(events.len(), 1, "{written}");
    assert_eq!(events[0]["kind"], "frozen", "{written}");
    assert_eq!(events[0]["step"], 34, "{written}");
    assert_eq!(events[0]["numbers"]["steps"], 5.0, "{written}");
}
