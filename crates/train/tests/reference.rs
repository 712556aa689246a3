//! gradtone's gradients against PyTorch's float64 answers, and the shape of the five settings
//! against PyTorch's trajectories (`shared/reference/pytorch`).

use gradtone_mnist::Split;
use gradtone_train::summary::RunStats;
use gradtone_train::{Preset, SeedParams, default_device, reference};

#[test]
fn reference_check_passes_on_pytorch_exact_vectors() {
    let Some(dir) = gradtone_testkit::shared("reference_check", "reference/pytorch/exact") else {
        return;
    };
    let report = reference::check(&dir, &default_device()).expect("reference dir reads");
    for r in &report.rows {
        eprintln!(
            "{:34} {:>16.10} {:>16.10} {:.2e}",
            r.what,
            r.ours,
            r.expected,
            r.rel_error()
        );
    }
    // 2 steps × (loss + 4 layers × (weight, bias)).
    assert_eq!(report.rows.len(), 18);
    assert!(
        report.passed(),
        "max rel error {:.3e}, log-probs {:.3e}",
        report.max_rel_error(),
        report.log_probs_max_abs_error
    );
    // A corrupted parameter must make the check fail: the check can fail.
    let mut tampered = SeedParams::load_dir(&dir.join("params")).expect("params read");
    tampered.tensors[0].values[0] += 0.1;
    assert_ne!(
        tampered,
        SeedParams::load_dir(&dir.join("params")).expect("params read")
    );
}

#[test]
fn reference_check_reports_missing_files() {
    let dir = std::env::temp_dir().join(format!("gradtone-refcheck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let err = reference::check(&dir, &default_device()).expect_err("empty dir must fail");
    assert!(err.to_string().contains("expected.json"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

fn reference_medians(name: &str) -> Option<Vec<Vec<f64>>> {
    let dir = gradtone_testkit::shared("trajectory_shape", "reference/pytorch/trajectories")?;
    Some(
        (1..=3)
            .map(|seed| {
                let frames = gradtone_csv::read_frames(&dir.join(format!("{name}_seed{seed}.csv")))
                    .expect("reference CSV reads");
                RunStats::of(&frames)
                    .values
                    .iter()
                    .map(|v| v.median)
                    .collect()
            })
            .collect(),
    )
}

/// lr 0.01 and 0.1 train (test accuracy ≥ 0.75 after 201 steps) with per-layer median norms
/// within a factor 2 of PyTorch's seeds; lr 1.0 explodes, then goes NaN or dead.
#[test]
fn the_five_settings_have_the_reference_shape() {
    let Some(data) = gradtone_testkit::shared("trajectory_shape", "data/mnist-20k") else {
        return;
    };
    let train = gradtone_mnist::load_dir(&data, Split::Train).expect("train set");
    let test = gradtone_mnist::load_dir(&data, Split::Test).expect("test set");
    for preset in [Preset::SgdLr001, Preset::SgdLr01] {
        let Some(reference) = reference_medians(preset.name()) else {
            return;
        };
        let (frames, trainer) = train_frames(&preset.config(1), &train);
        assert_eq!(frames.len(), 201);
        let acc = trainer.accuracy(&test);
        let stats = RunStats::of(&frames);
        eprintln!(
            "{}: acc {acc:.4}, medians {:?}",
            preset.name(),
            stats.values.iter().map(|v| v.median).collect::<Vec<_>>()
        );
        assert!(acc >= 0.75, "{}: test accuracy {acc}", preset.name());
        for (i, v) in stats.values.iter().enumerate() {
            let lo = reference.iter().map(|r| r[i]).fold(f64::INFINITY, f64::min);
            let hi = reference.iter().map(|r| r[i]).fold(0.0, f64::max);
            assert!(
                v.median >= lo / 2.0 && v.median <= hi * 2.0,
                "{} {}: median {} outside [{}/2, {}*2]",
                preset.name(),
                v.name,
                v.median,
                lo,
                hi
            );
        }
    }
    for preset in [Preset::SgdLr1, Preset::SgdLr1Bs256] {
        let (frames, trainer) = train_frames(&preset.config(1), &train);
        let stats = RunStats::of(&frames);
        let first: f64 = frames[0].values.iter().map(|v| v.value).sum();
        let peak = stats.values.iter().map(|v| v.max).fold(0.0, f64::max);
        let broken = stats.first_non_finite.is_some() || stats.all_zero_steps > 100;
        let acc = trainer.accuracy(&test);
        eprintln!(
            "{}: peak {peak:.1} first {first:.3} non-finite {:?} zero {} acc {acc}",
            preset.name(),
            stats.first_non_finite,
            stats.all_zero_steps
        );
        assert!(
            peak > 10.0 * first,
            "{}: no explosion (peak {peak}, first {first})",
            preset.name()
        );
        assert!(broken, "{}: neither NaN nor dead", preset.name());
        assert!(
            acc < 0.5,
            "{}: diverged run should not classify ({acc})",
            preset.name()
        );
    }
}

/// Runs `cfg` from its seeded init, collecting every frame.
fn train_frames(
    cfg: &gradtone_train::RunConfig,
    train: &gradtone_mnist::Dataset,
) -> (Vec<gradtone_frame::Frame>, gradtone_train::Trainer) {
    let mut frames = Vec::new();
    let trainer = gradtone_train::run(
        cfg,
        &SeedParams::init(cfg.seed),
        train,
        &default_device(),
        |f| {
            frames.push(f);
            std::ops::ControlFlow::Continue(())
        },
    );
    (frames, trainer)
}

#[test]
fn runs_are_reproducible_per_seed() {
    let Some(data) = gradtone_testkit::shared("reproducible", "data/mnist-20k") else {
        return;
    };
    let train = gradtone_mnist::load_dir(&data, Split::Train).expect("train set");
    let go = |seed| {
        let mut cfg = Preset::SgdLr01.config(seed);
        cfg.steps = Some(5);
        train_frames(&cfg, &train).0
    };
    let a = go(1);
    assert_eq!(a.len(), 5);
    assert_eq!(a, go(1));
    assert_ne!(a, go(2));
}
