//! [`Watch`]: frames in, alarms out; and the [`Latch`] that makes an alarm fire once per episode.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::{AlarmEvent, Frame};

/// Something that judges a run as it goes: one frame in, the alarms that fire at its step out.
///
/// The pipeline runs its watches on every frame and hands the frame and every watch's alarms
/// to the mapping (which sounds them) and to each sink. A watch that needs more than the frame
/// carries (a GAN's discriminator outputs, a rank merger's findings) is shared with its source
/// through [`Shared`], which the source tells before each frame.
///
/// ```
/// use gradtone_frame::{AlarmEvent, AlarmKind, Frame, Latch, Watch};
///
/// /// Fires once per episode of a loss above 10, re-armed after 3 calm steps.
/// #[derive(Default)]
/// struct HighLoss(Latch);
///
/// impl Watch for HighLoss {
///     fn observe(&mut self, frame: &Frame) -> Vec<AlarmEvent> {
///         let high = frame.loss().is_some_and(|l| l > 10.0);
///         if self.0.update(high, 3) {
///             vec![AlarmEvent::new(frame.step, AlarmKind::Divergence, "loss above 10")]
///         } else {
///             Vec::new()
///         }
///     }
/// }
///
/// let mut w = HighLoss::default();
/// let fired: Vec<u64> = [1.0, 20.0, 30.0, 1.0, 40.0]
///     .iter()
///     .enumerate()
///     .flat_map(|(i, &l)| w.observe(&Frame::new(i as u64).with_loss("loss", l)))
///     .map(|e| e.step)
///     .collect();
/// assert_eq!(fired, [1], "one episode: step 4 comes before 3 calm steps re-arm it");
/// ```
pub trait Watch {
    /// Judges `frame`; returns the alarms that fire at its step (usually none), most urgent
    /// first.
    fn observe(&mut self, frame: &Frame) -> Vec<AlarmEvent>;
}

impl<W: Watch + ?Sized> Watch for Box<W> {
    fn observe(&mut self, frame: &Frame) -> Vec<AlarmEvent> {
        (**self).observe(frame)
    }
}

/// A watch that both the pipeline and the watch's source hold: the pipeline runs it on each
/// frame, the source tells it, before the frame, what the frame does not carry. Cloning shares
/// the one watch.
///
/// ```
/// use gradtone_frame::{AlarmEvent, Frame, Shared, Watch};
/// struct Quiet;
/// impl Watch for Quiet {
///     fn observe(&mut self, _: &Frame) -> Vec<AlarmEvent> {
///         Vec::new()
///     }
/// }
/// let w = Shared::new(Quiet);
/// let mut for_the_pipeline: Box<dyn Watch + Send> = Box::new(w.clone());
/// assert!(for_the_pipeline.observe(&Frame::new(0)).is_empty());
/// let _source_side = w.lock();
/// ```
#[derive(Debug, Default)]
pub struct Shared<W>(Arc<Mutex<W>>);

impl<W> Shared<W> {
    /// Shares `watch`.
    pub fn new(watch: W) -> Self {
        Shared(Arc::new(Mutex::new(watch)))
    }

    /// The watch, to tell it something or read it. A panic while another holder had it does
    /// not poison it: a watch's state is only ever judged, never trusted for safety.
    pub fn lock(&self) -> MutexGuard<'_, W> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<W> Clone for Shared<W> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<W: Watch> Watch for Shared<W> {
    fn observe(&mut self, frame: &Frame) -> Vec<AlarmEvent> {
        self.lock().observe(frame)
    }
}

/// Once-per-episode firing: [`update`](Latch::update) is true on the first step a condition
/// holds, then false until the condition has been false for `rearm` steps running, after which
/// the next true step fires again. Every watch uses it, so a condition that lasts a thousand
/// steps sounds once, not a thousand times.
///
/// ```
/// use gradtone_frame::Latch;
/// let mut l = Latch::default();
/// let seq = [true, true, false, true, false, false, false, true];
/// let fired: Vec<bool> = seq.iter().map(|&c| l.update(c, 3)).collect();
/// assert_eq!(fired, [true, false, false, false, false, false, false, true]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Latch {
    fired: bool,
    calm: u32,
}

impl Latch {
    /// Feeds one step's `condition`; returns whether the alarm fires at this step. A fired
    /// latch re-arms after `rearm` calm steps in a row (a true step restarts the count).
    pub fn update(&mut self, condition: bool, rearm: u32) -> bool {
        if condition {
            self.calm = 0;
            if !self.fired {
                self.fired = true;
                return true;
            }
        } else if self.fired {
            self.calm += 1;
            if self.calm >= rearm {
                self.fired = false;
                self.calm = 0;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latch_fires_once_per_episode() {
        let mut l = Latch::default();
        let seq = [true, true, false, true, false, false, false, true];
        let fired: Vec<bool> = seq.iter().map(|&c| l.update(c, 3)).collect();
        assert_eq!(
            fired,
            [true, false, false, false, false, false, false, true]
        );
    }

    #[test]
    fn latch_rearm_counts_calm_steps_in_a_row() {
        let mut l = Latch::default();
        // Calm, calm, true (restarts the count), calm, calm: still not re-armed at rearm = 3.
        let seq = [true, false, false, true, false, false, true];
        let fired: Vec<bool> = seq.iter().map(|&c| l.update(c, 3)).collect();
        assert_eq!(fired, [true, false, false, false, false, false, false]);
        // A never-true condition never fires.
        let mut quiet = Latch::default();
        assert!((0..10).all(|_| !quiet.update(false, 1)));
    }

    #[test]
    fn shared_watch_is_one_watch() {
        struct Count(u64);
        impl Watch for Count {
            fn observe(&mut self, frame: &Frame) -> Vec<AlarmEvent> {
                self.0 += 1;
                vec![AlarmEvent::new(frame.step, crate::AlarmKind::Rank, self.0)]
            }
        }
        let w = Shared::new(Count(0));
        let mut boxed: Box<dyn Watch + Send> = Box::new(w.clone());
        boxed.observe(&Frame::new(0));
        let e = boxed.observe(&Frame::new(1));
        assert_eq!(e[0].message, "step 1: ALARM rank: 2");
        assert_eq!(w.lock().0, 2, "the source sees what the pipeline ran");
    }
}
