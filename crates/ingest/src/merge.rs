//! [`RankMerger`]: one frame per step from the frames of all ranks of a distributed run.

use std::collections::{BTreeMap, HashMap, VecDeque};

use gradtone_frame::{Frame, Named};

/// The most ranks a distributed run may have: a `world` above it is rejected by the parsers
/// (the line or message is skipped and counted), and a rank at or beyond it is dropped by
/// [`RankMerger`]. Per-step work and memory grow with the number of ranks, so a peer must not
/// be able to claim an arbitrary number.
pub const MAX_WORLD: u32 = 1024;

/// Bytes of frames (roughly: names plus a fixed cost per value) that [`RankMerger`] holds while
/// steps wait for their ranks. Beyond it the oldest waiting step is emitted early, with what it
/// has, so a flood of large frames cannot grow memory.
pub const MAX_PENDING_BYTES: usize = 64 << 20;

/// What a merged frame's values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum MergeMode {
    /// Every rank's values as their own voices, named `r{rank}/{name}` (losses likewise), ranks
    /// in order.
    PerRank,
    /// The mean across the ranks present of each value and loss, under its own name.
    Mean,
}

/// How [`RankMerger`] waits and what it flags.
#[derive(Clone, Debug)]
pub struct MergeOptions {
    /// Number of ranks, `0..world` (a frame with a rank beyond it widens it, up to
    /// [`MAX_WORLD`]; a larger number given here is cut to it).
    pub world: u32,
    /// A step is emitted, with what it has, once the newest step seen is this many steps ahead
    /// of it, even if some ranks have not sent it yet (they are flagged as lagging).
    pub lag: u64,
    /// What the merged values are.
    pub mode: MergeMode,
    /// A rank's value deviating from the median of the other ranks' by more than this factor
    /// (either way) is flagged; NaN/∞ among finite values is always flagged.
    pub disagreement_factor: f64,
}

impl MergeOptions {
    /// `world` ranks, lag 8 steps, means, disagreement factor 10.
    pub fn new(world: u32) -> Self {
        MergeOptions {
            world,
            lag: 8,
            mode: MergeMode::Mean,
            disagreement_factor: 10.0,
        }
    }
}

/// One step of a distributed run, merged, with what is wrong with its ranks.
#[derive(Clone, Debug, PartialEq)]
pub struct MergedFrame {
    /// The merged frame (`rank: None`).
    pub frame: Frame,
    /// Ranks of `0..world` that had not sent this step when it was emitted, ascending.
    pub lagging: Vec<u32>,
    /// `(rank, value name)` pairs whose value disagrees with the other ranks' (see
    /// [`MergeOptions::disagreement_factor`]); by rank, then in value order.
    pub disagreeing: Vec<(u32, String)>,
}

/// Merges the frames of several ranks (interleaved, possibly out of order) into one
/// [`MergedFrame`] per step, in step order.
///
/// A step is emitted once every rank of `0..world` sent it, or once it is [`MergeOptions::lag`]
/// steps behind the newest step seen; frames that arrive for an already emitted step are dropped
/// and counted ([`late_frames`](Self::late_frames)). A frame without a rank counts as rank 0.
/// Disagreement needs at least 3 ranks with a value (with 2, neither can be told wrong).
///
/// Bounded whatever arrives: at most `lag` steps wait, each with at most one frame per rank, and
/// at most [`MAX_PENDING_BYTES`] of them in all (the oldest step is emitted early beyond that);
/// ranks at or beyond [`MAX_WORLD`] are dropped and counted
/// ([`rejected_frames`](Self::rejected_frames)). The work per step is linear in its values
/// (plus `world` for the lagging list); nothing is remembered about emitted steps but the last
/// step number.
///
/// ```
/// use gradtone_ingest::{Frame, MergeOptions, RankMerger};
/// let mut m = RankMerger::new(MergeOptions::new(2));
/// for rank in 0..2 {
///     let mut f = Frame::new(0).with_value("fc1", 1.0 + rank as f64);
///     f.rank = Some(rank);
///     m.push(f);
/// }
/// let merged = m.pop().unwrap();
/// assert_eq!(merged.frame.value("fc1"), Some(1.5));
/// assert!(merged.lagging.is_empty());
/// ```
pub struct RankMerger {
    opts: MergeOptions,
    pending: BTreeMap<u64, BTreeMap<u32, Frame>>,
    /// Estimated bytes of the frames in `pending` (see [`frame_bytes`]).
    pending_bytes: usize,
    newest: Option<u64>,
    /// Steps up to and including this one were emitted.
    emitted: Option<u64>,
    late: u64,
    rejected: u64,
    out: VecDeque<MergedFrame>,
}

/// A frame's memory, roughly: its names plus a fixed cost per value and per frame.
fn frame_bytes(f: &Frame) -> usize {
    let named = |v: &[Named]| v.iter().map(|n| n.name.len() + 48).sum::<usize>();
    96 + named(&f.values) + named(&f.losses)
}

impl RankMerger {
    /// A merger with the given options.
    pub fn new(mut opts: MergeOptions) -> Self {
        opts.world = opts.world.clamp(1, MAX_WORLD);
        RankMerger {
            opts,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            newest: None,
            emitted: None,
            late: 0,
            rejected: 0,
            out: VecDeque::new(),
        }
    }

    /// Adds one rank's frame; steps that became ready can then be taken with [`pop`](Self::pop).
    /// A second frame of the same rank and step replaces the first.
    pub fn push(&mut self, frame: Frame) {
        let rank = frame.rank.unwrap_or(0);
        if rank >= MAX_WORLD {
            self.rejected += 1;
            return;
        }
        if self.emitted.is_some_and(|e| frame.step <= e) {
            self.late += 1;
            return;
        }
        self.opts.world = self.opts.world.max(rank + 1);
        self.newest = Some(self.newest.map_or(frame.step, |n| n.max(frame.step)));
        self.pending_bytes += frame_bytes(&frame);
        if let Some(old) = self
            .pending
            .entry(frame.step)
            .or_default()
            .insert(rank, frame)
        {
            self.pending_bytes -= frame_bytes(&old);
        }
        self.release(false);
    }

    /// The next merged step, if one is ready.
    pub fn pop(&mut self) -> Option<MergedFrame> {
        self.out.pop_front()
    }

    /// Emits every pending step with what it has (the input ended).
    pub fn finish(&mut self) {
        self.release(true);
    }

    /// Frames dropped because their step had already been emitted.
    pub fn late_frames(&self) -> u64 {
        self.late
    }

    /// Frames dropped because their rank is not below [`MAX_WORLD`].
    pub fn rejected_frames(&self) -> u64 {
        self.rejected
    }

    /// Frames waiting for the other ranks of their step (at most `lag` steps' worth).
    pub fn pending_frames(&self) -> usize {
        self.pending.values().map(BTreeMap::len).sum()
    }

    /// The number of ranks (grows when a frame names a rank beyond it).
    pub fn world(&self) -> u32 {
        self.opts.world
    }

    fn release(&mut self, all: bool) {
        let newest = self.newest.unwrap_or(0);
        while let Some(entry) = self.pending.first_entry() {
            let step = *entry.key();
            let complete = entry.get().len() >= self.opts.world as usize;
            let over_budget = self.pending_bytes > MAX_PENDING_BYTES;
            if !(all || complete || over_budget || newest.saturating_sub(step) >= self.opts.lag) {
                break;
            }
            let ranks = entry.remove();
            let bytes: usize = ranks.values().map(frame_bytes).sum();
            self.pending_bytes = self.pending_bytes.saturating_sub(bytes);
            self.emitted = Some(step);
            let merged = self.merge_step(step, ranks);
            self.out.push_back(merged);
        }
    }

    fn merge_step(&self, step: u64, ranks: BTreeMap<u32, Frame>) -> MergedFrame {
        let lagging = (0..self.opts.world)
            .filter(|r| !ranks.contains_key(r))
            .collect();
        let disagreeing = disagreements(&ranks, self.opts.disagreement_factor);
        let mut frame = Frame::new(step);
        // Ranks clip alike; the tightest threshold is the safe one to judge spikes by.
        frame.clip = ranks.values().filter_map(|f| f.clip).reduce(f64::min);
        match self.opts.mode {
            MergeMode::PerRank => {
                for (rank, f) in &ranks {
                    let prefix = |n: &Named| Named {
                        name: format!("r{rank}/{}", n.name),
                        value: n.value,
                    };
                    frame.values.extend(f.values.iter().map(prefix));
                    frame.losses.extend(f.losses.iter().map(prefix));
                }
            }
            MergeMode::Mean => {
                frame.values = mean_by_name(ranks.values().map(|f| &f.values));
                frame.losses = mean_by_name(ranks.values().map(|f| &f.losses));
            }
        }
        MergedFrame {
            frame,
            lagging,
            disagreeing,
        }
    }
}

/// Mean of each name over the lists that have it; names in order of first appearance.
fn mean_by_name<'a>(lists: impl Iterator<Item = &'a Vec<Named>>) -> Vec<Named> {
    let mut sums: Vec<(Named, u32)> = Vec::new();
    // Name → index in `sums`: linear in the values, whatever the number of distinct names.
    let mut index: HashMap<&'a str, usize> = HashMap::new();
    for list in lists {
        for n in list {
            match index.get(n.name.as_str()) {
                Some(&i) => {
                    let (s, count) = &mut sums[i];
                    s.value += n.value;
                    *count += 1;
                }
                None => {
                    index.insert(&n.name, sums.len());
                    sums.push((n.clone(), 1));
                }
            }
        }
    }
    sums.into_iter()
        .map(|(mut n, count)| {
            n.value /= f64::from(count);
            n
        })
        .collect()
}

/// One value name across the ranks of a step.
#[derive(Default)]
struct Across {
    /// Ranks with the name, and each one's (first) value.
    ranks: Vec<(u32, f64)>,
    /// The finite ones' magnitudes, sorted.
    sorted: Vec<f64>,
}

impl Across {
    /// The median of the sorted magnitudes with one occurrence of `skip` left out (`None`:
    /// none left out); `None` when nothing remains.
    fn median_without(&self, skip: Option<f64>) -> Option<f64> {
        let s = &self.sorted;
        let (n, p) = match skip {
            Some(x) => (s.len() - 1, s.partition_point(|&y| y < x)),
            None => (s.len(), s.len()),
        };
        if n == 0 {
            return None;
        }
        // The i-th of the remaining values.
        let at = |i: usize| if i < p { s[i] } else { s[i + 1] };
        let m = n / 2;
        Some(if n % 2 == 1 {
            at(m)
        } else {
            0.5 * (at(m - 1) + at(m))
        })
    }
}

/// `(rank, name)` of values that deviate from the median of the other ranks by more than `k`×.
/// Linear in the step's values (plus sorting each name's values across ranks).
fn disagreements(ranks: &BTreeMap<u32, Frame>, k: f64) -> Vec<(u32, String)> {
    let mut by_name: HashMap<&str, Across> = HashMap::new();
    for (&rank, frame) in ranks {
        for named in &frame.values {
            let a = by_name.entry(&named.name).or_default();
            // A name twice in one frame: the first value speaks for the rank.
            if a.ranks.last().is_some_and(|&(r, _)| r == rank) {
                continue;
            }
            a.ranks.push((rank, named.value));
            if named.value.is_finite() {
                a.sorted.push(named.value.abs());
            }
        }
    }
    for a in by_name.values_mut() {
        a.sorted.sort_by(f64::total_cmp);
    }
    let mut flagged = Vec::new();
    for (&rank, frame) in ranks {
        for named in &frame.values {
            let Some(a) = by_name.get(named.name.as_str()) else {
                continue;
            };
            // This rank's own (first) value is not one of the others.
            let own = a
                .ranks
                .binary_search_by_key(&rank, |&(r, _)| r)
                .ok()
                .map(|i| a.ranks[i].1);
            let own_finite = own.filter(|x| x.is_finite()).map(f64::abs);
            let n_others = a.ranks.len() - usize::from(own.is_some());
            let finite_others = a.sorted.len() - usize::from(own_finite.is_some());
            // Need two others to have a majority, and most of them finite to have a consensus.
            if n_others < 2 || finite_others * 2 <= n_others {
                continue;
            }
            let Some(m) = a.median_without(own_finite) else {
                continue;
            };
            let v = named.value;
            let bad = if !v.is_finite() {
                true
            } else {
                let (lo, hi) = if v.abs() < m {
                    (v.abs(), m)
                } else {
                    (m, v.abs())
                };
                hi > k * lo && hi > f64::MIN_POSITIVE
            };
            if bad {
                flagged.push((rank, named.name.clone()));
            }
        }
    }
    flagged
}

/// An iterator of [`MergedFrame`]s over an iterator of rank frames; see [`RankMerger::merge`].
pub struct Merged<I> {
    inner: I,
    merger: RankMerger,
    finished: bool,
}

impl RankMerger {
    /// Merges a whole stream of frames (e.g. a [`crate::FrameSource`]); pending steps are
    /// emitted when it ends.
    ///
    /// ```
    /// use gradtone_ingest::{Frame, MergeOptions, RankMerger};
    /// let frames = (0..3u32).map(|r| {
    ///     let mut f = Frame::new(7).with_value("fc1", 1.0);
    ///     f.rank = Some(r);
    ///     f
    /// });
    /// let merged: Vec<_> = RankMerger::merge(frames, MergeOptions::new(4)).collect();
    /// assert_eq!(merged.len(), 1);
    /// assert_eq!(merged[0].lagging, [3], "rank 3 never sent step 7");
    /// ```
    pub fn merge<I: IntoIterator<Item = Frame>>(
        frames: I,
        opts: MergeOptions,
    ) -> Merged<I::IntoIter> {
        Merged {
            inner: frames.into_iter(),
            merger: RankMerger::new(opts),
            finished: false,
        }
    }
}

impl<I> Merged<I> {
    /// The underlying source (e.g. for its diagnostics).
    pub fn source(&self) -> &I {
        &self.inner
    }

    /// The merger (e.g. for [`RankMerger::late_frames`]).
    pub fn merger(&self) -> &RankMerger {
        &self.merger
    }
}

impl<I: Iterator<Item = Frame>> Iterator for Merged<I> {
    type Item = MergedFrame;

    fn next(&mut self) -> Option<MergedFrame> {
        loop {
            if let Some(m) = self.merger.pop() {
                return Some(m);
            }
            if self.finished {
                return None;
            }
            match self.inner.next() {
                Some(f) => self.merger.push(f),
                None => {
                    self.merger.finish();
                    self.finished = true;
                }
            }
        }
    }
}
