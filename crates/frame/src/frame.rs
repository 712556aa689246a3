//! [`Frame`]: the values one training step emits.

use std::collections::HashMap;

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
/// use gradtone_frame::Frame;
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
    /// The gradient-clipping threshold of this step (the `max_norm` given to
    /// `torch.nn.utils.clip_grad_norm_`), if the source says it clips. The values are the norms
    /// *before* clipping, so a total norm above `clip` was clipped: the update stayed bounded,
    /// and the alarms do not call such a spike a divergence.
    pub clip: Option<f64>,
    /// Each value group's parameter (weight) L2 norm at this step, under the same names as
    /// [`Frame::values`] (the stream's optional `params`); empty when the source does not send
    /// them. Weights bit-identical from step to step while gradients flow are a frozen
    /// optimiser; the alarms watch them, the mappings do not sound them.
    pub params: Vec<Named>,
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

    /// Appends a parameter norm (builder style).
    #[must_use]
    pub fn with_param(mut self, name: impl Into<String>, v: f64) -> Self {
        self.params.push(Named {
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

    /// The loss: what training minimises, the one meaning of "the loss" in gradtone (the
    /// alarms judge it, the console prints it). The only loss of a frame with one; else the one
    /// named `loss` (a weighted sum sent beside its terms, which come after it). Several losses
    /// and none called `loss` are the terms of a game or of an unsent sum (a GAN's `d_real`,
    /// `d_fake`, `g_adv`): each may rightly rise while training goes well, so there is no loss
    /// (`None`); read the terms from [`Frame::losses`].
    ///
    /// ```
    /// use gradtone_frame::Frame;
    /// assert_eq!(Frame::new(0).with_loss("nll", 2.0).loss(), Some(2.0));
    /// let sum = Frame::new(0).with_loss("loss_l2", 0.1).with_loss("loss", 2.1);
    /// assert_eq!(sum.loss(), Some(2.1));
    /// let game = Frame::new(0).with_loss("d_real", 0.7).with_loss("g_adv", 1.4);
    /// assert_eq!(game.loss(), None);
    /// ```
    pub fn loss(&self) -> Option<f64> {
        match self.losses.as_slice() {
            [only] => Some(only.value),
            many => many.iter().find(|n| n.name == "loss").map(|n| n.value),
        }
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
        assert_eq!(f.clip, None);
        assert!(f.params.is_empty());
        let p = Frame::new(1).with_value("a", 1.0).with_param("a", 3.5);
        assert_eq!((p.params[0].name.as_str(), p.params[0].value), ("a", 3.5));
    }
}

/// Merges every `n` consecutive frames into one, so a very long run (a million steps) can be
/// heard in minutes: each value and loss becomes the mean over the group, but a non-finite value
/// anywhere in the group wins (NaN over ±∞), so alarms are never averaged away. The merged frame
/// carries the group's last step; names and order come from the group's first frame. Its
/// parameter norms are the last ones of the group (the weights at its last step, as sent: a
/// producer may send them in some frames only), not a mean: weights that stopped moving stay
/// bit-identical from one merged frame to the next.
#[derive(Debug)]
pub struct Decimator {
    n: usize,
    group: Vec<Frame>,
}

impl Decimator {
    /// Merges groups of `n` frames (`n` of 0 or 1 passes frames through).
    pub fn new(n: usize) -> Self {
        Self {
            n: n.max(1),
            group: Vec::new(),
        }
    }

    /// Adds a frame; returns the merged frame when a group is complete.
    pub fn push(&mut self, frame: Frame) -> Option<Frame> {
        if self.n == 1 {
            return Some(frame);
        }
        self.group.push(frame);
        (self.group.len() == self.n).then(|| self.take())
    }

    /// The merged frame of an incomplete last group, if any.
    pub fn finish(&mut self) -> Option<Frame> {
        (!self.group.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Frame {
        let group = std::mem::take(&mut self.group);
        let merge = |pick: fn(&Frame) -> &Vec<Named>| -> Vec<Named> {
            // Accumulators by name (first occurrence in the first frame): O(values) per frame.
            let mut index: HashMap<&str, usize> = HashMap::new();
            let mut acc: Vec<(f64, usize, Option<f64>)> = Vec::new();
            for n in pick(&group[0]) {
                index.entry(n.name.as_str()).or_insert_with(|| {
                    acc.push((0.0, 0, None));
                    acc.len() - 1
                });
            }
            for f in &group {
                let mut seen = vec![false; acc.len()];
                for v in pick(f) {
                    let Some(&i) = index.get(v.name.as_str()) else {
                        continue;
                    };
                    if std::mem::replace(&mut seen[i], true) {
                        continue; // the first value of a name in a frame counts
                    }
                    let (sum, count, bad) = &mut acc[i];
                    if v.value.is_finite() {
                        *sum += v.value;
                        *count += 1;
                    } else if !bad.is_some_and(f64::is_nan) {
                        *bad = Some(v.value);
                    }
                }
            }
            pick(&group[0])
                .iter()
                .map(|first| {
                    let (sum, count, bad) = acc[index[first.name.as_str()]];
                    let value = bad.unwrap_or(if count > 0 {
                        sum / count as f64
                    } else {
                        f64::NAN
                    });
                    Named {
                        name: first.name.clone(),
                        value,
                    }
                })
                .collect()
        };
        let last = group.last().map_or(0, |f| f.step);
        Frame {
            step: last,
            values: merge(|f| &f.values),
            losses: merge(|f| &f.losses),
            rank: group[0].rank,
            // The tightest threshold of the group: a spike anywhere in it was clipped at least
            // that hard.
            clip: group.iter().filter_map(|f| f.clip).reduce(f64::min),
            params: group
                .iter()
                .rev()
                .find(|f| !f.params.is_empty())
                .map(|f| f.params.clone())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod decimator_tests {
    use super::*;

    #[test]
    fn decimator_means_and_keeps_non_finite() {
        let mut d = Decimator::new(3);
        let f = |s, a: f64, b: f64| {
            Frame::new(s)
                .with_value("a", a)
                .with_value("b", b)
                .with_loss("loss", a)
        };
        assert_eq!(d.push(f(0, 1.0, 1.0)), None);
        assert_eq!(d.push(f(1, 2.0, f64::INFINITY)), None);
        let m = d.push(f(2, 3.0, f64::NAN)).expect("a full group");
        assert_eq!(m.step, 2);
        assert_eq!(m.value("a"), Some(2.0));
        assert!(
            m.value("b").is_some_and(f64::is_nan),
            "NaN wins over inf and finite"
        );
        assert_eq!(m.loss(), Some(2.0));
        assert_eq!(d.push(f(3, 5.0, 1.0)), None);
        let last = d.finish().expect("partial group");
        assert_eq!((last.step, last.value("a")), (3, Some(5.0)));
        assert_eq!(d.finish(), None);
        assert_eq!(
            Decimator::new(1).push(f(9, 1.0, 2.0)).map(|f| f.step),
            Some(9)
        );
    }

    #[test]
    fn decimator_keeps_the_last_parameter_norms_of_a_group() {
        let mut d = Decimator::new(3);
        let f = |s: u64| Frame::new(s).with_value("a", 1.0);
        // Norms in frames 0 and 1 of the group, not in its last: frame 1's, exactly (a mean of
        // 0.1, 0.1, 0.1 would not be 0.1).
        assert_eq!(d.push(f(0).with_param("a", 0.2)), None);
        assert_eq!(d.push(f(1).with_param("a", 0.1)), None);
        let m = d.push(f(2)).expect("a full group");
        assert_eq!(m.params.len(), 1);
        assert_eq!(m.params[0].value.to_bits(), 0.1f64.to_bits());
        // A group without any has none.
        d.push(f(3));
        assert!(d.finish().is_some_and(|m| m.params.is_empty()));
    }
}
