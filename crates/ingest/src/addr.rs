//! [`listen_addr`]: the address a UDP or OSC listener binds, from what a user typed.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::shorten;

const USAGE: &str = "give PORT, HOST:PORT or [IPv6]:PORT, e.g. 9999, localhost:9999, [::1]:9999";

/// Why a listening address was refused; messages quote the input, cut short.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    /// Neither a port, an address nor `HOST:PORT`.
    #[error("{0:?} is not an address: {USAGE}")]
    NotAnAddress(String),
    /// `HOST:PORT` whose port is not a number from 0 to 65535.
    #[error("{0:?}: the port {1:?} is not a number from 0 to 65535 ({USAGE})")]
    BadPort(String, String),
    /// `:PORT` without a host.
    #[error("{0:?} has no host: {USAGE}")]
    NoHost(String),
    /// The host name could not be resolved.
    #[error("cannot resolve the host {host:?}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The host name resolved to no address.
    #[error("the host {0:?} has no address")]
    NoAddress(String),
    /// Not loopback, and remote senders were not allowed.
    #[error(
        "refusing to listen on {0}: it is not loopback, and any machine that can reach it \
         could send frames. Add --allow-remote to accept them, or listen on 127.0.0.1 and \
         run gradtone where the training runs"
    )]
    NotLoopback(SocketAddr),
}

/// `PORT`, `HOST:PORT`, `[IPv6]:PORT` → the address to bind. A bare port is 127.0.0.1; a host
/// name resolving to several addresses prefers IPv4 loopback (what `localhost` senders use).
/// Anything but loopback needs `allow_remote` (datagrams carry no authentication).
pub fn listen_addr(s: &str, allow_remote: bool) -> Result<SocketAddr, AddrError> {
    let s = s.trim();
    let addr = if let Ok(port) = s.parse::<u16>() {
        SocketAddr::from(([127, 0, 0, 1], port))
    } else if let Ok(a) = s.parse::<SocketAddr>() {
        a
    } else {
        let cut = || shorten(s, 60).into_owned();
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(AddrError::NotAnAddress(cut()));
        };
        let port: u16 = port
            .parse()
            .map_err(|_| AddrError::BadPort(cut(), shorten(port, 20).into_owned()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(AddrError::NoHost(cut()));
        }
        let found: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|source| AddrError::Resolve {
                host: shorten(host, 60).into_owned(),
                source,
            })?
            .collect();
        let pick = found
            .iter()
            .find(|a| a.is_ipv4() && a.ip().is_loopback())
            .or_else(|| found.iter().find(|a| a.ip().is_loopback()))
            .or_else(|| found.first());
        match pick {
            Some(a) => *a,
            None => return Err(AddrError::NoAddress(shorten(host, 60).into_owned())),
        }
    };
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(AddrError::NotLoopback(addr));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_addresses() {
        let lo = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        assert_eq!(listen_addr(" 9999 ", false).unwrap(), lo(9999));
        assert_eq!(listen_addr("127.0.0.1:7", false).unwrap(), lo(7));
        assert_eq!(
            listen_addr("[::1]:7", false).unwrap(),
            "[::1]:7".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(listen_addr("localhost:9", false).unwrap(), lo(9));
    }

    #[test]
    fn refusals_say_what_to_give() {
        let err = |s: &str| listen_addr(s, false).unwrap_err().to_string();
        assert_eq!(
            err("nonsense"),
            format!("\"nonsense\" is not an address: {USAGE}")
        );
        assert_eq!(
            err("localhost:http"),
            format!(
                "\"localhost:http\": the port \"http\" is not a number from 0 to 65535 ({USAGE})"
            )
        );
        assert_eq!(err(":80"), format!("\":80\" has no host: {USAGE}"));
        assert!(
            err("0.0.0.0:9").starts_with("refusing to listen on 0.0.0.0:9: it is not loopback")
        );
        assert!(listen_addr("0.0.0.0:9", true).is_ok());
    }
}
