//! The speakers as a [`Sink`]: not essential, so losing them never stops a run (the files keep
//! everything). Its options, [`LiveArgs`], open it through [`Output`].

use gradtone_frame::{Opening, Output, OutputError, Sink, SinkError};

use crate::{LiveConfig, LivePlayer, Pace};

/// Live playback options.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct LiveArgs {
    /// Do not play sound on the speakers (files are still written).
    #[cfg_attr(feature = "clap", arg(long))]
    pub no_live: bool,
    /// When training is faster than its sound: skip to the newest step (live), or wait (realtime).
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = Pace::Live))]
    pub pace: Pace,
}

impl LiveArgs {
    /// The playback pace, or `None` with `--no-live`.
    pub fn pace(&self) -> Option<Pace> {
        (!self.no_live).then_some(self.pace)
    }
}

impl<C: ?Sized> Output<C> for LiveArgs {
    /// The speakers, or `None` with `--no-live` or without a sound device (a headless machine is
    /// normal: that is reported once, and the run goes on with the files).
    fn open(&self, at: &Opening<'_, C>) -> Result<Option<Box<dyn Sink>>, OutputError> {
        let Some(pace) = self.pace() else {
            return Ok(None);
        };
        let cfg = LiveConfig {
            sample_rate: at.sample_rate,
            channels: at.channels,
            pace,
            ..LiveConfig::default()
        };
        match LivePlayer::open(cfg) {
            Ok(p) => Ok(Some(Box::new(p))),
            Err(e) => {
                (at.report)(&format!(
                    "note: {e}; continuing without live sound (--no-live silences this)"
                ));
                Ok(None)
            }
        }
    }
}

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
