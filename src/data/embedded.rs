//! The Fashion-MNIST test split compiled into the binary, so that the program runs without any
//! download.

use std::path::Path;

use super::idx::parse_idx_pair;
use super::{DataError, Dataset};

const IMAGES_GZ: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/fashion-mnist/t10k-images-idx3-ubyte.gz"
));
const LABELS_GZ: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/fashion-mnist/t10k-labels-idx1-ubyte.gz"
));

/// Names of the 10 Fashion-MNIST classes, indexed by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Loads the embedded Fashion-MNIST test split: 10,000 grayscale 28x28 images with labels and
/// class names.
pub fn load_embedded_fashion_mnist() -> Result<Dataset, DataError> {
    let mut dataset = parse_idx_pair(
        Path::new("<embedded>/t10k-images-idx3-ubyte.gz"),
        IMAGES_GZ.to_vec(),
        Path::new("<embedded>/t10k-labels-idx1-ubyte.gz"),
        LABELS_GZ.to_vec(),
        "Fashion-MNIST (embedded, test split)".to_string(),
    )?;
    dataset.class_names = Some(
        FASHION_MNIST_CLASSES
            .iter()
            .map(|name| name.to_string())
            .collect(),
    );
    Ok(dataset)
}
