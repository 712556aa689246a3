//! `gradtone run [FLAGS] -- CMD ARGS…`: a private loopback UDP listener, the user's command
//! run with `GRADTONE_TO` pointing at it (`gradtone_ingest::command`), and the frames through
//! the same sinks as `listen`. The command keeps its stdin, stdout and stderr (gradtone's own
//! messages go to stderr), its exit status, and Ctrl-C: the terminal sends SIGINT to the whole
//! process group, gradtone ignores it, waits for the command to end, then finalises every
//! output.

use anyhow::{Result, bail};
use gradtone_ingest::command::{exit_code, spawn};

use crate::args::RunArgs;
use crate::interrupt_flag;
use crate::outputs::check_parent;

/// Runs the command; returns only on an error before it started, otherwise exits with the
/// command's status.
pub fn run(args: &RunArgs) -> Result<()> {
    let Some((program, rest)) = args.command.split_first() else {
        bail!("no command: gradtone run [FLAGS] -- python train.py");
    };
    // The files are checked before the command starts: a typo must not cost a training run.
    let s = &args.sinks;
    for (p, what) in [
        (&s.wav, "WAV file"),
        (&s.csv, "CSV file"),
        (&s.alarms, "alarms file"),
        (&s.plot, "plot"),
        (&s.midi, "MIDI file"),
    ] {
        if let Some(p) = p {
            check_parent(p, what)?;
        }
    }
    if let Some(a) = &s.serve {
        gradtone_serve::parse_addr(a)?;
    }
    // Installed before the command starts: from now on Ctrl-C is the command's to act on.
    let _ = interrupt_flag();
    let (source, child) = spawn(program, rest)?;
    let name = program.to_string_lossy();
    eprintln!(
        "gradtone: listening on {} for {name} (pid {})",
        child.to(),
        child.id()
    );
    let line: Vec<_> = args.command.iter().map(|a| a.to_string_lossy()).collect();
    let title = format!("gradtone run: {}", line.join(" "));
    let mut spec = args.sinks.spec(args.live.pace(), &title);
    spec.summary_to_stderr = true;
    let result = crate::listen::run_source(Box::new(source), &spec, &args.ranks);
    if result.is_err() {
        // Our outputs failed: the command must not run on unheard (and unrecorded).
        child.kill();
    }
    let status = child.wait();
    if let Err(e) = &result {
        eprintln!("error: {e:#}");
    }
    let code = match (status, &result) {
        (Some(s), _) if !s.success() => exit_code(s),
        (_, Err(_)) => 1,
        (Some(s), Ok(())) => exit_code(s),
        (None, Ok(())) => 1,
    };
    if let Some(s) = status
        && !s.success()
    {
        eprintln!("gradtone: the command exited with {s}; outputs finalised");
    }
    std::process::exit(code);
}
