//! The JSONL stream format: parsing, and the tolerant reader's counting of malformed lines.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

use gradtone_ingest::{
    FrameSource, IngestError, JsonlReader, LineError, MAX_LINE_BYTES, MAX_REPORTED, parse_line,
    parse_record,
};

fn names(f: &gradtone_ingest::Frame) -> Vec<&str> {
    f.values.iter().map(|n| n.name.as_str()).collect()
}

#[test]
fn values_keep_their_key_order() -> Result<(), LineError> {
    // Deliberately not alphabetical, and "values" after "losses".
    let f = parse_line(
        r#"{"losses":{"z":1,"a":2},"step":4,"values":{"fc2":1,"conv1":2,"fc1":3,"conv2":4,"b":5}}"#,
    )?;
    assert_eq!(names(&f), ["fc2", "conv1", "fc1", "conv2", "b"]);
    let losses: Vec<_> = f
        .losses
        .iter()
        .map(|n| (n.name.as_str(), n.value))
        .collect();
    assert_eq!(losses, [("z", 1.0), ("a", 2.0)]);
    Ok(())
}

#[test]
fn non_finite_spellings_and_null() -> Result<(), LineError> {
    let f = parse_line(
        r#"{"step":0,"values":{"a":"nan","b":"NaN","c":"inf","d":"-INF","e":null,"f":"Inf","g":-0.0,"h":1e308,"i":7}}"#,
    )?;
    let v = |n: &str| f.value(n).unwrap_or(0.5);
    assert!(v("a").is_nan() && v("b").is_nan() && v("e").is_nan());
    assert_eq!(v("c"), f64::INFINITY);
    assert_eq!(v("f"), f64::INFINITY);
    assert_eq!(v("d"), f64::NEG_INFINITY);
    assert!(v("g") == 0.0 && v("g").is_sign_negative());
    assert_eq!(v("h"), 1e308);
    assert_eq!(v("i"), 7.0);
    // Other strings, bare NaN tokens and Python's "Infinity" are not numbers.
    for bad in [
        r#"{"step":0,"values":{"a":"infinity"}}"#,
        r#"{"step":0,"values":{"a":"1.5"}}"#,
        r#"{"step":0,"values":{"a":NaN}}"#,
        r#"{"step":0,"values":{"a":Infinity}}"#,
        r#"{"step":0,"values":{"a":[1]}}"#,
        r#"{"step":0,"values":{"a":true}}"#,
    ] {
        assert!(parse_line(bad).is_err(), "accepted {bad}");
    }
    let msg = parse_line(r#"{"step":0,"values":{"conv1":"abc"}}"#)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("conv1") && msg.contains("\"nan\""), "{msg}");
    Ok(())
}

#[test]
fn unknown_fields_ignored_and_optional_fields_read() -> Result<(), LineError> {
    let r = parse_record(
        r#"{"future":{"deep":[1,{"x":null}]},"step":9,"values":{},"rank":2,"world":8,"t":1795775400.25,"note":"hi"}"#,
    )?;
    assert_eq!(r.frame.step, 9);
    assert!(r.frame.values.is_empty() && r.frame.losses.is_empty());
    assert_eq!(r.frame.rank, Some(2));
    assert_eq!(r.world, Some(8));
    assert_eq!(r.time, Some(1795775400.25));
    assert_eq!(r.version, 1);
    // CRLF, surrounding whitespace and a huge step are fine.
    let f = parse_line("  {\"step\":18446744073709551615,\"values\":{\"a\":1}} \r\n")?;
    assert_eq!(f.step, u64::MAX);
    Ok(())
}

#[test]
fn field_errors_name_the_field() {
    let cases = [
        (r#"{"values":{}}"#, "missing field `step`"),
        (r#"{"step":1}"#, "missing field `values`"),
        (
            r#"{"step":-1,"values":{}}"#,
            "`step` must be an integer ≥ 0, found -1",
        ),
        (
            r#"{"step":1.5,"values":{}}"#,
            "`step` must be an integer, found 1.5",
        ),
        (r#"{"step":"3","values":{}}"#, "an integer ≥ 0 for `step`"),
        (
            r#"{"step":1,"step":2,"values":{}}"#,
            "duplicate field `step`",
        ),
        (r#"{"step":1,"values":[1,2]}"#, "for `values`"),
        (
            r#"{"step":1,"values":{},"rank":4294967296}"#,
            "`rank` must be",
        ),
        (r#"{"step":1,"values":{},"world":0}"#, "`world` must be"),
        (
            r#"{"step":1,"values":{},"v":0}"#,
            "version \"v\":0 does not exist",
        ),
        (r#"[1,2]"#, "a JSON object"),
        (
            r#"{"step":1,"values":{}} {"step":2,"values":{}}"#,
            "trailing characters",
        ),
    ];
    for (line, want) in cases {
        match parse_line(line) {
            Ok(f) => panic!("{line}: accepted as {f:?}"),
            Err(e) => assert!(e.to_string().contains(want), "{line}: {e} lacks {want:?}"),
        }
    }
}

#[test]
fn malformed_lines_are_counted_with_line_numbers_and_good_lines_survive() {
    let mut data: Vec<u8> = Vec::new();
    let good = |step: u64| format!("{{\"step\":{step},\"values\":{{\"a\":{step}}}}}\n");
    data.extend(good(0).as_bytes()); // line 1
    data.extend(b"{\"step\":1,\"values\":{\"a\":\n"); // 2: bad JSON
    data.extend(good(2).as_bytes()); // 3
    data.extend(b"{\"step\":\"x\",\"values\":{}}\n"); // 4: wrong type
    data.extend(b"\n   \r\n"); // 5, 6: blank, skipped silently
    data.extend(b"{\"values\":{}}\n"); // 7: missing step
    data.extend(good(8).as_bytes()); // 8
    data.extend(b"{\"step\":-3,\"values\":{}}\n"); // 9: negative step
    data.extend(std::iter::repeat_n(b'x', 2 << 20)); // 10: 2 MiB line
    data.push(b'\n');
    data.extend(good(11).as_bytes()); // 11
    data.extend([0x00, 0xff, 0x13, 0x80, 0xfe, b'{', 0x07, b'\n']); // 12: binary garbage
    data.extend(b"{\"step\":13,\"values\":{\"caf\xe9\":1}}\n"); // 13: Latin-1, invalid UTF-8
    data.extend(good(14).as_bytes()); // 14
    data.extend(b"{\"step\":15,\"values\":{\"a\""); // 15: truncated at EOF

    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let mut r = JsonlReader::new(&data[..], "run.jsonl");
    r.set_reporter(Arc::new(move |m: &str| {
        if let Ok(mut v) = seen2.lock() {
            v.push(m.to_string());
        }
    }));
    let steps: Vec<u64> = r.by_ref().map(|f| f.step).collect();
    assert_eq!(steps, [0, 2, 8, 11, 14]);
    assert!(r.take_error().is_none());
    let d = r.diagnostics();
    assert_eq!(d.malformed, 8);
    assert_eq!(d.frames, 5);
    let lines: Vec<&str> = d
        .first_errors
        .iter()
        .map(|e| e.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(
        lines,
        [
            "run.jsonl line 2",
            "run.jsonl line 4",
            "run.jsonl line 7",
            "run.jsonl line 9",
            "run.jsonl line 10",
            "run.jsonl line 12",
            "run.jsonl line 13",
            "run.jsonl line 15",
        ]
    );
    let all = d.first_errors.join("\n");
    for want in [
        "line 7: missing field `step`",
        "line 9: `step` must be an integer ≥ 0, found -3",
        "line 10: line of 2097152 bytes is longer than the 1 MiB limit",
        "line 12: not valid UTF-8 (bad byte at offset 1)",
        "line 13: not valid UTF-8 (bad byte at offset 25)",
        "(the last line has no newline: a truncated write?)",
    ] {
        assert!(all.contains(want), "missing {want:?} in\n{all}");
    }
    assert_eq!(
        d.summary().as_deref(),
        Some("run.jsonl: 8 malformed lines skipped")
    );
    let reported = seen.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(reported, d.first_errors, "the reporter saw each error once");
}

#[test]
fn complete_last_line_without_newline_and_bom_are_read() {
    let data = "\u{feff}{\"step\":1,\"values\":{}}\n{\"step\":2,\"values\":{}}";
    let mut r = JsonlReader::new(data.as_bytes(), "x");
    let steps: Vec<u64> = r.by_ref().map(|f| f.step).collect();
    assert_eq!(steps, [1, 2]);
    assert_eq!(r.diagnostics().malformed, 0);
    assert_eq!(r.diagnostics().summary(), None);
}

#[test]
fn newer_version_is_read_and_warned_once() {
    let data = "{\"v\":1,\"step\":0,\"values\":{}}\n\
                {\"v\":2,\"step\":1,\"values\":{\"a\":1},\"new\":{}}\n\
                {\"v\":3,\"step\":2,\"values\":{}}\n";
    let mut r = JsonlReader::new(data.as_bytes(), "s");
    let steps: Vec<u64> = r.by_ref().map(|f| f.step).collect();
    assert_eq!(steps, [0, 1, 2]);
    let d = r.diagnostics();
    assert!(d.newer_version_seen);
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(
        d.warnings[0].starts_with("s line 2: format version 2"),
        "{:?}",
        d.warnings
    );
    assert_eq!(d.malformed, 0);
}

#[test]
fn errors_are_capped_but_all_counted() {
    let data = "garbage\n".repeat(1000);
    let mut r = JsonlReader::new(data.as_bytes(), "g");
    assert_eq!(r.by_ref().count(), 0);
    assert_eq!(r.diagnostics().malformed, 1000);
    assert_eq!(r.diagnostics().first_errors.len(), MAX_REPORTED);
    assert!(r.diagnostics().first_errors[MAX_REPORTED - 1].starts_with("g line 20:"));
}

/// Yields some good data, then fails.
struct FailingReader {
    data: &'static [u8],
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.data.is_empty() {
            return Err(io::Error::other("disk on fire"));
        }
        let n = self.data.len().min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn io_error_ends_the_stream_with_an_error() {
    let reader = BufReader::new(FailingReader {
        data: b"{\"step\":0,\"values\":{}}\n{\"step\":1,\"val",
    });
    let mut r = JsonlReader::new(reader, "pipe");
    assert_eq!(r.next().map(|f| f.step), Some(0));
    assert_eq!(r.next(), None);
    let e = r.take_error().unwrap_or_else(|| panic!("no error"));
    // The cause is the error's source, printed once by a chain printer (`{:#}`).
    let (msg, cause) = (
        e.to_string(),
        std::error::Error::source(&e).map(|s| s.to_string()),
    );
    assert!(
        msg.contains("reading pipe") && !msg.contains("disk on fire"),
        "{msg}"
    );
    assert_eq!(cause.as_deref(), Some("disk on fire"));
    assert!(r.take_error().is_none(), "taken once");
    assert_eq!(r.next(), None, "stays ended");
}

#[test]
fn missing_file_error_names_the_path() {
    let path = std::env::temp_dir().join("gradtone-ingest-no-such-file.jsonl");
    match JsonlReader::open(&path) {
        Err(e @ IngestError::Open { .. }) => {
            assert!(e.to_string().contains(&path.display().to_string()), "{e}")
        }
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("opened a missing file"),
    }
}

#[test]
fn exactly_max_line_bytes_is_read_one_more_is_skipped() {
    // A valid line padded with spaces to exactly the limit, then to one byte more.
    let body = "{\"step\":5,\"values\":{}}";
    let mut ok = body.to_string();
    ok.push_str(&" ".repeat(MAX_LINE_BYTES - body.len()));
    let mut too_long = ok.clone();
    too_long.push(' ');
    let data = format!("{ok}\n{too_long}\n");
    let mut r = JsonlReader::new(data.as_bytes(), "edge");
    let steps: Vec<u64> = r.by_ref().map(|f| f.step).collect();
    assert_eq!(steps, [5]);
    assert_eq!(r.diagnostics().malformed, 1);
    assert!(r.diagnostics().first_errors[0].starts_with("edge line 2: line of 1048577 bytes"));
}

/// The reader must work on any `BufRead`, including `&[u8]` and a locked stdin.
#[allow(dead_code)]
fn accepts_any_bufread(r: impl BufRead) -> usize {
    JsonlReader::new(r, "stdin").count()
}
