//! The speakers as a [`Sink`]: not essential, so losing them never stops a run (the files keep
//! everything).

use gradtone_frame::{Sink, SinkError};

use crate::LivePlayer;

impl Sink for LivePlayer {
    fn describe(&self) -> String {
        format!("live sound ({})", self.backend_name())
    }

    fn audio(&mut self, _step: u64, samples: &[f32]) -> Result<(), SinkError> {
        self.push(samples)?;
        Ok(())
    }

    fn essential(&self) -> bool {
        false
    }

    fn finish(self: Box<Self>) -> Result<String, SinkError> {
        let per_second = f64::from(self.config().sample_rate) * f64::from(self.config().channels);
        let s = (*self).finish()?;
        Ok(format!(
            "live: {:.1} s played, {:.1} s skipped to keep up, {} underruns",
            s.samples_played as f64 / per_second,
            s.samples_dropped as f64 / per_second,
            s.underruns
        ))
    }
}
