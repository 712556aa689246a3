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
//! use gradtone_sound::grouping::{Grouping, GroupingConfig};
//! let names = ["conv1.weight", "layer1.0.conv1.weight", "layer1.1.conv2.weight", "fc.weight"];
//! let cfg = GroupingConfig { max_voices: 4, ..GroupingConfig::default() };
//! let g = Grouping::new(&names, &cfg);
//! let voices: Vec<&str> = g.legend().iter().map(|(v, _)| v.as_str()).collect();
//! assert_eq!(voices, ["conv1", "layer1", "fc"]);
//! assert_eq!(g.aggregate(&[3.0, 1.0, 2.0, 4.0]), vec![3.0, 5f64.sqrt(), 4.0]);
//! ```

use serde::Deserialize;

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
    /// Groups `names` (in model order) as `config` says.
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

    /// The legend as text, one voice a line: `voice  (n): member, member, …`.
    pub fn legend_text(&self) -> String {
        let width = self.legend.iter().map(|(v, _)| v.len()).max().unwrap_or(0);
        self.legend
            .iter()
            .enumerate()
            .map(|(i, (voice, members))| {
                format!(
                    "{:>2} {voice:<width$} ({}): {}\n",
                    i + 1,
                    members.len(),
                    members.join(", ")
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
fn split_by_depth(names: &[String], members: &[usize], depth: usize) -> Groups {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    for &m in members {
        let parts = components(&names[m]);
        let key = parts[..depth.min(parts.len())].join(".");
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(m),
            None => out.push((key, vec![m])),
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
    let deepest = members.iter().map(|&m| components(&names[m]).len()).max()?;
    (depth + 1..=deepest)
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
}
