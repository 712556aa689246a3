//! Where the alarms fire on recorded runs, against the onset of trouble read from the numbers.
//!
//! ```text
//! cargo run --release -p gradtone-sound --example alarm_report -- RUN.csv [RUN.csv ...]
//! ```
//!
//! For each CSV (as `gradtone train --csv` writes it, or the PyTorch reference trajectories)
//! prints a Markdown row: the onset of trouble (the first step with a non-finite value, a total
//! norm above 5× step 0's, a loss above 2× step 0's, or at least half the layers exactly 0),
//! the first trouble alarm and its delay, the plateau alarms, and every alarm. The table in the
//! README for `gradtone train` runs comes from `crates/cli/tests/alarm_onsets.rs`, which trains
//! them; this example is for any recorded run (the GAN presets, the reference trajectories).

use std::error::Error;

use gradtone_csv::read_frames;
use gradtone_detect::{AlarmConfig, AlarmDetector};
use gradtone_frame::{AlarmEvent, Frame, Watch};
use gradtone_testkit::onset::onset_of_trouble;

/// The onset of trouble by the issue's definition: `(step, why)`.
pub fn onset(frames: &[Frame]) -> Option<(u64, &'static str)> {
    onset_of_trouble(frames).map(|(i, why)| (frames[i].step, why))
}

fn main() -> Result<(), Box<dyn Error>> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        return Err("pass one or more CSV files (step,loss,<values>…)".into());
    }
    // An optional sound config (TOML) to try other thresholds: `ALARM_REPORT_CONFIG=my.toml`.
    let config = match std::env::var_os("ALARM_REPORT_CONFIG") {
        Some(p) => gradtone_sound::SoundConfig::from_file(std::path::Path::new(&p))?.alarms,
        None => AlarmConfig::default(),
    };
    println!("| run | onset | first trouble alarm | delay | plateau alarms | all alarms |");
    println!("|---|---|---|---:|---:|---|");
    for path in &paths {
        let frames = read_frames(std::path::Path::new(path))?;
        let mut d = AlarmDetector::new(&config);
        let events: Vec<AlarmEvent> = frames.iter().flat_map(|f| d.observe(f)).collect();
        let on = onset(&frames);
        let first = events.iter().find(|e| e.kind.is_trouble());
        let delay = match (on, first) {
            (Some((o, _)), Some(e)) => format!("{:+}", e.step as i64 - o as i64),
            _ => "—".into(),
        };
        let plateaus = events.iter().filter(|e| !e.kind.is_trouble()).count();
        let all: Vec<String> = events
            .iter()
            .map(|e| format!("{} {}", e.step, e.kind))
            .collect();
        let name = std::path::Path::new(path)
            .file_stem()
            .map_or(path.clone(), |s| s.to_string_lossy().into_owned());
        println!(
            "| {name} | {} | {} | {delay} | {plateaus} | {} |",
            on.map_or("none".into(), |(s, w)| format!("{s} ({w})")),
            first.map_or("none".into(), |e| format!("{} {}", e.step, e.kind)),
            all.join(", ")
        );
        if std::env::var_os("ALARM_REPORT_VERBOSE").is_some() {
            for e in &events {
                println!("    {}", e.message);
            }
        }
    }
    Ok(())
}
