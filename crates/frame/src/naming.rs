//! Names and how they are shown. A value named `term/layer` belongs to the instrument `term` (one
//! weighted loss term of a multi-loss run, one rank of a distributed run), and sounds with its
//! own timbre. Text a peer or a file controls is cut before it is shown, two ways:
//! [`shorten`] keeps the start of a message and says how long it was; [`shorten_middle`] keeps
//! both ends of a name (what tells two parameter paths apart) for legends and labels.

use std::borrow::Cow;

/// The instrument of a value: the part of its name before the first `/` (`"g_adv"` in
/// `"g_adv/G.fc1"`), or `""` for a name without one.
///
/// ```
/// use gradtone_frame::naming::instrument_of;
/// assert_eq!(instrument_of("d_fake/D.fc2"), "d_fake");
/// assert_eq!(instrument_of("conv1"), "");
/// ```
pub fn instrument_of(name: &str) -> &str {
    name.split_once('/').map_or("", |(i, _)| i)
}

/// The layer part of a value's name: after the first `/`, or the whole name without one.
///
/// ```
/// use gradtone_frame::naming::layer_of;
/// assert_eq!(layer_of("d_fake/D.fc2"), "D.fc2");
/// assert_eq!(layer_of("conv1"), "conv1");
/// ```
pub fn layer_of(name: &str) -> &str {
    name.split_once('/').map_or(name, |(_, l)| l)
}

/// `text` cut to at most `max` characters, with `…(N bytes)` added when it was cut, so that a
/// message quoting what a peer sent stays one short line however long the input was.
///
/// ```
/// use gradtone_frame::naming::shorten;
/// assert_eq!(shorten("fc1", 10), "fc1");
/// let long = "x".repeat(5000);
/// assert_eq!(shorten(&long, 4), "xxxx…(5000 bytes)");
/// ```
pub fn shorten(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!("{}…({} bytes)", &text[..cut], text.len())),
    }
}

/// `text` cut in the middle to at most `max` characters (`transformer.lay…n.out_proj`): the
/// start and the end of a parameter path are what tells two names apart.
///
/// ```
/// use gradtone_frame::naming::shorten_middle;
/// assert_eq!(shorten_middle("abcdefghij", 5), "ab…ij");
/// assert_eq!(shorten_middle("abc", 5), "abc");
/// ```
pub fn shorten_middle(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_owned();
    }
    let keep = max.saturating_sub(1);
    let tail = keep / 2;
    let head = keep - tail;
    let mut out: String = text.chars().take(head).collect();
    out.push('…');
    out.extend(text.chars().skip(n - tail));
    out
}
