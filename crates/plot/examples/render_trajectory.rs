//! Renders a trajectory CSV and its seed-mapping sound as a PNG.
//!
//! ```sh
//! cargo run --release -p gradtone-plot --example render_trajectory -- run.csv run.png
//! ```
//!
//! Marks an "alarm" wherever the loss more than triples from one step to the next or a value is
//! not finite: a stand-in for gradtone's real alarms, enough to show the markers.

use std::path::PathBuf;
use std::time::Instant;

use gradtone_csv::read_frames;
use gradtone_plot::{Marker, PlotInput, render_png};
use gradtone_sound::SeedMapping;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(csv), Some(png)) = (args.next(), args.next()) else {
        return Err("usage: render_trajectory <trajectory.csv> <out.png>".into());
    };
    let (csv, png) = (PathBuf::from(csv), PathBuf::from(png));
    let frames = read_frames(&csv)?;

    let mut mapping = SeedMapping::new();
    let mut audio = Vec::new();
    for f in &frames {
        mapping.render(f, &mut audio);
    }

    let mut markers = Vec::new();
    for pair in frames.windows(2) {
        if let (Some(a), Some(b)) = (pair[0].loss(), pair[1].loss())
            && b > 3.0 * a
        {
            markers.push(Marker {
                step: pair[1].step,
                label: format!("loss ×{:.0}", b / a),
            });
        }
    }
    if let Some(f) = frames
        .iter()
        .find(|f| f.values.iter().any(|v| !v.value.is_finite()))
    {
        markers.push(Marker {
            step: f.step,
            label: "non-finite".into(),
        });
    }

    let title = csv
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let input = PlotInput {
        title: &title,
        frames: &frames,
        markers: &markers,
        audio: Some((&audio, SeedMapping::SAMPLE_RATE, 1)),
        grouping: None,
    };
    let start = Instant::now();
    render_png(&png, &input)?;
    println!(
        "{} frames, {:.1} s of audio, {} markers → {} in {:.0} ms",
        frames.len(),
        audio.len() as f64 / f64::from(SeedMapping::SAMPLE_RATE),
        markers.len(),
        png.display(),
        start.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
