//! The onset of trouble: the oracle the alarm detector is judged against, in tests and
//! evaluations only (not part of any library's API).
//!
//! A file of its own, with no import but `gradtone_frame`, so that it can also be compiled into
//! a crate that cannot depend on this test kit (`#[path]`).

/// The onset of trouble as gradtone's alarms are judged against it (what a listener should hear
/// at once): the index of the first frame with a non-finite value or loss, a total norm `√Σv²`
/// above 5× the first frame's, a loss above 2× the first frame's, or at least half the values
/// exactly 0; with which of `"non-finite"`, `"norm > 5× step 0"`, `"loss > 2× step 0"`,
/// `"half the layers 0"` it is. `None` for a run without trouble (or without frames).
pub fn onset_of_trouble(frames: &[gradtone_frame::Frame]) -> Option<(usize, &'static str)> {
    let total =
        |f: &gradtone_frame::Frame| gradtone_frame::stats::l2(f.values.iter().map(|n| n.value));
    let first = frames.first()?;
    let (t0, l0) = (total(first), first.loss());
    frames.iter().enumerate().find_map(|(i, f)| {
        let non_finite = f
            .values
            .iter()
            .chain(&f.losses)
            .any(|n| !n.value.is_finite());
        let zeros = f.values.iter().filter(|n| n.value == 0.0).count();
        let why = if non_finite {
            "non-finite"
        } else if total(f) > 5.0 * t0 {
            "norm > 5× step 0"
        } else if l0.zip(f.loss()).is_some_and(|(a, b)| b > 2.0 * a) {
            "loss > 2× step 0"
        } else if !f.values.is_empty() && 2 * zeros >= f.values.len() {
            "half the layers 0"
        } else {
            return None;
        };
        Some((i, why))
    })
}
