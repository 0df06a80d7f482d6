//! DeepCluster-v2 (Caron et al., "Unsupervised Learning of Visual Features by Contrasting
//! Cluster Assignments", NeurIPS 2020, appendix), run by `method = "v2"`.
//!
//! An epoch runs these steps:
//!
//! 1. At the first epoch of a fresh run only: a new [`ProjectionHead`], and a memory bank filled
//!    by one pass over the unaugmented images in evaluation mode, without training.
//! 2. [`cluster_bank`]: spherical k-means on the memory bank (`[n_images, embedding_dim]`, unit
//!    rows). Its unit-length centroids become the prototypes, which stay fixed for the epoch:
//!    they are a constant of the loss, outside every module, so no gradient or optimiser step
//!    reaches them.
//! 3. Metrics, as in v1: NMI with the previous epoch's assignment and against the labels.
//! 4. One training pass over every image once, in a shuffled order. Each image gives two large
//!    crops (area `crop_scale_min`..`crop_scale_max`) and `v2_small_crops` small ones (area
//!    [`SMALL_CROP_SCALE`]), all resampled to the network's input size. The loss is the
//!    cross-entropy of softmax(z · prototypesᵀ / τ) against the image's cluster id, averaged
//!    over all crops without per-cluster weights (`loss_weighting` is a v1 setting). The first large crop's embedding replaces the image's row of the bank, so
//!    the next epoch clusters without a separate extraction pass.
//!
//! The network has no dropout ([`TrainConfig::model_config`] sets it to 0 for v2), because
//! the bank rows come from the training pass and dropout noise would reach every one of them.
//! There is no sampler that is uniform over clusters and no new top layer at each epoch, because
//! the prototypes are the centroids. The network's `top` layer keeps its initial weights and is
//! not used. The checkpoint still stores it, so the evaluation commands load a v2 run as they load
//! a v1 run and read its backbone.
//!
//! Backbone and head are trained by the same optimiser, whose state is saved in the
//! checkpoint's optimiser file. [`save_state`] writes the head, the prototypes, the bank and
//! the head's parameter ids beside the checkpoint, before its JSON file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Int, Tensor, TensorData};
use npyz::WriterBuilder;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, CheckpointMeta, CheckpointPaths};
use super::record::{self, ClusterSizes, EpochRecord, PhaseSeconds};
use super::run::{RunState, agreement, epoch_seed, sgd_settings};
use super::steps::{self, images_tensor};
use super::{Method, Progress, RunOptions, TrainConfig, TrainError};
use crate::cluster::{self, KMeansConfig, KMeansResult};
use crate::data::Dataset;
use crate::model::{DeepClusterNet, ProjectionHead};
use crate::preprocess::{Augmentation, Normalization, eval_batch, train_batch};

/// Large crops per image.
pub const LARGE_CROPS: usize = 2;

/// Range of a small crop's area, as a fraction of the image's. The crop is resampled to the
/// full input size, because AlexNet's fully connected layers take one input size.
pub const SMALL_CROP_SCALE: (f32, f32) = (0.1, 0.4);

/// First purpose number of [`epoch_seed`] for the crop streams, one per crop. v1's streams use
/// 0 to 3, and the gap leaves room for more.
const CROP_SEED_PURPOSE: u64 = 16;

/// Head, prototypes and memory bank, which DeepCluster-v2 carries from one epoch to the next.
pub struct V2State {
    /// The projection head.
    pub head: ProjectionHead,
    /// Prototypes of the last epoch, `[n_clusters, embedding_dim]` row-major, unit rows.
    pub prototypes: Vec<f32>,
    /// Memory bank, `[n_images, embedding_dim]` row-major: each image's unit-length embedding
    /// from the latest pass over it.
    pub bank: Vec<f32>,
}

/// Runs one DeepCluster-v2 epoch; see the module documentation for its steps.
pub(super) fn run_epoch(
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
        v2,
    } = state;
    let config = meta.config.clone();
    let started = Instant::now();
    let mut seconds = PhaseSeconds::default();
    options.device.seed(epoch_seed(config.seed, epoch, 0));

    // A fresh run starts with a new head and a bank from one pass in evaluation mode.
    let (head, bank) = match v2 {
        Some(state) => (state.head, state.bank),
        None => {
            let clock = Instant::now();
            let feature_dim = model.backbone.feature_dim();
            let head = ProjectionHead::new(
                feature_dim,
                ProjectionHead::hidden_dim_for(feature_dim),
                config.v2_embedding_dim,
                &options.device.clone().autodiff(),
            );
            let inputs = BankInputs {
                dataset,
                normalization: &meta.normalization,
                batch_size: config.batch_size,
                epoch,
            };
            let bank = fill_bank(&model, &head, &inputs, &options.device, progress)?;
            seconds.extract = clock.elapsed().as_secs_f64();
            (head, bank)
        }
    };

    // Spherical k-means on the bank: its centroids are this epoch's fixed prototypes.
    let clock = Instant::now();
    progress.start("kmeans", config.kmeans_iterations as u64);
    let clustering = cluster_bank(&bank, &config, epoch)?;
    progress.finish();
    seconds.kmeans = clock.elapsed().as_secs_f64();
    let assignments = clustering.assignments;
    let prototypes = clustering.centroids;

    let (nmi_previous, labels) = agreement(
        &assignments,
        previous_assignments.as_deref(),
        dataset.labels.as_deref(),
    )?;

    // One pass over every image, in a shuffled order.
    let clock = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(config.seed, epoch, 3));
    let order = steps::shuffle_all(dataset.len(), &mut rng);
    let inputs = PassInputs {
        dataset,
        pseudo_labels: &assignments,
        order: &order,
        normalization: &meta.normalization,
        prototypes: &prototypes,
        config: &config,
        epoch,
    };
    let trained = train_pass(
        Trainee { model, head, bank },
        &mut optimizer,
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
        loss: trained.loss,
        kmeans_objective: clustering.objective,
        kmeans_splits: clustering.n_splits,
        pca_dim: config.v2_embedding_dim,
        cluster_sizes: ClusterSizes::from_sizes(&clustering.cluster_sizes),
        nmi_previous,
        labels,
        learning_rate: config.learning_rate_at(epoch),
        seconds,
    };
    let Trainee { model, head, bank } = trained.trainee;
    meta.epoch = epoch;
    meta.backbone_param_ids = checkpoint::backbone_param_ids(&model);
    let state = RunState {
        model,
        optimizer,
        meta,
        previous_assignments: Some(assignments),
        v2: Some(V2State {
            head,
            prototypes,
            bank,
        }),
    };
    Ok((state, record))
}

/// Clusters the memory bank of `epoch` with spherical k-means: `config.k` clusters,
/// `config.kmeans_iterations` iterations, seeded from the run seed and the epoch. The returned
/// centroids have unit length and are the epoch's prototypes.
pub fn cluster_bank(
    bank: &[f32],
    config: &TrainConfig,
    epoch: usize,
) -> Result<KMeansResult, TrainError> {
    let kmeans_config = KMeansConfig {
        max_n_iterations: config.kmeans_iterations,
        seed: epoch_seed(config.seed, epoch, 2),
        spherical: true,
        ..KMeansConfig::new(config.k)
    };
    Ok(cluster::kmeans(
        bank,
        config.v2_embedding_dim,
        &kmeans_config,
    )?)
}

/// Inputs of the pass that fills the memory bank at the first epoch.
struct BankInputs<'a> {
    dataset: &'a Dataset,
    normalization: &'a Normalization,
    batch_size: usize,
    epoch: usize,
}

/// Returns the embeddings of every image, unaugmented, with the network and head in evaluation
/// mode: `[n_images, embedding_dim]` row-major. A non-finite value is an error naming the image.
fn fill_bank(
    model: &DeepClusterNet,
    head: &ProjectionHead,
    inputs: &BankInputs<'_>,
    device: &Device,
    progress: &dyn Progress,
) -> Result<Vec<f32>, TrainError> {
    let dataset = inputs.dataset;
    let backbone = model.backbone.valid();
    let head = head.valid();
    let eval_device = device.clone().without_autodiff();
    let dim = head.embedding_dim();
    let mut bank = vec![0.0f32; dataset.len() * dim];
    let indices: Vec<usize> = (0..dataset.len()).collect();
    progress.start("extract", dataset.len() as u64);
    for (batch, rows) in indices
        .chunks(inputs.batch_size)
        .zip(bank.chunks_mut(inputs.batch_size * dim))
    {
        let pixels = eval_batch(dataset, batch, inputs.normalization);
        let images = images_tensor(pixels, batch.len(), dataset, &eval_device);
        let embeddings = head.forward(backbone.forward_features(images)).into_data();
        rows.copy_from_slice(as_f32(&embeddings)?);
        progress.advance(batch.len() as u64);
    }
    progress.finish();
    if let Some(position) = bank.iter().position(|v| !v.is_finite()) {
        return Err(TrainError::NonFiniteFeatures {
            epoch: inputs.epoch,
            image: position / dim,
        });
    }
    Ok(bank)
}

/// Inputs of one training pass besides the network, head and bank.
struct PassInputs<'a> {
    dataset: &'a Dataset,
    pseudo_labels: &'a [u32],
    order: &'a [usize],
    normalization: &'a Normalization,
    /// `[n_clusters, embedding_dim]` row-major, unit rows.
    prototypes: &'a [f32],
    config: &'a TrainConfig,
    epoch: usize,
}

/// Network, head and memory bank, which a training pass updates.
struct Trainee {
    model: DeepClusterNet,
    head: ProjectionHead,
    bank: Vec<f32>,
}

struct Trained {
    trainee: Trainee,
    /// Mean over the batches of the loss, itself averaged over the crops.
    loss: f64,
}

/// Trains backbone and head for one pass over `inputs.order`, and writes each image's first
/// large-crop embedding into the bank.
///
/// Stops early with [`TrainError::Interrupted`] when `interrupted` is set, and with
/// [`TrainError::NonFiniteLoss`] on a NaN or infinite loss.
fn train_pass(
    trainee: Trainee,
    optimizer: &mut ModuleOptimizer,
    inputs: &PassInputs<'_>,
    device: &Device,
    progress: &dyn Progress,
    interrupted: &AtomicBool,
) -> Result<Trained, TrainError> {
    let config = inputs.config;
    let dataset = inputs.dataset;
    let train_device = device.clone().autodiff();
    let loss_function = CrossEntropyLossConfig::new().init(&train_device);
    let dim = config.v2_embedding_dim;
    let n_clusters = inputs.prototypes.len() / dim;
    // A plain tensor, not a parameter, so the prototypes are a constant of the loss.
    let prototypes = Tensor::<2>::from_data(
        TensorData::new(inputs.prototypes.to_vec(), [n_clusters, dim]),
        &train_device,
    )
    .transpose();
    let large = config.augmentation();
    let small = Augmentation {
        crop_scale: SMALL_CROP_SCALE,
        ..large.clone()
    };
    let n_crops = LARGE_CROPS + config.v2_small_crops;
    // Each crop draws from its own stream, so the crops of one image differ.
    let crop_seeds: Vec<u64> = (0..n_crops as u64)
        .map(|crop| epoch_seed(config.seed, inputs.epoch, CROP_SEED_PURPOSE + crop))
        .collect();
    let learning_rate = sgd_settings(config, inputs.epoch).learning_rate;

    let Trainee {
        model,
        head,
        mut bank,
    } = trainee;
    let DeepClusterNet { mut backbone, top } = model.train();
    let mut head = head.train();
    let mut loss_sum = 0.0f64;
    let mut n_batches = 0usize;
    progress.start("train", inputs.order.len() as u64);
    for (batch_index, batch) in inputs.order.chunks(config.batch_size).enumerate() {
        if interrupted.load(Ordering::SeqCst) {
            return Err(TrainError::Interrupted);
        }
        // Crop-major layout: the batch's first crops, then its second crops, and so on.
        let first_position = batch_index * config.batch_size;
        let mut pixels = Vec::with_capacity(n_crops * batch.len() * dataset.image_len());
        for (crop, &seed) in crop_seeds.iter().enumerate() {
            let augmentation = if crop < LARGE_CROPS { &large } else { &small };
            pixels.extend(train_batch(
                dataset,
                batch,
                first_position,
                inputs.normalization,
                augmentation,
                seed,
                inputs.epoch,
            ));
        }
        let images = images_tensor(pixels, n_crops * batch.len(), dataset, &train_device);
        let embeddings = head.forward(backbone.forward_features(images));
        let logits = embeddings
            .clone()
            .matmul(prototypes.clone())
            .div_scalar(config.v2_temperature);
        let targets = crop_targets(batch, inputs.pseudo_labels, n_crops, &train_device);
        // The mean over all crops of the batch: every crop has as many images.
        let loss = loss_function.forward(logits, targets);
        let loss_value: f32 = loss.clone().into_scalar();
        if !loss_value.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                epoch: inputs.epoch,
                batch: batch_index + 1,
            });
        }

        let first_crop = embeddings.narrow(0, 0, batch.len()).detach().into_data();
        for (&image, row) in batch.iter().zip(as_f32(&first_crop)?.chunks_exact(dim)) {
            bank[image * dim..(image + 1) * dim].copy_from_slice(row);
        }

        let mut gradients = loss.backward();
        let backbone_gradients = GradientsParams::from_module(&mut gradients, &backbone);
        let head_gradients = GradientsParams::from_module(&mut gradients, &head);
        backbone = optimizer.step(learning_rate, backbone, backbone_gradients);
        head = optimizer.step(learning_rate, head, head_gradients);

        loss_sum += f64::from(loss_value);
        n_batches += 1;
        progress.advance(batch.len() as u64);
    }
    progress.finish();
    Ok(Trained {
        trainee: Trainee {
            model: DeepClusterNet { backbone, top },
            head,
            bank,
        },
        loss: loss_sum / n_batches.max(1) as f64,
    })
}

/// Returns the cluster id of each image of `batch`, repeated for each of `n_crops` crops in the
/// crop-major layout of the training batch.
fn crop_targets(
    batch: &[usize],
    pseudo_labels: &[u32],
    n_crops: usize,
    device: &Device,
) -> Tensor<1, Int> {
    let targets: Vec<i64> = (0..n_crops)
        .flat_map(|_| batch.iter().map(|&i| i64::from(pseudo_labels[i])))
        .collect();
    let shape = [targets.len()];
    Tensor::from_data(TensorData::new(targets, shape), device)
}

fn as_f32(data: &TensorData) -> Result<&[f32], TrainError> {
    data.as_slice::<f32>()
        .map_err(|error| TrainError::Backend(format!("{error:?}")))
}

/// Dimensions and parameter ids of a v2 checkpoint's state: the JSON file beside the head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct V2Meta {
    /// Head parameter ids in visiting order, which key its optimiser state.
    head_param_ids: Vec<u64>,
    /// Inputs of the head: the backbone's feature dimension.
    feature_dim: usize,
    /// Width of the head's hidden layer.
    hidden_dim: usize,
    /// Length of the embeddings and prototypes.
    embedding_dim: usize,
    /// Rows of the prototypes.
    n_clusters: usize,
    /// Rows of the memory bank.
    n_images: usize,
}

/// The files of a v2 checkpoint's state, beside the checkpoint's own files.
#[derive(Clone, Debug, PartialEq)]
pub struct V2Paths {
    /// SafeTensors weights of the projection head.
    pub head: PathBuf,
    /// Prototypes as a NumPy `float32` array `[n_clusters, embedding_dim]`.
    pub prototypes: PathBuf,
    /// Memory bank as a NumPy `float32` array `[n_images, embedding_dim]`.
    pub bank: PathBuf,
    /// JSON dimensions and head parameter ids.
    pub meta: PathBuf,
}

impl V2Paths {
    /// Paths of the v2 state of the checkpoint at `paths`.
    pub fn for_checkpoint(paths: &CheckpointPaths) -> Self {
        let stem = paths.meta.with_extension("");
        Self {
            head: stem.with_extension("head.safetensors"),
            prototypes: stem.with_extension("prototypes.npy"),
            bank: stem.with_extension("bank.npy"),
            meta: stem.with_extension("v2.json"),
        }
    }
}

/// Writes the v2 state of the checkpoint of `epoch` in `run_dir`, each file atomically. Call
/// it before [`checkpoint::save_checkpoint`], which writes the JSON file that makes the
/// checkpoint exist.
pub fn save_state(run_dir: &Path, epoch: usize, state: &V2State) -> Result<(), TrainError> {
    let paths = V2Paths::for_checkpoint(&CheckpointPaths::for_epoch(run_dir, epoch));
    let dir = run_dir.join(checkpoint::CHECKPOINT_DIR);
    std::fs::create_dir_all(&dir).map_err(|source| TrainError::Write {
        path: dir.clone(),
        source,
    })?;
    let embedding_dim = state.head.embedding_dim();

    // As for the network: `valid()` syncs batch norm's running statistics before saving, and
    // the store writes to a scratch file that it renames into place.
    let mut store = SafetensorsStore::from_file(&paths.head).overwrite(true);
    state
        .head
        .valid()
        .save_into(&mut store)
        .map_err(|error| TrainError::Checkpoint {
            path: paths.head.clone(),
            message: error.to_string(),
        })?;
    write_npy_2d(&paths.prototypes, &state.prototypes, embedding_dim)?;
    write_npy_2d(&paths.bank, &state.bank, embedding_dim)?;

    let meta = V2Meta {
        head_param_ids: checkpoint::param_ids(&state.head),
        feature_dim: state.head.feature_dim(),
        hidden_dim: state.head.hidden_dim(),
        embedding_dim,
        n_clusters: state.prototypes.len() / embedding_dim,
        n_images: state.bank.len() / embedding_dim,
    };
    let json =
        serde_json::to_vec_pretty(&meta).map_err(|error| TrainError::Backend(error.to_string()))?;
    record::write_atomically(&paths.meta, &json)
}

/// Loads the v2 state of the checkpoint at `paths` onto `device`; `None` for a v1 checkpoint.
///
/// The head gets its saved parameter ids back, so the optimiser state loaded with the
/// checkpoint applies to it. A missing, damaged or misshaped file is an error naming it.
pub fn load_state(
    paths: &CheckpointPaths,
    meta: &CheckpointMeta,
    device: &Device,
) -> Result<Option<V2State>, TrainError> {
    if meta.config.method != Method::V2 {
        return Ok(None);
    }
    let paths = V2Paths::for_checkpoint(paths);
    let bytes = std::fs::read(&paths.meta).map_err(|source| TrainError::Read {
        path: paths.meta.clone(),
        source,
    })?;
    let v2_meta: V2Meta = serde_json::from_slice(&bytes).map_err(|error| TrainError::Corrupt {
        path: paths.meta.clone(),
        message: error.to_string(),
    })?;
    let expected = (meta.n_images, meta.config.k, meta.config.v2_embedding_dim);
    let found = (v2_meta.n_images, v2_meta.n_clusters, v2_meta.embedding_dim);
    if found != expected {
        return Err(TrainError::Corrupt {
            path: paths.meta.clone(),
            message: format!(
                "describes {} images, {} clusters and {}-dimensional embeddings, but the \
                 checkpoint has {}, {} and {}",
                found.0, found.1, found.2, expected.0, expected.1, expected.2
            ),
        });
    }

    let head = load_head(&paths.head, &v2_meta, device)?;
    let head = checkpoint::assign_param_ids(head, &v2_meta.head_param_ids, &paths.meta)?;
    let prototypes = read_npy_2d(&paths.prototypes, v2_meta.n_clusters, v2_meta.embedding_dim)?;
    let bank = read_npy_2d(&paths.bank, v2_meta.n_images, v2_meta.embedding_dim)?;
    Ok(Some(V2State {
        head,
        prototypes,
        bank,
    }))
}

fn load_head(path: &Path, meta: &V2Meta, device: &Device) -> Result<ProjectionHead, TrainError> {
    if !path.is_file() {
        return Err(TrainError::Read {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
        });
    }
    let mut head = ProjectionHead::new(
        meta.feature_dim,
        meta.hidden_dim,
        meta.embedding_dim,
        device,
    );
    let mut store = SafetensorsStore::from_file(path);
    let result = head
        .load_from(&mut store)
        .map_err(|error| TrainError::Checkpoint {
            path: path.to_owned(),
            message: format!("{error}; the file is damaged or belongs to another head size"),
        })?;
    if !result.unused.is_empty() {
        return Err(TrainError::Checkpoint {
            path: path.to_owned(),
            message: format!(
                "contains tensors the projection head does not have ({})",
                result.unused.join(", ")
            ),
        });
    }
    Ok(head)
}

/// Writes `values` as a NumPy `float32` array of `columns` columns, atomically.
fn write_npy_2d(path: &Path, values: &[f32], columns: usize) -> Result<(), TrainError> {
    let rows = values.len() / columns.max(1);
    let mut bytes = Vec::with_capacity(values.len() * 4 + 128);
    let write = |bytes: &mut Vec<u8>| -> std::io::Result<()> {
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[rows as u64, columns as u64])
            .writer(bytes)
            .begin_nd()?;
        writer.extend(values.iter().copied())?;
        writer.finish()
    };
    write(&mut bytes).map_err(|source| TrainError::Write {
        path: path.to_owned(),
        source,
    })?;
    record::write_atomically(path, &bytes)
}

/// Reads a NumPy `float32` array written by [`write_npy_2d`] and checks its shape.
fn read_npy_2d(path: &Path, rows: usize, columns: usize) -> Result<Vec<f32>, TrainError> {
    let file = std::fs::File::open(path).map_err(|source| TrainError::Read {
        path: path.to_owned(),
        source,
    })?;
    let corrupt = |message: String| TrainError::Corrupt {
        path: path.to_owned(),
        message,
    };
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file))
        .map_err(|error| corrupt(error.to_string()))?;
    let shape = npy.shape().to_vec();
    if shape != [rows as u64, columns as u64] {
        return Err(corrupt(format!(
            "has shape {shape:?}; expected [{rows}, {columns}]"
        )));
    }
    npy.into_vec::<f32>()
        .map_err(|error| corrupt(error.to_string()))
}
