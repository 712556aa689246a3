//! `reference-check`: run step 1 and step 2 of the seed network on PyTorch's fixed weights and
//! batches and compare every loss and gradient norm with PyTorch's float64 answer.
//!
//! The directory layout is that of `shared/reference/pytorch/exact/`: `params/<name>.f32`,
//! `batch_x.f32` + `batch_y.u8` (step 1), `batch2_x.f32` + `batch2_y.u8` (step 2), and
//! `expected.json` with `float64.step{1,2}.{loss, weight_grad_norm, bias_grad_norm}` and
//! `float64.step1.log_probs`. Between the steps: one `SGD(lr=0.01, momentum=0.5)` update.

use std::path::Path;

use burn::tensor::Device;
use serde::Deserialize;

use crate::TrainError;
use crate::model::LAYERS;
use crate::params::{SeedParams, read_f32_file};
use crate::trainer::{Optim, Trainer};

/// The tolerance the check applies to every relative error.
pub const TOLERANCE: f64 = 1e-4;

/// One compared quantity.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// E.g. `step1 fc1.weight grad norm`.
    pub what: String,
    /// gradtone's value.
    pub ours: f64,
    /// PyTorch's float64 value.
    pub expected: f64,
}

impl Row {
    /// |ours − expected| / |expected| (absolute error where expected is 0).
    pub fn rel_error(&self) -> f64 {
        let d = (self.ours - self.expected).abs();
        if self.expected == 0.0 {
            d
        } else {
            d / self.expected.abs()
        }
    }

    /// Within [`TOLERANCE`] (a NaN is never within).
    pub fn ok(&self) -> bool {
        self.rel_error() <= TOLERANCE
    }
}

/// The full comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Losses, weight and bias gradient norms of both steps.
    pub rows: Vec<Row>,
    /// Largest absolute error over the step-1 log-probabilities.
    pub log_probs_max_abs_error: f64,
}

impl Report {
    /// Every row and the log-probabilities within [`TOLERANCE`].
    pub fn passed(&self) -> bool {
        self.rows.iter().all(Row::ok) && self.log_probs_max_abs_error <= TOLERANCE
    }

    /// The largest relative error of all rows.
    pub fn max_rel_error(&self) -> f64 {
        self.rows.iter().map(Row::rel_error).fold(0.0, f64::max)
    }
}

/// The table: a row per quantity (ours, PyTorch's, the relative error, ok or FAIL), then the
/// step-1 log-probabilities' error, each line ending in a newline.
impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (q, a, b, e) = ("quantity", "gradtone", "pytorch f64", "rel err");
        writeln!(f, "{q:34} {a:>18} {b:>18} {e:>10}")?;
        for r in &self.rows {
            let ok = if r.ok() { "ok" } else { "FAIL" };
            let (w, o, x, e) = (&r.what, r.ours, r.expected, r.rel_error());
            writeln!(f, "{w:34} {o:>18.12} {x:>18.12} {e:>10.2e} {ok}")?;
        }
        let log_err = self.log_probs_max_abs_error;
        writeln!(f, "step1 log-probs max abs error {log_err:.2e}")
    }
}

#[derive(Deserialize)]
struct Expected {
    float64: ExpectedF64,
}
#[derive(Deserialize)]
struct ExpectedF64 {
    step1: ExpectedStep,
    step2: ExpectedStep,
}
#[derive(Deserialize)]
struct ExpectedStep {
    loss: f64,
    weight_grad_norm: std::collections::BTreeMap<String, f64>,
    bias_grad_norm: std::collections::BTreeMap<String, f64>,
    #[serde(default)]
    log_probs: Option<Vec<Vec<f64>>>,
}

fn read_batch(dir: &Path, x: &str, y: &str) -> Result<(Vec<f32>, Vec<i64>), TrainError> {
    let ypath = dir.join(y);
    let labels = std::fs::read(&ypath).map_err(|source| TrainError::Io {
        path: ypath.clone(),
        source,
    })?;
    if let Some(bad) = labels.iter().find(|&&l| l > 9) {
        return Err(TrainError::BadFile {
            path: ypath,
            message: format!("label {bad} is not a digit 0-9"),
        });
    }
    let x = read_f32_file(&dir.join(x), labels.len() * 784)?;
    Ok((x, labels.iter().map(|&l| l as i64).collect()))
}

/// Runs the check on the directory `dir` (see the module docs) on `device`.
pub fn check(dir: &Path, device: &Device) -> Result<Report, TrainError> {
    let json_path = dir.join("expected.json");
    let text = std::fs::read_to_string(&json_path).map_err(|source| TrainError::Io {
        path: json_path.clone(),
        source,
    })?;
    let expected: Expected = serde_json::from_str(&text).map_err(|e| TrainError::BadFile {
        path: json_path.clone(),
        message: format!("not the expected layout (float64.step1/step2 with loss, weight_grad_norm, bias_grad_norm): {e}"),
    })?;
    let params = SeedParams::load_dir(&dir.join("params"))?;
    let (x1, y1) = read_batch(dir, "batch_x.f32", "batch_y.u8")?;
    let (x2, y2) = read_batch(dir, "batch2_x.f32", "batch2_y.u8")?;

    let mut trainer = Trainer::new(&params, Optim::Sgd { momentum: 0.5 }, 0.01, device);
    let log_probs = trainer.log_probs(x1.clone());
    let log_probs_max_abs_error = match &expected.float64.step1.log_probs {
        Some(want) if want.len() == log_probs.len() => log_probs
            .iter()
            .zip(want)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(a, b)| (*a as f64 - b).abs()))
            .fold(0.0, f64::max),
        Some(want) => {
            return Err(TrainError::BadFile {
                path: json_path,
                message: format!(
                    "float64.step1.log_probs has {} rows, the batch {}",
                    want.len(),
                    log_probs.len()
                ),
            });
        }
        None => 0.0,
    };
    let s1 = trainer.step(x1, y1, true);
    let s2 = trainer.step(x2, y2, true);

    let mut rows = Vec::new();
    for (label, ours, want) in [
        ("step1", &s1, &expected.float64.step1),
        ("step2", &s2, &expected.float64.step2),
    ] {
        rows.push(Row {
            what: format!("{label} loss"),
            ours: ours.loss,
            expected: want.loss,
        });
        let bias = ours.bias_norms.unwrap_or([f64::NAN; 4]);
        for (i, layer) in LAYERS.iter().enumerate() {
            for (kind, value, table) in [
                ("weight", ours.weight_norms[i], &want.weight_grad_norm),
                ("bias", bias[i], &want.bias_grad_norm),
            ] {
                let expected = table
                    .get(*layer)
                    .copied()
                    .ok_or_else(|| TrainError::BadFile {
                        path: json_path.clone(),
                        message: format!("float64.{label}.{kind}_grad_norm has no entry {layer}"),
                    })?;
                rows.push(Row {
                    what: format!("{label} {layer}.{kind} grad norm"),
                    ours: value,
                    expected,
                });
            }
        }
    }
    Ok(Report {
        rows,
        log_probs_max_abs_error,
    })
}
