//! Loads `examples/supercollider/gradtone.scd` in a headless sclang (no audio server) and checks
//! that its OSCdefs receive and map our messages, and that its SynthDefs build.
//!
//! Needs `sclang` (Debian: `apt-get install --no-install-recommends supercollider-language`);
//! skips loudly without it, and fails instead when `GRADTONE_REQUIRE_SC=1`. `GRADTONE_SCLANG`
//! picks the binary (default `sclang`).

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gradtone_export::OscSender;
use gradtone_frame::Frame;
use rosc::{OscMessage, OscPacket};

fn sclang() -> String {
    std::env::var("GRADTONE_SCLANG").unwrap_or_else(|_| "sclang".to_owned())
}

fn have_sclang(test: &str) -> bool {
    // `sclang -v` prints the version and exits without compiling the class library.
    let ok = gradtone_testkit::runs(&sclang(), &["-v"]);
    let hint = "sclang not found (apt-get install --no-install-recommends supercollider-language)";
    gradtone_testkit::require(test, "SC", ok, hint)
}

#[test]
fn supercollider_patch_maps_the_scheme() {
    let test = "supercollider_patch_maps_the_scheme";
    if !have_sclang(test) {
        return;
    }
    let patch =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/supercollider/gradtone.scd");
    let patch = patch.canonicalize().unwrap();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("gradtone-export-sc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wrapper = dir.join("wrapper.scd");
    // The patch as shipped, plus: a test port, its SynthDefs built, a quit message, a deadline.
    std::fs::write(
        &wrapper,
        format!(
            r#"thisProcess.openUDPPort({port});
SystemClock.sched(30, {{ "DEADLINE".postln; 1.exit }});
"{}".load;
~gradtone[\defs].value;
("SYNTHDEFS" + [\gradtoneVoice, \gradtoneAlarm].collect {{ |k| SynthDescLib.global[k].notNil }}).postln;
OSCdef(\gradtoneTestQuit, {{ "BYE".postln; 0.exit }}, '/gradtone/test/quit');
"READY".postln;
"#,
            patch.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(sclang())
        .arg("-D")
        .arg(&wrapper)
        .env("GRADTONE_SC_NO_BOOT", "1")
        .env("GRADTONE_SC_VERBOSE", "1")
        // Headless: no display, and Qt WebEngine refuses its sandbox as root.
        .env("QT_QPA_PLATFORM", "offscreen")
        .env("QTWEBENGINE_DISABLE_SANDBOX", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines: Vec<String> = Vec::new();
    let wait_for = |lines: &mut Vec<String>, what: &str, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !lines.iter().any(|l| l.contains(what)) {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => lines.push(l),
                Err(_) => return false,
            }
        }
        true
    };
    if !wait_for(&mut lines, "READY", 30) {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "sclang did not load the patch within 30 s:\n{}",
            lines.join("\n")
        );
    }

    let mut osc = OscSender::connect(&format!("127.0.0.1:{port}")).unwrap();
    for k in 0..3u64 {
        let fc1 = if k == 1 { f64::NAN } else { 2.0 };
        osc.send_frame(
            &Frame::new(k)
                .with_value("conv1", 0.5)
                .with_value("fc1", fc1)
                .with_loss("loss", 2.5),
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let got_all = wait_for(&mut lines, "gradtone step 2", 10)
        && wait_for(&mut lines, "gradtone loss loss 2.5", 5);
    let quit = rosc::encoder::encode(&OscPacket::Message(OscMessage {
        addr: "/gradtone/test/quit".to_owned(),
        args: vec![],
    }))
    .unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(&quit, ("127.0.0.1", port)).unwrap();
    let exited = wait_for(&mut lines, "BYE", 10);
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let log = lines.join("\n");
    println!("sclang said:\n{log}");
    assert!(got_all && exited, "{log}");

    let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count("SYNTHDEFS [ true, true ]"), 1, "{log}");
    assert_eq!(count("gradtone step "), 3, "{log}");
    // 0.5 → 60 + 12·log2(0.5) = 48; 2 → 72; NaN → no note, but an alarm.
    assert_eq!(count("gradtone value conv1 0.5 0 note 48.0"), 3, "{log}");
    assert_eq!(count("gradtone value fc1 2.0 1 note 72.0"), 2, "{log}");
    assert_eq!(count("gradtone value fc1 nan 1 note rest"), 1, "{log}");
    assert_eq!(
        count("gradtone ALARM nan step 1: value fc1 = NaN"),
        1,
        "{log}"
    );
    assert!(!log.contains("ERROR"), "{log}");
}
