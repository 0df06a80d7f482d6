//! Checkpoints: weights as SafeTensors, the backbone optimiser's state as burnpack, and a JSON
//! file with everything else needed to resume.
//!
//! Epoch `e` writes `checkpoints/epoch_000e.safetensors`, `epoch_000e.optimizer.bpk` and, last,
//! `epoch_000e.json`. Each file goes to a temporary name first and is renamed into place, and the
//! JSON file is written only once both others are complete, so a checkpoint exists exactly when
//! its JSON file does: an interruption at any moment leaves the previous checkpoint intact.
//! DeepCluster-v2 writes its head, prototypes and memory bank under the same `epoch_000e.`
//! prefix before the JSON file (see [`super::v2`]), and they are deleted with the checkpoint.
//!
//! The optimiser's state is keyed by parameter ids, which SafeTensors does not store. The JSON
//! file therefore lists the backbone's parameter ids in visiting order, and loading gives the
//! rebuilt network's parameters those ids again.

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::ModuleOptimizer;
use burn::store::{ApplyResult, ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::TrainError;
use super::config::TrainConfig;
use super::record::write_atomically;
use crate::model::{DeepClusterNet, ModelConfig};
use crate::preprocess::Normalization;

/// Folder of checkpoints inside a run folder.
pub const CHECKPOINT_DIR: &str = "checkpoints";
/// Version of the checkpoint layout; a different version is rejected on load.
pub const CHECKPOINT_VERSION: u32 = 1;

/// The JSON part of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointMeta {
    /// [`CHECKPOINT_VERSION`] at the time of writing.
    pub version: u32,
    /// Number of completed epochs.
    pub epoch: usize,
    /// The run's resolved configuration.
    pub config: TrainConfig,
    /// Shapes of the network.
    pub model: ModelConfig,
    /// Normalisation applied to the images.
    pub normalization: Normalization,
    /// Number of images trained on; a resume must load the same dataset.
    pub n_images: usize,
    /// Description of the dataset.
    pub dataset: String,
    /// Backbone parameter ids in visiting order, which key the optimiser state.
    pub backbone_param_ids: Vec<u64>,
    /// Every random stream of the run is derived from this seed and the epoch number, so the
    /// seed and [`Self::epoch`] are the whole random state.
    pub seed: u64,
}

/// The three files of one checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointPaths {
    /// SafeTensors weights of the whole network.
    pub weights: PathBuf,
    /// Burnpack state of the backbone optimiser.
    pub optimizer: PathBuf,
    /// JSON metadata.
    pub meta: PathBuf,
}

impl CheckpointPaths {
    /// Paths of the checkpoint of `epoch` in `run_dir`.
    pub fn for_epoch(run_dir: &Path, epoch: usize) -> Self {
        let stem = run_dir
            .join(CHECKPOINT_DIR)
            .join(format!("epoch_{epoch:04}"));
        Self {
            weights: stem.with_extension("safetensors"),
            optimizer: stem.with_extension("optimizer.bpk"),
            meta: stem.with_extension("json"),
        }
    }

    /// Returns every path, for deletion.
    fn all(&self) -> [&Path; 3] {
        [&self.weights, &self.optimizer, &self.meta]
    }
}

/// Writes a checkpoint and deletes all but the latest `keep` checkpoints of the run.
pub fn save_checkpoint(
    run_dir: &Path,
    model: &DeepClusterNet,
    optimizer: &ModuleOptimizer,
    meta: &CheckpointMeta,
    keep: usize,
) -> Result<CheckpointPaths, TrainError> {
    let paths = CheckpointPaths::for_epoch(run_dir, meta.epoch);
    let dir = run_dir.join(CHECKPOINT_DIR);
    fs::create_dir_all(&dir).map_err(|source| TrainError::Write {
        path: dir.clone(),
        source,
    })?;

    // Batch norm keeps the last update of its running statistics aside until they are synced,
    // and saving reads them without syncing, but `valid()` syncs them. The store writes to a
    // scratch file and renames it into place.
    let mut store = SafetensorsStore::from_file(&paths.weights).overwrite(true);
    model
        .valid()
        .save_into(&mut store)
        .map_err(|error| TrainError::Checkpoint {
            path: paths.weights.clone(),
            message: error.to_string(),
        })?;

    let temporary = paths.optimizer.with_extension("bpk.tmp");
    optimizer
        .save(&temporary)
        .map_err(|error| TrainError::Checkpoint {
            path: temporary.clone(),
            message: error.to_string(),
        })?;
    fs::rename(&temporary, &paths.optimizer).map_err(|source| TrainError::Write {
        path: paths.optimizer.clone(),
        source,
    })?;

    let json =
        serde_json::to_vec_pretty(meta).map_err(|error| TrainError::Backend(error.to_string()))?;
    write_atomically(&paths.meta, &json)?;
    remove_old_checkpoints(run_dir, keep)?;
    Ok(paths)
}

/// Returns the checkpoint epochs present in `run_dir`, ascending; a checkpoint counts when its
/// JSON file exists.
pub fn list_checkpoints(run_dir: &Path) -> Result<Vec<usize>, TrainError> {
    let dir = run_dir.join(CHECKPOINT_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(TrainError::Read { path: dir, source }),
    };
    let mut epochs: Vec<usize> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_prefix("epoch_")?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .collect();
    epochs.sort_unstable();
    Ok(epochs)
}

fn remove_old_checkpoints(run_dir: &Path, keep: usize) -> Result<(), TrainError> {
    let epochs = list_checkpoints(run_dir)?;
    let n_old = epochs.len().saturating_sub(keep);
    let dir = run_dir.join(CHECKPOINT_DIR);
    for &epoch in &epochs[..n_old] {
        // The JSON file goes first, so a half-deleted checkpoint is never listed. The other
        // files are the weights, the optimiser state and any state a method keeps beside them
        // (v2's head and memory bank), all named `epoch_NNNN.*`.
        remove_if_present(&CheckpointPaths::for_epoch(run_dir, epoch).meta)?;
        let prefix = format!("epoch_{epoch:04}.");
        let entries = fs::read_dir(&dir).map_err(|source| TrainError::Read {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                remove_if_present(&entry.path())?;
            }
        }
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<(), TrainError> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(TrainError::Write {
            path: path.to_path_buf(),
            source: error,
        }),
        _ => Ok(()),
    }
}

/// Reads and checks a checkpoint's JSON file.
pub fn read_meta(path: &Path) -> Result<CheckpointMeta, TrainError> {
    let bytes = fs::read(path).map_err(|source| TrainError::Read {
        path: path.to_owned(),
        source,
    })?;
    let corrupt = |error: serde_json::Error| TrainError::Corrupt {
        path: path.to_owned(),
        message: error.to_string(),
    };
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).map_err(corrupt)?;
    if let Some(config) = value
        .get_mut("config")
        .and_then(|config| config.as_object_mut())
    {
        // Checkpoints written before these settings existed trained with the original
        // DeepCluster's, which are no longer the defaults.
        for (key, original) in [("sampling", "uniform"), ("loss_weighting", "none")] {
            config.entry(key).or_insert_with(|| original.into());
        }
    }
    let meta: CheckpointMeta = serde_json::from_value(value).map_err(corrupt)?;
    if meta.version != CHECKPOINT_VERSION {
        return Err(TrainError::Corrupt {
            path: path.to_owned(),
            message: format!(
                "checkpoint version {} is not supported (expected {CHECKPOINT_VERSION})",
                meta.version
            ),
        });
    }
    Ok(meta)
}

/// Loads a network's weights from a SafeTensors file into a network built from `model_config`.
///
/// A file with missing, extra or differently shaped tensors (another architecture, width or
/// number of clusters) is an error that names it.
pub fn load_weights(
    path: &Path,
    model_config: &ModelConfig,
    device: &Device,
) -> Result<DeepClusterNet, TrainError> {
    if !path.is_file() {
        return Err(TrainError::Read {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
        });
    }
    let mut model = DeepClusterNet::new(model_config, device);
    // Every mismatch comes back in the result instead of an error whose message lists each
    // tensor, and `describe_mismatch` names the first one.
    let mut store = SafetensorsStore::from_file(path)
        .validate(false)
        .allow_partial(true);
    let result = model
        .load_from(&mut store)
        .map_err(|error| TrainError::Checkpoint {
            path: path.to_owned(),
            message: format!("{error}; the file is damaged"),
        })?;
    if let Some(mismatch) = describe_mismatch(&result) {
        return Err(TrainError::Checkpoint {
            path: path.to_owned(),
            message: format!(
                "{mismatch}; the file was saved by a network of another architecture or size than the checkpoint's JSON file describes"
            ),
        });
    }
    Ok(model)
}

/// Describes the first difference between a file's tensors and the network they were loaded
/// into, with the number of others; `None` when every tensor matched.
fn describe_mismatch(result: &ApplyResult) -> Option<String> {
    let mut problems: Vec<String> = result.errors.iter().map(ToString::to_string).collect();
    problems.extend(
        result
            .missing
            .iter()
            .map(|(name, _)| format!("tensor `{name}` is missing from the file")),
    );
    problems.extend(
        result
            .unused
            .iter()
            .map(|name| format!("the file has tensor `{name}`, which the network lacks")),
    );
    let first = problems.first()?;
    Some(match problems.len() {
        1 => first.clone(),
        n => format!("{first} (and {} more differences)", n - 1),
    })
}

/// Loads a whole checkpoint: network, backbone optimiser and metadata.
pub fn load_checkpoint(
    paths: &CheckpointPaths,
    device: &Device,
) -> Result<(DeepClusterNet, ModuleOptimizer, CheckpointMeta), TrainError> {
    let meta = read_meta(&paths.meta)?;
    let model = load_weights(&paths.weights, &meta.model, device)?;
    let model = assign_backbone_param_ids(model, &meta.backbone_param_ids, &paths.meta)?;
    let settings = super::steps::SgdSettings {
        learning_rate: meta.config.learning_rate,
        momentum: meta.config.momentum,
        weight_decay: meta.config.weight_decay,
    };
    let optimizer = super::steps::backbone_optimizer(&settings)
        .load(&paths.optimizer)
        .map_err(|error| TrainError::Checkpoint {
            path: paths.optimizer.clone(),
            message: format!("{error}; the file is damaged"),
        })?;
    Ok((model, optimizer, meta))
}

/// Loads the latest checkpoint of `run_dir` that can be loaded.
///
/// A damaged latest checkpoint (a truncated file after a crash of the disk, for instance) is
/// reported as a warning and the one before it is tried; when none loads, the latest one's
/// error is returned.
pub fn load_latest_checkpoint(
    run_dir: &Path,
    device: &Device,
) -> Result<
    (
        CheckpointPaths,
        (DeepClusterNet, ModuleOptimizer, CheckpointMeta),
    ),
    TrainError,
> {
    let (paths, loaded, ()) = load_latest_checkpoint_with(run_dir, device, |_, _| Ok(()))?;
    Ok((paths, loaded))
}

/// Loads the latest checkpoint of `run_dir` that can be loaded together with the extra state
/// `load_extra` reads beside it (v2's head and memory bank), falling back as
/// [`load_latest_checkpoint`] does when either part is damaged.
pub fn load_latest_checkpoint_with<T>(
    run_dir: &Path,
    device: &Device,
    mut load_extra: impl FnMut(&CheckpointPaths, &CheckpointMeta) -> Result<T, TrainError>,
) -> Result<
    (
        CheckpointPaths,
        (DeepClusterNet, ModuleOptimizer, CheckpointMeta),
        T,
    ),
    TrainError,
> {
    let epochs = list_checkpoints(run_dir)?;
    let mut first_error = None;
    for &epoch in epochs.iter().rev() {
        let paths = CheckpointPaths::for_epoch(run_dir, epoch);
        let loaded = load_checkpoint(&paths, device).and_then(|loaded| {
            let extra = load_extra(&paths, &loaded.2)?;
            Ok((loaded, extra))
        });
        match loaded {
            Ok((loaded, extra)) => return Ok((paths, loaded, extra)),
            Err(error) => {
                tracing::warn!(epoch, %error, "cannot load this checkpoint; trying the one before it");
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| TrainError::NoCheckpoint {
        path: run_dir.to_owned(),
    }))
}

/// Reads the metadata of the latest checkpoint of `run_dir` whose JSON file can be parsed.
pub fn read_latest_meta(run_dir: &Path) -> Result<CheckpointMeta, TrainError> {
    let epochs = list_checkpoints(run_dir)?;
    let mut first_error = None;
    for &epoch in epochs.iter().rev() {
        match read_meta(&CheckpointPaths::for_epoch(run_dir, epoch).meta) {
            Ok(meta) => return Ok(meta),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| TrainError::NoCheckpoint {
        path: run_dir.to_owned(),
    }))
}

/// Returns the backbone's parameter ids in visiting order.
pub fn backbone_param_ids(model: &DeepClusterNet) -> Vec<u64> {
    param_ids(&model.backbone)
}

/// Returns the ids of a module's float parameters in visiting order.
pub fn param_ids<M: Module>(module: &M) -> Vec<u64> {
    let mut collector = IdCollector(Vec::new());
    module.visit(&mut collector);
    collector.0
}

fn assign_backbone_param_ids(
    model: DeepClusterNet,
    ids: &[u64],
    meta_path: &Path,
) -> Result<DeepClusterNet, TrainError> {
    let DeepClusterNet { backbone, top } = model;
    let backbone = assign_param_ids(backbone, ids, meta_path)?;
    Ok(DeepClusterNet { backbone, top })
}

/// Gives a module's float parameters the ids `ids` in visiting order, so that optimiser state
/// saved under those ids applies to them again. `meta_path`, the file that listed the ids, is
/// named in the error when their number does not match the module.
pub fn assign_param_ids<M: Module>(
    module: M,
    ids: &[u64],
    meta_path: &Path,
) -> Result<M, TrainError> {
    let expected = param_ids(&module).len();
    if ids.len() != expected {
        return Err(TrainError::Corrupt {
            path: meta_path.to_owned(),
            message: format!(
                "lists {} parameter ids but the network has {expected}",
                ids.len()
            ),
        });
    }
    Ok(module.map(&mut IdAssigner { ids, next: 0 }))
}

struct IdCollector(Vec<u64>);

impl ModuleVisitor for IdCollector {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.id.val());
    }
}

struct IdAssigner<'a> {
    ids: &'a [u64],
    next: usize,
}

impl ModuleMapper for IdAssigner<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, value, mapper) = param.consume();
        let id = ParamId::from(self.ids[self.next]);
        self.next += 1;
        Param::from_mapped_value(id, value, mapper)
    }
}

/// Deletes every file of the checkpoint at `paths` (used by tests and cleanup).
pub fn remove_checkpoint(paths: &CheckpointPaths) -> std::io::Result<()> {
    for path in paths.all() {
        if path.exists() {
            fs::remove_file(path)?;
        }
    }
    Ok(())
}
