//! Informativeness, measured: can the five reference training settings, their outcome, and the
//! moment they blow up be told apart from the rendered audio alone? (See
//! `gradtone_bench::informativeness`.)
//!
//! ```text
//! cargo run --release -p gradtone-bench --example informativeness [TRAJECTORY_DIR]
//! ```
//!
//! Reads the 15 PyTorch reference trajectories (`<setting>_seed{1,2,3}.csv` in
//! `$GRADTONE_SHARED/reference/pytorch/trajectories`, `shared/` beside the repository by
//! default), analyses each in the three renderings and prints the Markdown tables.

use std::error::Error;
use std::path::PathBuf;

use gradtone_bench::informativeness::{SEEDS, SETTINGS, Variant, analyse, report, run_file};
use gradtone_csv::read_frames;

fn main() -> Result<(), Box<dyn Error>> {
    let dir = match std::env::args_os().nth(1) {
        Some(d) => PathBuf::from(d),
        // Where the tests look: `$GRADTONE_SHARED`, else `shared/` beside the repository.
        None => std::env::var_os(gradtone_testkit::SHARED_ENV)
            .map_or_else(
                || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
                PathBuf::from,
            )
            .join("reference/pytorch/trajectories"),
    };
    if !dir.is_dir() {
        return Err(format!(
            "trajectory folder {} not found: pass the folder holding <setting>_seed<n>.csv as the first argument",
            dir.display()
        )
        .into());
    }
    let mut frames = Vec::new();
    for seed in SEEDS {
        for s in 0..SETTINGS.len() {
            let name = run_file(s, seed).ok_or("no such setting")?;
            frames.push((s, seed, read_frames(&dir.join(name))?));
        }
    }
    let mut all = Vec::new();
    for variant in Variant::ALL {
        let runs = frames
            .iter()
            .map(|(s, seed, f)| analyse(f, *s, *seed, variant))
            .collect::<Result<Vec<_>, _>>()?;
        all.push((variant, runs));
    }
    print!("{}", report(&all));
    Ok(())
}
