//! `gradtone listen` and `gradtone render` flags.

use std::path::PathBuf;

use clap::Args;
use gradtone_pipeline::RankOptions;

use super::{LiveArgs, SinkArgs};

/// `gradtone render`.
#[derive(Args, Debug)]
pub struct RenderArgs {
    /// Input: a JSONL stream (`-` for stdin), a CSV (`step,loss,<name>...`), or a TensorBoard
    /// event file or log folder (a `runs/` folder of several runs: each run's tags as `RUN/TAG`).
    pub input: PathBuf,
    /// WAV to write (same as --wav).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// TensorBoard input: scalar tags to sonify, `*` globs (default: everything); in a folder of
    /// several runs, `RUN/*` picks one run.
    #[arg(long, value_name = "PATTERN")]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub ranks: RankOptions,
    #[command(flatten)]
    pub sinks: SinkArgs,
}

/// `gradtone listen`.
#[derive(Args, Debug)]
pub struct ListenArgs {
    /// A JSONL file to read (`-` or nothing: stdin).
    pub input: Option<PathBuf>,
    /// Keep reading lines appended to the file, like `tail -f`, until Ctrl-C (a file that does
    /// not exist yet is waited for: the hook creates it at its first step).
    #[arg(long)]
    pub follow: bool,
    /// Receive JSONL datagrams on this address: `9999` (127.0.0.1), `localhost:9999`,
    /// `[::1]:9999`, `HOST:9999`. Loopback unless --allow-remote. A datagram carries at most
    /// 65,507 bytes, so larger frames cannot arrive this way (`gradtone run`, a pipe or a file
    /// carries any size).
    #[arg(long, value_name = "[HOST:]PORT", conflicts_with_all = ["input", "osc"])]
    pub udp: Option<String>,
    /// Receive OSC messages (`/gradtone/frame`, docs/osc.md) on this address (as --udp).
    #[arg(long, value_name = "[HOST:]PORT", conflicts_with_all = ["input", "udp"])]
    pub osc: Option<String>,
    /// Let --udp/--osc bind an address other than loopback (e.g. 0.0.0.0:9999). Datagrams carry
    /// no authentication: any machine that can reach the port can send frames.
    #[arg(long)]
    pub allow_remote: bool,
    /// Stop after this many seconds without a frame (UDP, OSC, --follow), counted from the last
    /// frame, or from the start while none has arrived (then nothing is written and the exit
    /// status is 1).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub idle_timeout: Option<f64>,
    #[command(flatten)]
    pub ranks: RankOptions,
    #[command(flatten)]
    pub sinks: SinkArgs,
    #[command(flatten)]
    pub live: LiveArgs,
}

/// A positive, finite number of seconds.
fn parse_seconds(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x < 1e9 => Ok(x),
        _ => Err(format!("{s:?} is not a number of seconds above 0")),
    }
}
