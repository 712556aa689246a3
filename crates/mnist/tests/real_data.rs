//! Against the real MNIST subset in ../shared (skips loudly where it is missing).

use gradtone_mnist::{
    FILES, IMAGE_LEN, NoProgress, Source, Split, load, load_dir, md5_file, norm_lut,
};
use gradtone_testkit::shared;

#[test]
fn loads_the_20k_subset() {
    let Some(dir) = shared("loads_the_20k_subset", "data/mnist-20k") else {
        return;
    };
    let train = load_dir(&dir, Split::Train).unwrap();
    assert_eq!(train.len(), 20_000);
    assert_eq!(train.images().len(), 20_000 * IMAGE_LEN);
    // MNIST's first training image is a 5, then 0, 4, 1.
    assert_eq!(&train.labels()[..4], &[5, 0, 4, 1]);
    assert_eq!(train.label(0), 5);

    let test = load(&Source::Dir(dir.clone()), Split::Test, &mut NoProgress).unwrap();
    assert_eq!(test.len(), 10_000);
    // The first test image is a 7.
    assert_eq!(test.label(0), 7);
    // Every digit occurs, and only digits.
    let mut counts = [0usize; 10];
    for &l in test.labels() {
        counts[usize::from(l)] += 1;
    }
    assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
}

#[test]
fn official_test_files_match_the_download_checksums() {
    let Some(dir) = shared("official_test_files_match", "data/mnist-20k") else {
        return;
    };
    for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        let want = FILES.iter().find(|f| f.name == name).unwrap().md5;
        assert_eq!(md5_file(&dir.join(name)).unwrap(), want, "{name}");
    }
    // The subset's training files are not the official ones: their checksums must differ.
    let train = FILES[0];
    assert_ne!(md5_file(&dir.join(train.name)).unwrap(), train.md5);
}

fn read_f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn norm_lut_matches_pytorch_bit_for_bit() {
    let Some(path) = shared(
        "norm_lut_matches_pytorch",
        "reference/pytorch/exact/norm_lut.f32",
    ) else {
        return;
    };
    let want = read_f32s(&std::fs::read(path).unwrap());
    assert_eq!(want.len(), 256);
    for (b, (got, want)) in norm_lut().iter().zip(&want).enumerate() {
        assert_eq!(got.to_bits(), want.to_bits(), "byte {b}: {got} vs {want}");
    }
}

#[test]
fn gathered_batches_match_pytorch_bit_for_bit() {
    let (Some(data), Some(reference)) = (
        shared("gathered_batches_match_pytorch", "data/mnist-20k"),
        shared("gathered_batches_match_pytorch", "reference/pytorch/exact"),
    ) else {
        return;
    };
    let train = load_dir(&data, Split::Train).unwrap();
    // expected.json: batch = training images 0..=15, batch2 = 16..=31.
    for (file_x, file_y, first) in [
        ("batch_x.f32", "batch_y.u8", 0),
        ("batch2_x.f32", "batch2_y.u8", 16),
    ] {
        let indices: Vec<usize> = (first..first + 16).collect();
        let mut x = vec![1.5f32]; // existing content must be kept: gather appends
        let mut y = vec![-1i64];
        train.gather_normalised(&indices, &mut x, &mut y);
        let want_x = read_f32s(&std::fs::read(reference.join(file_x)).unwrap());
        let want_y: Vec<i64> = std::fs::read(reference.join(file_y))
            .unwrap()
            .into_iter()
            .map(i64::from)
            .collect();
        assert_eq!(x[0], 1.5);
        assert_eq!(y[0], -1);
        assert_eq!(&y[1..], &want_y[..], "{file_y}");
        assert_eq!(x.len() - 1, want_x.len());
        let mismatches = x[1..]
            .iter()
            .zip(&want_x)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(mismatches, 0, "{file_x}");
    }
}
