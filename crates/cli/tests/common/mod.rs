//! Helpers shared by the CLI's integration tests.

use std::process::{Command, Output};

/// The `gradtone` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_gradtone");

/// Runs `gradtone args...` (without a `GRADTONE_MNIST_DIR` from the environment).
pub fn gradtone(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("GRADTONE_MNIST_DIR")
        .output()
        .expect("gradtone runs")
}

/// Stdout and stderr of a run, together.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
