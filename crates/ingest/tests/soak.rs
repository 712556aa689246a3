//! A CI-sized soak of the UDP and OSC listeners (`examples/soak.rs` runs the 1,000,000-datagram
//! version): 100,000 datagrams each on 127.0.0.1 as fast as the listener takes them, one in ten
//! garbage. Every datagram must be accounted for and resident memory must stay flat.

#[path = "../examples/soak.rs"]
mod soak;

use soak::{Proto, soak};

fn check(proto: Proto) {
    let n = 100_000;
    let r = soak(proto, n, Some(64));
    eprintln!("{proto:?}: {r:?}");
    assert_eq!(r.sent_valid + r.sent_garbage, n);
    assert_eq!(
        r.received, n,
        "flow control keeps the kernel from dropping any"
    );
    assert_eq!(r.frames, r.sent_valid, "every valid frame delivered");
    assert_eq!(r.skipped, r.sent_garbage, "every garbage datagram counted");
    assert_eq!(r.wrong, 0, "frames arrive as sent");
    // Memory flat: from the first tenth of the run to the end, resident memory grows by less
    // than 16 MiB (a leak of even 200 bytes per datagram would be 18 MiB).
    let (Some(first), Some(last)) = (r.rss_kib.first(), r.rss_kib.last()) else {
        panic!("no memory samples: {r:?}");
    };
    if *first > 0 {
        assert!(
            last.saturating_sub(*first) < 16 * 1024,
            "resident memory grew from {first} to {last} KiB"
        );
    }
}

#[test]
fn udp_listener_soak() {
    check(Proto::Udp);
}

#[test]
fn osc_listener_soak() {
    check(Proto::Osc);
}

/// With no flow control the system may drop datagrams (the listener cannot keep up with a
/// sender in a tight loop); each one must still be accounted for, as reported by the listener.
#[test]
fn full_speed_drops_are_reported() {
    for proto in [Proto::Udp, Proto::Osc] {
        let n = 100_000;
        let r = soak(proto, n, None);
        eprintln!("{proto:?} full speed: {r:?}");
        assert_eq!(
            r.received + r.kernel_drops,
            n,
            "sent = received + reported dropped"
        );
        assert_eq!(r.frames + r.skipped, r.received);
        assert_eq!(r.wrong, 0);
    }
}
