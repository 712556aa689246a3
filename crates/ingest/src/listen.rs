//! The listened source of `gradtone listen`: stdin, a file (followed or not), UDP or OSC, from
//! its options ([`ListenArgs`], whose flags are behind the `clap` feature).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::{
    AddrError, BoxedSource, FollowOptions, IngestError, OscSource, UdpOptions, UdpSource,
    listen_addr,
};

/// Where `gradtone listen` reads its frames.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ListenArgs {
    /// A JSONL file to read (`-` or nothing: stdin).
    pub input: Option<PathBuf>,
    /// Keep reading lines appended to the file, like `tail -f`, until Ctrl-C (a file that does
    /// not exist yet is waited for: the hook creates it at its first step).
    #[cfg_attr(feature = "clap", arg(long))]
    pub follow: bool,
    /// Receive JSONL datagrams on this address: `9999` (127.0.0.1), `localhost:9999`,
    /// `[::1]:9999`, `HOST:9999`. Loopback unless --allow-remote. A datagram carries at most
    /// 65,507 bytes, so larger frames cannot arrive this way (`gradtone run`, a pipe or a file
    /// carries any size).
    #[cfg_attr(feature = "clap", arg(long, value_name = "[HOST:]PORT", conflicts_with_all = ["input", "osc"]))]
    pub udp: Option<String>,
    /// Receive OSC messages (`/gradtone/frame`, docs/osc.md) on this address (as --udp).
    #[cfg_attr(feature = "clap", arg(long, value_name = "[HOST:]PORT", conflicts_with_all = ["input", "udp"]))]
    pub osc: Option<String>,
    /// Let --udp/--osc bind an address other than loopback (e.g. 0.0.0.0:9999). Datagrams carry
    /// no authentication: any machine that can reach the port can send frames.
    #[cfg_attr(feature = "clap", arg(long))]
    pub allow_remote: bool,
    /// Stop after this many seconds without a frame (UDP, OSC, --follow), counted from the last
    /// frame, or from the start while none has arrived (then nothing is written and the exit
    /// status is 1).
    #[cfg_attr(feature = "clap", arg(long, value_name = "SECONDS", value_parser = parse_seconds))]
    pub idle_timeout: Option<f64>,
}

/// A source opened from [`ListenArgs`].
pub struct Listened {
    /// The source.
    pub source: BoxedSource,
    /// What it is, for messages (`stdin`, `udp 9999`, the path).
    pub name: String,
    /// Whether it is a pipe or a file someone writes into as it is read (stdin): a training
    /// that must never block or break on our failure.
    pub piped: bool,
}

/// Why a listened source cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address is not one to listen on.
    #[error(transparent)]
    Addr(#[from] AddrError),
    /// The source could not be opened.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl ListenArgs {
    /// Opens the source: `stop` (Ctrl-C) ends a network or followed one; what the user should
    /// know (the address listened on, a file waited for) goes to `report`.
    pub fn open(
        &self,
        stop: &Arc<AtomicBool>,
        report: &dyn Fn(&str),
    ) -> Result<Listened, ListenError> {
        let idle = self.idle_timeout.map(Duration::from_secs_f64);
        let udp_opts = UdpOptions {
            idle_timeout: idle,
            stop: Some(stop.clone()),
            ..UdpOptions::default()
        };
        let piped = self.udp.is_none()
            && self.osc.is_none()
            && self.input.as_deref().is_none_or(|p| p == Path::new("-"));
        let (source, name): (BoxedSource, String) = if let Some(a) = &self.udp {
            let src = UdpSource::bind(listen_addr(a, self.allow_remote)?, udp_opts)?;
            report(&format!(
                "listening for JSONL datagrams on udp://{} (Ctrl-C to stop)",
                src.local_addr()
            ));
            (Box::new(src), format!("udp {a}"))
        } else if let Some(a) = &self.osc {
            let src = OscSource::bind(listen_addr(a, self.allow_remote)?, udp_opts)?;
            report(&format!(
                "listening for OSC on udp://{} (Ctrl-C to stop)",
                src.local_addr()
            ));
            (Box::new(src), format!("osc {a}"))
        } else {
            match &self.input {
                Some(p) if p != Path::new("-") && self.follow => {
                    let opts = FollowOptions {
                        idle_timeout: idle,
                        stop: Some(stop.clone()),
                        ..FollowOptions::default()
                    };
                    let src = crate::follow(p, opts)?;
                    if src.waiting() {
                        report(&format!(
                            "waiting for {} to appear (the hook creates it at its first step; \
                             Ctrl-C to stop)",
                            p.display()
                        ));
                    }
                    (Box::new(src), p.display().to_string())
                }
                Some(p) => (crate::open(p)?, p.display().to_string()),
                None => {
                    if std::io::stdin().is_terminal() {
                        report(
                            "reading JSONL frames from stdin (pipe a training script in: python \
                             train.py | gradtone listen)",
                        );
                    }
                    (crate::open(Path::new("-"))?, "stdin".into())
                }
            }
        };
        Ok(Listened {
            source,
            name,
            piped,
        })
    }
}

/// A positive, finite number of seconds.
#[cfg(feature = "clap")]
fn parse_seconds(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x < 1e9 => Ok(x),
        _ => Err(format!("{s:?} is not a number of seconds above 0")),
    }
}
