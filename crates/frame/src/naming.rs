//! Instrument naming: a value named `term/layer` belongs to the instrument `term` (one weighted
//! loss term of a multi-loss run, one rank of a distributed run), and sounds with its own timbre.

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

/// The name of `layer` played by `instrument` (`term/layer`); the bare layer when `instrument`
/// is empty.
///
/// ```
/// use gradtone_frame::naming::instrument_name;
/// assert_eq!(instrument_name("r0", "fc1"), "r0/fc1");
/// assert_eq!(instrument_name("", "fc1"), "fc1");
/// ```
pub fn instrument_name(instrument: &str, layer: &str) -> String {
    if instrument.is_empty() {
        layer.to_string()
    } else {
        format!("{instrument}/{layer}")
    }
}
