//! Files a run writes besides checkpoints: one JSON line of metrics per epoch and the cluster
//! assignment of every epoch.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::TrainError;

/// File of per-epoch records, one JSON object per line.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Folder of per-epoch cluster assignments.
pub const ASSIGNMENTS_DIR: &str = "assignments";

/// Seconds spent in each phase of an epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseSeconds {
    /// Feature extraction over the whole dataset.
    pub extract: f64,
    /// PCA fit, projection and L2 normalisation.
    pub pca: f64,
    /// k-means.
    pub kmeans: f64,
    /// One training pass.
    pub train: f64,
    /// The whole epoch, including metrics and checkpointing.
    pub total: f64,
}

/// Summary of the cluster sizes of one assignment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterSizes {
    /// Smallest cluster.
    pub min: usize,
    /// Largest cluster.
    pub max: usize,
    /// Mean size (images / clusters).
    pub mean: f64,
    /// Clusters with no image (zero after faiss-style splitting unless k-means was cut short).
    pub empty: usize,
    /// Clusters with exactly one image.
    pub singletons: usize,
}

impl ClusterSizes {
    /// Summarises `sizes`, one entry per cluster.
    pub fn from_sizes(sizes: &[usize]) -> Self {
        let total: usize = sizes.iter().sum();
        Self {
            min: sizes.iter().copied().min().unwrap_or(0),
            max: sizes.iter().copied().max().unwrap_or(0),
            mean: total as f64 / sizes.len().max(1) as f64,
            empty: sizes.iter().filter(|&&s| s == 0).count(),
            singletons: sizes.iter().filter(|&&s| s == 1).count(),
        }
    }
}

/// Agreement of the epoch's assignment with the true labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelMetrics {
    /// Normalised mutual information.
    pub nmi: f64,
    /// Adjusted Rand index.
    pub ari: f64,
    /// Accuracy after the best one-to-one matching of clusters to labels (Hungarian). With more
    /// clusters than labels, unmatched clusters count as wrong.
    pub accuracy: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean cross-entropy of the training pass.
    pub loss: f64,
    /// Sum of squared distances of the points to their centroids: the final k-means objective,
    /// or with PIC the same sum around each cluster's mean.
    pub kmeans_objective: f64,
    /// Empty clusters refilled by splitting during k-means.
    pub kmeans_splits: usize,
    /// Dimension the features were reduced to by PCA.
    pub pca_dim: usize,
    /// Cluster size statistics.
    pub cluster_sizes: ClusterSizes,
    /// NMI between this epoch's assignment and the previous one (absent at the first epoch).
    pub nmi_previous: Option<f64>,
    /// Metrics against the labels, when the dataset has labels.
    pub labels: Option<LabelMetrics>,
    /// Learning rate used.
    pub learning_rate: f64,
    /// Seconds per phase.
    pub seconds: PhaseSeconds,
}

/// Appends `record` to the run's metrics file and flushes it to disk.
pub fn append_record(run_dir: &Path, record: &EpochRecord) -> Result<(), TrainError> {
    let path = run_dir.join(METRICS_FILE);
    let line =
        serde_json::to_string(record).map_err(|error| TrainError::Backend(error.to_string()))?;
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|source| TrainError::Write {
            path: path.clone(),
            source,
        })?;
    writeln!(file, "{line}")
        .and_then(|()| file.sync_data())
        .map_err(|source| TrainError::Write { path, source })
}

/// Reads every record of a run's metrics file.
pub fn read_records(run_dir: &Path) -> Result<Vec<EpochRecord>, TrainError> {
    let path = run_dir.join(METRICS_FILE);
    let text = fs::read_to_string(&path).map_err(|source| TrainError::Read {
        path: path.clone(),
        source,
    })?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|error| TrainError::Corrupt {
                path: path.clone(),
                message: format!("line {}: {error}", index + 1),
            })
        })
        .collect()
}

/// Rewrites the metrics file with only the records of epochs up to `last_epoch`, so that a
/// resumed run does not repeat the lines of an epoch that was not checkpointed.
pub fn truncate_records(run_dir: &Path, last_epoch: usize) -> Result<(), TrainError> {
    let path = run_dir.join(METRICS_FILE);
    if !path.exists() {
        return Ok(());
    }
    let kept: Vec<EpochRecord> = read_records(run_dir)?
        .into_iter()
        .filter(|r| r.epoch <= last_epoch)
        .collect();
    let mut text = String::new();
    for record in &kept {
        text += &serde_json::to_string(record)
            .map_err(|error| TrainError::Backend(error.to_string()))?;
        text.push('\n');
    }
    write_atomically(&path, text.as_bytes())
}

/// Path of the assignment file of `epoch`.
pub fn assignment_path(run_dir: &Path, epoch: usize) -> PathBuf {
    run_dir
        .join(ASSIGNMENTS_DIR)
        .join(format!("epoch_{epoch:04}.npy"))
}

/// Writes an epoch's cluster id per image as a NumPy `.npy` file of `uint32`
/// (`numpy.load(path)` reads it).
pub fn write_assignments(
    run_dir: &Path,
    epoch: usize,
    assignments: &[u32],
) -> Result<(), TrainError> {
    let path = assignment_path(run_dir, epoch);
    let temporary = path.with_extension("npy.tmp");
    npyz::to_file_1d(&temporary, assignments.iter().copied())
        .and_then(|()| fs::rename(&temporary, &path))
        .map_err(|source| TrainError::Write { path, source })
}

/// Deletes the assignment files of epochs after `last_epoch`, which belong to epochs that were
/// not checkpointed.
pub fn remove_assignments_after(run_dir: &Path, last_epoch: usize) -> Result<(), TrainError> {
    let dir = run_dir.join(ASSIGNMENTS_DIR);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let epoch = name
            .strip_prefix("epoch_")
            .and_then(|rest| rest.strip_suffix(".npy"));
        if epoch
            .and_then(|e| e.parse::<usize>().ok())
            .is_some_and(|e| e > last_epoch)
        {
            let path = entry.path();
            fs::remove_file(&path).map_err(|source| TrainError::Write { path, source })?;
        }
    }
    Ok(())
}

/// Reads an assignment file written by [`write_assignments`].
pub fn read_assignments(path: &Path) -> Result<Vec<u32>, TrainError> {
    let file = fs::File::open(path).map_err(|source| TrainError::Read {
        path: path.to_owned(),
        source,
    })?;
    let corrupt = |error: std::io::Error| TrainError::Corrupt {
        path: path.to_owned(),
        message: error.to_string(),
    };
    npyz::NpyFile::new(std::io::BufReader::new(file))
        .and_then(|npy| npy.into_vec::<u32>())
        .map_err(corrupt)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it over `path`, so
/// readers never see a partial file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let temporary = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    };
    write().map_err(|source| TrainError::Write {
        path: path.to_owned(),
        source,
    })
}
