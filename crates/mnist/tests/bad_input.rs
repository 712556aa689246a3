//! Malformed and missing files give specific errors that name the file.

mod common;

use common::{TempDir, gz, idx, images, labels};
use gradtone_mnist::{Dataset, MnistError, Split, load_dir, read_idx};

/// A folder with valid train files (3 images) in raw or gz form.
fn valid_train(dir: &TempDir, gzip: bool) {
    let (i, l) = (images(3), labels(&[5, 0, 4]));
    if gzip {
        dir.write("train-images-idx3-ubyte.gz", &gz(&i));
        dir.write("train-labels-idx1-ubyte.gz", &gz(&l));
    } else {
        dir.write("train-images-idx3-ubyte", &i);
        dir.write("train-labels-idx1-ubyte", &l);
    }
}

#[test]
fn raw_and_gz_files_load_the_same() {
    let raw = TempDir::new("raw");
    valid_train(&raw, false);
    let packed = TempDir::new("gz");
    valid_train(&packed, true);
    let a = load_dir(raw.path(), Split::Train).unwrap();
    let b = load_dir(packed.path(), Split::Train).unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a.labels(), &[5, 0, 4]);
    assert_eq!(a.images(), &images(3)[16..]);
    assert_eq!(a.images(), b.images());
    assert_eq!(a.labels(), b.labels());
    assert_eq!(a.image(2), &images(3)[16 + 2 * 784..]);
}

#[test]
fn gzip_is_detected_by_magic_not_name() {
    let dir = TempDir::new("gzname");
    // Compressed content under the raw name, and raw content under a .gz-looking name.
    let a = dir.write("images", &gz(&images(2)));
    let b = dir.write("images.gz", &images(2));
    assert_eq!(read_idx(&a).unwrap(), read_idx(&b).unwrap());
    assert_eq!(read_idx(&a).unwrap().dims, vec![2, 28, 28]);
}

#[test]
fn truncated_gzip_is_a_corrupt_gzip_error() {
    let dir = TempDir::new("truncgz");
    valid_train(&dir, true);
    let whole = gz(&images(3));
    let path = dir.write("train-images-idx3-ubyte.gz", &whole[..whole.len() / 2]);
    let err = load_dir(dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(&err, MnistError::CorruptGzip { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("train-images-idx3-ubyte.gz"),
        "{err}"
    );
}

#[test]
fn corrupt_gzip_crc_is_caught() {
    let dir = TempDir::new("crc");
    let mut bytes = gz(&images(1));
    let n = bytes.len();
    bytes[n - 8] ^= 0xff; // the CRC32 in the trailer
    let path = dir.write("x.gz", &bytes);
    assert!(matches!(
        read_idx(&path),
        Err(MnistError::CorruptGzip { .. })
    ));
}

#[test]
fn wrong_magic_is_reported() {
    let dir = TempDir::new("magic");
    valid_train(&dir, false);
    // A labels file where the images should be.
    dir.write("train-images-idx3-ubyte", &labels(&[1, 2, 3]));
    let err = load_dir(dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(
            err,
            MnistError::WrongMagic {
                expected: 0x803,
                found: 0x801,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("train-images-idx3-ubyte"), "{err}");

    // Images where the labels should be.
    let dir = TempDir::new("magic2");
    valid_train(&dir, false);
    dir.write("train-labels-idx1-ubyte", &images(3));
    let err = load_dir(dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(
            err,
            MnistError::WrongMagic {
                expected: 0x801,
                found: 0x803,
                ..
            }
        ),
        "{err:?}"
    );

    // Not IDX at all, and IDX of another data type (0x0D = f32).
    let p = dir.write("junk", b"PK\x03\x04 not an idx file");
    assert!(matches!(
        read_idx(&p),
        Err(MnistError::NotIdx {
            magic: 0x504b_0304,
            ..
        })
    ));
    let p = dir.write("floats", &idx(0x0d, &[1], &[0, 0, 0, 0]));
    let err = read_idx(&p).unwrap_err();
    assert!(
        matches!(err, MnistError::UnsupportedType { code: 0x0d, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("floats"), "{err}");
}

#[test]
fn wrong_dims_are_reported() {
    let dir = TempDir::new("dims");
    valid_train(&dir, true);
    dir.write(
        "train-images-idx3-ubyte.gz",
        &gz(&idx(8, &[3, 27, 28], &vec![0; 3 * 27 * 28])),
    );
    let err = load_dir(dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(&err, MnistError::BadDims { dims, .. } if *dims == [3, 27, 28]),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("train-images-idx3-ubyte.gz"),
        "{err}"
    );
}

#[test]
fn count_mismatch_is_reported() {
    let dir = TempDir::new("count");
    valid_train(&dir, false);
    dir.write("train-labels-idx1-ubyte", &labels(&[1, 2]));
    let err = load_dir(dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(
            err,
            MnistError::CountMismatch {
                images: 3,
                labels: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("train-images-idx3-ubyte") && msg.contains("train-labels-idx1-ubyte"),
        "{msg}"
    );
}

#[test]
fn data_shorter_than_header_is_truncated() {
    let dir = TempDir::new("short");
    valid_train(&dir, false);
    let full = images(3);
    let path = dir.write("train-images-idx3-ubyte", &full[..full.len() - 100]);
    let err = load_dir(dir.path(), Split::Train).unwrap_err();
    let (expected, got) = (full.len() as u64, full.len() as u64 - 100);
    assert!(
        matches!(&err, MnistError::Truncated { path: p, expected: e, got: g } if *p == path && *e == expected && *g == got),
        "{err:?}"
    );
    assert!(err.to_string().contains("train-images-idx3-ubyte"), "{err}");

    // Same inside a perfectly valid gzip stream.
    let p = dir.write("short.gz", &gz(&full[..full.len() - 1]));
    assert!(matches!(read_idx(&p), Err(MnistError::Truncated { .. })));
    // Cut inside the header.
    let p = dir.write("header", &full[..10]);
    assert!(matches!(
        read_idx(&p),
        Err(MnistError::Truncated {
            expected: 16,
            got: 10,
            ..
        })
    ));
}

#[test]
fn data_longer_than_header_is_rejected() {
    let dir = TempDir::new("long");
    let mut bytes = labels(&[1, 2]);
    bytes.push(3);
    let p = dir.write("labels", &bytes);
    assert!(matches!(
        read_idx(&p),
        Err(MnistError::TrailingData { expected: 10, .. })
    ));
}

#[test]
fn labels_above_nine_are_rejected() {
    let dir = TempDir::new("label");
    valid_train(&dir, false);
    dir.write("train-labels-idx1-ubyte", &labels(&[1, 10, 3]));
    let err = load_dir(dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(
            err,
            MnistError::BadLabel {
                index: 1,
                label: 10,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn missing_folder_names_path_and_files() {
    let dir = TempDir::new("nodir");
    let missing = dir.path().join("nowhere");
    let err = load_dir(&missing, Split::Test).unwrap_err();
    assert!(
        matches!(&err, MnistError::MissingDir { dir } if *dir == missing),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("nowhere"), "{msg}");
    for f in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        assert!(msg.contains(f), "{msg}");
    }
}

#[test]
fn missing_file_is_named() {
    let dir = TempDir::new("nofile");
    valid_train(&dir, true);
    // Train is complete, the test split is missing entirely.
    assert!(load_dir(dir.path(), Split::Train).is_ok());
    let err = load_dir(dir.path(), Split::Test).unwrap_err();
    assert!(
        matches!(&err, MnistError::MissingFile { file, .. } if file == "t10k-images-idx3-ubyte"),
        "{err:?}"
    );
    // Only the labels missing.
    dir.write("t10k-images-idx3-ubyte.gz", &gz(&images(1)));
    let err = load_dir(dir.path(), Split::Test).unwrap_err();
    assert!(
        matches!(&err, MnistError::MissingFile { file, .. } if file == "t10k-labels-idx1-ubyte"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("t10k-labels-idx1-ubyte") && msg.contains("train-images-idx3-ubyte"),
        "{msg}"
    );
}

#[test]
fn from_parts_validates() {
    assert!(matches!(
        Dataset::from_parts(vec![0; 783], vec![1]),
        Err(MnistError::PartsMismatch {
            image_bytes: 783,
            labels: 1
        })
    ));
    assert!(matches!(
        Dataset::from_parts(vec![0; 2 * 784], vec![1, 12]),
        Err(MnistError::LabelOutOfRange {
            index: 1,
            label: 12
        })
    ));
    let d = Dataset::from_parts(vec![], vec![]).unwrap();
    assert!(d.is_empty());
}

#[test]
fn gather_normalised_uses_the_lut_in_index_order() {
    let mut pixels = vec![0u8; 2 * 784];
    pixels[784..].fill(255);
    let d = Dataset::from_parts(pixels, vec![3, 9]).unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    d.gather_normalised(&[1, 0, 1], &mut x, &mut y);
    assert_eq!(y, vec![9, 3, 9]);
    assert_eq!(x.len(), 3 * 784);
    let (zero, full) = (gradtone_mnist::NORM_LUT[0], gradtone_mnist::NORM_LUT[255]);
    assert!((zero - (-0.1307 / 0.3081)).abs() < 1e-6);
    assert!((full - ((1.0 - 0.1307) / 0.3081)).abs() < 1e-6);
    assert!(x[..784].iter().all(|&v| v == full));
    assert!(x[784..1568].iter().all(|&v| v == zero));
    assert!(x[1568..].iter().all(|&v| v == full));
}

#[test]
fn a_split_with_zero_images_is_an_error_naming_the_file() {
    let dir = TempDir::new("empty");
    dir.write("train-images-idx3-ubyte", &images(0));
    dir.write("train-labels-idx1-ubyte", &labels(&[]));
    match load_dir(dir.path(), Split::Train) {
        Err(e @ MnistError::Empty { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
            assert!(msg.contains("zero images"), "{msg}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(d) => panic!("accepted a split of {} images", d.len()),
    }
}
