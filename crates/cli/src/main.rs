//! `gradtone`: hear neural-network training. The only crate that knows every other: it wires a
//! source (the Burn trainer; a recorded JSONL, CSV or TensorBoard run; a live stream; a user's
//! training command) through the pipeline to the outputs (speakers, files, OSC, a browser page).
//! The flags live in `args/`, a file per command; each command's file beside this one wires them.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod alloc;
mod args;
mod bench;
mod data;
mod experiments;
mod gan;
mod listen;
mod reference_check;
mod run;
mod sweep;
mod train;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use clap::Parser;
use gradtone_frame::AlarmEvent;
use gradtone_pipeline::{FrameDriver, RunProgress};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{Cli, Command, ModelArg};

fn main() {
    alloc::set_purge_delay();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {}", error_chain(&e));
        std::process::exit(1);
    }
}

/// `e` and its causes, `: `-separated (anyhow's `{:#}`). Library errors leave their cause to
/// `source()` instead of repeating it in their message, so each cause is said once.
pub(crate) fn error_chain(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) if args.model == ModelArg::Gan => gan::train(&args),
        Command::Train(args) => train::train(&args),
        Command::Sweep(args) => sweep::run(&args),
        Command::Experiments(args) => experiments::run(&args),
        Command::ReferenceCheck { dir } => reference_check::run(&dir),
        Command::Render(args) => listen::render(&args),
        Command::Listen(args) => listen::listen(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Run(args) => run::run(&args),
    }
}

/// The flag that Ctrl-C sets: the loop finishes its step, the files are finalised. One
/// process-wide flag (a handler can be installed only once), cleared for each new run.
pub(crate) fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = interrupt_flag_as_is();
    flag.store(false, Ordering::SeqCst);
    flag
}

/// The Ctrl-C flag, installing the handler if needed, without clearing it.
pub(crate) fn interrupt_flag_as_is() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    let flag = FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        if let Err(e) = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst)) {
            eprintln!("note: Ctrl-C will stop at once, without finalising files ({e})");
        }
        flag
    });
    flag.clone()
}

/// Prints a line above the progress bar, or to stderr when the bar is hidden (not a terminal):
/// indicatif drops `println` on a hidden bar, and alarms must never be lost.
fn say(pb: &ProgressBar, line: String) {
    if pb.is_hidden() {
        eprintln!("{line}");
    } else {
        pb.println(line);
    }
}

/// A training run's progress bar: alarms above it, the status beside it.
pub(crate) struct Bar(ProgressBar);

impl RunProgress for Bar {
    fn alarm(&mut self, alarm: &AlarmEvent) {
        say(&self.0, format!("alarm: {}", alarm.message));
    }
    fn step(&mut self, message: String) {
        self.0.set_message(message);
        self.0.inc(1);
    }
    fn finish(&mut self) {
        self.0.finish_and_clear();
    }
}

/// A driver for a run of `total` steps, its bar labelled `label`, stopped by Ctrl-C.
pub(crate) fn driver(total: usize, label: &str) -> FrameDriver<Bar> {
    let pb = ProgressBar::new(total as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_prefix(label.to_string());
    FrameDriver::new(Bar(pb), interrupt_flag())
}
