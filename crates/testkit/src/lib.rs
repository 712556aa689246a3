//! Test-only helpers shared by gradtone's crates.
//!
//! The reference data (MNIST subset, PyTorch answers) lives in `../shared` beside the repository,
//! never inside it. Tests find it through [`shared_dir`]; where it is missing they skip *loudly*,
//! except under CI (`CI` set), where a missing `../shared` is a failure: CI always has it.

#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod onset;

use std::path::PathBuf;

/// Environment variable that overrides where `shared/` is.
pub const SHARED_ENV: &str = "GRADTONE_SHARED";

/// The `shared/` folder: `$GRADTONE_SHARED`, else `<workspace>/../shared`.
///
/// Returns `None` (after printing a loud SKIPPED line) when it does not exist outside CI.
///
/// # Panics
/// Under CI (`CI` set) when the folder is missing: a test must not silently pass there.
pub fn shared_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os(SHARED_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: reference folder {} is missing, and CI must have it",
            dir.display()
        );
    }
    eprintln!(
        "\n*** SKIPPED {test}: reference folder {} not found (set {SHARED_ENV}) ***\n",
        dir.display()
    );
    None
}

/// A sub-path of `shared/`, e.g. `shared("t", "data/mnist-20k")`; `None` means skip (see [`shared_dir`]).
pub fn shared(test: &str, rel: &str) -> Option<PathBuf> {
    let p = shared_dir(test)?.join(rel);
    if !p.exists() {
        if std::env::var_os("CI").is_some() {
            panic!("{test}: {} is missing, and CI must have it", p.display());
        }
        eprintln!("\n*** SKIPPED {test}: {} not found ***\n", p.display());
        return None;
    }
    Some(p)
}

/// A fresh, empty temporary folder for one test, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `<tmp>/gradtone-<name>-<pid>`, emptied first.
    ///
    /// # Panics
    /// When the folder cannot be created (a broken test machine).
    pub fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("gradtone-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        if let Err(e) = std::fs::create_dir_all(&p) {
            panic!("cannot create {}: {e}", p.display());
        }
        TempDir(p)
    }

    /// The folder.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// A path inside the folder.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// A path inside the folder, as a string (for command-line arguments).
    pub fn arg(&self, rel: &str) -> String {
        self.0.join(rel).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The one "skip unless required" rule for tests that need a tool from outside the workspace
/// (Pure Data, a Python module, Chromium, torch, a sound server).
///
/// Returns `available`. When it is false the test skips *loudly* (a `SKIPPED` line naming `hint`,
/// what to install) — unless `GRADTONE_REQUIRE_<what>=1`, which CI sets for every tool it
/// installs, where the test fails instead: a test that CI can run never skips there.
///
/// # Panics
/// When the tool is missing and `GRADTONE_REQUIRE_<what>=1`.
pub fn require(test: &str, what: &str, available: bool, hint: &str) -> bool {
    if available {
        return true;
    }
    let var = format!("GRADTONE_REQUIRE_{what}");
    if std::env::var(&var).is_ok_and(|v| v == "1") {
        panic!("{test}: {hint}, and {var}=1 makes that a failure");
    }
    eprintln!("\n*** SKIPPED {test}: {hint} ({var}=1 makes this a failure) ***\n");
    false
}

/// Whether `program args…` runs and exits 0 (its output discarded): the probe for [`require`].
pub fn runs(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// 27 per-tensor names of a small Transformer, as the hook's `group_by="tensor"` writes them:
/// the many-voices case the grouping, the legend and the plot are tested on.
pub fn transformer_names() -> Vec<String> {
    let mut names = vec!["embed.weight".to_owned()];
    for l in 0..2 {
        for p in [
            "self_attn.in_proj_weight",
            "self_attn.in_proj_bias",
            "self_attn.out_proj.weight",
            "self_attn.out_proj.bias",
            "linear1.weight",
            "linear1.bias",
            "linear2.weight",
            "linear2.bias",
            "norm1.weight",
            "norm1.bias",
            "norm2.weight",
            "norm2.bias",
        ] {
            names.push(format!("transformer.layers.{l}.{p}"));
        }
    }
    names.push("decoder.weight".into());
    names.push("decoder.bias".into());
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_passes_skips_or_fails() {
        assert!(require("t", "TESTKIT_PROBE", true, "here"));
        // SAFETY: this test is the only user of this variable.
        unsafe { std::env::remove_var("GRADTONE_REQUIRE_TESTKIT_PROBE") };
        assert!(!require("t", "TESTKIT_PROBE", false, "missing"));
        unsafe { std::env::set_var("GRADTONE_REQUIRE_TESTKIT_PROBE", "1") };
        let r = std::panic::catch_unwind(|| require("t", "TESTKIT_PROBE", false, "missing"));
        unsafe { std::env::remove_var("GRADTONE_REQUIRE_TESTKIT_PROBE") };
        assert!(r.is_err(), "a required tool that is missing fails the test");
        assert!(runs("true", &[]) && !runs("false", &[]) && !runs("/no/such/tool", &[]));
    }
}
