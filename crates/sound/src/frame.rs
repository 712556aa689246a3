//! [`Frame`]: the values one training step emits.

/// One named value (a layer's gradient norm, a loss).
#[derive(Clone, Debug, PartialEq)]
pub struct Named {
    /// The value's name, e.g. `"conv1"` or `"loss"`.
    pub name: String,
    /// The value itself; may be NaN or infinite (a diverged run).
    pub value: f64,
}

/// What a source emits once per training step.
///
/// ```
/// use gradtone_sound::Frame;
/// let f = Frame::new(3).with_loss("loss", 2.3).with_value("conv1", 0.25);
/// assert_eq!(f.loss(), Some(2.3));
/// assert_eq!(f.value("conv1"), Some(0.25));
/// ```
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Frame {
    /// The training step (0-based).
    pub step: u64,
    /// Ordered values, e.g. the per-layer weight-gradient L2 norms of conv1, conv2, fc1, fc2.
    /// Mappings sound them in this order.
    pub values: Vec<Named>,
    /// Losses, e.g. `[("loss", 2.30)]`.
    pub losses: Vec<Named>,
    /// The data-parallel worker that produced the frame, if any.
    pub rank: Option<u32>,
}

impl Frame {
    /// An empty frame for `step`.
    pub fn new(step: u64) -> Self {
        Frame {
            step,
            ..Frame::default()
        }
    }

    /// Appends a value (builder style).
    #[must_use]
    pub fn with_value(mut self, name: impl Into<String>, v: f64) -> Self {
        self.values.push(Named {
            name: name.into(),
            value: v,
        });
        self
    }

    /// Appends a loss (builder style).
    #[must_use]
    pub fn with_loss(mut self, name: impl Into<String>, v: f64) -> Self {
        self.losses.push(Named {
            name: name.into(),
            value: v,
        });
        self
    }

    /// The first value called `name`, if any.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|n| n.name == name).map(|n| n.value)
    }

    /// The first loss, if any.
    pub fn loss(&self) -> Option<f64> {
        self.losses.first().map(|n| n.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_and_lookup() {
        let f = Frame::new(7)
            .with_value("a", 1.0)
            .with_value("b", f64::NAN)
            .with_value("a", 3.0)
            .with_loss("loss", 0.5)
            .with_loss("loss_val", 0.7);
        assert_eq!(f.step, 7);
        assert_eq!(f.value("a"), Some(1.0), "first match wins");
        assert!(f.value("b").is_some_and(f64::is_nan));
        assert_eq!(f.value("c"), None);
        assert_eq!(f.loss(), Some(0.5));
        assert_eq!(Frame::new(0).loss(), None);
        assert_eq!(f.rank, None);
    }
}
