//! The training configuration: defaults, the TOML file format, and validation.
//!
//! A [`TrainConfig`] is what a user writes (every field optional in a file, unknown keys
//! rejected); [`TrainConfig::validate`] checks every value once and names the first invalid one.
//! The resolved configuration is saved as `config.toml` in the run folder and inside every
//! checkpoint, so a run can be reproduced from its folder alone.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::{Architecture, ModelConfig};

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

    /// Number of epochs (each one clusters once and trains over N sampled images).
    pub epochs: usize,
    /// Images per training and extraction batch.
    pub batch_size: usize,
    /// SGD learning rate, for the backbone and the top layer.
    pub learning_rate: f64,
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
    /// Per-channel mean for normalisation; computed from the data when unset.
    pub normalize_mean: Option<Vec<f32>>,
    /// Per-channel standard deviation for normalisation; computed from the data when unset.
    pub normalize_std: Option<Vec<f32>>,

    /// Seed of every random choice of the run.
    pub seed: u64,
    /// Number of checkpoints kept in the run folder (the latest ones).
    pub keep_checkpoints: usize,
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
            epochs: 4,
            batch_size: 256,
            learning_rate: DEFAULT_LEARNING_RATE,
            momentum: DEFAULT_MOMENTUM,
            weight_decay: DEFAULT_WEIGHT_DECAY,
            crop_scale_min: 0.5,
            crop_scale_max: 1.0,
            horizontal_flip: true,
            normalize_mean: None,
            normalize_std: None,
            seed: 0,
            keep_checkpoints: 2,
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
            dropout: crate::model::DEFAULT_DROPOUT,
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
        check(
            self.keep_checkpoints >= 1,
            "keep_checkpoints",
            self.keep_checkpoints,
            "must be at least 1",
        )?;
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

fn describe_span(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = 1 + text[..span.start.min(text.len())].matches('\n').count();
            format!(" (line {line})")
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
}
