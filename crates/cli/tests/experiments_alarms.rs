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
