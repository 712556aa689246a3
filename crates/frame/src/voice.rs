//! [`Voice`]: what turns a run's frames and their alarms into sound and judges them (the sound
//! crate's mapping and gradient detector), as a trait, so the fan-out of frames to sinks needs
//! this crate alone.

use crate::{AlarmEvent, Frame, SinkError, Watch};

/// A run's sound: the mapping that plays each frame with its alarms' earcons, and the watches
/// that come with it (the gradient detector).
pub trait Voice: Send {
    /// Sample rate (Hz) and interleaved channels of the samples.
    fn format(&self) -> (u32, u16);

    /// The built-in watches, fresh: they judge every frame after the watches a caller adds.
    fn watches(&self) -> Vec<Box<dyn Watch + Send>>;

    /// Whether alarms are reported and sounded at all (when not, the watches still see every
    /// frame, but what they fire is dropped).
    fn alarms_enabled(&self) -> bool;

    /// What plays, for the user, given the first frame's value names: `None` when there is
    /// nothing worth saying. May span lines; no trailing newline.
    fn legend(&self, names: &[&str]) -> Option<String>;

    /// Appends `frame`'s samples, with the earcons of `alarms`, to `out`.
    fn play(&mut self, frame: &Frame, alarms: &[AlarmEvent], out: &mut Vec<f32>);

    /// Appends what still sounds at the end of the run (an earcon's tail) to `out`.
    fn flush(&mut self, out: &mut Vec<f32>);

    /// Starts part `index` (0-based) of a file made of several runs afresh (nothing carried over
    /// from the last part) and appends its audible marker to `out`.
    fn begin_part(&mut self, index: usize, out: &mut Vec<f32>) -> Result<(), SinkError>;
}
