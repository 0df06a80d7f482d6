//! The DeepCluster training loop and what it leaves in a run folder.
//!
//! Each epoch runs [`steps`] in order: [`extract_features`](steps::extract_features),
//! [`pca_whiten`](steps::pca_whiten), [`run_kmeans`](steps::run_kmeans), metrics,
//! [`sample_uniformly`](steps::sample_uniformly), [`reset_top_layer`](steps::reset_top_layer),
//! [`train_epoch`](steps::train_epoch), then a record line and a checkpoint. [`run::train`]
//! drives the loop, including resuming from the latest checkpoint. With `method = "v2"` each
//! epoch runs DeepCluster-v2's steps in [`v2`] instead.

pub mod checkpoint;
pub mod config;
pub mod record;
pub mod run;
pub mod steps;
pub mod v2;

use std::path::PathBuf;

pub use config::{
    ClusteringMethod, ConfigError, LossWeighting, LrSchedule, Method, Sampling, TopInit,
    TrainConfig,
};
pub use record::EpochRecord;
pub use run::{RunOptions, TrainSummary, train};

use crate::cluster::ClusterError;
use crate::data::DataError;

/// Receives progress events; the command-line tool draws them as progress bars. Every method
/// does nothing by default.
pub trait Progress: Sync {
    /// Starts a phase (`extract`, `kmeans`, `train`) of `total` units of work.
    fn start(&self, _phase: &str, _total: u64) {}
    /// Records `n` more units of the current phase as done.
    fn advance(&self, _n: u64) {}
    /// Ends the current phase.
    fn finish(&self) {}
    /// Reports an epoch that is finished and checkpointed.
    fn epoch_finished(&self, _record: &EpochRecord, _total_epochs: usize) {}
}

/// A [`Progress`] that ignores every event.
pub struct NoProgress;

impl Progress for NoProgress {}

/// Everything that can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The dataset could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Clustering rejected its input.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A configuration value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// More clusters than images.
    #[error(
        "invalid k = {k}: the dataset has only {n_images} images; use a k between 2 and {n_images}"
    )]
    TooManyClusters {
        /// Requested clusters.
        k: usize,
        /// Images in the dataset.
        n_images: usize,
    },
    /// A cluster layer the network does not have.
    #[error("invalid cluster_layer = `{layer}`: the network's layers are {valid}")]
    UnknownLayer {
        /// The layer name given.
        layer: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// The normalisation statistics do not match the images' channels.
    #[error(
        "normalize_mean and normalize_std need {channels} values each (one per channel), got {mean} and {std}"
    )]
    NormalizationChannels {
        /// Channels of the images.
        channels: usize,
        /// Values of `normalize_mean`.
        mean: usize,
        /// Values of `normalize_std`.
        std: usize,
    },
    /// A NaN or infinite loss.
    #[error(
        "the training loss became NaN or infinite at epoch {epoch}, batch {batch}; the last complete checkpoint is kept; try a lower --lr"
    )]
    NonFiniteLoss {
        /// Epoch number, from 1.
        epoch: usize,
        /// Batch number within the epoch, from 1.
        batch: usize,
    },
    /// A NaN or infinite feature.
    #[error(
        "the network produced a NaN or infinite feature for image {image} at epoch {epoch}; the last complete checkpoint is kept; try a lower --lr"
    )]
    NonFiniteFeatures {
        /// Epoch number, from 1.
        epoch: usize,
        /// Index of the image.
        image: usize,
    },
    /// Ctrl-C was pressed.
    #[error("interrupted; the last complete checkpoint is kept and `--resume` continues from it")]
    Interrupted,
    /// Ctrl-C was pressed during the first epoch, before any checkpoint.
    #[error(
        "interrupted in the first epoch, before any checkpoint was written; run the same command again to start over"
    )]
    InterruptedBeforeCheckpoint,
    /// The output folder already contains a run.
    #[error(
        "`{path}` already contains a run; pass `--resume {path}` to continue it, or choose another --out"
    )]
    RunExists {
        /// The run folder.
        path: PathBuf,
    },
    /// `--resume` on a folder without a checkpoint.
    #[error(
        "`{path}` has no complete checkpoint (expected checkpoints/epoch_NNNN.json); is it a run folder written by `deepcluster train`?"
    )]
    NoCheckpoint {
        /// The run folder.
        path: PathBuf,
    },
    /// A checkpoint that does not match the dataset or the requested settings.
    #[error("cannot resume from `{path}`: {message}")]
    ResumeMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// What differs.
        message: String,
    },
    /// A checkpoint file that cannot be loaded.
    #[error("invalid checkpoint `{path}`: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// The problem found.
        message: String,
    },
    /// A file of the run folder that cannot be parsed.
    #[error("corrupt file `{path}`: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The problem found.
        message: String,
    },
    /// A file that cannot be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file or folder that cannot be written.
    #[error(
        "cannot write `{path}`: {source}; check that the folder exists and is writable, or choose another --out"
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An error reported by the deep-learning backend.
    #[error("backend error: {0}")]
    Backend(String),
}

impl TrainError {
    /// Whether the error is caused by the user's input (files, options, checkpoints) rather than
    /// by the run itself; the command-line tool exits with code 2 for these.
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            TrainError::NonFiniteLoss { .. }
                | TrainError::NonFiniteFeatures { .. }
                | TrainError::Interrupted
                | TrainError::InterruptedBeforeCheckpoint
                | TrainError::Backend(_)
        )
    }
}
