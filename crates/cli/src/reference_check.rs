//! `gradtone reference-check`: gradtone's gradients against PyTorch's reference answers
//! (`gradtone_train::reference`), as a table.

use std::path::Path;

use anyhow::{Context, Result, bail};
use gradtone_train::reference::{TOLERANCE, check};

/// Checks the reference folder `dir`; fails if any error exceeds the tolerance.
pub fn run(dir: &Path) -> Result<()> {
    let report = check(dir, &gradtone_train::default_device())
        .with_context(|| format!("reference check of {}", dir.display()))?;
    print!("{report}");
    let max_err = report.max_rel_error();
    if !report.passed() {
        bail!("reference check failed: max relative error {max_err:.2e} exceeds {TOLERANCE:.0e}");
    }
    println!(
        "PASS: {} quantities, max relative error {max_err:.2e} (tolerance {TOLERANCE:.0e})",
        report.rows.len()
    );
    Ok(())
}
