//! Training and test splits for the protocols that fit something on labelled features.

use crate::data::Dataset;

/// Fraction of a single-split dataset held out as the test split when no separate test split
/// is given.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;

/// Returns the images `start..end` of `dataset` as a dataset of their own, labels included.
///
/// # Panics
///
/// Panics if `start > end` or `end > dataset.len()`.
pub fn slice_dataset(dataset: &Dataset, start: usize, end: usize, name: &str) -> Dataset {
    let image_len = dataset.image_len();
    Dataset {
        images: dataset.images[start * image_len..end * image_len].to_vec(),
        n_images: end - start,
        labels: dataset.labels.as_ref().map(|l| l[start..end].to_vec()),
        source: format!("{} ({name}: images {start}..{end})", dataset.source),
        ..dataset.clone_metadata()
    }
}

/// Splits `dataset` into its first images (training) and its last `test_fraction` (test).
/// Each part keeps at least one image when the dataset has two or more.
pub fn hold_out(dataset: &Dataset, test_fraction: f64) -> (Dataset, Dataset) {
    let n = dataset.len();
    let n_test =
        ((n as f64 * test_fraction).round() as usize).clamp(n.min(1), n.saturating_sub(1).max(1));
    let n_train = n - n_test.min(n);
    (
        slice_dataset(dataset, 0, n_train, "training part"),
        slice_dataset(dataset, n_train, n, "held-out test part"),
    )
}

impl Dataset {
    /// A copy of every field except the pixels and labels, which are left empty.
    fn clone_metadata(&self) -> Dataset {
        Dataset {
            images: Vec::new(),
            n_images: 0,
            channels: self.channels,
            height: self.height,
            width: self.width,
            labels: None,
            class_names: self.class_names.clone(),
            source: self.source.clone(),
            n_skipped: self.n_skipped,
        }
    }
}
