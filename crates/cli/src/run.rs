//! `gradtone run [FLAGS] -- CMD ARGS…`: a private loopback TCP listener, the user's command
//! run with `GRADTONE_TO` pointing at it (`gradtone_ingest::command`), and the frames through
//! the same sinks as `listen`. The command keeps its stdin, stdout and stderr (gradtone's own
//! messages go to stderr), its exit status, and Ctrl-C: the terminal sends SIGINT to the whole
//! process group, gradtone ignores it, waits for the command to end, then finalises every
//! output. A SIGTERM to the group (a scheduler's stop) is taken the same way.
//!
//! Everything that can fail is set up before the command starts (the files checked and
//! created beside their paths, the OSC socket opened, the page's port bound), so a typo or a
//! busy port refuses the run without starting the command. Once it runs, nothing of ours stops
//! it: an output that fails is reported and the frames are read on until the command ends.

use anyhow::{Result, bail};
use gradtone_ingest::command::{exit_code, spawn};
use gradtone_ingest::stream::run_source;
use gradtone_ingest::{StreamError, StreamOptions};

use crate::args::{RunArgs, show};
use crate::interrupt_flag;

/// Runs the command; returns only on an error before it started, otherwise exits with the
/// command's status.
pub fn run(args: &RunArgs) -> Result<()> {
    let Some((program, rest)) = args.command.split_first() else {
        bail!("no command: gradtone run [FLAGS] -- python train.py");
    };
    let line: Vec<_> = args.command.iter().map(|a| a.to_string_lossy()).collect();
    let title = format!("gradtone run: {}", line.join(" "));
    // Before the command starts: a typo or a taken port must not cost (or kill) a training run.
    let outputs = args.sinks.open(Some(&args.live), &title)?;
    let opts = StreamOptions {
        name: title,
        drain_on_failure: true,
    };
    // Installed before the command starts: from now on Ctrl-C is the command's to act on.
    let _ = interrupt_flag();
    // A command that cannot start drops the outputs unfinished: nothing is left behind.
    let (source, child) = spawn(program, rest)?;
    // Started (the command has its own default dispositions): a SIGTERM to the process group
    // (a scheduler's stop: SLURM, systemd, `timeout`) is the command's to act on, as Ctrl-C is;
    // gradtone waits for it and finalises the outputs instead of dying before them.
    #[cfg(unix)]
    ignore_sigterm();
    let name = program.to_string_lossy();
    eprintln!(
        "gradtone: listening on {} for {name} (pid {})",
        child.to(),
        child.id()
    );
    let result = run_source(Box::new(source), outputs, &args.ranks, &opts);
    let status = child.wait();
    let code = status.map_or(1, exit_code);
    let no_frames = matches!(result, Err(StreamError::NoFrames(_)));
    if no_frames {
        let exited = match status {
            Some(s) if !s.success() => format!(" (exit code {})", exit_code(s)),
            _ => String::new(),
        };
        // One line, and the likely cause: the command ran without sending a frame.
        eprintln!(
            "gradtone: no frame arrived from {name}{exited}, so nothing was written: is the \
             gradtone hook installed in it (gradtone_hook.GradTone, or a GradToneCallback), and \
             does it send to $GRADTONE_TO (a `to=` in the code overrides it)?"
        );
    } else {
        match result {
            // Stdout is the command's: ours goes to stderr.
            Ok(finished) => show(&finished, true),
            Err(e) => eprintln!("error: {}", crate::error_chain(&e.into())),
        }
    }
    if let Some(s) = status
        && !s.success()
        && !no_frames
    {
        eprintln!("gradtone: the command exited with {s}; outputs finalised");
    }
    std::process::exit(code);
}

/// Ignores SIGTERM from now on (the command, already started, keeps the default).
#[cfg(unix)]
fn ignore_sigterm() {
    // SAFETY: SIG_IGN runs no code of ours; `signal` only sets the disposition.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
}
