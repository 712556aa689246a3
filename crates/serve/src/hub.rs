//! The broadcast hub: what the run has sent so far (decimated chart history, recent audio,
//! alarms) for late joiners, and a bounded log of live messages that each client task follows
//! with its own cursor. Training only appends under a short lock and bumps a watch; all socket
//! writes happen on the server's own thread. Every message is encoded once and shared (its
//! bytes are reference-counted) by all the clients that send it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes};
use tokio::sync::watch;

/// Bytes of audio message header: sample offset, server time (ms since the Unix epoch), step,
/// all f64 LE.
pub const AUDIO_HEADER: usize = 24;

/// Live messages kept for slow clients, at most (bytes); a client further behind skips ahead.
const LOG_BYTES: usize = 8 << 20;

/// Bytes (about) of live messages a client takes from the log at once.
pub(crate) const TAKE_BYTES: usize = 256 << 10;

/// Bytes (about) of chart history per message to a joining page.
pub(crate) const HISTORY_CHUNK: usize = 16 << 10;

/// One chart point: a step's loss and voice values.
#[derive(Clone, Debug)]
pub(crate) struct Point {
    pub step: u64,
    pub loss: Option<f64>,
    pub values: Vec<f64>,
}

impl Point {
    /// Two neighbouring points as one: the first step, each value's max (a spike stays visible,
    /// NaN and infinities win over finite numbers).
    fn merge(&self, other: &Point) -> Point {
        let worst = |a: f64, b: f64| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.max(b)
            }
        };
        Point {
            step: self.step,
            loss: match (self.loss, other.loss) {
                (Some(a), Some(b)) => Some(worst(a, b)),
                (a, b) => a.or(b),
            },
            values: self
                .values
                .iter()
                .zip(&other.values)
                .map(|(&a, &b)| worst(a, b))
                .collect(),
        }
    }
}

/// An alarm as the page shows it.
#[derive(Clone, Debug)]
pub(crate) struct Alarm {
    pub step: u64,
    pub kind: String,
    pub message: String,
}

pub(crate) struct State {
    pub title: String,
    pub sample_rate: u32,
    pub channels: u16,
    pub names: Vec<String>,
    pub loss_name: Option<String>,
    pub points: Vec<Point>,
    /// Steps per chart point (doubles at each decimation).
    pub stride: u64,
    pub chart_cap: usize,
    pub alarms: VecDeque<Alarm>,
    pub alarms_dropped: u64,
    /// Recent audio messages (already encoded) and their total samples.
    pub audio: VecDeque<(Bytes, usize)>,
    pub audio_samples: usize,
    /// Audio messages dropped from the front of `audio` so far: the first one's index.
    pub audio_first: u64,
    pub audio_cap: usize,
    /// Interleaved samples pushed so far: the next audio message's offset.
    pub audio_offset: u64,
    pub log: VecDeque<(u64, Message, usize)>,
    /// The last hello (and its chart history) built, with the `next_seq` it was built at:
    /// joiners in between share it.
    pub hello: Option<(u64, Vec<Message>)>,
    pub log_bytes: usize,
    pub next_seq: u64,
    pub done: bool,
    pub closed: bool,
    pub clients: usize,
    pub clients_total: u64,
}

/// The shared state and the watch (the next sequence number) that wakes client tasks.
pub(crate) struct Hub {
    state: Mutex<State>,
    wake: watch::Sender<u64>,
    /// A wake-up is on its way and no client has looked since: publishing again need not send
    /// another (one wake per step, not one per message, on the training thread).
    woken: AtomicBool,
}

pub(crate) fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// A JSON number, or the strings `"nan"`/`"inf"`/`"-inf"` (JSON has no non-finite numbers).
pub(crate) fn num(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::json!(v)
    } else if v.is_nan() {
        serde_json::json!("nan")
    } else if v > 0.0 {
        serde_json::json!("inf")
    } else {
        serde_json::json!("-inf")
    }
}

fn point_json(p: &Point) -> serde_json::Value {
    serde_json::json!({
        "step": p.step,
        "loss": p.loss.map(num),
        "v": p.values.iter().map(|&v| num(v)).collect::<Vec<_>>(),
    })
}

fn alarm_json(a: &Alarm) -> serde_json::Value {
    serde_json::json!({"step": a.step, "kind": a.kind, "message": a.message})
}

impl Hub {
    pub fn new(
        title: String,
        sample_rate: u32,
        channels: u16,
        chart_cap: usize,
        audio_cap: usize,
    ) -> Self {
        Hub {
            state: Mutex::new(State {
                title,
                sample_rate,
                channels,
                names: Vec::new(),
                loss_name: None,
                points: Vec::new(),
                stride: 1,
                chart_cap: chart_cap.max(16),
                alarms: VecDeque::new(),
                alarms_dropped: 0,
                audio: VecDeque::new(),
                audio_samples: 0,
                audio_first: 0,
                audio_cap,
                audio_offset: 0,
                log: VecDeque::new(),
                hello: None,
                log_bytes: 0,
                next_seq: 0,
                done: false,
                closed: false,
                clients: 0,
                clients_total: 0,
            }),
            wake: watch::Sender::new(0),
            woken: AtomicBool::new(false),
        }
    }

    /// The state; a client thread that panicked while holding it leaves data that is still
    /// consistent enough to serve (appends only), so a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, st: &mut State, msg: Message, len: usize) {
        let seq = st.next_seq;
        st.next_seq += 1;
        st.log.push_back((seq, msg, len));
        st.log_bytes += len;
        // Keep at least a few messages so a burst bigger than the cap still reaches clients.
        while st.log_bytes > LOG_BYTES && st.log.len() > 4 {
            if let Some((_, _, n)) = st.log.pop_front() {
                st.log_bytes -= n;
            }
        }
        // Wakes every client task waiting for news, unless one is already on its way.
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.wake.send_replace(st.next_seq);
        }
    }

    fn publish_text(&self, st: &mut State, text: String) {
        let len = text.len();
        self.publish(st, Message::Text(text.into()), len);
    }

    /// A step's chart point. `names` are the voices' names (sent again only when they change).
    pub fn push_point(&self, step: u64, loss: Option<(&str, f64)>, names: &[&str], values: &[f64]) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        let names_changed = st.names.len() != names.len()
            || st.names.iter().zip(names).any(|(a, b)| a != b)
            || st.loss_name.as_deref() != loss.map(|l| l.0);
        if names_changed {
            st.names = names.iter().map(|s| s.to_string()).collect();
            st.loss_name = loss.map(|l| l.0.to_string());
            let m = serde_json::json!({"t": "names", "names": st.names, "loss": st.loss_name});
            self.publish_text(&mut st, m.to_string());
        }
        let p = Point {
            step,
            loss: loss.map(|l| l.1),
            values: values.to_vec(),
        };
        let m = serde_json::json!({"t": "point", "p": point_json(&p)});
        st.points.push(p);
        if st.points.len() >= st.chart_cap {
            // Halve the history: memory stays bounded however long the run, the shape stays.
            let merged: Vec<Point> = st
                .points
                .chunks(2)
                .map(|c| {
                    if c.len() == 2 {
                        c[0].merge(&c[1])
                    } else {
                        c[0].clone()
                    }
                })
                .collect();
            st.points = merged;
            st.stride *= 2;
        }
        self.publish_text(&mut st, m.to_string());
    }

    pub fn push_alarm(&self, step: u64, kind: &str, message: &str) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        let a = Alarm {
            step,
            kind: kind.to_string(),
            message: message.to_string(),
        };
        let m = serde_json::json!({"t": "alarm", "a": alarm_json(&a)});
        st.alarms.push_back(a);
        if st.alarms.len() > 1000 {
            st.alarms.pop_front();
            st.alarms_dropped += 1;
        }
        self.publish_text(&mut st, m.to_string());
    }

    pub fn push_audio(&self, step: u64, samples: &[f32]) {
        if samples.is_empty() {
            return;
        }
        // Encoded before the lock: training holds it only to append.
        let mut buf = vec![0u8; AUDIO_HEADER + samples.len() * 4];
        buf[8..16].copy_from_slice(&now_ms().to_le_bytes());
        buf[16..24].copy_from_slice(&(step as f64).to_le_bytes());
        for (b, s) in buf[AUDIO_HEADER..].chunks_exact_mut(4).zip(samples) {
            b.copy_from_slice(&s.to_le_bytes());
        }
        let mut st = self.lock();
        if st.closed {
            return;
        }
        buf[..8].copy_from_slice(&(st.audio_offset as f64).to_le_bytes());
        st.audio_offset += samples.len() as u64;
        let bytes = Bytes::from(buf);
        st.audio.push_back((bytes.clone(), samples.len()));
        st.audio_samples += samples.len();
        while st.audio_samples > st.audio_cap {
            match st.audio.pop_front() {
                Some((_, n)) => {
                    st.audio_samples -= n;
                    st.audio_first += 1;
                }
                None => break,
            }
        }
        let len = bytes.len();
        self.publish(&mut st, Message::Binary(bytes), len);
    }

    pub fn finish(&self) {
        let mut st = self.lock();
        if !st.done && !st.closed {
            st.done = true;
            self.publish_text(&mut st, r#"{"t":"done"}"#.to_string());
        }
    }

    pub fn close(&self) {
        let seq = {
            let mut st = self.lock();
            st.closed = true;
            st.next_seq
        };
        self.wake.send_replace(seq);
    }

    /// A receiver that wakes when something is published or the hub closes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// What a client joining now is sent first: the hello (settings and the start of the chart
    /// history) and the rest of the history in messages of about [`HISTORY_CHUNK`] bytes (a
    /// page that stops reading holds one of those, not the whole chart), the range of recent
    /// audio to take with [`Hub::audio_history`], and the cursor from which it follows the
    /// live log. Joiners with nothing published in between share the same hello messages.
    pub fn join(&self) -> (Vec<Message>, (u64, u64), u64) {
        let (points, mut hello, audio, cursor) = {
            let mut st = self.lock();
            st.clients += 1;
            st.clients_total += 1;
            let audio = (st.audio_first, st.audio_first + st.audio.len() as u64);
            let cursor = st.next_seq;
            if let Some((seq, msgs)) = &st.hello
                && *seq == cursor
            {
                return (msgs.clone(), audio, cursor);
            }
            let hello = serde_json::json!({
                "t": "hello",
                "title": st.title,
                "rate": st.sample_rate,
                "channels": st.channels,
                "names": st.names,
                "loss": st.loss_name,
                "stride": st.stride,
                "chart_cap": st.chart_cap,
                "done": st.done,
                "alarms": st.alarms.iter().map(alarm_json).collect::<Vec<_>>(),
                "alarms_dropped": st.alarms_dropped,
                "audio_cap": st.audio_cap,
            });
            (st.points.clone(), hello, audio, cursor)
        };
        // Serialised outside the lock: a join never stalls the training thread for long.
        let mut chunks: Vec<Vec<serde_json::Value>> = vec![Vec::new()];
        let mut size = 0;
        for p in &points {
            let v = point_json(p);
            size += 24 + 20 * p.values.len();
            if size > HISTORY_CHUNK {
                chunks.push(Vec::new());
                size = 0;
            }
            if let Some(c) = chunks.last_mut() {
                c.push(v);
            }
        }
        drop(points);
        let mut chunks = chunks.into_iter();
        hello["points"] = chunks.next().unwrap_or_default().into();
        let mut msgs = vec![Message::Text(Utf8Bytes::from(hello.to_string()))];
        msgs.extend(chunks.map(|c| {
            let m = serde_json::json!({"t": "points", "points": c});
            Message::Text(Utf8Bytes::from(m.to_string()))
        }));
        let mut st = self.lock();
        if st.next_seq == cursor {
            st.hello = Some((cursor, msgs.clone()));
        }
        (msgs, audio, cursor)
    }

    /// Up to `max` messages of the recent audio from index `from` (advanced) to `end`: the
    /// history's own bytes, a few at a time (a page holds a handful, not minutes of them).
    /// Audio dropped meanwhile is skipped (the page fills the gap with silence).
    pub fn audio_history(&self, from: &mut u64, end: u64, max: usize) -> Vec<Message> {
        let st = self.lock();
        let start = (*from).max(st.audio_first);
        let stop = end.min(start + max as u64);
        let out: Vec<Message> = (start..stop)
            .filter_map(|i| st.audio.get((i - st.audio_first) as usize))
            .map(|(b, _)| Message::Binary(b.clone()))
            .collect();
        *from = stop.max(start);
        out
    }

    pub fn leave(&self) {
        let mut st = self.lock();
        st.clients = st.clients.saturating_sub(1);
    }

    /// The live messages after `cursor` (advancing it past them), about [`TAKE_BYTES`] at
    /// most (always one, if any): a page that reads slowly holds that much, not a copy of the
    /// whole log kept alive after the log has dropped it. Empty when there are none yet;
    /// `None` once the server is closed and everything published has been taken. The next
    /// message published after this wakes the clients again.
    pub fn take(&self, cursor: &mut u64) -> Option<Vec<Message>> {
        self.woken.store(false, Ordering::Release);
        let st = self.lock();
        // Closing: what was published (the run's end) still goes out, then the client ends.
        if st.closed && st.next_seq <= *cursor {
            return None;
        }
        let first = st.log.front().map_or(st.next_seq, |m| m.0);
        // A client that fell behind the log skips to what is kept (the page fills the gap
        // with silence, by the audio offsets).
        let from = (*cursor).max(first);
        let mut bytes = 0;
        let out: Vec<Message> = st
            .log
            .iter()
            .skip((from - first) as usize)
            .take_while(|(_, _, n)| {
                let more = bytes < TAKE_BYTES;
                bytes += n;
                more
            })
            .map(|(_, m, _)| m.clone())
            .collect();
        *cursor = from + out.len() as u64;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_ptr(m: &Message) -> *const u8 {
        match m {
            Message::Text(t) => t.as_str().as_ptr(),
            _ => std::ptr::null(),
        }
    }

    fn bin_ptr(m: &Message) -> *const u8 {
        match m {
            Message::Binary(b) => b.as_ptr(),
            _ => std::ptr::null(),
        }
    }

    #[test]
    fn joiners_share_the_history_not_copies() {
        let hub = Hub::new("t".into(), 44_100, 1, 4096, 1 << 20);
        for step in 0..2000 {
            hub.push_point(step, Some(("loss", 1.0)), &["a", "b"], &[0.5, 0.25]);
            hub.push_audio(step, &[0.1; 441]);
        }
        let (h1, (a1, e1), _) = hub.join();
        let (h2, (a2, e2), _) = hub.join();
        assert!(h1.len() > 1, "a long chart comes in several messages");
        assert_eq!(h1.len(), h2.len());
        for (x, y) in h1.iter().zip(&h2) {
            assert_eq!(text_ptr(x), text_ptr(y), "the same bytes, not a copy");
        }
        assert_eq!((a1, e1), (a2, e2));
        let (mut c1, mut c2) = (a1, a2);
        let first = hub.audio_history(&mut c1, e1, 16);
        let again = hub.audio_history(&mut c2, e2, 16);
        assert_eq!(first.len(), 16);
        for (x, y) in first.iter().zip(&again) {
            assert_eq!(bin_ptr(x), bin_ptr(y), "audio history shared too");
        }
        // Something new is published: the next joiner gets a fresh hello.
        hub.push_point(2000, Some(("loss", 1.0)), &["a", "b"], &[0.5, 0.25]);
        let (h3, _, _) = hub.join();
        assert_ne!(text_ptr(&h1[0]), text_ptr(&h3[0]));
        assert_eq!(hub.lock().clients, 3);
    }

    #[test]
    fn a_client_takes_a_bounded_batch_and_misses_nothing_kept() {
        let hub = Hub::new("t".into(), 44_100, 1, 4096, 1 << 20);
        let mut cursor = hub.join().2;
        // 4 MiB of audio: all of it stays in the log.
        for step in 0..1024 {
            hub.push_audio(step, &[0.5; 1024]);
        }
        let mut steps = Vec::new();
        loop {
            let batch = hub.take(&mut cursor).expect("not closed");
            if batch.is_empty() {
                break;
            }
            let mut bytes = 0;
            for m in &batch {
                let Message::Binary(b) = m else {
                    panic!("audio is binary")
                };
                bytes += b.len();
                let step: [u8; 8] = b[16..24].try_into().unwrap();
                steps.push(f64::from_le_bytes(step) as u64);
            }
            assert!(bytes < TAKE_BYTES + 8192, "a batch of {bytes} bytes");
        }
        assert_eq!(
            steps,
            (0..1024).collect::<Vec<u64>>(),
            "in order, none lost"
        );
        hub.close();
        assert!(hub.take(&mut cursor).is_none());
    }
}
