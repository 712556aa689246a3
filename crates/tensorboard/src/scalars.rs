//! [`read_scalars`]: scalar series out of event files, and into [`Frame`]s.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use gradtone_frame::Frame;

use crate::proto::{DT_DOUBLE, DT_FLOAT, SummaryValue, TensorProto, Value};
use crate::{EventReader, TbError};

/// The plugin name of TF2-style scalar summaries.
const SCALARS_PLUGIN: &str = "scalars";

/// Scalars read from event files.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScalarSeries {
    /// The matched tags in a stable order: by the first pattern that matches them, then by first
    /// appearance in the files (writers emit a model's layers in model order).
    pub tags: Vec<String>,
    /// step → `(tag, value)` for the tags present at that step, in [`tags`](Self::tags) order.
    pub points: BTreeMap<u64, Vec<(String, f64)>>,
    /// Damaged records skipped (bad checksums, impossible lengths, undecodable events) and cut
    /// tails, over all files.
    pub skipped: u64,
    /// The first [`MAX_PROBLEMS`] of those, each naming the file and byte offset.
    pub problems: Vec<String>,
}

/// How many problems [`ScalarSeries::problems`] keeps (the rest are only counted).
pub const MAX_PROBLEMS: usize = 20;

/// How deep [`read_scalars`] looks for runs below the folder it is given.
const MAX_RUN_DEPTH: usize = 6;

impl ScalarSeries {
    /// One `(step, value)` per step where `tag` has a value.
    pub fn series(&self, tag: &str) -> Vec<(u64, f64)> {
        self.points
            .iter()
            .filter_map(|(&step, pts)| pts.iter().find(|(t, _)| t == tag).map(|&(_, v)| (step, v)))
            .collect()
    }

    /// One [`Frame`] per step: tags containing `"loss"` (any case) become losses, the others
    /// values, in [`tags`](Self::tags) order. A tag missing at a step is left out of that frame
    /// (not NaN: NaN means "diverged" to the sonifier).
    pub fn to_frames(&self) -> Vec<Frame> {
        self.points
            .iter()
            .map(|(&step, pts)| {
                pts.iter().fold(Frame::new(step), |f, (tag, v)| {
                    if tag.to_ascii_lowercase().contains("loss") {
                        f.with_loss(tag.clone(), *v)
                    } else {
                        f.with_value(tag.clone(), *v)
                    }
                })
            })
            .collect()
    }
}

/// Whether `path` is TensorBoard input: a log folder or an event file (`events.out.tfevents…`).
pub fn is_event_input(path: &Path) -> bool {
    path.is_dir()
        || path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("events.out.tfevents"))
}

/// The frames of `render`'s TensorBoard input: the scalars of `path` whose tags match
/// `patterns` (every tag when there is none), a frame per step. The damaged records skipped and
/// the tags read are said through `report`; no matching tag is [`TbError::NoTagsMatch`].
pub fn frames_of(
    path: &Path,
    patterns: &[String],
    report: &dyn Fn(&str),
) -> Result<Vec<Frame>, TbError> {
    let patterns: Vec<&str> = match patterns {
        [] => vec!["*"],
        p => p.iter().map(String::as_str).collect(),
    };
    let series = read_scalars(path, &patterns)?;
    for p in &series.problems {
        report(&format!("warning: {p}"));
    }
    if series.skipped > 0 {
        let (p, n) = (path.display(), series.skipped);
        report(&format!(
            "{p}: {n} damaged record(s) skipped, the rest read"
        ));
    }
    if series.tags.is_empty() {
        return Err(TbError::NoTagsMatch {
            path: path.to_path_buf(),
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
        });
    }
    let (n, tags) = (series.tags.len(), series.tags.join(", "));
    report(&format!("{n} scalar tags: {tags}"));
    Ok(series.to_frames())
}

/// Reads the scalars whose tags match any of `tag_patterns` (globs where `*` matches any run of
/// characters, `/` included; an empty slice matches every tag).
///
/// `path` is an event file, or a folder. In a folder, the files with `tfevents` in their names
/// are read in name (= creation time) order, and so are those of its sub-folders (a `runs/`
/// folder that `SummaryWriter()` fills with one folder per run): when event files sit in more
/// than one folder, each folder is a run and its tags are named `RUN/TAG` (`RUN` the folder's
/// path below `path`, `.` for `path` itself), so every run is its own instrument; pick one with
/// a pattern such as `RUN/*`. Patterns are matched against those names.
///
/// Reads legacy `simple_value` scalars and TF2 tensor scalars (`DT_FLOAT` / `DT_DOUBLE`, in
/// `float_val`/`double_val` or `tensor_content`) whose tag's plugin is `"scalars"` or, without
/// plugin metadata, that hold one element. A later value for the same step and tag replaces an
/// earlier one; events with negative steps are skipped.
///
/// Damage never stops the read: damaged records are skipped (the reader resyncs on the next
/// valid record, see [`EventReader`]), counted in [`ScalarSeries::skipped`] and described in
/// [`ScalarSeries::problems`]; a file that ends inside a record (a writer still running) is
/// read up to that record. Only a file or folder that cannot be opened or listed is an error.
pub fn read_scalars(
    path: impl AsRef<Path>,
    tag_patterns: &[&str],
) -> Result<ScalarSeries, TbError> {
    let path = path.as_ref();
    let runs: Vec<(String, Vec<PathBuf>)> = if path.is_dir() {
        let mut runs = Vec::new();
        collect_runs(path, path, 0, &mut runs)?;
        if runs.is_empty() {
            return Err(TbError::NoEventFiles {
                path: path.to_path_buf(),
            });
        }
        runs
    } else {
        vec![(String::new(), vec![path.to_path_buf()])]
    };
    let prefixed = runs.len() > 1;

    // tag → (pattern rank, first appearance); step → tag → value
    let mut order: HashMap<String, (usize, usize)> = HashMap::new();
    let mut raw: BTreeMap<u64, HashMap<String, f64>> = BTreeMap::new();
    let mut plugins: HashMap<String, String> = HashMap::new();
    let (mut skipped, mut problems) = (0u64, Vec::new());

    for (run, files) in &runs {
        for file in files {
            for event in EventReader::open(file)? {
                let event = match event {
                    Ok(e) => e,
                    Err(e @ TbError::Io { .. }) => return Err(e),
                    Err(e) => {
                        skipped += 1;
                        if problems.len() < MAX_PROBLEMS {
                            problems.push(gradtone_frame::ErrorChain(&e).to_string());
                        }
                        continue;
                    }
                };
                let (Some(summary), Ok(step)) = (event.summary, u64::try_from(event.step)) else {
                    continue;
                };
                for value in &summary.value {
                    let tag = if prefixed {
                        format!("{}/{}", if run.is_empty() { "." } else { run }, value.tag)
                    } else {
                        value.tag.clone()
                    };
                    if let Some(plugin) =
                        value.metadata.as_ref().and_then(|m| m.plugin_data.as_ref())
                    {
                        plugins.insert(tag.clone(), plugin.plugin_name.clone());
                    }
                    let rank = if tag_patterns.is_empty() {
                        Some(0)
                    } else {
                        tag_patterns.iter().position(|p| glob_match(p, &tag))
                    };
                    let Some(rank) = rank else { continue };
                    let Some(v) = scalar_of(value, plugins.get(&tag).map(String::as_str)) else {
                        continue;
                    };
                    let seen = order.len();
                    order.entry(tag.clone()).or_insert((rank, seen));
                    raw.entry(step).or_default().insert(tag, v);
                }
            }
        }
    }

    let mut tags: Vec<String> = order.keys().cloned().collect();
    tags.sort_by_key(|t| order.get(t).copied());
    let points = raw
        .into_iter()
        .map(|(step, mut by_tag)| {
            let pts = tags
                .iter()
                .filter_map(|t| by_tag.remove(t).map(|v| (t.clone(), v)))
                .collect();
            (step, pts)
        })
        .collect();
    Ok(ScalarSeries {
        tags,
        points,
        skipped,
        problems,
    })
}

/// Adds `(run name, event files)` for `dir` and its sub-folders (not following symbolic links,
/// at most [`MAX_RUN_DEPTH`] levels down), in name order.
fn collect_runs(
    root: &Path,
    dir: &Path,
    depth: usize,
    runs: &mut Vec<(String, Vec<PathBuf>)>,
) -> Result<(), TbError> {
    let io = |source| TbError::Io {
        path: dir.to_path_buf(),
        action: "list the log folder",
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    let mut files = Vec::new();
    let mut subdirs = Vec::new();
    for entry in entries {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_file() && entry.file_name().to_string_lossy().contains("tfevents") {
            files.push(entry.path());
        } else if kind.is_dir() {
            subdirs.push(entry.path());
        }
    }
    if !files.is_empty() {
        let name = dir
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        runs.push((name, files));
    }
    if depth < MAX_RUN_DEPTH {
        for sub in subdirs {
            collect_runs(root, &sub, depth + 1, runs)?;
        }
    }
    Ok(())
}

/// The event files in `dir` (names containing `tfevents`), sorted by name.
pub fn event_files(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, TbError> {
    let dir = dir.as_ref();
    let io = |source| TbError::Io {
        path: dir.to_path_buf(),
        action: "list the log folder",
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let is_event = entry.file_name().to_string_lossy().contains("tfevents");
        if is_event && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    if files.is_empty() {
        return Err(TbError::NoEventFiles {
            path: dir.to_path_buf(),
        });
    }
    files.sort();
    Ok(files)
}

/// The scalar a summary value holds, if it holds one. `plugin` is the tag's plugin, if known.
pub fn scalar_of(value: &SummaryValue, plugin: Option<&str>) -> Option<f64> {
    match &value.value {
        Some(Value::SimpleValue(v)) => Some(f64::from(*v)),
        Some(Value::Tensor(t)) if plugin.is_none_or(|p| p == SCALARS_PLUGIN) => tensor_scalar(t),
        _ => None,
    }
}

/// The single float/double element of a tensor.
fn tensor_scalar(t: &TensorProto) -> Option<f64> {
    let elements = t
        .tensor_shape
        .as_ref()
        .map_or(1, |s| s.dim.iter().map(|d| d.size).product::<i64>());
    if elements != 1 {
        return None;
    }
    match t.dtype {
        DT_FLOAT => match (t.float_val.first(), t.tensor_content.as_slice()) {
            (Some(v), _) => Some(f64::from(*v)),
            (None, &[a, b, c, d]) => Some(f64::from(f32::from_le_bytes([a, b, c, d]))),
            _ => None,
        },
        DT_DOUBLE => match (t.double_val.first(), t.tensor_content.as_slice()) {
            (Some(v), _) => Some(*v),
            (None, bytes) => <[u8; 8]>::try_from(bytes).ok().map(f64::from_le_bytes),
        },
        _ => None,
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (none included)
/// and every other character only itself.
///
/// ```
/// use gradtone_tensorboard::glob_match;
/// assert!(glob_match("grad/*", "grad/conv1"));
/// assert!(glob_match("*loss*", "val_loss_total"));
/// assert!(!glob_match("grad/*", "weights/conv1"));
/// ```
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` and the text position it currently stands for; on a mismatch
    // the star swallows one more character (linear-time greedy matching).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Dim, TensorShapeProto};

    #[test]
    fn globs() {
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything/at/all"));
        assert!(glob_match("loss", "loss"));
        assert!(!glob_match("loss", "loss2"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(glob_match("a*b*c", "abc"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(glob_match("*a*a", "banana"));
        assert!(!glob_match("*a*n", "banana"));
        assert!(glob_match("grad/**", "grad/x"));
        assert!(glob_match("é*", "éa"));
    }

    fn tensor(dtype: i32, dims: &[i64]) -> TensorProto {
        TensorProto {
            dtype,
            tensor_shape: Some(TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|&size| Dim {
                        size,
                        name: String::new(),
                    })
                    .collect(),
                unknown_rank: false,
            }),
            ..TensorProto::default()
        }
    }

    #[test]
    fn tensor_scalars() {
        let mut t = tensor(DT_FLOAT, &[]);
        t.tensor_content = 0.5f32.to_le_bytes().to_vec();
        assert_eq!(tensor_scalar(&t), Some(0.5));
        t.float_val = vec![0.25];
        assert_eq!(tensor_scalar(&t), Some(0.25), "typed field wins");
        let mut d = tensor(DT_DOUBLE, &[1]);
        d.tensor_content = 0.1f64.to_le_bytes().to_vec();
        assert_eq!(tensor_scalar(&d), Some(0.1));
        d.tensor_content.pop();
        assert_eq!(tensor_scalar(&d), None, "7 content bytes are no double");
        let mut v = tensor(DT_FLOAT, &[2]);
        v.float_val = vec![1.0, 2.0];
        assert_eq!(tensor_scalar(&v), None, "a vector is no scalar");
        let mut s = tensor(7, &[]);
        s.string_val = vec![b"x".to_vec()];
        assert_eq!(tensor_scalar(&s), None);

        let mut tv = SummaryValue {
            tag: "t".into(),
            metadata: None,
            value: Some(Value::Tensor(t)),
        };
        assert_eq!(scalar_of(&tv, Some("scalars")), Some(0.25));
        assert_eq!(scalar_of(&tv, None), Some(0.25));
        assert_eq!(scalar_of(&tv, Some("audio")), None);
        tv.value = Some(Value::SimpleValue(1.5));
        assert_eq!(scalar_of(&tv, Some("anything")), Some(1.5));
    }

    #[test]
    fn frames_split_losses_and_skip_missing_tags() {
        let mut points = BTreeMap::new();
        points.insert(
            3,
            vec![("grad/a".to_owned(), 1.0), ("train/Loss".to_owned(), 2.0)],
        );
        points.insert(4, vec![("train/Loss".to_owned(), 1.5)]);
        let s = ScalarSeries {
            tags: vec!["grad/a".into(), "train/Loss".into()],
            points,
            ..ScalarSeries::default()
        };
        let f = s.to_frames();
        assert_eq!(f.len(), 2);
        assert_eq!(
            (f[0].step, f[0].value("grad/a"), f[0].loss()),
            (3, Some(1.0), Some(2.0))
        );
        assert!(f[1].values.is_empty());
        assert_eq!(f[1].loss(), Some(1.5));
        assert_eq!(s.series("train/Loss"), [(3, 2.0), (4, 1.5)]);
    }
}
