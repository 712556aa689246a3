//! Runs `examples/puredata/gradtone.pd` in a headless Pure Data and checks what it parses.
//!
//! Needs `pd` (Debian: `apt-get install puredata-core`); skips loudly without it, and fails
//! instead when `GRADTONE_REQUIRE_PD=1`. `GRADTONE_PD` picks the binary (default `pd`).

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gradtone_export::OscSender;
use gradtone_frame::Frame;

fn pd() -> String {
    std::env::var("GRADTONE_PD").unwrap_or_else(|_| "pd".to_owned())
}

fn have_pd(test: &str) -> bool {
    let ok = gradtone_testkit::runs(&pd(), &["-version"]);
    let hint = "Pure Data (`pd`) not found (apt-get install puredata-core)";
    gradtone_testkit::require(test, "PD", ok, hint)
}

#[test]
fn puredata_patch_parses_the_scheme() {
    let test = "puredata_patch_parses_the_scheme";
    if !have_pd(test) {
        return;
    }
    let patch = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/puredata/gradtone.pd");
    let text = std::fs::read_to_string(&patch).unwrap();
    assert!(
        text.contains("netreceive -u -b 57120"),
        "the patch listens on 57120"
    );
    // The patch as shipped, on a free port (57120 may be SuperCollider's), plus probes that print
    // what the first two voices' oscillators are set to.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let objects = text
        .lines()
        .filter(|l| l.starts_with("#X obj") || l.starts_with("#X msg") || l.starts_with("#X text"))
        .count();
    let mut body = text.replace("57120", &port.to_string());
    for v in 0..2 {
        let r = objects + 2 * v;
        body.push_str(&format!(
            "#X obj 10 10 r gradtone-freq-{v};\n#X obj 10 40 print freq{v};\n#X connect {r} 0 {} 0;\n",
            r + 1
        ));
    }
    let dir = std::env::temp_dir().join(format!("gradtone-export-pd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let patch_copy = dir.join("gradtone.pd");
    std::fs::write(&patch_copy, body).unwrap();

    let mut child = Command::new(pd())
        .args(["-nogui", "-nosound", "-nomidi", "-noprefs"])
        .arg(&patch_copy)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Pd prints to stderr; collect it on a thread so that reads are bounded by recv_timeout.
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let ready = format!("gradtone: listening on UDP {port}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !lines.iter().any(|l: &String| l.contains(&ready)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "Pd did not load the patch within 15 s:\n{}",
                    lines.join("\n")
                );
            }
        }
    }

    let mut osc = OscSender::connect(&format!("127.0.0.1:{port}")).unwrap();
    for k in 0..5u64 {
        let fc1 = if k == 3 { f64::NAN } else { 1.0 };
        let f = Frame::new(k)
            .with_value("conv1", 0.5)
            .with_value("fc1", fc1)
            .with_loss("loss", 2.5);
        osc.send_frame(&f);
        std::thread::sleep(Duration::from_millis(20));
    }
    osc.send_alarm("spike", "fc1 jumped");
    let last = "gradtone-alarm: list spike";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lines.iter().any(|l| l.starts_with(last)) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    // Late lines (the last frequencies) trail by a scheduler tick.
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
        lines.push(l);
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let log = lines.join("\n");
    println!("Pd said:\n{log}");

    let count = |prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).count();
    for k in 0..5 {
        assert_eq!(count(&format!("gradtone-step: {k}")), 1, "step {k}:\n{log}");
    }
    assert_eq!(count("gradtone-value: list conv1 0.5 0"), 5, "{log}");
    assert_eq!(count("gradtone-value: list fc1 1 1"), 4, "{log}");
    // Pd has no NaN: oscparse reads it as 0, which the patch does not play.
    assert_eq!(count("gradtone-value: list fc1 0 1"), 1, "{log}");
    assert_eq!(count("gradtone-loss: list loss 2.5"), 5, "{log}");
    assert_eq!(
        count(r"gradtone-alarm: list nan step\ 3:\ value\ fc1\ =\ NaN"),
        1,
        "{log}"
    );
    assert_eq!(count(r"gradtone-alarm: list spike fc1\ jumped"), 1, "{log}");
    // conv1 = 0.5 → note 48 → 130.81 Hz; fc1 = 1 → note 60 → 261.63 Hz, not for the NaN frame.
    assert_eq!(count("freq0: 130.81"), 5, "{log}");
    assert_eq!(count("freq1: 261.62"), 4, "{log}");
    assert!(
        !log.contains("error") && !log.contains("couldn't create"),
        "{log}"
    );
    assert_eq!(osc.stats().send_errors, 0);
}
