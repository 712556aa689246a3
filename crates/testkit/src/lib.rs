//! Test-only helpers shared by gradtone's crates.
//!
//! The reference data (MNIST subset, PyTorch answers) lives in `../shared` beside the repository,
//! never inside it. Tests find it through [`shared_dir`]; where it is missing they skip *loudly*,
//! except under CI (`CI` set), where a missing `../shared` is a failure: CI always has it.

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
