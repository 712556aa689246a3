//! `gradtone train --serve` against a real headless Chromium, driven over the DevTools
//! protocol: the page loads, its chart holds one point per step, the audio it received is the
//! run's WAV (within 1 LSB) with the CSV's pitches, and its screenshot is not blank.
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

#[test]
fn browser_hears_and_draws_a_served_run() {
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

/// Step → browser audio delay when training is slower than its sound (the usual case on a real
/// model): frames sent every 100 ms to `gradtone listen --udp --serve`, each one's 60 ms of
/// audio timed from its push to the moment the page's AudioWorklet will play it (network,
/// jitter buffer, output latency). Printed for the README; the bound is not asserted (timing on
/// a shared machine), only that it was measured.
#[test]
fn browser_audio_latency_is_measured() {
    let test = "browser_audio_latency_is_measured";
    let Some(chrome) = chromium(test) else {
        return;
    };
    let t = TempDir::new("serve-latency");
    let mut run = Command::new(BIN)
        .args(["listen", "--no-live", "--mapping", "seed", "--udp", "0"])
        .args(["--idle-timeout", "8", "--serve", "0", "--serve-wait"])
        .args(["--wav", t.join("l.wav").to_str().expect("utf8")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gradtone runs");
    let err = lines_of(run.stderr.take().expect("stderr"), "gradtone");
    let mut run = Reaper(run);
    let udp = wait_line(&err, "UDP address", |l| {
        l.strip_prefix("listening for JSONL datagrams on udp://")
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_string)
    });
    // `listen` opens its outputs (and the page) at the first frame.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let frame = |step: u32| {
        format!(
            "{{\"step\":{step},\"values\":{{\"a\":{},\"b\":1.5,\"c\":2.0,\"d\":0.7}}}}\n",
            0.5 + f64::from(step) / 40.0
        )
    };
    sock.send_to(frame(0).as_bytes(), &udp).expect("send");
    let url = wait_line(&err, "served URL", |l| {
        l.strip_prefix("serving the live page at ")
            .map(str::to_string)
    });
    let (mut cdp, _browser) = open_browser(&chrome, &t);
    cdp.call("Page.enable", json!({}));
    let sep = if url.contains('?') { '&' } else { '?' };
    cdp.call(
        "Page.navigate",
        json!({"url": format!("{url}{sep}autoplay=1")}),
    );
    // The page is open (the listener waited for it); let its AudioContext start.
    std::thread::sleep(Duration::from_millis(1000));
    for step in 1..40 {
        let line = frame(step);
        sock.send_to(line.as_bytes(), &udp).expect("send");
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let state = loop {
        let s = cdp.eval("JSON.stringify(window.gradtone ? window.gradtone.state() : null)");
        let s: Value = serde_json::from_str(s.as_str().unwrap_or("null")).unwrap_or(Value::Null);
        if s["done"] == true {
            break s;
        }
        assert!(Instant::now() < deadline, "the page never saw the end: {s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(state["steps"].as_array().map(Vec::len), Some(40));
    let lat = &state["latencyMs"];
    eprintln!(
        "LATENCY step → browser audio out: n {} mean {:.1} ms p95 {:.1} ms max {:.1} ms; delivery mean {:.1} ms max {:.1} ms (AudioContext {})",
        lat["n"],
        lat["mean"].as_f64().unwrap_or(f64::NAN),
        lat["p95"].as_f64().unwrap_or(f64::NAN),
        lat["max"].as_f64().unwrap_or(f64::NAN),
        state["netDelayMs"]["mean"].as_f64().unwrap_or(f64::NAN),
        state["netDelayMs"]["max"].as_f64().unwrap_or(f64::NAN),
        state["audio"]
    );
    assert_eq!(state["audio"], "running", "the page plays");
    assert!(
        lat["n"].as_u64().unwrap_or(0) >= 30,
        "most chunks were timed: {lat}"
    );
    let _ = run.0.wait();
}
