//! `gradtone run [FLAGS] -- CMD ARGS…`: a private loopback UDP listener, the user's command
//! run with `GRADTONE_TO` pointing at it, and the frames through the same sinks as `listen`.
//! The command keeps its stdin, stdout and stderr (gradtone's own messages go to stderr), its
//! exit status, and Ctrl-C: the terminal sends SIGINT to the whole process group, gradtone
//! ignores it, waits for the command to end, then finalises every output.

use std::ffi::OsString;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use gradtone_ingest::{UdpOptions, UdpSource};

use crate::listen::RankArgs;
use crate::outputs::check_parent;
use crate::{LiveArgs, SinkArgs, interrupt_flag};

/// The environment variable the gradtone hook reads for its destination.
pub const GRADTONE_TO: &str = "GRADTONE_TO";

/// `gradtone run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    ranks: RankArgs,
    #[command(flatten)]
    sinks: SinkArgs,
    #[command(flatten)]
    live: LiveArgs,
    /// The command and its arguments, after `--` (e.g. `-- python train.py --epochs 3`, or
    /// `-- torchrun --nproc-per-node 4 train.py`: every rank reaches this one listener).
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// The exit code a shell would show for `status`.
fn exit_code(status: ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    status.code().unwrap_or(1)
}

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
    let child_done = Arc::new(AtomicBool::new(false));
    let source = UdpSource::loopback(
        0,
        UdpOptions {
            stop: Some(child_done.clone()),
            ..UdpOptions::default()
        },
    )?;
    let to = format!("udp://{}", source.local_addr());
    // Installed before the command starts: from now on Ctrl-C is the command's to act on.
    let _ = interrupt_flag();
    let child = Command::new(program)
        .args(rest)
        .env(GRADTONE_TO, &to)
        .spawn()
        .with_context(|| format!("cannot run {}", program.to_string_lossy()))?;
    eprintln!(
        "gradtone: listening on {to} for {} (pid {})",
        program.to_string_lossy(),
        child.id()
    );
    let child = Arc::new(Mutex::new(child));
    let status: Arc<Mutex<Option<ExitStatus>>> = Arc::default();
    let waiter = {
        let (child, status, done) = (child.clone(), status.clone(), child_done.clone());
        std::thread::spawn(move || {
            loop {
                let r = child.lock().map(|mut c| c.try_wait());
                match r {
                    Ok(Ok(Some(s))) => {
                        if let Ok(mut st) = status.lock() {
                            *st = Some(s);
                        }
                        break;
                    }
                    Ok(Ok(None)) => std::thread::sleep(Duration::from_millis(20)),
                    _ => break,
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut spec = args.sinks.spec(
        args.live.pace(),
        &format!(
            "gradtone run: {}",
            args.command
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    spec.summary_to_stderr = true;
    let result = crate::listen::run_source(Box::new(source), &spec, &args.ranks);
    if result.is_err() {
        // Our outputs failed: the command must not run on unheard (and unrecorded).
        kill(&child);
    }
    let _ = waiter.join();
    let status = status.lock().ok().and_then(|s| *s);
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

fn kill(child: &Mutex<Child>) {
    if let Ok(mut c) = child.lock() {
        let _ = c.kill();
    }
}
