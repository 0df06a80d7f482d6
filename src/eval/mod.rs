//! Judging learned features against the true labels.
//!
//! [`cluster`] runs k-means on a layer's features and compares the clusters to the labels with
//! NMI, ARI and Hungarian accuracy, beside two baselines: the same network at its random
//! initialisation, and raw pixels. [`linear`] trains linear probes on frozen activations,
//! [`majority`] labels clusters by majority vote, and [`voc`] trains and scores the network on
//! Pascal VOC 2007 classification, with the average precisions of [`ap`].

pub mod ap;
pub mod cluster;
pub mod linear;
pub mod majority;
pub mod splits;
pub mod voc;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;

use crate::data::Dataset;
use crate::model::{DeepClusterNet, ModelConfig};
use crate::preprocess::{Normalization, eval_batch};
use crate::train::TrainError;
use crate::train::checkpoint::{self, CheckpointPaths};
use crate::train::steps::images_tensor;

/// Name of the layer whose output DeepCluster clusters: fc7 before its ReLU.
pub const FEATURES_LAYER: &str = "fc7";
/// Name of the pseudo-layer of raw pixel values.
pub const PIXELS_LAYER: &str = "pixels";

/// A network ready for evaluation, with how it was obtained.
pub struct LoadedModel {
    /// The network, on a device without autodiff.
    pub model: DeepClusterNet,
    /// Its shapes.
    pub config: ModelConfig,
    /// Normalisation the network was trained with.
    pub normalization: Normalization,
    /// The checkpoint's JSON file, or `None` for a network at its initialisation.
    pub source: Option<PathBuf>,
}

/// Loads the latest checkpoint of the run folder `run_dir`.
pub fn load_run(run_dir: &Path, device: &Device) -> Result<LoadedModel, TrainError> {
    let epochs = checkpoint::list_checkpoints(run_dir)?;
    let Some(&epoch) = epochs.last() else {
        return Err(TrainError::NoCheckpoint {
            path: run_dir.to_owned(),
        });
    };
    let paths = CheckpointPaths::for_epoch(run_dir, epoch);
    // An evaluation scores the latest epoch or nothing, because scores of an older one would
    // pass for the latest's. A damaged file names the intact checkpoint before it.
    let with_hint = |error: TrainError| {
        let Some(previous) = epochs.iter().rev().nth(1) else {
            return error;
        };
        let hint = format!(
            "the checkpoint of epoch {previous} may be intact: `deepcluster train --resume` \
             retrains epoch {epoch} from it, or removing checkpoints/epoch_{epoch:04}.* makes it \
             the latest"
        );
        match error {
            TrainError::Corrupt { path, message } => TrainError::Corrupt {
                path,
                message: format!("{message}; {hint}"),
            },
            TrainError::Checkpoint { path, message } => TrainError::Checkpoint {
                path,
                message: format!("{message}; {hint}"),
            },
            error => error,
        }
    };
    let meta = checkpoint::read_meta(&paths.meta).map_err(with_hint)?;
    let model = checkpoint::load_weights(&paths.weights, &meta.model, device).map_err(with_hint)?;
    Ok(LoadedModel {
        model,
        config: meta.model,
        normalization: meta.normalization,
        source: Some(paths.meta),
    })
}

/// The network an evaluation scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// The latest checkpoint of a run.
    Trained,
    /// The architecture at its seeded random initialisation.
    Random,
}

/// Reads the shapes and normalisation of the latest checkpoint of the run folder `run_dir`,
/// without its weights.
pub fn run_shapes(run_dir: &Path) -> Result<(ModelConfig, Normalization), TrainError> {
    let meta = checkpoint::read_latest_meta(run_dir)?;
    Ok((meta.model, meta.normalization))
}

/// Builds the network of `model_config` at its seeded random initialisation.
pub fn random_model(
    model_config: &ModelConfig,
    normalization: Normalization,
    seed: u64,
    device: &Device,
) -> LoadedModel {
    device.seed(seed);
    let model = DeepClusterNet::new(model_config, device);
    LoadedModel {
        model,
        config: model_config.clone(),
        normalization,
        source: None,
    }
}

/// Names accepted by [`extract_layer`] for `model`.
pub fn layer_names(model: &DeepClusterNet) -> Vec<String> {
    let mut names = model.backbone.layer_names();
    names.push(FEATURES_LAYER.to_owned());
    names
}

/// Why features could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// An unknown layer name.
    #[error("unknown layer `{name}`; valid layers: {valid}")]
    UnknownLayer {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// Images whose shape does not fit the network.
    #[error("invalid input: {message}")]
    InputShape {
        /// The difference, with both values.
        message: String,
    },
    /// A NaN or infinite training loss.
    #[error(
        "the training loss became NaN or infinite at epoch {epoch}, batch {batch}; try a lower --lr"
    )]
    NonFiniteLoss {
        /// Epoch number, from 1.
        epoch: usize,
        /// Batch number within the epoch, from 1.
        batch: usize,
    },
    /// A NaN or infinite output of the network.
    #[error("the network produced a NaN or infinite score for image `{image}`; try a lower --lr")]
    NonFiniteScore {
        /// The image id.
        image: String,
    },
    /// The backend returned something other than `f32` values.
    #[error("backend error: {0}")]
    Backend(String),
}

/// Returns the activations of `layer` for every image, flattened per image:
/// `([n_images, dim], dim)`. Convolution layers are read after their ReLU; `fc7` is the
/// clustered feature, before its ReLU.
pub fn extract_layer(
    loaded: &LoadedModel,
    dataset: &Dataset,
    layer: &str,
    batch_size: usize,
    device: &Device,
) -> Result<(Vec<f32>, usize), EvalError> {
    extract_layer_pooled(loaded, dataset, layer, None, batch_size, device)
}

/// Like [`extract_layer`], with a convolution layer's activation average-pooled by `pooling`
/// before it is flattened. `pooling` is ignored for `fc7`.
pub fn extract_layer_pooled(
    loaded: &LoadedModel,
    dataset: &Dataset,
    layer: &str,
    pooling: Option<&linear::Pooling>,
    batch_size: usize,
    device: &Device,
) -> Result<(Vec<f32>, usize), EvalError> {
    let valid = layer_names(&loaded.model);
    if !valid.iter().any(|name| name == layer) {
        return Err(EvalError::UnknownLayer {
            name: layer.to_owned(),
            valid: valid.join(", "),
        });
    }
    let model = loaded.model.valid();
    let indices: Vec<usize> = (0..dataset.len()).collect();
    let mut features = Vec::new();
    let mut dim = 0;
    for batch in indices.chunks(batch_size) {
        let pixels = eval_batch(dataset, batch, &loaded.normalization);
        let input = images_tensor(pixels, batch.len(), dataset, device);
        let output = if layer == FEATURES_LAYER {
            model.backbone.forward_features(input)
        } else {
            let activation = model.backbone.forward_layer(input, layer).ok_or_else(|| {
                EvalError::UnknownLayer {
                    name: layer.to_owned(),
                    valid: valid.join(", "),
                }
            })?;
            match pooling {
                Some(pooling) => pooling.apply(activation).flatten(1, 3),
                None => activation.flatten(1, 3),
            }
        };
        dim = output.dims()[1];
        let data = output.into_data();
        let values = data
            .as_slice::<f32>()
            .map_err(|error| EvalError::Backend(format!("{error:?}")))?;
        features.extend_from_slice(values);
    }
    Ok((features, dim))
}

/// Raw pixel values scaled to [0, 1], `([n_images, channels * height * width], dim)`.
pub fn pixel_features(dataset: &Dataset) -> (Vec<f32>, usize) {
    let features = dataset
        .images
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    (features, dataset.image_len())
}
