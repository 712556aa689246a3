//! The trajectory CSV format's shared rules: what its writer (`gradtone_sound::csv`) writes and
//! its reader (`gradtone_ingest::csv`) reads back. The format itself is described with the
//! reader.

/// The longest row (or header) the reader reads, in bytes: a longer line is skipped unread (as
/// a bad row), so a file without line breaks cannot make it hold it all in memory. The writer
/// keeps its header to half of this.
pub const MAX_ROW_BYTES: usize = 16 << 20;

/// Header prefix of a loss column whose name alone would read back as a value.
pub const LOSS_PREFIX: &str = "loss:";
/// Header prefix of a value column whose name alone would read back as a loss.
pub const VALUE_PREFIX: &str = "value:";

/// What a header name stands for: the frame name and whether it is a loss. `loss:NAME` is the
/// loss `NAME` and `value:NAME` the value `NAME`; any other name is a loss when it starts with
/// `loss` (the reference files' rule), else a value.
///
/// ```
/// use gradtone_frame::csv_format::column_kind;
/// assert_eq!(column_kind("loss_val"), ("loss_val", true));
/// assert_eq!(column_kind("conv1"), ("conv1", false));
/// assert_eq!(column_kind("loss:r0/loss"), ("r0/loss", true));
/// assert_eq!(column_kind("value:loss_ce/conv1"), ("loss_ce/conv1", false));
/// ```
pub fn column_kind(header_name: &str) -> (&str, bool) {
    if let Some(n) = header_name.strip_prefix(LOSS_PREFIX) {
        (n, true)
    } else if let Some(n) = header_name.strip_prefix(VALUE_PREFIX) {
        (n, false)
    } else {
        (header_name, header_name.starts_with("loss"))
    }
}
