//! A WebSocket client that follows a server like a page does, for benchmarks: it counts what
//! arrives and how long each audio chunk took from `push_audio` to here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gradtone_serve::AUDIO_HEADER;
use tungstenite::Message;

/// Milliseconds since the Unix epoch: the clock the server stamps each audio message with.
fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// What a [`Probe`] received.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProbeStats {
    /// Messages received.
    pub messages: u64,
    /// Interleaved audio samples received.
    pub audio_samples: u64,
    /// Per audio chunk: milliseconds from the server's push to its arrival here.
    pub delays_ms: Vec<f64>,
}

/// A connected client reading on its own thread until [`Probe::stop`].
pub struct Probe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ProbeStats>,
}

impl Probe {
    /// Connects to the server at `addr` (with `token`, if it needs one).
    pub fn connect(addr: SocketAddr, token: Option<&str>) -> Result<Probe, tungstenite::Error> {
        let url = match token {
            Some(t) => format!("ws://{addr}/ws?token={t}"),
            None => format!("ws://{addr}/ws"),
        };
        let (mut ws, _) = tungstenite::connect(url)?;
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
            let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut st = ProbeStats::default();
            while !s.load(Ordering::SeqCst) {
                match ws.read() {
                    Ok(Message::Binary(b)) if b.len() >= AUDIO_HEADER => {
                        st.messages += 1;
                        let sent = f64::from_le_bytes(b[8..16].try_into().unwrap_or([0; 8]));
                        st.delays_ms.push(now_ms() - sent);
                        st.audio_samples += ((b.len() - AUDIO_HEADER) / 4) as u64;
                    }
                    Ok(_) => st.messages += 1,
                    Err(tungstenite::Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            st
        });
        Ok(Probe { stop, thread })
    }

    /// Stops reading; what was received.
    pub fn stop(self) -> ProbeStats {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_default()
    }
}
