//! [`RankAlarms`]: the rank merger's findings (lagging and disagreeing ranks) as alarms.

use gradtone_frame::{AlarmEvent, AlarmKind, Frame, Watch};

use crate::diag::{MAX_MESSAGE_CHARS, shorten};
use crate::merge::MergedFrame;

/// What the merger found at one merged step.
#[derive(Clone, Debug)]
struct Finding {
    step: u64,
    lagging: Vec<u32>,
    disagreeing: Vec<(u32, String)>,
}

/// Rank alarms ([`AlarmKind::Rank`]), fired when what is wrong changes rather than at every
/// step (a dead rank in a week-long run must not ring and print at every step), with the
/// repeats counted.
///
/// A [`Watch`]: the frames a pipeline gets carry no ranks (and may each stand for several
/// merged steps), so the merging loop [`note`](RankAlarms::note)s each [`MergedFrame`] as it
/// pops it, and the watch judges everything noted since the last frame when the pipeline
/// observes the next one. Each alarm names the merged step it is about.
///
/// ```
/// use gradtone_ingest::{Frame, MergedFrame, RankAlarms};
/// use gradtone_frame::Watch;
/// let mut alarms = RankAlarms::new(8);
/// for step in 0..3 {
///     alarms.note(&MergedFrame { frame: Frame::new(step), lagging: vec![2, 3], disagreeing: vec![] });
/// }
/// let fired = alarms.observe(&Frame::new(2));
/// assert_eq!(fired.len(), 1, "one alarm for one lasting condition");
/// assert_eq!(fired[0].message, "ALARM rank: step 0: rank(s) 2-3 not heard from for 8 steps");
/// assert_eq!(alarms.repeats(), 2);
/// ```
#[derive(Clone, Debug, Default)]
pub struct RankAlarms {
    max_lag: u64,
    lagging: Vec<u32>,
    disagreeing: Vec<u32>,
    repeats: u64,
    noted: Vec<Finding>,
}

impl RankAlarms {
    /// Rank alarms for a merger that gives up on a rank after `max_lag` steps
    /// ([`MergeOptions::lag`](crate::MergeOptions::lag), named in the message).
    pub fn new(max_lag: u64) -> Self {
        RankAlarms {
            max_lag,
            ..RankAlarms::default()
        }
    }

    /// Notes what the merger found at `m`'s step, for the next [`observe`](Watch::observe).
    pub fn note(&mut self, m: &MergedFrame) {
        self.noted.push(Finding {
            step: m.frame.step,
            lagging: m.lagging.clone(),
            disagreeing: m.disagreeing.clone(),
        });
    }

    /// How many steps repeated an alarm already fired (not sounded again).
    pub fn repeats(&self) -> u64 {
        self.repeats
    }

    fn judge(&mut self, m: &Finding, out: &mut Vec<AlarmEvent>) {
        let step = m.step;
        if !m.lagging.is_empty() {
            if m.lagging != self.lagging {
                let message = format!(
                    "ALARM rank: step {step}: rank(s) {} not heard from for {} steps",
                    rank_list(&m.lagging),
                    self.max_lag
                );
                out.push(rank_event(step, message));
            } else {
                self.repeats += 1;
            }
        }
        self.lagging.clone_from(&m.lagging);
        let mut ranks: Vec<u32> = m.disagreeing.iter().map(|(r, _)| *r).collect();
        ranks.dedup();
        if !ranks.is_empty() {
            if ranks != self.disagreeing {
                let shown: Vec<String> = m
                    .disagreeing
                    .iter()
                    .take(4)
                    .map(|(r, name)| format!("rank {r} on {}", shorten(name, 40)))
                    .collect();
                let more = m.disagreeing.len().saturating_sub(shown.len());
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                let message = format!(
                    "ALARM rank: step {step}: disagrees with the others: {}{more}",
                    shown.join(", ")
                );
                out.push(rank_event(step, message));
            } else {
                self.repeats += 1;
            }
        }
        self.disagreeing = ranks;
    }
}

impl Watch for RankAlarms {
    /// The alarms of every merged step noted since the last frame, oldest first.
    fn observe(&mut self, _frame: &Frame) -> Vec<AlarmEvent> {
        let mut out = Vec::new();
        for finding in std::mem::take(&mut self.noted) {
            self.judge(&finding, &mut out);
        }
        out
    }
}

fn rank_event(step: u64, message: String) -> AlarmEvent {
    AlarmEvent {
        step,
        kind: AlarmKind::Rank,
        message,
        layers: Vec::new(),
        numbers: Vec::new(),
    }
}

/// `[1, 2, 3, 7]` → `"1-3, 7"`, cut short for the console.
fn rank_list(ranks: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ranks.len() {
        let mut j = i;
        while j + 1 < ranks.len() && ranks[j + 1] == ranks[j] + 1 {
            j += 1;
        }
        parts.push(if j > i {
            format!("{}-{}", ranks[i], ranks[j])
        } else {
            ranks[i].to_string()
        });
        i = j + 1;
    }
    shorten(&parts.join(", "), MAX_MESSAGE_CHARS).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(step: u64, lagging: &[u32], disagreeing: &[(u32, &str)]) -> MergedFrame {
        MergedFrame {
            frame: Frame::new(step),
            lagging: lagging.to_vec(),
            disagreeing: disagreeing
                .iter()
                .map(|&(r, n)| (r, n.to_string()))
                .collect(),
        }
    }

    #[test]
    fn rank_list_folds_runs() {
        assert_eq!(rank_list(&[1, 2, 3, 7]), "1-3, 7");
        assert_eq!(rank_list(&[0]), "0");
        assert_eq!(rank_list(&[]), "");
    }

    #[test]
    fn fires_when_what_is_wrong_changes_and_counts_repeats() {
        let mut a = RankAlarms::new(4);
        let mut fired = Vec::new();
        let steps = [
            merged(0, &[], &[]),
            merged(1, &[3], &[]),
            merged(2, &[3], &[]),
            merged(3, &[2, 3], &[(1, "fc1")]),
            merged(4, &[2, 3], &[(1, "fc1"), (1, "fc2")]),
            merged(5, &[], &[]),
            merged(6, &[3], &[]),
        ];
        for m in &steps {
            a.note(m);
            fired.extend(a.observe(&m.frame));
        }
        let got: Vec<(u64, &str)> = fired.iter().map(|e| (e.step, e.message.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    1,
                    "ALARM rank: step 1: rank(s) 3 not heard from for 4 steps"
                ),
                (
                    3,
                    "ALARM rank: step 3: rank(s) 2-3 not heard from for 4 steps"
                ),
                (
                    3,
                    "ALARM rank: step 3: disagrees with the others: rank 1 on fc1"
                ),
                (
                    6,
                    "ALARM rank: step 6: rank(s) 3 not heard from for 4 steps"
                ),
            ]
        );
        assert!(fired.iter().all(|e| e.kind == AlarmKind::Rank));
        // Step 2 (lagging 3 again) and step 4 (both the same ranks again).
        assert_eq!(a.repeats(), 3);
    }

    #[test]
    fn steps_noted_between_frames_are_all_judged_at_the_next() {
        // A decimated pipeline sees one frame per several merged steps: nothing is lost.
        let mut a = RankAlarms::new(2);
        a.note(&merged(10, &[1], &[]));
        a.note(&merged(11, &[], &[]));
        a.note(&merged(
            12,
            &[1],
            &[(0, "conv1"), (0, "conv2"), (2, "a"), (3, "b"), (4, "c")],
        ));
        let fired = a.observe(&Frame::new(12));
        let steps: Vec<u64> = fired.iter().map(|e| e.step).collect();
        assert_eq!(steps, [10, 12, 12]);
        assert_eq!(
            fired[2].message,
            "ALARM rank: step 12: disagrees with the others: rank 0 on conv1, rank 0 on conv2, \
             rank 2 on a, rank 3 on b and 1 more"
        );
        assert!(a.observe(&Frame::new(13)).is_empty(), "judged once");
    }
}
