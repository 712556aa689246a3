//! `gradtone train --serve` against a real headless Chromium, driven over the DevTools
//! protocol: the page loads, its chart holds one point per step, the audio it received is the
//! run's WAV (within 1 LSB) with the CSV's pitches, and its screenshot is not blank. What the
//! page sends to the speakers is recorded too (the AudioContext's destination, tapped before the
//! page's scripts run): every step heard as its frame arrives, the last one included, at its
//! pitch. And the token URL of a non-loopback bind opens a working page.
//!
//! Needs Debian's `chromium` (`GRADTONE_CHROMIUM` picks another binary). Without it the test
//! skips loudly, or fails when `GRADTONE_REQUIRE_CHROMIUM=1` (CI). `GRADTONE_UPDATE_DOCS=1`
//! also saves the screenshot as docs/img/serve.png.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gradtone_testkit::TempDir;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket, stream::MaybeTlsStream};

const STEPS: usize = 20;
const BIN: &str = env!("CARGO_BIN_EXE_gradtone");

fn chromium(test: &str) -> Option<String> {
    let bin = std::env::var("GRADTONE_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let ok = gradtone_testkit::runs(&bin, &["--version"]);
    let hint = format!("no `{bin}` (apt-get install chromium)");
    gradtone_testkit::require(test, "CHROMIUM", ok, &hint).then_some(bin)
}

/// Kills the process when dropped (a failing assertion must not leave a browser behind).
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of a child's stderr, forwarded to ours and to a channel.
fn lines_of(r: impl Read + Send + 'static, tag: &'static str) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            eprintln!("[{tag}] {line}");
            let _ = tx.send(line);
        }
    });
    rx
}

fn wait_line(
    rx: &mpsc::Receiver<String>,
    what: &str,
    pred: impl Fn(&str) -> Option<String>,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => {
                if let Some(v) = pred(&l) {
                    return v;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no {what} within 120 s");
}

/// A DevTools session on one page.
struct Cdp {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    id: u64,
    session: Option<String>,
    /// Events received while waiting for answers (when `keep_events`).
    events: Vec<Value>,
    keep_events: bool,
}

impl Cdp {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        let id = self.id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .expect("cdp send");
        loop {
            let m = self.ws.read().expect("cdp read");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).expect("cdp json");
            if v["id"].is_null() && self.keep_events && self.events.len() < 10_000 {
                self.events.push(v.clone());
            }
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr}: {e}");
        }
        r["result"]["value"].clone()
    }
}

fn b64(s: &str) -> Vec<u8> {
    data_encoding::BASE64.decode(s.as_bytes()).expect("base64")
}

/// Frequency (Hz) of the sine that best fits `x` (least squares over amplitude and phase, the
/// exact answer for a pure tone, unlike a DFT peak that a 10 ms window biases), scanned
/// 50..5000 Hz in 0.25 Hz steps.
fn fit_hz(x: &[f32], rate: f64) -> f64 {
    let mut best = (0.0, f64::NEG_INFINITY);
    let mut f = 50.0;
    while f < 5000.0 {
        let w = 2.0 * std::f64::consts::PI * f / rate;
        let (mut s, mut c, mut ss, mut cc, mut sc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (i, &v) in x.iter().enumerate() {
            let (si, ci) = (w * i as f64).sin_cos();
            let v = f64::from(v);
            s += v * si;
            c += v * ci;
            ss += si * si;
            cc += ci * ci;
            sc += si * ci;
        }
        let det = ss * cc - sc * sc;
        let fit = (s * s * cc - 2.0 * s * c * sc + c * c * ss) / det;
        if fit > best.1 {
            best = (f, fit);
        }
        f += 0.25;
    }
    best.0
}

/// The tests here measure real-time audio to the sample: three Chromiums and three servers
/// sharing two cores would glitch the very signal they record, so they take turns.
fn one_browser_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that failed while holding it says nothing about the next one's turn.
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn browser_hears_and_draws_a_served_run() {
    let _one = one_browser_at_a_time();
    let test = "browser_hears_and_draws_a_served_run";
    let Some(data) = gradtone_testkit::shared(test, "data/mnist-20k") else {
        return;
    };
    let Some(chrome) = chromium(test) else {
        return;
    };
    let t = TempDir::new("serve-browser");
    let (wav, csv) = (t.join("run.wav"), t.join("run.csv"));
    let mut run = Command::new(BIN)
        .args(["train", "--no-live", "--no-eval", "--mapping", "seed"])
        .args(["--steps", &STEPS.to_string(), "--batch", "10"])
        .args(["--data", data.to_str().expect("utf8")])
        .args(["--wav", wav.to_str().expect("utf8")])
        .args(["--csv", csv.to_str().expect("utf8")])
        .args(["--serve", "0", "--serve-wait", "--serve-linger", "120"])
        .env_remove("GRADTONE_MNIST_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gradtone runs");
    let run_err = lines_of(run.stderr.take().expect("stderr"), "gradtone");
    let run_out = run.stdout.take().expect("stdout");
    let mut run = Reaper(run);
    let url = wait_line(&run_err, "served URL", |l| {
        l.strip_prefix("serving the live page at ")
            .map(str::to_string)
    });
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let (mut cdp, _browser) = open_browser(&chrome, &t);
    cdp.call("Page.enable", json!({}));
    cdp.call("Runtime.enable", json!({}));
    let sep = if url.contains('?') { '&' } else { '?' };
    cdp.call(
        "Page.navigate",
        json!({"url": format!("{url}{sep}autoplay=1")}),
    );

    // Training waits for this page, then streams live; done when the run is over.
    let deadline = Instant::now() + Duration::from_secs(180);
    let state = loop {
        let s = cdp.eval("JSON.stringify(window.gradtone ? window.gradtone.state() : null)");
        let s: Value = serde_json::from_str(s.as_str().unwrap_or("null")).unwrap_or(Value::Null);
        if s["done"] == true {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the page never saw the run end: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("page state: {state}");

    // The chart: one point per step, the CSV's steps.
    let csv_text = std::fs::read_to_string(&csv).expect("csv written before lingering");
    let rows: Vec<Vec<String>> = csv_text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), STEPS);
    let steps: Vec<u64> = state["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let csv_steps: Vec<u64> = rows.iter().map(|r| r[0].parse().expect("step")).collect();
    assert_eq!(steps, csv_steps, "one chart point per step");
    let header: Vec<&str> = csv_text
        .lines()
        .next()
        .expect("header")
        .split(',')
        .collect();
    let names: Vec<&str> = state["names"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let cols: Vec<usize> = names
        .iter()
        .map(|n| {
            header
                .iter()
                .position(|h| h == n)
                .expect("each voice is a CSV column")
        })
        .collect();
    assert!(!cols.is_empty());
    assert_eq!(state["gaps"], 0);

    // The audio the page received: the WAV's samples, within 1 LSB.
    let rec = b64(cdp
        .eval("window.gradtone.recording()")
        .as_str()
        .expect("base64"));
    let page: Vec<f32> = rec
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let reader = hound::WavReader::open(&wav).expect("wav");
    let rate = f64::from(reader.spec().sample_rate);
    let wav_s: Vec<i16> = reader
        .into_samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    assert_eq!(page.len(), wav_s.len(), "the page received every sample");
    let worst = page
        .iter()
        .zip(&wav_s)
        .map(|(&p, &w)| (gradtone_sound::wav::to_pcm16(p) as i32 - w as i32).abs())
        .max()
        .unwrap_or(0);
    assert!(worst <= 1, "page audio differs from the WAV by {worst} LSB");

    // Its tones: per step, one 441-sample tone per layer at 200 + 100·norm Hz, then silence.
    let voices = names.len();
    let per_step = voices * 441 + 882;
    assert_eq!(page.len(), STEPS * per_step);
    let mut worst_hz: f64 = 0.0;
    for (k, row) in rows.iter().enumerate() {
        for v in 0..voices {
            let norm: f64 = row[cols[v]].parse().expect("norm");
            let start = k * per_step + v * 441;
            let got = fit_hz(&page[start..start + 441], rate);
            let want = 200.0 + 100.0 * norm;
            worst_hz = worst_hz.max((got - want).abs());
        }
    }
    eprintln!(
        "pitch: worst |page − CSV| = {worst_hz:.2} Hz over {} tones",
        STEPS * voices
    );
    assert!(
        worst_hz < 1.0,
        "tones off the CSV's pitches by {worst_hz:.2} Hz"
    );

    // What it costs to get there: delivery and, when the page plays, step → audio out.
    eprintln!(
        "latency: network {} ms; step → audio out {} ms (AudioContext {})",
        state["netDelayMs"], state["latencyMs"], state["audio"]
    );

    // A screenshot that shows something: many distinct colours, not one flat background.
    let shot = cdp.call("Page.captureScreenshot", json!({"format": "png"}));
    let png_bytes = b64(shot["data"].as_str().expect("png"));
    let decoder = png::Decoder::new(std::io::Cursor::new(&png_bytes));
    let mut r = decoder.read_info().expect("png header");
    let mut buf = vec![0; r.output_buffer_size().expect("size")];
    let info = r.next_frame(&mut buf).expect("png frame");
    let px = info.color_type.samples();
    let mut colours = std::collections::HashSet::new();
    let mut non_white = 0usize;
    for p in buf[..info.buffer_size()].chunks_exact(px) {
        colours.insert(p[..3].to_vec());
        if p[..3].iter().any(|&c| c < 200) {
            non_white += 1;
        }
    }
    eprintln!(
        "screenshot {}x{}: {} colours, {non_white} dark pixels",
        info.width,
        info.height,
        colours.len()
    );
    assert!(colours.len() > 20 && non_white > 2000, "blank screenshot");
    let shot_path = t.join("serve.png");
    std::fs::write(&shot_path, &png_bytes).expect("screenshot written");
    if std::env::var("GRADTONE_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/img/serve.png");
        std::fs::write(docs, &png_bytes).expect("docs/img/serve.png");
    }

    // A late joiner (a second tab) gets the whole history.
    cdp.call("Page.reload", json!({}));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = cdp.eval("JSON.stringify(window.gradtone ? window.gradtone.state() : null)");
        let s: Value = serde_json::from_str(s.as_str().unwrap_or("null")).unwrap_or(Value::Null);
        if s["done"] == true && s["samples"].as_u64() == Some(page.len() as u64) {
            assert_eq!(s["steps"].as_array().map(Vec::len), Some(STEPS));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "late joiner never got the history: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Ctrl-C ends the lingering server; the run's summary is on stdout.
    let _ = Command::new("kill")
        .args(["-INT", &run.0.id().to_string()])
        .status();
    let status = run.0.wait().expect("gradtone exits");
    assert!(status.success(), "{status}");
    let mut out = String::new();
    BufReader::new(run_out)
        .read_to_string(&mut out)
        .expect("stdout");
    assert!(out.contains(&format!("{STEPS} steps")), "{out}");
    assert!(
        out.contains("served 2 browsers") || out.contains("served 1 browser"),
        "{out}"
    );
}

/// Starts headless Chromium and attaches to a fresh page target.
fn open_browser(chrome: &str, t: &TempDir) -> (Cdp, Reaper) {
    let profile = t.join("chromium-profile");
    let mut browser = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--remote-debugging-port=0",
            "--autoplay-policy=no-user-gesture-required",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1200,800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let browser_err = lines_of(browser.stderr.take().expect("stderr"), "chromium");
    let reaper = Reaper(browser);
    let devtools = wait_line(&browser_err, "DevTools URL", |l| {
        l.split_once("DevTools listening on ")
            .map(|(_, u)| u.trim().to_string())
    });
    // One browser-wide socket; the page is a target attached in flat mode (its session id).
    let (ws, _) = tungstenite::connect(devtools).expect("cdp connects");
    let mut cdp = Cdp {
        ws,
        id: 0,
        session: None,
        events: Vec::new(),
        keep_events: false,
    };
    let target = cdp.call("Target.createTarget", json!({"url": "about:blank"}));
    let attached = cdp.call(
        "Target.attachToTarget",
        json!({"targetId": target["targetId"], "flatten": true}),
    );
    cdp.session = Some(
        attached["sessionId"]
            .as_str()
            .expect("session id")
            .to_string(),
    );
    (cdp, reaper)
}

/// Records what the page sends to the speakers, installed before any of its scripts runs: every
/// node connected to an AudioContext's destination is connected to an AudioWorklet too, which
/// posts channel 0 in 4096-frame chunks, each with the wall-clock time (ms since the epoch) its
/// first frame reaches the output (`getOutputTimestamp`, so the output latency counts). The
/// worklet is a blob module, so the page's CSP is bypassed for these tests only; the page's own
/// worklet module loads once the tap's has, so the tap hears its first sound.
const TAP: &str = r#"(() => {
  const src = `class Tap extends AudioWorkletProcessor {
    constructor() { super(); this.buf = new Float32Array(4096); this.n = 0; this.t0 = 0; }
    process(inputs) {
      const x = inputs[0] && inputs[0][0];
      if (this.n === 0) this.t0 = currentTime;
      if (x) this.buf.set(x, this.n);
      this.n += x ? x.length : 128;
      if (this.n >= 4096) {
        this.port.postMessage({ t: this.t0, s: this.buf }, [this.buf.buffer]);
        this.buf = new Float32Array(4096); this.n = 0;
      }
      return true;
    }
  }
  registerProcessor('gradtone-tap', Tap);`;
  const url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }));
  const tap = { chunks: [], rate: 0 };
  window.__gradtoneTap = tap;
  const connect = AudioNode.prototype.connect;
  const Base = window.AudioContext;
  window.AudioContext = class extends Base {
    constructor(...args) {
      super(...args);
      const ctx = this;
      tap.rate = ctx.sampleRate;
      this.__tap = ctx.audioWorklet.addModule(url).then(() => {
        const n = new AudioWorkletNode(ctx, 'gradtone-tap', { numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1] });
        n.port.onmessage = (e) => {
          const ts = ctx.getOutputTimestamp();
          const wall = ts.performanceTime > 0
            ? performance.timeOrigin + ts.performanceTime + (e.data.t - ts.contextTime) * 1000
            : Date.now() + (e.data.t - ctx.currentTime + (ctx.baseLatency || 0) + (ctx.outputLatency || 0)) * 1000;
          tap.chunks.push({ wall, s: e.data.s });
        };
        connect.call(n, ctx.destination);
        ctx.__tapNode = n;
        return n;
      });
      // The page's own modules load after the tap's: its first sound is recorded too.
      const add = ctx.audioWorklet.addModule.bind(ctx.audioWorklet);
      ctx.audioWorklet.addModule = (u, o) => this.__tap.then(() => add(u, o));
    }
  };
  AudioNode.prototype.connect = function (dest, ...rest) {
    const r = connect.call(this, dest, ...rest);
    const ctx = this.context;
    if (dest instanceof AudioDestinationNode && ctx.__tap) {
      if (ctx.__tapNode) connect.call(this, ctx.__tapNode);
      else ctx.__tap.then((n) => connect.call(this, n));
    }
    return r;
  };
  window.__gradtoneTapDump = () => {
    const all = new Float32Array(tap.chunks.length * 4096);
    tap.chunks.forEach((c, i) => all.set(c.s, i * 4096));
    const b = new Uint8Array(all.buffer);
    let s = '';
    for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
    return JSON.stringify({ rate: tap.rate, walls: tap.chunks.map((c) => c.wall), b64: btoa(s) });
  };
})();"#;

/// What reached the speakers: channel 0, and when each 4096-frame chunk was heard.
struct Heard {
    rate: f64,
    walls: Vec<f64>,
    x: Vec<f32>,
}

impl Heard {
    fn dump(cdp: &mut Cdp) -> Heard {
        let v: Value = serde_json::from_str(
            cdp.eval("window.__gradtoneTapDump()")
                .as_str()
                .expect("tap"),
        )
        .expect("tap json");
        let x = b64(v["b64"].as_str().expect("b64"))
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let walls = v["walls"]
            .as_array()
            .expect("walls")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        Heard {
            rate: v["rate"].as_f64().expect("rate"),
            walls,
            x,
        }
    }

    /// Wall-clock ms at which frame `i` was heard.
    fn wall(&self, i: usize) -> f64 {
        self.walls[i / 4096] + (i % 4096) as f64 / self.rate * 1e3
    }

    /// The first place at or after `from` where `r` is heard (scaled by the page's volume,
    /// within 2e-3: the WAV's 16 bits): its offset.
    fn find(&self, r: &[f32], from: usize) -> Option<usize> {
        let (i0, peak) = r
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))?;
        if peak.abs() < 1e-3 {
            return None;
        }
        let probes: Vec<usize> = (0..64).map(|k| k * r.len() / 64).collect();
        let close = |o: usize, g: f32, j: usize| (self.x[o + j] - g * r[j]).abs() <= 2e-3;
        (from..=self.x.len().checked_sub(r.len())?).find(|&o| {
            let g = self.x[o + i0] / peak;
            (0.05..2.0).contains(&g)
                && probes.iter().all(|&j| close(o, g, j))
                && (0..r.len()).all(|j| close(o, g, j))
        })
    }
}

/// The best-fitting sine's frequency within 25 Hz of `near` (0.05 Hz steps), as [`fit_hz`].
fn fit_hz_near(x: &[f32], rate: f64, near: f64) -> f64 {
    let mut best = (0.0, f64::NEG_INFINITY);
    let mut f = near - 25.0;
    while f < near + 25.0 {
        let w = 2.0 * std::f64::consts::PI * f / rate;
        let (mut s, mut c, mut ss, mut cc, mut sc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (i, &v) in x.iter().enumerate() {
            let (si, ci) = (w * i as f64).sin_cos();
            let v = f64::from(v);
            s += v * si;
            c += v * ci;
            ss += si * si;
            cc += ci * ci;
            sc += si * ci;
        }
        let fit = (s * s * cc - 2.0 * s * c * sc + c * c * ss) / (ss * cc - sc * sc);
        if fit > best.1 {
            best = (f, fit);
        }
        f += 0.05;
    }
    best.0
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Step `step`'s frame: four values whose seed pitches (200 + 100·norm Hz) all change each step.
fn frame_line(step: u32) -> String {
    let k = f64::from(step);
    format!(
        "{{\"step\":{step},\"values\":{{\"a\":{},\"b\":{},\"c\":{},\"d\":{}}}}}\n",
        0.5 + 0.13 * k,
        2.5 - 0.07 * k,
        1.2 + 0.05 * (k * 0.7).sin(),
        0.7 + 0.011 * k
    )
}

/// A `gradtone listen --udp --serve` run of this test, with its WAV and CSV.
struct Listen {
    run: Reaper,
    err: mpsc::Receiver<String>,
    udp: String,
    sock: std::net::UdpSocket,
    wav: std::path::PathBuf,
    csv: std::path::PathBuf,
}

impl Listen {
    fn start(t: &TempDir, name: &str, mapping: &str, serve: &str) -> Listen {
        let (wav, csv) = (
            t.join(&format!("{name}.wav")),
            t.join(&format!("{name}.csv")),
        );
        let mut run = Command::new(BIN)
            .args(["listen", "--no-live", "--mapping", mapping, "--udp", "0"])
            .args(["--idle-timeout", "3", "--serve", serve, "--serve-wait"])
            .args(["--serve-linger", "0"])
            .args(["--wav", wav.to_str().expect("utf8")])
            .args(["--csv", csv.to_str().expect("utf8")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gradtone runs");
        let err = lines_of(run.stderr.take().expect("stderr"), "gradtone");
        let run = Reaper(run);
        let udp = wait_line(&err, "UDP address", |l| {
            l.strip_prefix("listening for JSONL datagrams on udp://")
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_string)
        });
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        Listen {
            run,
            err,
            udp,
            sock,
            wav,
            csv,
        }
    }

    /// Sends step `step`'s frame; when it left, wall-clock ms.
    fn send(&self, step: u32) -> f64 {
        let t = now_ms();
        self.sock
            .send_to(frame_line(step).as_bytes(), &self.udp)
            .expect("send");
        t
    }

    /// The page's URL, once the first frame has opened the outputs.
    fn url(&self) -> String {
        wait_line(&self.err, "served URL", |l| {
            l.strip_prefix("serving the live page at ")
                .map(str::to_string)
        })
    }

    /// Waits for the run to end (the idle timeout after the last frame).
    fn finish(mut self) -> (std::path::PathBuf, std::path::PathBuf) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.run.0.try_wait().expect("wait") {
                assert!(st.success(), "listen failed: {st}");
                break;
            }
            assert!(Instant::now() < deadline, "listen never ended");
            std::thread::sleep(Duration::from_millis(50));
        }
        (self.wav, self.csv)
    }
}

fn page_state(cdp: &mut Cdp) -> Value {
    let s = cdp.eval(
        "JSON.stringify({page: window.gradtone ? window.gradtone.state() : null, \
         tap: window.__gradtoneTap ? window.__gradtoneTap.chunks.length : -1, \
         legend: document.getElementById('legend') ? document.getElementById('legend').children.length : 0})",
    );
    serde_json::from_str(s.as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

/// Opens `url` with autoplay and waits until the page plays (and, with the tap, is heard).
fn open_playing(cdp: &mut Cdp, url: &str, tapped: bool) -> Value {
    let sep = if url.contains('?') { '&' } else { '?' };
    cdp.call(
        "Page.navigate",
        json!({"url": format!("{url}{sep}autoplay=1")}),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = page_state(cdp);
        let p = &s["page"];
        if p["connected"] == true
            && p["audio"] == "running"
            && p["playing"] == true
            && (!tapped || s["tap"].as_i64().unwrap_or(0) > 2)
        {
            return s;
        }
        assert!(Instant::now() < deadline, "the page never played: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The WAV's channel 0, as floats.
fn wav_left(path: &Path) -> (Vec<f32>, f64) {
    let reader = hound::WavReader::open(path).expect("wav");
    let spec = reader.spec();
    let ch = usize::from(spec.channels);
    let s: Vec<i16> = reader
        .into_samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    (
        s.iter()
            .step_by(ch)
            .map(|&v| f32::from(v) / 32768.0)
            .collect(),
        f64::from(spec.sample_rate),
    )
}

/// One run heard through the page: `frames` frames `every` apart after the first (which opens
/// the page); every step must reach the speakers, the last one included, as the WAV has it,
/// each within 150 ms of its frame (the first excepted: the page opens after it), and with the
/// seed mapping at the CSV's pitches.
fn heard_as_it_arrives(cdp: &mut Cdp, t: &TempDir, mapping: &str, every: Duration, frames: u32) {
    let name = format!("{mapping}-{}ms", every.as_millis());
    let run = Listen::start(t, &name, mapping, "0");
    let mut sent = vec![run.send(0)];
    let url = run.url();
    open_playing(cdp, &url, true);
    for step in 1..frames {
        std::thread::sleep(every);
        sent.push(run.send(step));
    }
    let (wav, csv) = run.finish();
    std::thread::sleep(Duration::from_millis(400));
    let heard = Heard::dump(cdp);
    let (left, rate) = wav_left(&wav);
    assert_eq!(rate, heard.rate, "the page plays at the run's rate");
    let steps = frames as usize;
    assert_eq!(left.len() % steps, 0, "{name}: equal steps");
    let per = left.len() / steps;
    let rows: Vec<Vec<f64>> = std::fs::read_to_string(&csv)
        .expect("csv")
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .skip(1)
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), steps, "{name}: one CSV row per frame");
    let (mut from, mut lat, mut worst_hz) = (0, Vec::new(), 0.0f64);
    for k in 0..steps {
        let r = &left[k * per..(k + 1) * per];
        let at = heard.find(r, from).unwrap_or_else(|| {
            panic!(
                "{name}: step {k} of {steps} never reached the speakers ({} frames heard)",
                heard.x.len()
            )
        });
        from = at + per;
        if k > 0 {
            lat.push(heard.wall(at) - sent[k]);
        }
        if mapping == "seed" {
            for (v, norm) in rows[k].iter().take(4).enumerate() {
                let want = 200.0 + 100.0 * norm;
                let tone = &heard.x[at + v * 441..at + (v + 1) * 441];
                worst_hz = worst_hz.max((fit_hz_near(tone, rate, want) - want).abs());
            }
        }
    }
    let max = lat.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min = lat.iter().cloned().fold(f64::INFINITY, f64::min);
    eprintln!(
        "HEARD {name}: {steps} of {steps} steps; frame → speakers {min:.0}..{max:.0} ms (mean {:.0}); pitch worst {worst_hz:.2} Hz",
        lat.iter().sum::<f64>() / lat.len() as f64
    );
    assert!(
        max <= 150.0,
        "{name}: a step was heard {max:.0} ms after its frame: {lat:?}"
    );
    assert!(min > -20.0, "{name}: heard before sent? {lat:?}");
    assert!(
        worst_hz < 1.0,
        "{name}: tones off the CSV's pitches by {worst_hz:.2} Hz"
    );
}

/// Frames 5 ms apart, 60 ms of sound each: the page stays live (it drops what it cannot play
/// in time) and the last step is heard within a second of its frame, not 10 s later.
fn stays_live_when_training_is_faster(cdp: &mut Cdp, t: &TempDir) {
    let run = Listen::start(t, "fast", "seed", "0");
    let mut sent = vec![run.send(0)];
    let url = run.url();
    open_playing(cdp, &url, true);
    const FRAMES: u32 = 200;
    for step in 1..FRAMES {
        std::thread::sleep(Duration::from_millis(5));
        sent.push(run.send(step));
    }
    let (wav, _) = run.finish();
    std::thread::sleep(Duration::from_millis(400));
    let heard = Heard::dump(cdp);
    let (left, _) = wav_left(&wav);
    let per = left.len() / FRAMES as usize;
    let last = &left[left.len() - per..];
    let at = heard
        .find(last, 0)
        .expect("the last step reached the speakers");
    let late = heard.wall(at) - sent[FRAMES as usize - 1];
    eprintln!(
        "HEARD fast: {FRAMES} steps of 60 ms in {:.1} s; the last heard {late:.0} ms after its frame",
        (sent[FRAMES as usize - 1] - sent[0]) / 1e3
    );
    assert!(
        late < 1000.0,
        "the page fell {late:.0} ms behind a fast run"
    );
}

#[test]
fn browser_hears_every_step_as_it_arrives() {
    let _one = one_browser_at_a_time();
    let test = "browser_hears_every_step_as_it_arrives";
    let Some(chrome) = chromium(test) else {
        return;
    };
    let t = TempDir::new("serve-heard");
    let (mut cdp, _browser) = open_browser(&chrome, &t);
    cdp.call("Page.enable", json!({}));
    cdp.call("Page.setBypassCSP", json!({"enabled": true}));
    cdp.call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({"source": TAP}),
    );
    for mapping in ["seed", "cents"] {
        heard_as_it_arrives(&mut cdp, &t, mapping, Duration::from_millis(200), 12);
        heard_as_it_arrives(&mut cdp, &t, mapping, Duration::from_secs(2), 4);
    }
    stays_live_when_training_is_faster(&mut cdp, &t);
}

/// The documented remote setup: `--serve 0.0.0.0:0` prints a token URL (connected to here on
/// 127.0.0.1 only); Chromium opened on it loads the script, the worklet and the WebSocket,
/// draws, plays, sends no `Referer` and keeps no cookie; a wrong token shows the refusal.
#[test]
fn browser_opens_the_token_url_of_a_public_bind() {
    let _one = one_browser_at_a_time();
    let test = "browser_opens_the_token_url_of_a_public_bind";
    let Some(chrome) = chromium(test) else {
        return;
    };
    let t = TempDir::new("serve-token");
    let run = Listen::start(&t, "token", "seed", "0.0.0.0:0");
    run.send(0);
    let url = run.url();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/?token="),
        "{url}"
    );
    let token = url.split("token=").nth(1).expect("token").to_string();
    let (mut cdp, _browser) = open_browser(&chrome, &t);
    cdp.call("Page.enable", json!({}));
    cdp.call("Network.enable", json!({}));
    cdp.keep_events = true;
    open_playing(&mut cdp, &url, false);
    for step in 1..6 {
        std::thread::sleep(Duration::from_millis(200));
        run.send(step);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let s = loop {
        let s = page_state(&mut cdp);
        if s["page"]["steps"].as_array().map(Vec::len) == Some(6)
            // Steps 1..5 reach the player as they come (step 0 waited for it to start).
            && s["page"]["latencyMs"]["n"].as_u64().unwrap_or(0) >= 5
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the token page never caught up: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("token page: {s}");
    assert_eq!(s["page"]["connected"], true);
    assert!(s["legend"].as_u64().unwrap_or(0) >= 4, "the legend: {s}");
    assert_eq!(s["page"]["gaps"], 0);
    // Every request the page made: none refused, none with a Referer.
    let mut urls = Vec::new();
    for e in &cdp.events {
        let p = &e["params"];
        match e["method"].as_str() {
            Some("Network.requestWillBeSent") => {
                urls.push(p["request"]["url"].as_str().unwrap_or("").to_string());
                let h = &p["request"]["headers"];
                // DevTools lists an empty one for none.
                let referer = h["Referer"]
                    .as_str()
                    .or(h["referer"].as_str())
                    .unwrap_or("");
                assert!(referer.is_empty(), "a Referer: {h}");
            }
            Some("Network.webSocketCreated") => {
                urls.push(p["url"].as_str().unwrap_or("").to_string());
            }
            Some("Network.webSocketWillSendHandshakeRequest") => {
                let h = &p["request"]["headers"];
                let referer = h["Referer"]
                    .as_str()
                    .or(h["referer"].as_str())
                    .unwrap_or("");
                assert!(referer.is_empty(), "a Referer on the WebSocket: {h}");
            }
            // The page's own requests (not the browser's favicon probe) are all served.
            Some("Network.responseReceived")
                if p["response"]["url"]
                    .as_str()
                    .unwrap_or("")
                    .contains("token=") =>
            {
                let status = p["response"]["status"].as_u64().unwrap_or(0);
                let u = p["response"]["url"].as_str().unwrap_or("");
                assert_eq!(status, 200, "{u} answered {status}");
            }
            _ => {}
        }
    }
    // The script and the WebSocket carry the token (the worklet's fetch is not listed; the
    // player's acknowledgements above show it loaded).
    assert!(
        urls.iter().any(|u| u.contains("/app.js?token="))
            && urls
                .iter()
                .any(|u| u.starts_with("ws://") && u.contains("/ws?token=")),
        "{urls:?}"
    );
    let cookies = cdp.call("Network.getCookies", json!({}));
    assert_eq!(cookies["cookies"], json!([]), "no cookie");
    // A differently-cased token: the refusal, not the page.
    cdp.keep_events = false;
    let wrong = url.replace(&token, &token.to_uppercase());
    assert_ne!(wrong, url);
    cdp.call("Page.navigate", json!({"url": wrong}));
    std::thread::sleep(Duration::from_millis(500));
    let text = cdp.eval("document.body ? document.body.innerText : ''");
    assert!(
        text.as_str().unwrap_or("").contains("wrong token"),
        "{text}"
    );
    drop(run);
}
