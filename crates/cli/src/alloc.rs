//! The global allocator and its one setting.
//!
//! Training frees and re-allocates the same multi-megabyte buffers every step. glibc's malloc
//! unmaps them and page-faults them back in; mimalloc reuses them, but by default hands idle
//! pages back to the OS ("purging") on a 1 s timer: every second, whatever is free *at that
//! moment* goes, the step's buffers included, and with 2 MiB pages each one costs a fault and a
//! zeroing on the next step (5–9 % of a step in `perf`, 3,100 faults in 120 steps at batch 64
//! against 350 with purging off). Never purging, though, keeps every peak for good: the live
//! page's memory for a crowd of viewers stayed in the training process after they left.
//! A 10 s timer purges a tenth as often as the default (the trainer's share goes with it) and
//! still gives memory nobody uses back within seconds. `MIMALLOC_PURGE_DELAY` set by the user
//! wins (`-1`: never purge).

use libmimalloc_sys::{mi_option_set, mi_option_t};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (not exported by libmimalloc-sys
/// 0.1.49; the test below checks the number against the environment variable of that name).
const PURGE_DELAY: mi_option_t = 15;

/// Milliseconds between mimalloc's passes that return free pages to the OS.
pub const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// Sets the purge delay to [`PURGE_DELAY_MS`] unless `MIMALLOC_PURGE_DELAY` says otherwise.
pub fn set_purge_delay() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` only stores an integer option; any option value is valid and
    // it may be called at any time from any thread.
    unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libmimalloc_sys::mi_option_get;

    /// Run in a child process with `MIMALLOC_PURGE_DELAY` set: option 15 must read it.
    #[test]
    fn purge_delay_child() {
        let Ok(want) = std::env::var("MIMALLOC_PURGE_DELAY") else {
            return; // only meaningful inside `option_15_is_the_purge_delay`
        };
        // SAFETY: reads an integer option.
        let got = unsafe { mi_option_get(PURGE_DELAY) };
        assert_eq!(got.to_string(), want);
    }

    #[test]
    fn option_15_is_the_purge_delay() {
        let exe = std::env::current_exe().expect("test binary path");
        let out = std::process::Command::new(exe)
            .args(["--exact", "alloc::tests::purge_delay_child", "--nocapture"])
            .env("MIMALLOC_PURGE_DELAY", "1234")
            .output()
            .expect("run the test binary");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "{text}");
    }
}
