//! Helpers shared by the training tests.

use burn::tensor::Device;
use deepcluster::data::{Dataset, load_embedded_fashion_mnist};
use deepcluster::train::{RunOptions, TrainConfig};

/// Returns the first `n_images` images of the embedded Fashion-MNIST test split.
pub fn fashion_mnist(n_images: usize) -> Dataset {
    let mut dataset = load_embedded_fashion_mnist().unwrap();
    dataset.truncate(n_images);
    dataset
}

/// Returns a configuration small enough to train in seconds on two cores.
pub fn small_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        k: 20,
        pca_dim: 32,
        epochs,
        batch_size: 128,
        width_multiplier: 0.25,
        seed: 11,
        ..TrainConfig::default()
    }
}

/// Returns options for a run in `run_dir` on the CPU.
pub fn options(run_dir: &std::path::Path, resume: bool) -> RunOptions {
    RunOptions {
        run_dir: run_dir.to_owned(),
        resume,
        device: Device::flex(),
    }
}
