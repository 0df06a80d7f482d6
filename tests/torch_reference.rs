//! Checks the first SGD steps of training against PyTorch.
//!
//! `scripts/torch_reference.py` drew the initial weights in
//! `tests/fixtures/torch_reference/init.safetensors`, trained the same network in PyTorch on the
//! first 32 images of the Fashion-MNIST test split with their true labels, and stored each step's
//! loss in `losses.json`. This test trains from the same weights on the same batch with the
//! project's own `train_epoch` and optimisers, so a matching loss sequence checks burn's forward
//! pass, gradients, batch norm and SGD updates against PyTorch's.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use deepcluster::data::load_embedded_fashion_mnist;
use deepcluster::model::{Architecture, ModelConfig};
use deepcluster::preprocess::{Augmentation, Normalization, eval_batch, train_batch};
use deepcluster::train::NoProgress;
use deepcluster::train::checkpoint::load_weights;
use deepcluster::train::steps::{
    EpochInputs, SgdSettings, backbone_optimizer, top_layer_optimizer, train_epoch,
};
use serde::Deserialize;

const BATCH_SIZE: usize = 32;
const N_STEPS: usize = 5;

/// Largest accepted relative difference between a burn loss and PyTorch's float32 loss.
///
/// Burn matched to 1.3e-6 relative at step 5 on an x86-64 machine with 1 to 7 threads, and
/// PyTorch's own float32 run stays within 1e-7 of its float64 run (`losses_float64` in the
/// fixture). The gap is most likely burn's float32 rounding, since changing the weight decay shifts
/// burn's losses by the same amounts as PyTorch's. Bugs move the losses by more than 2e-5. In
/// PyTorch, a momentum dampening of 0.1 changes step 3 by 3e-4, and a learning rate 2% off or a
/// batch-norm epsilon of 1e-3 changes step 2 or 3 by 2e-4.
/// NOTE: weight decay of 1e-5 changes step 5 by only 9e-7, so this test cannot tell whether it is
/// applied.
const RELATIVE_TOLERANCE: f64 = 2e-5;

#[derive(Deserialize)]
struct Reference {
    losses: Vec<f64>,
    losses_float64: Vec<f64>,
    torch_version: String,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_reference")
}

fn read_reference() -> Reference {
    let path = fixture_dir().join("losses.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("invalid reference file {}: {error}", path.display()))
}

fn model_config() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Alexnet,
        in_channels: 1,
        height: 28,
        width: 28,
        sobel: true,
        width_multiplier: 0.125,
        n_clusters: 10,
        // Dropout draws random masks that cannot match PyTorch's, so the reference has none.
        dropout: 0.0,
    }
}

#[test]
fn sgd_losses_match_pytorch() {
    let reference = read_reference();
    assert_eq!(reference.losses.len(), N_STEPS);
    assert_eq!(reference.losses_float64.len(), N_STEPS);

    let device = Device::flex().autodiff();
    let config = model_config();
    let mut model = load_weights(&fixture_dir().join("init.safetensors"), &config, &device)
        .expect("the fixture weights load into the network");

    let mut dataset = load_embedded_fashion_mnist().unwrap();
    dataset.truncate(BATCH_SIZE);
    let labels = dataset.labels.clone().expect("Fashion-MNIST has labels");
    let normalization = Normalization {
        mean: vec![0.2860],
        std: vec![0.3530],
    };
    // A crop of the whole image without a flip leaves every pixel in place, so `train_epoch`
    // trains on exactly the batch that `eval_batch` builds.
    let augmentation = Augmentation {
        crop_scale: (1.0, 1.0),
        crop_ratio: (1.0, 1.0),
        horizontal_flip: false,
        ..Augmentation::default()
    };
    let order: Vec<usize> = (0..BATCH_SIZE).collect();
    let train_pixels = train_batch(&dataset, &order, 0, &normalization, &augmentation, 0, 1);
    assert_eq!(train_pixels, eval_batch(&dataset, &order, &normalization));

    let settings = SgdSettings {
        learning_rate: 0.05,
        momentum: 0.9,
        weight_decay: 1e-5,
    };
    let mut backbone = backbone_optimizer(&settings);
    // The top layer keeps one optimiser for all steps, as it does within an epoch.
    let mut top = top_layer_optimizer(&settings);
    let interrupted = AtomicBool::new(false);

    // Each call of `train_epoch` is one step, because the order contains exactly one batch.
    let mut losses = Vec::with_capacity(N_STEPS);
    for step in 1..=N_STEPS {
        let inputs = EpochInputs {
            dataset: &dataset,
            pseudo_labels: &labels,
            order: &order,
            normalization: &normalization,
            augmentation: &augmentation,
            batch_size: BATCH_SIZE,
            seed: 0,
            epoch: step,
            class_weights: None,
        };
        let (trained, loss) = train_epoch(
            model,
            &mut backbone,
            &mut top,
            &settings,
            &inputs,
            &device,
            &NoProgress,
            &interrupted,
        )
        .unwrap();
        model = trained;
        losses.push(loss);
    }

    for (step, (&burn, &torch)) in losses.iter().zip(&reference.losses).enumerate() {
        let relative = (burn - torch).abs() / torch.abs();
        println!(
            "step {}: burn {burn:.7} PyTorch {torch:.7} relative difference {relative:.2e}",
            step + 1
        );
        assert!(
            relative <= RELATIVE_TOLERANCE,
            "step {}: burn loss {burn:.7} differs from PyTorch {} loss {torch:.7} by {relative:.2e} \
             relative (tolerance {RELATIVE_TOLERANCE:.0e}); burn losses {losses:?}",
            step + 1,
            reference.torch_version,
        );
    }
}
