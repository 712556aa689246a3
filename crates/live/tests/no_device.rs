//! With no sound server, `open` fails fast and cleanly.
//!
//! Its own test binary: it sets `PULSE_SERVER`, which must not race other tests' reads.

use std::time::{Duration, Instant};

use gradtone_live::{LiveConfig, LiveError, LivePlayer};

#[test]
fn open_without_a_server_is_no_device_and_quick() {
    // SAFETY: this binary has this one test, so no other thread reads the environment now.
    unsafe { std::env::set_var("PULSE_SERVER", "unix:/nonexistent/socket") };
    let t = Instant::now();
    let r = LivePlayer::open(LiveConfig::default());
    let took = t.elapsed();
    println!("open with no server: {took:?}: {r:?}");
    match r {
        Err(LiveError::NoDevice { reason }) => {
            assert!(
                reason.contains("/nonexistent/socket"),
                "reason names the socket: {reason}"
            )
        }
        other => panic!("expected NoDevice, got {other:?}"),
    }
    assert!(took < Duration::from_secs(5), "took {took:?}");
}
