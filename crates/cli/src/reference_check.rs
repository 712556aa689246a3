//! `gradtone reference-check`: gradtone's gradients against PyTorch's reference answers
//! (`gradtone_train::reference`), as a table.

use std::path::Path;

use anyhow::{Context, Result, bail};
use gradtone_train::reference::{TOLERANCE, check};

/// Checks the reference folder `dir`; fails if any error exceeds the tolerance.
pub fn run(dir: &Path) -> Result<()> {
    let report = check(dir, &gradtone_train::default_device())
        .with_context(|| format!("reference check of {}", dir.display()))?;
    println!(
        "{:34} {:>18} {:>18} {:>10}",
        "quantity", "gradtone", "pytorch f64", "rel err"
    );
    for r in &report.rows {
        println!(
            "{:34} {:>18.12} {:>18.12} {:>10.2e} {}",
            r.what,
            r.ours,
            r.expected,
            r.rel_error(),
            if r.ok() { "ok" } else { "FAIL" }
        );
    }
    let max_err = report.max_rel_error();
    let log_err = report.log_probs_max_abs_error;
    println!("step1 log-probs max abs error {log_err:.2e}");
    if !report.passed() {
        bail!("reference check failed: max relative error {max_err:.2e} exceeds {TOLERANCE:.0e}");
    }
    println!(
        "PASS: {} quantities, max relative error {max_err:.2e} (tolerance {TOLERANCE:.0e})",
        report.rows.len()
    );
    Ok(())
}
