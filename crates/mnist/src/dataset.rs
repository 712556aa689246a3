//! The in-memory dataset and torchvision-exact normalisation.

use crate::MnistError;

/// Width and height of an MNIST image, in pixels.
pub const IMAGE_SIDE: usize = 28;
/// Pixels per image (28 × 28).
pub const IMAGE_LEN: usize = IMAGE_SIDE * IMAGE_SIDE;

/// Images (u8, row-major, n × 784) and their labels (0..=9).
#[derive(Clone, Debug)]
pub struct Dataset {
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl Dataset {
    /// Builds a dataset, checking that `images` holds exactly 784 bytes per label and that
    /// every label is 0..=9.
    pub fn from_parts(images: Vec<u8>, labels: Vec<u8>) -> Result<Self, MnistError> {
        if Some(images.len()) != labels.len().checked_mul(IMAGE_LEN) {
            return Err(MnistError::PartsMismatch {
                image_bytes: images.len(),
                labels: labels.len(),
            });
        }
        if let Some(index) = labels.iter().position(|&l| l > 9) {
            return Err(MnistError::LabelOutOfRange {
                index,
                label: labels[index],
            });
        }
        Ok(Self { images, labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 784 pixels of image `i`, row-major.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_LEN..(i + 1) * IMAGE_LEN]
    }

    /// The label (0..=9) of image `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// All labels, one per image.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// All pixels, n × 784, row-major.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// Appends the normalised pixels of the images at `indices` to `out` (n × 784 f32, in the
    /// order given, via [`NORM_LUT`]) and their labels to `labels_out` (as `i64`, the integer
    /// type classification losses take as targets).
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn gather_normalised(
        &self,
        indices: &[usize],
        out: &mut Vec<f32>,
        labels_out: &mut Vec<i64>,
    ) {
        let lut = norm_lut();
        out.reserve(indices.len() * IMAGE_LEN);
        labels_out.reserve(indices.len());
        for &i in indices {
            out.extend(self.image(i).iter().map(|&b| lut[usize::from(b)]));
            labels_out.push(i64::from(self.labels[i]));
        }
    }
}

/// torchvision's `ToTensor()` + `Normalize((0.1307,), (0.3081,))` in float32, one entry per
/// byte value: `((b as f32 / 255.0) - 0.1307) / 0.3081`, each operation rounded to f32.
///
/// Built at compile time; Rust's const evaluation rounds IEEE-exactly like the runtime, so this
/// matches PyTorch bit for bit (a test checks it against PyTorch's own table).
pub static NORM_LUT: [f32; 256] = build_norm_lut();

const fn build_norm_lut() -> [f32; 256] {
    let mut lut = [0.0f32; 256];
    let mut b = 0;
    while b < 256 {
        lut[b] = ((b as f32 / 255.0f32) - 0.1307f32) / 0.3081f32;
        b += 1;
    }
    lut
}

/// The normalisation table [`NORM_LUT`].
pub fn norm_lut() -> &'static [f32; 256] {
    &NORM_LUT
}
