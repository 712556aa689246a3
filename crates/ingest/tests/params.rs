//! The optional top-level `"params"` field: each group's parameter (weight) L2 norm.

use gradtone_ingest::{parse_line, parse_record};

#[test]
fn params_are_read_in_key_order_with_non_finite_spellings() {
    let f = parse_line(
        r#"{"step":3,"values":{"fc2":0.5,"fc1":0.25},"params":{"fc2":12.5,"fc1":"inf"},"losses":{"loss":1}}"#,
    )
    .expect("valid line");
    let params: Vec<(&str, f64)> = f
        .params
        .iter()
        .map(|n| (n.name.as_str(), n.value))
        .collect();
    assert_eq!(params, [("fc2", 12.5), ("fc1", f64::INFINITY)]);
    // Values are untouched by it.
    assert_eq!(f.value("fc2"), Some(0.5));
}

#[test]
fn params_are_optional_and_checked_when_present() {
    let f = parse_line(r#"{"step":0,"values":{"a":1}}"#).expect("valid line");
    assert!(f.params.is_empty(), "an older stream has none");
    for bad in [
        r#"{"step":0,"values":{"a":1},"params":[1,2]}"#,
        r#"{"step":0,"values":{"a":1},"params":{"a":"big"}}"#,
        r#"{"step":0,"values":{"a":1},"params":{"a":1},"params":{"a":2}}"#,
    ] {
        let err = parse_record(bad).expect_err(bad).to_string();
        assert!(err.contains("params"), "{bad}: {err}");
    }
}
