//! The optional top-level `"clip"` field: the `max_norm` given to `clip_grad_norm_` at that step.

use gradtone_ingest::parse_record;

#[test]
fn clip_is_read_and_validated() {
    let r = parse_record(r#"{"step":3,"values":{"fc1":40.0},"clip":1.0}"#).expect("valid line");
    assert_eq!(r.frame.clip, Some(1.0));
    let r = parse_record(r#"{"step":3,"values":{"fc1":40.0}}"#).expect("valid line");
    assert_eq!(r.frame.clip, None, "absent means no clipping reported");
    for bad in [
        r#"{"step":3,"values":{},"clip":0}"#,
        r#"{"step":3,"values":{},"clip":-2.5}"#,
        r#"{"step":3,"values":{},"clip":"inf"}"#,
        r#"{"step":3,"values":{},"clip":1,"clip":2}"#,
    ] {
        let err = parse_record(bad).expect_err(bad).to_string();
        assert!(err.contains("clip"), "{bad}: {err}");
    }
}
