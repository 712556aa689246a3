//! Grouping many named values (one per tensor) into a few voices (one per block of the model).
//!
//! A ResNet or a transformer has hundreds of parameter tensors; twelve voices are about as many
//! as an ear can follow. [`Grouping::new`] assigns each name to a voice, in model order:
//!
//! - **Explicit patterns** ([`GroupingConfig::patterns`]): each pattern is one voice, named after
//!   the pattern. A pattern with `*` (any run of characters) or `?` (one character) is a glob
//!   matched against the whole name; a pattern without them is a prefix matching the name itself
//!   or the name followed by `.` (`layer1` matches `layer1.0.conv1.weight`, not `layer10.x`). The
//!   first matching pattern wins; names no pattern matches go to a voice called `other`.
//! - **Automatic** (no patterns): names are split at `.` and the last component (`weight`,
//!   `bias`) is ignored. Voices start as the distinct first components (`conv1`, `layer1`, …,
//!   `fc`). While there are fewer than `max_voices / 2` of them, the group with the most members
//!   that still has distinct sub-blocks is split by the next component; if splitting it fully
//!   would exceed `max_voices`, its sub-blocks are merged into contiguous runs instead, named
//!   like `blocks.0-2`.
//!
//! Either way there are at most `max_voices` voices (contiguous runs merge any excess), and a
//! voice's value is the L2 norm of its members' values, `√Σ vᵢ²` (the norm of the concatenated
//! gradient, when the values are per-tensor gradient norms; NaN/∞ propagate).
//!
//! ```
//! use gradtone_detect::grouping::{Grouping, GroupingConfig};
//! let names = ["conv1.weight", "layer1.0.conv1.weight", "layer1.1.conv2.weight", "fc.weight"];
//! let cfg = GroupingConfig { max_voices: 4, ..GroupingConfig::default() };
//! let g = Grouping::new(&names, &cfg);
//! let voices: Vec<&str> = g.legend().iter().map(|(v, _)| v.as_str()).collect();
//! assert_eq!(voices, ["conv1", "layer1", "fc"]);
//! assert_eq!(g.aggregate(&[3.0, 1.0, 2.0, 4.0]), vec![3.0, 5f64.sqrt(), 4.0]);
//! ```

use std::collections::HashMap;

use gradtone_frame::naming::shorten_middle;
use serde::Deserialize;

/// Members listed per voice in [`Grouping::legend_text`] before the rest is summarised.
const LEGEND_MEMBERS: usize = 4;
/// Characters of a name shown in [`Grouping::legend_text`]; longer names are cut in the middle.
const LEGEND_NAME_CHARS: usize = 60;

/// How a run's values become voices, as the outputs that draw or show voices (the plot, the
/// page) need to know it, without knowing the synthesiser: implemented by the sound's
/// configuration (`gradtone_sound::SoundConfig`).
pub trait Voicing {
    /// The grouping settings (`[grouping]`).
    fn grouping(&self) -> &GroupingConfig;
    /// Whether the sound groups values into voices at all (`false`: every value is a voice of
    /// its own, as the `seed` mapping plays them).
    fn groups_values(&self) -> bool;
}

/// How to group values into voices (the `[grouping]` table of the config file).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupingConfig {
    /// Most voices, 1–32 (default 12). Frames with more values than this are grouped.
    pub max_voices: usize,
    /// Explicit voices: globs (`blocks.1?.*`) or prefixes (`layer1`), first match wins
    /// (default empty: automatic grouping by name blocks).
    pub patterns: Vec<String>,
}

impl Default for GroupingConfig {
    fn default() -> Self {
        GroupingConfig {
            max_voices: 12,
            patterns: Vec::new(),
        }
    }
}

/// An assignment of named values to voices. See the [module docs](self).
#[derive(Clone, Debug, PartialEq)]
pub struct Grouping {
    names: Vec<String>,
    /// Voice index of each name.
    voice_of: Vec<usize>,
    legend: Vec<(String, Vec<String>)>,
}

impl Grouping {
    /// Whether a frame with `n` values is grouped under `config`: when there are patterns, or
    /// more than `max_voices` values. Otherwise each value is its own voice. The grouping
    /// mappings, their console legend and the plot all decide with this.
    pub fn applies(n: usize, config: &GroupingConfig) -> bool {
        !config.patterns.is_empty() || n > config.max_voices
    }

    /// The grouping a frame with these value names gets ([`Grouping::applies`]), or `None` when
    /// each value is its own voice.
    pub fn for_values<S: AsRef<str>>(names: &[S], config: &GroupingConfig) -> Option<Self> {
        Self::applies(names.len(), config).then(|| Grouping::new(names, config))
    }

    /// Groups `names` (in model order) as `config` says. Linear in the number of names.
    pub fn new<S: AsRef<str>>(names: &[S], config: &GroupingConfig) -> Self {
        let names: Vec<String> = names.iter().map(|s| s.as_ref().to_owned()).collect();
        let max = config.max_voices.max(1);
        let mut groups: Vec<(String, Vec<usize>)> = if config.patterns.is_empty() {
            auto_groups(&names, max)
        } else {
            pattern_groups(&names, &config.patterns)
        };
        if groups.len() > max {
            groups = merge_runs(groups, max);
        }
        let mut voice_of = vec![0; names.len()];
        let legend = groups
            .into_iter()
            .enumerate()
            .map(|(v, (voice, members))| {
                members.iter().for_each(|&m| voice_of[m] = v);
                (voice, members.iter().map(|&m| names[m].clone()).collect())
            })
            .collect();
        Grouping {
            names,
            voice_of,
            legend,
        }
    }

    /// The names this grouping was built for, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether this grouping was built for exactly these names (so it can be reused).
    pub fn matches<'a>(&self, names: impl ExactSizeIterator<Item = &'a str>) -> bool {
        names.len() == self.names.len() && names.zip(&self.names).all(|(a, b)| a == b)
    }

    /// Number of voices.
    pub fn voices(&self) -> usize {
        self.legend.len()
    }

    /// Each voice's name and its members' names, in voice order.
    pub fn legend(&self) -> &[(String, Vec<String>)] {
        &self.legend
    }

    /// The label of voice `i` (0-based) as the legend shows it: its number and name, the name
    /// cut in the middle to at most `max_chars` characters (`1 blocks.0-2`). Labels are unique:
    /// the numbers differ.
    pub fn voice_label(&self, i: usize, max_chars: usize) -> String {
        let name = self.legend.get(i).map_or("", |(v, _)| v.as_str());
        format!("{} {}", i + 1, shorten_middle(name, max_chars))
    }

    /// The legend as text, one voice a line: `voice  (n): member, member, …`. Bounded whatever
    /// the names: at most 32 lines (voices), each listing its first members and the last one
    /// (`… 99,996 more …`), every name cut in the middle to 60 characters.
    pub fn legend_text(&self) -> String {
        let voice = |v: &str| shorten_middle(v, LEGEND_NAME_CHARS);
        let width = self
            .legend
            .iter()
            .map(|(v, _)| voice(v).chars().count())
            .max()
            .unwrap_or(0);
        self.legend
            .iter()
            .enumerate()
            .map(|(i, (v, members))| {
                let short = |m: &String| shorten_middle(m, LEGEND_NAME_CHARS);
                let listed = if members.len() <= LEGEND_MEMBERS + 1 {
                    members.iter().map(short).collect::<Vec<_>>().join(", ")
                } else {
                    let head: Vec<String> = members[..LEGEND_MEMBERS].iter().map(short).collect();
                    let more = members.len() - LEGEND_MEMBERS - 1;
                    let last = members.last().map(short).unwrap_or_default();
                    format!("{}, … {more} more …, {last}", head.join(", "))
                };
                format!(
                    "{:>2} {:<width$} ({}): {listed}\n",
                    i + 1,
                    voice(v),
                    members.len(),
                )
            })
            .collect()
    }

    /// Per-voice L2 norms `√Σ v²` of `values` (one per name, in order). Values beyond the
    /// grouping's names are ignored; a voice with no values is 0.
    pub fn aggregate(&self, values: &[f64]) -> Vec<f64> {
        let mut sums = vec![0.0f64; self.legend.len()];
        for (&v, &voice) in values.iter().zip(&self.voice_of) {
            sums[voice] += v * v;
        }
        sums.into_iter().map(f64::sqrt).collect()
    }
}

/// Ordered voices: a name and the indices of its members.
type Groups = Vec<(String, Vec<usize>)>;

/// The block key of a name: its dotted components without the last one (`weight`, `bias`).
fn components(name: &str) -> Vec<&str> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 1 {
        parts[..parts.len() - 1].to_vec()
    } else {
        parts
    }
}

/// Ordered distinct keys of `members` at component depth `depth` (names shorter keep all).
/// A hash index keeps it linear: a stream of 100,000 distinct names must not cost 10^10.
fn split_by_depth(names: &[String], members: &[usize], depth: usize) -> Groups {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for &m in members {
        let parts = components(&names[m]);
        let key = parts[..depth.min(parts.len())].join(".");
        match index.get(&key) {
            Some(&i) => out[i].1.push(m),
            None => {
                index.insert(key.clone(), out.len());
                out.push((key, vec![m]));
            }
        }
    }
    out
}

fn auto_groups(names: &[String], max: usize) -> Vec<(String, Vec<usize>)> {
    let all: Vec<usize> = (0..names.len()).collect();
    // (key, members, depth of the key; None once merged into runs, which never split again)
    let mut groups: Vec<(String, Vec<usize>, Option<usize>)> = split_by_depth(names, &all, 1)
        .into_iter()
        .map(|(k, m)| (k, m, Some(1)))
        .collect();
    while groups.len() < max.div_ceil(2) {
        // The largest group that still splits into several sub-blocks.
        let candidate = groups
            .iter()
            .enumerate()
            .filter_map(|(i, (_, m, d))| {
                let (depth, subs) = next_split(names, m, (*d)?)?;
                Some((i, m.len(), depth, subs))
            })
            .max_by_key(|&(i, len, _, _)| (len, std::cmp::Reverse(i)));
        let Some((i, _, depth, subs)) = candidate else {
            break;
        };
        let room = max - (groups.len() - 1);
        let replacement: Vec<(String, Vec<usize>, Option<usize>)> = if subs.len() <= room {
            subs.into_iter().map(|(k, m)| (k, m, Some(depth))).collect()
        } else {
            // Too many sub-blocks: contiguous runs fill the room that is left.
            merge_runs(subs, room)
                .into_iter()
                .map(|(k, m)| (k, m, None))
                .collect()
        };
        groups.splice(i..=i, replacement);
    }
    groups.into_iter().map(|(k, m, _)| (k, m)).collect()
}

/// The first depth below `depth` at which `members` fall into several blocks, and those blocks.
fn next_split(names: &[String], members: &[usize], depth: usize) -> Option<(usize, Groups)> {
    // Bounded: a hostile name with thousands of dots must not cost depth² splits.
    let deepest = members.iter().map(|&m| components(&names[m]).len()).max()?;
    (depth + 1..=deepest.min(depth + 8))
        .map(|d| (d, split_by_depth(names, members, d)))
        .find(|(_, subs)| subs.len() > 1)
}

fn pattern_groups(names: &[String], patterns: &[String]) -> Vec<(String, Vec<usize>)> {
    let mut groups: Vec<(String, Vec<usize>)> =
        patterns.iter().map(|p| (p.clone(), Vec::new())).collect();
    let mut other = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match patterns.iter().position(|p| pattern_matches(p, name)) {
            Some(g) => groups[g].1.push(i),
            None => other.push(i),
        }
    }
    groups.retain(|(_, m)| !m.is_empty());
    if !other.is_empty() {
        groups.push(("other".to_owned(), other));
    }
    groups
}

/// A glob (`*`, `?`) matched against the whole name, or else a block prefix.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    if pattern.contains(['*', '?']) {
        glob_matches(pattern.as_bytes(), name.as_bytes())
    } else {
        name == pattern
            || name
                .strip_prefix(pattern)
                .is_some_and(|rest| rest.starts_with('.'))
    }
}

/// Iterative glob match with single-star backtracking (linear-ish, no recursion blow-up).
fn glob_matches(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Merges ordered groups into `max` contiguous runs of near-equal group count.
fn merge_runs(groups: Vec<(String, Vec<usize>)>, max: usize) -> Vec<(String, Vec<usize>)> {
    let n = groups.len();
    let max = max.max(1);
    if n <= max {
        return groups;
    }
    let mut out = Vec::with_capacity(max);
    let mut iter = groups.into_iter();
    for run in 0..max {
        let size = (n * (run + 1)) / max - (n * run) / max;
        let chunk: Vec<(String, Vec<usize>)> = iter.by_ref().take(size).collect();
        let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
            continue;
        };
        let name = run_name(&first.0, &last.0);
        out.push((name, chunk.into_iter().flat_map(|(_, m)| m).collect()));
    }
    out
}

/// `blocks.0` … `blocks.2` → `blocks.0-2`; unrelated keys → `a..b`.
fn run_name(first: &str, last: &str) -> String {
    if first == last {
        return first.to_owned();
    }
    match (first.rsplit_once('.'), last.rsplit_once('.')) {
        (Some((pa, a)), Some((pb, b))) if pa == pb => format!("{pa}.{a}-{b}"),
        _ => format!("{first}..{last}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_matches(b"blocks.*.attn.*", b"blocks.12.attn.weight"));
        assert!(!glob_matches(b"blocks.*.attn.*", b"blocks.12.mlp.weight"));
        assert!(glob_matches(b"blocks.1?.*", b"blocks.12.mlp.weight"));
        assert!(!glob_matches(b"blocks.1?.*", b"blocks.1.mlp.weight"));
        assert!(glob_matches(b"*", b""));
        assert!(pattern_matches("layer1", "layer1.0.conv1.weight"));
        assert!(!pattern_matches("layer1", "layer10.conv1.weight"));
        assert!(pattern_matches("fc", "fc"));
    }

    #[test]
    fn resnet_groups_by_stage() {
        let mut names = vec!["conv1.weight".to_owned(), "bn1.weight".to_owned()];
        for stage in 1..=4 {
            for block in 0..2 {
                for p in ["conv1.weight", "bn1.weight", "conv2.weight", "bn2.weight"] {
                    names.push(format!("layer{stage}.{block}.{p}"));
                }
            }
        }
        names.push("fc.weight".into());
        names.push("fc.bias".into());
        let g = Grouping::new(&names, &GroupingConfig::default());
        let voices: Vec<&str> = g.legend().iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(
            voices,
            ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"]
        );
        assert_eq!(g.legend()[2].1.len(), 8);
    }

    #[test]
    fn explicit_patterns_and_other() {
        let names = [
            "embed.weight",
            "blocks.0.attn.w",
            "blocks.0.mlp.w",
            "blocks.1.attn.w",
            "head.w",
        ];
        let cfg = GroupingConfig {
            max_voices: 12,
            patterns: vec!["blocks.*.attn.*".into(), "blocks".into()],
        };
        let g = Grouping::new(&names, &cfg);
        let legend = g.legend();
        assert_eq!(legend.len(), 3);
        assert_eq!(legend[0].0, "blocks.*.attn.*");
        assert_eq!(legend[0].1, ["blocks.0.attn.w", "blocks.1.attn.w"]);
        assert_eq!(legend[1].1, ["blocks.0.mlp.w"]);
        assert_eq!(legend[2].0, "other");
        assert_eq!(legend[2].1, ["embed.weight", "head.w"]);
        assert!(
            g.legend_text()
                .contains("blocks.*.attn.* (2): blocks.0.attn.w, blocks.1.attn.w")
        );
    }

    #[test]
    fn merge_runs_names_and_sizes() {
        let groups: Vec<(String, Vec<usize>)> =
            (0..30).map(|i| (format!("blocks.{i}"), vec![i])).collect();
        let merged = merge_runs(groups, 10);
        assert_eq!(merged.len(), 10);
        assert_eq!(merged[0].0, "blocks.0-2");
        assert_eq!(merged[9].0, "blocks.27-29");
        assert!(merged.iter().all(|(_, m)| m.len() == 3));
    }

    #[test]
    fn huge_legend_is_summarised_and_grouping_is_linear() {
        // 100,000 names that never repeat a block: must group quickly and print a few lines.
        let names: Vec<String> = (0..100_000).map(|i| format!("v{i}")).collect();
        let g = Grouping::new(&names, &GroupingConfig::default());
        assert_eq!(g.voices(), 12);
        assert_eq!(
            g.legend().iter().map(|(_, m)| m.len()).sum::<usize>(),
            100_000
        );
        let text = g.legend_text();
        assert_eq!(text.lines().count(), 12);
        assert!(text.len() < 12 * 200, "{} bytes", text.len());
        assert!(
            text.contains("v0, v1, v2, v3, … 8328 more …, v8332"),
            "{text}"
        );
        // A name of 100 KB is cut, not printed whole.
        let long = format!("{}.weight", "x".repeat(100_000));
        let g = Grouping::new(&[long.as_str(), "b.weight"], &GroupingConfig::default());
        assert!(g.legend_text().len() < 400);
        // A name with thousands of dots groups without a quadratic blow-up.
        let deep = vec!["a.".repeat(5_000) + "w"; 3];
        assert_eq!(Grouping::new(&deep, &GroupingConfig::default()).voices(), 1);
    }

    #[test]
    fn labels_are_numbered_and_unique_when_cut() {
        let names: Vec<String> = (0..30)
            .map(|i| format!("transformer.encoder.layers.{i}.self_attn.out_proj.weight"))
            .collect();
        let cfg = GroupingConfig {
            max_voices: 30,
            patterns: Vec::new(),
        };
        let g = Grouping::new(&names, &cfg);
        let labels: Vec<String> = (0..g.voices()).map(|i| g.voice_label(i, 16)).collect();
        let unique: std::collections::HashSet<&String> = labels.iter().collect();
        assert_eq!(unique.len(), labels.len(), "{labels:?}");
        assert!(labels.iter().all(|l| l.chars().count() <= 19), "{labels:?}");
        assert_eq!(shorten_middle("abcdefghij", 5), "ab…ij");
        assert_eq!(shorten_middle("abc", 5), "abc");
        assert!(Grouping::applies(13, &GroupingConfig::default()));
        assert!(!Grouping::applies(12, &GroupingConfig::default()));
        assert!(Grouping::for_values(&["a", "b"], &GroupingConfig::default()).is_none());
    }
}
