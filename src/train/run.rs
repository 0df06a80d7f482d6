//! The epoch loop: a fresh run or a resumed one, to the configured number of epochs.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::tensor::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::checkpoint::{self, CheckpointMeta, CheckpointPaths, backbone_param_ids};
use super::record::{self, ClusterSizes, EpochRecord, LabelMetrics, PhaseSeconds};
use super::steps::{self, EpochInputs, SgdSettings};
use super::v2;
use super::{
    ClusteringMethod, LossWeighting, Method, Progress, Sampling, TopInit, TrainConfig, TrainError,
};
use crate::cluster as metrics;
use crate::data::Dataset;
use crate::model::DeepClusterNet;
use crate::preprocess::Normalization;

/// Range of the aspect ratio of random resized crops (torchvision's default, 3/4 to 4/3).
pub const CROP_RATIO: (f32, f32) = (3.0 / 4.0, 4.0 / 3.0);
/// Name of the resolved configuration in a run folder.
pub const CONFIG_FILE: &str = "config.toml";

/// Run folder, resume flag and device of a training run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The run folder.
    pub run_dir: PathBuf,
    /// Continue from the run folder's latest checkpoint instead of starting afresh.
    pub resume: bool,
    /// Device to train on.
    pub device: Device,
}

/// Summary of a finished run.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    /// Records of the epochs run by this call (not those of a resumed run's earlier epochs).
    pub records: Vec<EpochRecord>,
    /// Completed epochs, including those before a resume.
    pub epochs_completed: usize,
    /// Checkpoint of the last epoch.
    pub last_checkpoint: Option<CheckpointPaths>,
}

/// The state carried from one epoch to the next.
pub(super) struct RunState {
    pub(super) model: DeepClusterNet,
    pub(super) optimizer: burn::optim::ModuleOptimizer,
    pub(super) meta: CheckpointMeta,
    pub(super) previous_assignments: Option<Vec<u32>>,
    /// DeepCluster-v2's head, prototypes and memory bank; `None` for v1, and for v2 before its
    /// first epoch.
    pub(super) v2: Option<super::v2::V2State>,
}

/// Trains DeepCluster on `dataset` until `config.epochs` epochs are complete.
///
/// With `options.resume`, the network, optimiser and epoch count come from the latest checkpoint
/// in `options.run_dir`, and only `config.epochs` is taken from `config`; the checkpoint's own
/// configuration is used for everything else.
pub fn train(
    config: &TrainConfig,
    dataset: &Dataset,
    options: &RunOptions,
    progress: &dyn Progress,
    interrupted: &AtomicBool,
) -> Result<TrainSummary, TrainError> {
    config.validate()?;
    let mut state = if options.resume {
        resume_state(config, dataset, options)?
    } else {
        fresh_state(config, dataset, options)?
    };
    let config = state.meta.config.clone();
    tracing::info!("run folder: {}", options.run_dir.display());
    let mut summary = TrainSummary {
        records: Vec::new(),
        epochs_completed: state.meta.epoch,
        last_checkpoint: None,
    };
    for epoch in state.meta.epoch + 1..=config.epochs {
        let result = match config.method {
            Method::V1 => run_epoch(state, dataset, epoch, options, progress, interrupted),
            Method::V2 => v2::run_epoch(state, dataset, epoch, options, progress, interrupted),
        };
        let (next, record) = match result {
            Err(TrainError::Interrupted) if epoch == 1 => {
                return Err(TrainError::InterruptedBeforeCheckpoint);
            }
            other => other?,
        };
        state = next;
        record::append_record(&options.run_dir, &record)?;
        if let Some(v2_state) = &state.v2 {
            // Written before the checkpoint, whose JSON file comes last.
            v2::save_state(&options.run_dir, state.meta.epoch, v2_state)?;
        }
        let paths = checkpoint::save_checkpoint(
            &options.run_dir,
            &state.model,
            &state.optimizer,
            &state.meta,
            config.keep_checkpoints,
        )?;
        progress.epoch_finished(&record, config.epochs);
        summary.records.push(record);
        summary.epochs_completed = epoch;
        summary.last_checkpoint = Some(paths);
    }
    Ok(summary)
}

fn fresh_state(
    config: &TrainConfig,
    dataset: &Dataset,
    options: &RunOptions,
) -> Result<RunState, TrainError> {
    check_dataset(config, dataset)?;
    let run_dir = &options.run_dir;
    if run_dir.exists() && !run_dir.is_dir() {
        return Err(TrainError::Write {
            path: run_dir.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file of that name exists, and the run folder must be a folder",
            ),
        });
    }
    if run_dir.join(record::METRICS_FILE).exists()
        || !checkpoint::list_checkpoints(run_dir)?.is_empty()
    {
        return Err(TrainError::RunExists {
            path: run_dir.clone(),
        });
    }
    // Everything that can reject the configuration runs before the run folder is created.
    let normalization = normalization_for(config, dataset)?;
    let model_config = config.model_config(dataset);
    options.device.seed(config.seed);
    let model = DeepClusterNet::new(&model_config, &options.device.clone().autodiff());
    if let Some(layer) = &config.cluster_layer {
        let valid = model.backbone.layer_names();
        if !valid.contains(layer) {
            return Err(TrainError::UnknownLayer {
                layer: layer.clone(),
                valid: valid.join(", "),
            });
        }
    }
    for dir in [run_dir.clone(), run_dir.join(record::ASSIGNMENTS_DIR)] {
        fs::create_dir_all(&dir).map_err(|source| TrainError::Write {
            path: dir.clone(),
            source,
        })?;
    }
    record::write_atomically(&run_dir.join(CONFIG_FILE), config.to_toml().as_bytes())?;

    let meta = CheckpointMeta {
        version: checkpoint::CHECKPOINT_VERSION,
        epoch: 0,
        config: config.clone(),
        model: model_config,
        normalization,
        n_images: dataset.len(),
        dataset: dataset.source.clone(),
        backbone_param_ids: backbone_param_ids(&model),
        seed: config.seed,
    };
    Ok(RunState {
        optimizer: steps::backbone_optimizer(&sgd_settings(config, 1)),
        model,
        meta,
        previous_assignments: None,
        v2: None,
    })
}

fn resume_state(
    config: &TrainConfig,
    dataset: &Dataset,
    options: &RunOptions,
) -> Result<RunState, TrainError> {
    let run_dir = &options.run_dir;
    let device = options.device.clone().autodiff();
    let (paths, (model, optimizer, mut meta), v2) =
        checkpoint::load_latest_checkpoint_with(run_dir, &device, |paths, meta| {
            v2::load_state(paths, meta, &device)
        })?;
    let mismatch = |message: String| TrainError::ResumeMismatch {
        path: paths.meta.clone(),
        message,
    };
    if meta.n_images != dataset.len() {
        return Err(mismatch(format!(
            "the checkpoint was trained on {} images but its dataset now has {}; was the dataset changed?",
            meta.n_images,
            dataset.len()
        )));
    }
    let shape = (meta.model.in_channels, meta.model.height, meta.model.width);
    if shape != (dataset.channels, dataset.height, dataset.width) {
        return Err(mismatch(format!(
            "the checkpoint expects {}×{}×{} images but the dataset has {}×{}×{}",
            shape.0, shape.1, shape.2, dataset.channels, dataset.height, dataset.width
        )));
    }
    if config.epochs <= meta.epoch {
        return Err(mismatch(format!(
            "the run already has {} epochs; pass --epochs above {} to train more",
            meta.epoch, meta.epoch
        )));
    }
    meta.config.epochs = config.epochs;
    record::write_atomically(&run_dir.join(CONFIG_FILE), meta.config.to_toml().as_bytes())?;
    record::truncate_records(run_dir, meta.epoch)?;
    record::remove_assignments_after(run_dir, meta.epoch)?;
    let assignment_file = record::assignment_path(run_dir, meta.epoch);
    let previous_assignments = if assignment_file.exists() {
        Some(record::read_assignments(&assignment_file)?)
    } else {
        None
    };
    tracing::info!(epoch = meta.epoch, checkpoint = %paths.meta.display(), "resuming");
    Ok(RunState {
        model,
        optimizer,
        meta,
        previous_assignments,
        v2,
    })
}

fn check_dataset(config: &TrainConfig, dataset: &Dataset) -> Result<(), TrainError> {
    if config.clustering == ClusteringMethod::Kmeans && config.k > dataset.len() {
        return Err(TrainError::TooManyClusters {
            k: config.k,
            n_images: dataset.len(),
        });
    }
    Ok(())
}

fn normalization_for(config: &TrainConfig, dataset: &Dataset) -> Result<Normalization, TrainError> {
    match (&config.normalize_mean, &config.normalize_std) {
        (None, None) => Ok(Normalization::from_dataset(dataset)),
        (mean, std) => {
            let computed = Normalization::from_dataset(dataset);
            let mean = mean.clone().unwrap_or(computed.mean);
            let std = std.clone().unwrap_or(computed.std);
            if mean.len() != dataset.channels || std.len() != dataset.channels {
                return Err(TrainError::NormalizationChannels {
                    channels: dataset.channels,
                    mean: mean.len(),
                    std: std.len(),
                });
            }
            Ok(Normalization { mean, std })
        }
    }
}

/// Returns the SGD settings of `epoch`.
pub(super) fn sgd_settings(config: &TrainConfig, epoch: usize) -> SgdSettings {
    SgdSettings {
        learning_rate: config.learning_rate_at(epoch),
        momentum: config.momentum,
        weight_decay: config.weight_decay,
    }
}

/// Derives the seed of one purpose of one epoch from the run seed.
pub(super) fn epoch_seed(seed: u64, epoch: usize, purpose: u64) -> u64 {
    // SplitMix64's increment and multiplier spread nearby inputs over the whole range.
    let mut z = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ purpose.rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn run_epoch(
    state: RunState,
    dataset: &Dataset,
    epoch: usize,
    options: &RunOptions,
    progress: &dyn Progress,
    interrupted: &AtomicBool,
) -> Result<(RunState, EpochRecord), TrainError> {
    let RunState {
        model,
        mut optimizer,
        mut meta,
        previous_assignments,
        v2: _,
    } = state;
    let config = meta.config.clone();
    let started = Instant::now();
    let mut seconds = PhaseSeconds::default();
    options.device.seed(epoch_seed(config.seed, epoch, 0));

    // Features of the whole dataset, in evaluation mode.
    let clock = Instant::now();
    let (features, feature_dim) = steps::extract_features(
        &model,
        dataset,
        &meta.normalization,
        config.cluster_layer.as_deref(),
        config.batch_size,
        &options.device,
        epoch,
        progress,
    )?;
    seconds.extract = clock.elapsed().as_secs_f64();

    // PCA with whitening, then L2 normalisation.
    let clock = Instant::now();
    let reduced = steps::pca_whiten(
        &features,
        feature_dim,
        config.pca_dim,
        config.whiten,
        epoch_seed(config.seed, epoch, 1),
    )?;
    let pca_dim = reduced.dim;
    seconds.pca = clock.elapsed().as_secs_f64();

    // Clustering: the assignment is the epoch's pseudo-labels. PIC chooses the number of
    // clusters, so the sampler and the top layer use the count it returns.
    let clock = Instant::now();
    let clustering = match config.clustering {
        ClusteringMethod::Kmeans => {
            progress.start("kmeans", config.kmeans_iterations as u64);
            let result = steps::run_kmeans(
                &reduced.points,
                pca_dim,
                config.k,
                config.kmeans_iterations,
                epoch_seed(config.seed, epoch, 2),
            )?;
            progress.finish();
            steps::Clustering::from(result)
        }
        ClusteringMethod::Pic => {
            progress.start("pic", 1);
            let result = steps::run_pic(&reduced.points, pca_dim)?;
            progress.finish();
            steps::Clustering::from_pic(result, &reduced.points, pca_dim)
        }
    };
    seconds.kmeans = clock.elapsed().as_secs_f64();
    let n_clusters = clustering.cluster_sizes.len();
    let top_layer = match (config.top_init, &clustering.centroids) {
        (TopInit::Centroids, Some(centroids)) => {
            Some(steps::centroid_top_layer(&reduced, centroids, &features))
        }
        _ => None,
    };
    drop(reduced);
    drop(features);
    let assignments = clustering.assignments;

    let (nmi_previous, labels) = agreement(
        &assignments,
        previous_assignments.as_deref(),
        dataset.labels.as_deref(),
    )?;

    // One epoch of training on uniformly sampled pseudo-labels, with a new top layer.
    let clock = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(config.seed, epoch, 3));
    let order = match config.sampling {
        Sampling::Uniform => steps::sample_uniformly(&assignments, n_clusters, &mut rng),
        Sampling::Shuffle => steps::shuffle_all(assignments.len(), &mut rng),
    };
    let class_weights = match config.loss_weighting {
        LossWeighting::None => None,
        LossWeighting::InverseSqrt => Some(steps::inverse_sqrt_weights(&clustering.cluster_sizes)),
    };
    let model = match top_layer {
        Some((weight, bias)) => model.with_top_layer(weight, bias, n_clusters),
        None => steps::reset_top_layer(model, n_clusters),
    };
    // A checkpoint rebuilds the network from this before loading the weights.
    meta.model.n_clusters = n_clusters;
    let settings = sgd_settings(&config, epoch);
    let mut top_optimizer = steps::top_layer_optimizer(&settings);
    let augmentation = config.augmentation();
    let inputs = EpochInputs {
        dataset,
        pseudo_labels: &assignments,
        order: &order,
        normalization: &meta.normalization,
        augmentation: &augmentation,
        batch_size: config.batch_size,
        seed: config.seed,
        epoch,
        class_weights: class_weights.as_deref(),
    };
    let (model, loss) = steps::train_epoch(
        model,
        &mut optimizer,
        &mut top_optimizer,
        &settings,
        &inputs,
        &options.device,
        progress,
        interrupted,
    )?;
    seconds.train = clock.elapsed().as_secs_f64();
    // Written only once the epoch has trained, so an interrupted epoch leaves no file behind.
    record::write_assignments(&options.run_dir, epoch, &assignments)?;
    seconds.total = started.elapsed().as_secs_f64();

    let record = EpochRecord {
        epoch,
        loss,
        kmeans_objective: clustering.objective,
        kmeans_splits: clustering.n_splits,
        pca_dim,
        cluster_sizes: ClusterSizes::from_sizes(&clustering.cluster_sizes),
        nmi_previous,
        labels,
        learning_rate: config.learning_rate_at(epoch),
        seconds,
    };
    meta.epoch = epoch;
    meta.backbone_param_ids = backbone_param_ids(&model);
    Ok((
        RunState {
            model,
            optimizer,
            meta,
            previous_assignments: Some(assignments),
            v2: None,
        },
        record,
    ))
}

/// Returns the NMI of an epoch's assignment with the previous epoch's and its agreement with
/// the labels, each `None` when there is nothing to compare with.
pub(super) fn agreement(
    assignments: &[u32],
    previous: Option<&[u32]>,
    labels: Option<&[u32]>,
) -> Result<(Option<f64>, Option<LabelMetrics>), TrainError> {
    let nmi_previous = match previous {
        Some(previous) => Some(metrics::normalized_mutual_info(previous, assignments)?),
        None => None,
    };
    let labels = match labels {
        Some(labels) => Some(label_metrics(assignments, labels)?),
        None => None,
    };
    Ok((nmi_previous, labels))
}

fn label_metrics(assignments: &[u32], labels: &[u32]) -> Result<LabelMetrics, TrainError> {
    Ok(LabelMetrics {
        nmi: metrics::normalized_mutual_info(assignments, labels)?,
        ari: metrics::adjusted_rand_index(assignments, labels)?,
        accuracy: metrics::clustering_accuracy(assignments, labels)?.accuracy,
    })
}

/// Returns the default run folder for a new run: `runs/<timestamp>` under the current folder.
pub fn default_run_dir() -> PathBuf {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Path::new("runs").join(format!("run-{seconds}"))
}
