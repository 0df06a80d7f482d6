//! The training configuration: defaults, the TOML file format, and validation.
//!
//! A [`TrainConfig`] is what a user writes (every field optional in a file, unknown keys
//! rejected); [`TrainConfig::validate`] checks every value once and names the first invalid one.
//! The resolved configuration is saved as `config.toml` in the run folder and inside every
//! checkpoint, so a run can be reproduced from its folder alone.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::{Architecture, ModelConfig};
use crate::preprocess::Augmentation;

/// Learning rate of the original DeepCluster for AlexNet.
pub const DEFAULT_LEARNING_RATE: f64 = 0.05;
/// SGD momentum of the original DeepCluster.
pub const DEFAULT_MOMENTUM: f64 = 0.9;
/// Weight decay of the original DeepCluster (10^-5).
pub const DEFAULT_WEIGHT_DECAY: f64 = 1e-5;
/// k-means iterations per epoch, faiss's default and the original DeepCluster's.
pub const DEFAULT_KMEANS_ITERATIONS: usize = 20;
/// PCA output dimension of the original DeepCluster.
pub const DEFAULT_PCA_DIM: usize = 256;

/// Clustering method that turns the features into pseudo-labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClusteringMethod {
    /// k-means with `k` clusters.
    #[default]
    Kmeans,
    /// Power iteration clustering on a 5-nearest-neighbour graph; it finds the number of
    /// clusters itself and ignores `k`.
    Pic,
}

/// Order of the training images within an epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Sampling {
    /// Draw the same number of images from every non-empty cluster, as the original
    /// DeepCluster does.
    Uniform,
    /// Visit every image once, in a random order. The default, together with inverse square
    /// root loss weights, because the pair scored higher on Fashion-MNIST (docs/results.md).
    #[default]
    Shuffle,
}

/// Per-cluster weights of the training loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossWeighting {
    /// Every image counts the same, as in the original DeepCluster.
    None,
    /// An image of a cluster of n images counts 1/√n, which limits the pull of large clusters.
    #[default]
    InverseSqrt,
}

/// Version of DeepCluster a run trains with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// DeepCluster as published: extraction, PCA, k-means, and a new top layer at every epoch.
    #[default]
    V1,
    /// DeepCluster-v2 (Caron et al., NeurIPS 2020): a projection head, prototypes set to the
    /// spherical k-means centroids of a memory bank of embeddings, and several crops per image.
    V2,
}

/// Embedding dimension of DeepCluster-v2's projection head.
pub const DEFAULT_V2_EMBEDDING_DIM: usize = 128;
/// Softmax temperature of DeepCluster-v2's loss.
pub const DEFAULT_V2_TEMPERATURE: f64 = 0.1;
/// Small crops per image besides the two large ones.
pub const DEFAULT_V2_SMALL_CROPS: usize = 2;
/// Largest accepted number of small crops: each crop is one more forward and backward pass.
pub const MAX_V2_SMALL_CROPS: usize = 8;

/// Initialisation of the top layer at the start of each epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TopInit {
    /// Drawn from N(0, 0.01²) with zero bias, as the original DeepCluster does.
    #[default]
    Random,
    /// Set so that its logits are the cosine similarities between the PCA-reduced features and
    /// the k-means centroids, divided by a temperature of 0.1; the top layer then starts by
    /// predicting the k-means assignment. Needs k-means on the last layer's features.
    Centroids,
}

/// Learning rate over the epochs of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// The same rate at every epoch, as the original DeepCluster trains.
    #[default]
    Constant,
    /// Half a cosine from the full rate at the first epoch towards zero after the last; each
    /// epoch uses one rate. It depends on the total number of epochs, so resuming with a
    /// larger `--epochs` changes the rate of the epochs still to come.
    Cosine,
}

/// Every setting of a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Dataset path; `None` trains on the embedded Fashion-MNIST test split.
    pub data: Option<PathBuf>,
    /// Dataset format (`idx`, `cifar10`, `cifar100`, `folder`); detected from the path when unset.
    pub format: Option<String>,
    /// Split to read where the format has several (`train` or `test`).
    pub split: String,
    /// Train on the first N images only.
    pub max_images: Option<usize>,
    /// Convert colour images to grayscale before anything else.
    pub grayscale: bool,
    /// Resize images of a folder dataset to `[height, width]`.
    pub image_size: Option<[u32; 2]>,
    /// Make an undecodable image fatal instead of skipping it.
    pub strict: bool,

    /// Backbone architecture.
    pub architecture: Architecture,
    /// Apply the fixed grayscale + Sobel front end.
    pub sobel: bool,
    /// Multiplier on every layer's width.
    pub width_multiplier: f32,

    /// Clustering method.
    pub clustering: ClusteringMethod,
    /// Number of k-means clusters, which is also the number of pseudo-labels. Unused by PIC.
    pub k: usize,
    /// Dimension of the PCA applied to the features before k-means.
    pub pca_dim: usize,
    /// Whiten the PCA output (scale each component to unit variance).
    pub whiten: bool,
    /// Lloyd iterations of k-means per epoch.
    pub kmeans_iterations: usize,
    /// Layer whose activations are clustered (`conv1` … `conv5`, after the ReLU); `None`
    /// clusters the features of the last fully connected layer, as the original does.
    pub cluster_layer: Option<String>,
    /// Order of the training images within an epoch.
    pub sampling: Sampling,
    /// Per-cluster weights of the cross-entropy loss.
    pub loss_weighting: LossWeighting,
    /// Initialisation of the top layer at each epoch.
    pub top_init: TopInit,

    /// Number of epochs (each one clusters once and trains over N sampled images).
    pub epochs: usize,
    /// Images per training and extraction batch.
    pub batch_size: usize,
    /// SGD learning rate, for the backbone and the top layer.
    pub learning_rate: f64,
    /// Schedule of the learning rate over the epochs.
    pub lr_schedule: LrSchedule,
    /// SGD momentum of the backbone (the top layer uses none).
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,

    /// Smallest area of a random resized crop, as a fraction of the image.
    pub crop_scale_min: f32,
    /// Largest area of a random resized crop, as a fraction of the image.
    pub crop_scale_max: f32,
    /// Mirror half of the training images left to right.
    pub horizontal_flip: bool,
    /// Largest random rotation of a training image, in degrees (0 turns it off).
    pub rotation_degrees: f32,
    /// Largest random translation of a training image, as a fraction of its size (0 turns it
    /// off).
    pub translate: f32,
    /// Brightness jitter: pixel values are scaled by a factor in [1 − x, 1 + x] (0 turns it off).
    pub brightness: f32,
    /// Contrast jitter: each image is blended with its mean by a factor in [1 − x, 1 + x] (0
    /// turns it off).
    pub contrast: f32,
    /// Per-channel mean for normalisation; computed from the data when unset.
    pub normalize_mean: Option<Vec<f32>>,
    /// Per-channel standard deviation for normalisation; computed from the data when unset.
    pub normalize_std: Option<Vec<f32>>,

    /// Seed of every random choice of the run.
    pub seed: u64,
    /// Number of checkpoints kept in the run folder (the latest ones).
    pub keep_checkpoints: usize,

    /// DeepCluster version. `v2` builds the network without dropout, clusters with spherical
    /// k-means only, visits every image once per epoch with unweighted loss, and ignores
    /// `pca_dim`, `whiten`, `sampling`, `loss_weighting` and `top_init`.
    pub method: Method,
    /// v2: length of the projection head's unit-length embeddings and of the prototypes.
    pub v2_embedding_dim: usize,
    /// v2: temperature τ of the softmax over an embedding's dot products with the prototypes.
    pub v2_temperature: f64,
    /// v2: small crops per image (area 10–40% of the image) besides the two large ones.
    pub v2_small_crops: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            data: None,
            format: None,
            split: "train".into(),
            max_images: None,
            grayscale: false,
            image_size: None,
            strict: false,
            architecture: Architecture::Alexnet,
            sobel: true,
            width_multiplier: 0.5,
            clustering: ClusteringMethod::Kmeans,
            k: 100,
            pca_dim: DEFAULT_PCA_DIM,
            whiten: true,
            kmeans_iterations: DEFAULT_KMEANS_ITERATIONS,
            cluster_layer: None,
            sampling: Sampling::Shuffle,
            loss_weighting: LossWeighting::InverseSqrt,
            top_init: TopInit::Random,
            epochs: 4,
            batch_size: 256,
            learning_rate: DEFAULT_LEARNING_RATE,
            lr_schedule: LrSchedule::Constant,
            momentum: DEFAULT_MOMENTUM,
            weight_decay: DEFAULT_WEIGHT_DECAY,
            crop_scale_min: 0.5,
            crop_scale_max: 1.0,
            horizontal_flip: true,
            rotation_degrees: 0.0,
            translate: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            normalize_mean: None,
            normalize_std: None,
            seed: 0,
            keep_checkpoints: 2,
            method: Method::V1,
            v2_embedding_dim: DEFAULT_V2_EMBEDDING_DIM,
            v2_temperature: DEFAULT_V2_TEMPERATURE,
            v2_small_crops: DEFAULT_V2_SMALL_CROPS,
        }
    }
}

/// An invalid configuration value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value outside its valid range.
    #[error("invalid {field} = {value}: {expected}")]
    OutOfRange {
        /// Configuration key.
        field: &'static str,
        /// The value given.
        value: String,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// A configuration file that could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A configuration file that is not valid TOML or has unknown keys.
    #[error("invalid config file `{path}`: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key.
        message: String,
    },
}

impl TrainConfig {
    /// Reads a TOML file; keys that are absent keep their defaults.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.to_owned(),
            message: error.message().to_owned() + &describe_span(&text, error.span()),
        })
    }

    /// Returns the shapes of the network a fresh run with this configuration builds for
    /// `dataset`.
    pub fn model_config(&self, dataset: &crate::data::Dataset) -> ModelConfig {
        ModelConfig {
            architecture: self.architecture,
            in_channels: dataset.channels,
            height: dataset.height,
            width: dataset.width,
            sobel: self.sobel,
            width_multiplier: self.width_multiplier,
            n_clusters: self.k,
            dropout: match self.method {
                Method::V1 => crate::model::DEFAULT_DROPOUT,
                // The memory bank keeps embeddings from the training pass, and dropout would
                // add its noise to every row that k-means clusters.
                Method::V2 => 0.0,
            },
        }
    }

    /// Returns the learning rate of `epoch` (counted from 1) under the schedule.
    pub fn learning_rate_at(&self, epoch: usize) -> f64 {
        match self.lr_schedule {
            LrSchedule::Constant => self.learning_rate,
            LrSchedule::Cosine => {
                let progress = epoch.saturating_sub(1) as f64 / self.epochs.max(1) as f64;
                self.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }

    /// Returns the training augmentation these settings describe.
    pub fn augmentation(&self) -> Augmentation {
        Augmentation {
            crop_scale: (self.crop_scale_min, self.crop_scale_max),
            crop_ratio: super::run::CROP_RATIO,
            horizontal_flip: self.horizontal_flip,
            rotation_degrees: self.rotation_degrees,
            translate: self.translate,
            brightness: self.brightness,
            contrast: self.contrast,
        }
    }

    /// Serialises the configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|error| format!("# not serialisable: {error}"))
    }

    /// Checks every value; returns the first invalid one. Data-dependent checks (k against the
    /// number of images) happen once the dataset is loaded.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.clustering == ClusteringMethod::Kmeans {
            check(self.k >= 2, "k", self.k, "must be at least 2")?;
        }
        check(
            self.pca_dim >= 1,
            "pca_dim",
            self.pca_dim,
            "must be at least 1",
        )?;
        check(
            self.kmeans_iterations >= 1,
            "kmeans_iterations",
            self.kmeans_iterations,
            "must be at least 1",
        )?;
        check(
            self.epochs >= 1,
            "epochs",
            self.epochs,
            "must be at least 1",
        )?;
        check(
            self.batch_size >= 1,
            "batch_size",
            self.batch_size,
            "must be at least 1",
        )?;
        let lr = self.learning_rate;
        check(
            lr.is_finite() && lr > 0.0,
            "learning_rate",
            lr,
            "must be a positive number",
        )?;
        let momentum = self.momentum;
        check(
            (0.0..1.0).contains(&momentum),
            "momentum",
            momentum,
            "must be in [0, 1)",
        )?;
        let decay = self.weight_decay;
        check(
            decay.is_finite() && decay >= 0.0,
            "weight_decay",
            decay,
            "must be >= 0",
        )?;
        let width = self.width_multiplier;
        check(
            width.is_finite() && width > 0.0 && width <= 8.0,
            "width_multiplier",
            width,
            "must be in (0, 8]",
        )?;
        let (low, high) = (self.crop_scale_min, self.crop_scale_max);
        check(
            low > 0.0 && low <= 1.0,
            "crop_scale_min",
            low,
            "must be in (0, 1]",
        )?;
        check(
            high >= low && high <= 1.0,
            "crop_scale_max",
            high,
            "must be in [crop_scale_min, 1]",
        )?;
        if self.top_init == TopInit::Centroids {
            check(
                self.clustering == ClusteringMethod::Kmeans && self.cluster_layer.is_none(),
                "top_init",
                "centroids",
                "needs k-means on the last layer's features (clustering = kmeans, no cluster_layer)",
            )?;
        }
        let rotation = self.rotation_degrees;
        check(
            (0.0..=180.0).contains(&rotation),
            "rotation_degrees",
            rotation,
            "must be in [0, 180]",
        )?;
        let translate = self.translate;
        check(
            (0.0..=0.5).contains(&translate),
            "translate",
            translate,
            "must be in [0, 0.5]",
        )?;
        for (field, value) in [("brightness", self.brightness), ("contrast", self.contrast)] {
            check(
                (0.0..=1.0).contains(&value),
                field,
                value,
                "must be in [0, 1]",
            )?;
        }
        check(
            self.keep_checkpoints >= 1,
            "keep_checkpoints",
            self.keep_checkpoints,
            "must be at least 1",
        )?;
        self.validate_v2()?;
        if let Some(max_images) = self.max_images {
            check(
                max_images >= 1,
                "max_images",
                max_images,
                "must be at least 1",
            )?;
        }
        check(
            self.split == "train" || self.split == "test",
            "split",
            &self.split,
            "must be `train` or `test`",
        )?;
        if let Some(std) = &self.normalize_std {
            let valid = std.iter().all(|v| v.is_finite() && *v > 0.0);
            check(
                valid,
                "normalize_std",
                format!("{std:?}"),
                "every value must be positive",
            )?;
        }
        Ok(())
    }

    /// Checks the DeepCluster-v2 settings, and with `method = "v2"` the v1 settings that v2
    /// cannot honour.
    fn validate_v2(&self) -> Result<(), ConfigError> {
        check(
            self.v2_embedding_dim >= 1,
            "v2_embedding_dim",
            self.v2_embedding_dim,
            "must be at least 1",
        )?;
        let temperature = self.v2_temperature;
        check(
            temperature.is_finite() && temperature > 0.0,
            "v2_temperature",
            temperature,
            "must be a positive number, e.g. 0.1",
        )?;
        check(
            self.v2_small_crops <= MAX_V2_SMALL_CROPS,
            "v2_small_crops",
            self.v2_small_crops,
            "must be between 0 and 8",
        )?;
        if self.method == Method::V2 {
            check(
                self.clustering == ClusteringMethod::Kmeans,
                "clustering",
                "pic",
                "method v2 clusters its memory bank with spherical k-means; use `kmeans`",
            )?;
            if let Some(layer) = &self.cluster_layer {
                check(
                    false,
                    "cluster_layer",
                    layer,
                    "method v2 clusters the projection head's embeddings; leave it unset",
                )?;
            }
        }
        Ok(())
    }
}

fn check(
    valid: bool,
    field: &'static str,
    value: impl std::fmt::Display,
    expected: &'static str,
) -> Result<(), ConfigError> {
    if valid {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            field,
            value: value.to_string(),
            expected,
        })
    }
}

/// Names the line of `text` where `span` starts, and quotes it, so that a type error such as
/// `sampling = 3` shows its key.
fn describe_span(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let start = text.floor_char_boundary(span.start.min(text.len()));
            let line = 1 + text[..start].matches('\n').count();
            let content = text.lines().nth(line - 1).unwrap_or("").trim();
            if content.is_empty() {
                format!(" (line {line})")
            } else {
                format!(" (line {line}: `{content}`)")
            }
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        TrainConfig::default().validate().unwrap();
    }

    #[test]
    fn toml_round_trip_keeps_values() {
        let config = TrainConfig {
            k: 37,
            seed: 9,
            ..TrainConfig::default()
        };
        let parsed: TrainConfig = toml::from_str(&config.to_toml()).unwrap();
        assert_eq!(parsed, config);
    }

    #[test]
    fn unknown_key_is_rejected() {
        let error = toml::from_str::<TrainConfig>("kk = 3").unwrap_err();
        assert!(error.message().contains("kk"), "{}", error.message());
    }

    #[test]
    fn type_error_quotes_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(&path, "k = 10\nsampling = 3\n").unwrap();
        let message = TrainConfig::from_toml_file(&path).unwrap_err().to_string();
        assert!(message.contains("line 2: `sampling = 3`"), "{message}");
    }

    #[test]
    fn small_k_is_rejected() {
        let config = TrainConfig {
            k: 1,
            ..TrainConfig::default()
        };
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("k = 1"), "{message}");
    }

    #[test]
    fn pic_ignores_k() {
        let config = TrainConfig {
            clustering: ClusteringMethod::Pic,
            k: 0,
            ..TrainConfig::default()
        };
        config.validate().unwrap();
        let parsed: TrainConfig = toml::from_str("clustering = \"pic\"").unwrap();
        assert_eq!(parsed.clustering, ClusteringMethod::Pic);
    }

    #[test]
    fn cosine_schedule_falls_from_the_rate_towards_zero() {
        let config: TrainConfig =
            toml::from_str("learning_rate = 0.1\nepochs = 4\nlr_schedule = \"cosine\"").unwrap();
        let rates: Vec<f64> = (1..=4)
            .map(|epoch| config.learning_rate_at(epoch))
            .collect();
        let expected = [0.1, 0.085_355, 0.05, 0.014_645];
        for (rate, expected) in rates.iter().zip(expected) {
            assert!((rate - expected).abs() < 1e-6, "{rates:?}");
        }
        let constant = TrainConfig::default();
        assert_eq!(constant.learning_rate_at(3), constant.learning_rate);
    }

    #[test]
    fn v2_method_parses_from_toml() {
        let parsed: TrainConfig = toml::from_str("method = \"v2\"\nv2_small_crops = 0").unwrap();
        assert_eq!(parsed.method, Method::V2);
        assert_eq!(parsed.v2_small_crops, 0);
        parsed.validate().unwrap();
    }

    #[test]
    fn v2_settings_out_of_range_are_rejected() {
        let cases = [
            (
                TrainConfig {
                    v2_temperature: 0.0,
                    ..TrainConfig::default()
                },
                "v2_temperature = 0",
            ),
            (
                TrainConfig {
                    v2_embedding_dim: 0,
                    ..TrainConfig::default()
                },
                "v2_embedding_dim = 0",
            ),
            (
                TrainConfig {
                    v2_small_crops: 9,
                    ..TrainConfig::default()
                },
                "v2_small_crops = 9",
            ),
            (
                TrainConfig {
                    method: Method::V2,
                    clustering: ClusteringMethod::Pic,
                    ..TrainConfig::default()
                },
                "clustering = pic",
            ),
        ];
        for (config, expected) in cases {
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
        }
    }
}
