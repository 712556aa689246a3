//! [`spawn`]: a training command whose gradtone hook sends its frames to a private loopback
//! [`TcpSource`] (a stream: frames of any size, each rank on its own connection). The command's
//! environment names the source in [`GRADTONE_TO`]; the source ends once the command has and
//! what it sent has been read.

use std::ffi::{OsStr, OsString};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{IngestError, TcpSource};

/// The environment variable the gradtone hook reads for its destination.
pub const GRADTONE_TO: &str = "GRADTONE_TO";

/// Why a command could not be started with its listener.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The listener's socket could not be bound.
    #[error(transparent)]
    Listen(#[from] IngestError),
    /// The command could not be started.
    #[error("cannot run {program}")]
    Spawn {
        /// The program, as given.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A running command, watched by a thread of ours until it ends.
pub struct Hooked {
    child: Arc<Mutex<Child>>,
    status: Arc<Mutex<Option<ExitStatus>>>,
    waiter: JoinHandle<()>,
    to: String,
    pid: u32,
}

/// Starts `program args` with [`GRADTONE_TO`] set to the `tcp://` address of a new loopback
/// source, and returns that source (ended when the command has) with the command.
pub fn spawn(program: &OsStr, args: &[OsString]) -> Result<(TcpSource, Hooked), CommandError> {
    let done = Arc::new(AtomicBool::new(false));
    let source = TcpSource::loopback(done.clone())?;
    let to = format!("tcp://{}", source.local_addr());
    let child = Command::new(program)
        .args(args)
        .env(GRADTONE_TO, &to)
        .spawn()
        .map_err(|source| CommandError::Spawn {
            program: program.to_string_lossy().into_owned(),
            source,
        })?;
    let pid = child.id();
    let child = Arc::new(Mutex::new(child));
    let status: Arc<Mutex<Option<ExitStatus>>> = Arc::default();
    let waiter = {
        let (child, status) = (child.clone(), status.clone());
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
    let hooked = Hooked {
        child,
        status,
        waiter,
        to,
        pid,
    };
    Ok((source, hooked))
}

impl Hooked {
    /// The `tcp://` address the command was given.
    pub fn to(&self) -> &str {
        &self.to
    }

    /// The command's process id.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Kills the command (when nothing can hear it any more).
    pub fn kill(&self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
        }
    }

    /// Waits for the command to end; its status, `None` if it could not be told.
    pub fn wait(self) -> Option<ExitStatus> {
        let _ = self.waiter.join();
        self.status.lock().ok().and_then(|s| *s)
    }
}

/// The exit code a shell would show for `status` (128 + the signal for a killed process).
pub fn exit_code(status: ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    status.code().unwrap_or(1)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> Result<(TcpSource, Hooked), CommandError> {
        spawn(OsStr::new("sh"), &["-c".into(), script.into()])
    }

    #[test]
    fn the_command_gets_the_address_and_its_status_comes_back() {
        let (source, cmd) =
            sh("test \"$GRADTONE_TO\" = tcp://127.0.0.1:${GRADTONE_TO##*:} && exit 3").unwrap();
        assert!(cmd.to().starts_with("tcp://127.0.0.1:"));
        assert!(cmd.id() > 0);
        // The source ends once the command has.
        assert_eq!(source.count(), 0);
        assert_eq!(cmd.wait().map(exit_code), Some(3));
    }

    #[test]
    fn a_killed_command_exits_as_a_shell_shows_it() {
        let (_source, cmd) = sh("sleep 30").unwrap();
        cmd.kill();
        assert_eq!(cmd.wait().map(exit_code), Some(128 + 9));
    }

    #[test]
    fn a_missing_program_is_named() {
        let err = spawn(OsStr::new("/no/such/program"), &[]).err().unwrap();
        assert_eq!(err.to_string(), "cannot run /no/such/program");
    }
}
