//! DeepCluster-v2 training (`method = "v2"`) on real Fashion-MNIST images from the embedded
//! test split.
//!
//! burn's random generator is global to the process, and building a network draws from it as
//! dropout does. Every test of this file that trains or loads a network therefore holds the
//! `BURN` lock, because the resume test compares two runs bit for bit.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard, OnceLock};

use burn::tensor::Device;
use deepcluster::train::checkpoint::{self, CheckpointPaths};
use deepcluster::train::record::{assignment_path, read_assignments, read_records};
use deepcluster::train::v2::{self, V2Paths, V2State};
use deepcluster::train::{Method, NoProgress, TrainConfig, train};

mod command;
mod common;

use command::{assert_bad_input, assert_success, deepcluster};
use common::{fashion_mnist, options, small_config};

static BURN: Mutex<()> = Mutex::new(());

/// Takes the lock on burn's random generator. A test that panicked while holding it leaves the
/// generator as usable as before, so the poisoned lock is taken anyway.
fn lock_burn() -> MutexGuard<'static, ()> {
    BURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const N_IMAGES: usize = 256;
const EMBEDDING_DIM: usize = 16;

fn v2_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        method: Method::V2,
        k: 8,
        batch_size: 64,
        width_multiplier: 0.125,
        kmeans_iterations: 10,
        v2_embedding_dim: EMBEDDING_DIM,
        seed: 5,
        ..small_config(epochs)
    }
}

/// Trains `config` from scratch into `run_dir`, or resumes it there, holding the lock.
fn train_locked(config: &TrainConfig, run_dir: &Path, resume: bool) {
    let _guard = lock_burn();
    train(
        config,
        &fashion_mnist(N_IMAGES),
        &options(run_dir, resume),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
}

/// Returns a run of 2 epochs that several tests read, trained once per test process.
fn shared_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let run_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train_v2_shared");
        if run_dir.exists() {
            fs::remove_dir_all(&run_dir).unwrap();
        }
        train_locked(&v2_config(2), &run_dir, false);
        run_dir
    })
}

fn load_v2_state(run_dir: &Path, epoch: usize) -> V2State {
    let paths = CheckpointPaths::for_epoch(run_dir, epoch);
    let meta = checkpoint::read_meta(&paths.meta).unwrap();
    v2::load_state(&paths, &meta, &Device::flex().autodiff())
        .unwrap()
        .expect("a v2 checkpoint has v2 state")
}

fn row_norms(values: &[f32], dim: usize) -> Vec<f32> {
    values
        .chunks_exact(dim)
        .map(|row| row.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect()
}

#[test]
fn v2_run_writes_records_and_checkpoints() {
    let run_dir = shared_run();
    let _guard = lock_burn();
    let records = read_records(run_dir).unwrap();
    assert_eq!(records.len(), 2);
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record.epoch, index + 1);
        assert!(record.loss.is_finite(), "loss {}", record.loss);
        assert!(record.kmeans_objective.is_finite());
        assert_eq!(record.pca_dim, EMBEDDING_DIM);
        assert_eq!(record.cluster_sizes.mean, N_IMAGES as f64 / 8.0);
        assert_eq!(record.nmi_previous.is_some(), index > 0);
        let labels = record.labels.as_ref().expect("Fashion-MNIST has labels");
        assert!(labels.nmi > 0.0, "nmi {}", labels.nmi);
        assert!(labels.nmi <= 1.0, "nmi {}", labels.nmi);
        let assignments = read_assignments(&assignment_path(run_dir, record.epoch)).unwrap();
        assert_eq!(assignments.len(), N_IMAGES);
        assert!(assignments.iter().all(|&c| c < 8));
    }
    // Only the first epoch fills the bank by a pass of its own.
    assert!(records[0].seconds.extract > 0.0);
    assert_eq!(records[1].seconds.extract, 0.0);

    assert_eq!(checkpoint::list_checkpoints(run_dir).unwrap(), vec![1, 2]);
    let paths = CheckpointPaths::for_epoch(run_dir, 2);
    let v2_paths = V2Paths::for_checkpoint(&paths);
    for path in [
        &v2_paths.head,
        &v2_paths.prototypes,
        &v2_paths.bank,
        &v2_paths.meta,
    ] {
        assert!(path.is_file(), "{} missing", path.display());
    }
    let (_, _, meta) = checkpoint::load_checkpoint(&paths, &Device::flex().autodiff()).unwrap();
    assert_eq!(meta.config, v2_config(2));
    assert_eq!(meta.model.dropout, 0.0);
}

#[test]
fn eval_loads_v2_backbone() {
    let run_dir = shared_run();
    let _guard = lock_burn();
    let loaded = deepcluster::eval::load_run(run_dir, &Device::flex()).unwrap();
    assert!(loaded.source.is_some());
    assert_eq!(loaded.config.n_clusters, 8);
    assert_eq!(
        loaded.model.backbone.layer_names(),
        ["conv1", "conv2", "conv3", "conv4", "conv5"]
    );
}

#[test]
fn prototypes_are_unchanged_bank_centroids() {
    let run_dir = shared_run();
    let _guard = lock_burn();
    let config = v2_config(2);
    let after_epoch_1 = load_v2_state(run_dir, 1);
    let after_epoch_2 = load_v2_state(run_dir, 2);

    // Epoch 2 clustered the bank left by epoch 1. The prototypes saved after its training pass
    // are still exactly those centroids.
    let clustering = v2::cluster_bank(&after_epoch_1.bank, &config, 2).unwrap();
    assert_eq!(after_epoch_2.prototypes, clustering.centroids);
    assert_eq!(
        read_assignments(&assignment_path(run_dir, 2)).unwrap(),
        clustering.assignments
    );
    for norm in row_norms(&after_epoch_2.prototypes, EMBEDDING_DIM) {
        assert!((norm - 1.0).abs() < 1e-5, "prototype norm {norm}");
    }
}

#[test]
fn bank_embeddings_are_unit_norm() {
    let run_dir = shared_run();
    let _guard = lock_burn();
    for epoch in [1, 2] {
        let state = load_v2_state(run_dir, epoch);
        assert_eq!(state.bank.len(), N_IMAGES * EMBEDDING_DIM);
        for norm in row_norms(&state.bank, EMBEDDING_DIM) {
            assert!((norm - 1.0).abs() < 1e-5, "epoch {epoch}: norm {norm}");
        }
    }
    // The training pass rewrites every row.
    let first = load_v2_state(run_dir, 1).bank;
    let second = load_v2_state(run_dir, 2).bank;
    let unchanged = first
        .chunks_exact(EMBEDDING_DIM)
        .zip(second.chunks_exact(EMBEDDING_DIM))
        .filter(|(a, b)| a == b)
        .count();
    assert_eq!(unchanged, 0);
}

#[test]
fn resume_gives_same_epoch_as_not_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let straight = dir.path().join("straight");
    let stopped = dir.path().join("stopped");
    train_locked(&v2_config(2), &straight, false);
    train_locked(&v2_config(1), &stopped, false);
    train_locked(&v2_config(2), &stopped, true);

    let expected = read_records(&straight).unwrap();
    let resumed = read_records(&stopped).unwrap();
    assert_eq!(resumed.len(), 2);
    for (a, b) in expected.iter().zip(&resumed) {
        assert_eq!(a.loss, b.loss, "epoch {}", a.epoch);
        assert_eq!(a.kmeans_objective, b.kmeans_objective, "epoch {}", a.epoch);
        assert_eq!(a.nmi_previous, b.nmi_previous, "epoch {}", a.epoch);
        assert_eq!(a.labels, b.labels, "epoch {}", a.epoch);
    }
    assert_eq!(
        read_assignments(&assignment_path(&straight, 2)).unwrap(),
        read_assignments(&assignment_path(&stopped, 2)).unwrap()
    );

    let straight_paths = CheckpointPaths::for_epoch(&straight, 2);
    let stopped_paths = CheckpointPaths::for_epoch(&stopped, 2);
    let straight_v2 = V2Paths::for_checkpoint(&straight_paths);
    let stopped_v2 = V2Paths::for_checkpoint(&stopped_paths);
    for (a, b) in [
        (&straight_paths.weights, &stopped_paths.weights),
        (&straight_v2.head, &stopped_v2.head),
    ] {
        let (a_tensors, b_tensors) = (safetensors_tensors(a), safetensors_tensors(b));
        assert_eq!(
            a_tensors.keys().collect::<Vec<_>>(),
            b_tensors.keys().collect::<Vec<_>>()
        );
        for (name, a_tensor) in &a_tensors {
            assert!(
                a_tensor == &b_tensors[name],
                "{name} of {} differs",
                a.display()
            );
        }
    }
    for (a, b) in [
        (&straight_v2.prototypes, &stopped_v2.prototypes),
        (&straight_v2.bank, &stopped_v2.bank),
    ] {
        assert!(
            fs::read(a).unwrap() == fs::read(b).unwrap(),
            "{} differs from {}",
            a.display(),
            b.display()
        );
    }
}

/// Reads every tensor of a SafeTensors file as (header entry without offsets, bytes), by name.
/// Two files with equal tensors can differ in the order of their JSON header.
fn safetensors_tensors(path: &Path) -> BTreeMap<String, (serde_json::Value, Vec<u8>)> {
    let bytes = fs::read(path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let data = &bytes[8 + header_len..];
    header
        .into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .map(|(name, mut entry)| {
            let offsets = entry["data_offsets"].take();
            let start = offsets[0].as_u64().unwrap() as usize;
            let end = offsets[1].as_u64().unwrap() as usize;
            (name, (entry, data[start..end].to_vec()))
        })
        .collect()
}

#[test]
fn damaged_bank_falls_back_to_previous_checkpoint() {
    let shared = shared_run();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    fs::create_dir_all(run_dir.join("checkpoints")).unwrap();
    fs::create_dir_all(run_dir.join("assignments")).unwrap();
    for folder in ["", "checkpoints", "assignments"] {
        for entry in fs::read_dir(shared.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                fs::copy(&path, run_dir.join(folder).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    let bank = V2Paths::for_checkpoint(&CheckpointPaths::for_epoch(&run_dir, 2)).bank;
    let bytes = fs::read(&bank).unwrap();
    fs::write(&bank, &bytes[..bytes.len() / 2]).unwrap();

    // Epoch 2 is trained again from checkpoint 1, then epoch 3 follows.
    train_locked(&v2_config(3), &run_dir, true);
    let records = read_records(&run_dir).unwrap();
    assert_eq!(records.len(), 3);
    let expected = read_records(shared).unwrap();
    assert_eq!(records[1].loss, expected[1].loss);
    assert_eq!(records[1].kmeans_objective, expected[1].kmeans_objective);

    // Only the latest two checkpoints are kept, with every file of the older ones removed.
    assert_eq!(checkpoint::list_checkpoints(&run_dir).unwrap(), vec![2, 3]);
    let leftovers: Vec<String> = fs::read_dir(run_dir.join("checkpoints"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("epoch_0001."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn cli_trains_with_method_v2() {
    let dir = tempfile::tempdir().unwrap();
    let output = deepcluster(
        &[
            "train",
            "--method",
            "v2",
            "--v2-small-crops",
            "1",
            "--v2-temperature",
            "0.2",
            "--max-images",
            "96",
            "-k",
            "4",
            "--width",
            "0.125",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "-q",
            "--out",
            "run",
        ],
        dir.path(),
    );
    assert_success(&output);
    let run_dir = dir.path().join("run");
    assert_eq!(read_records(&run_dir).unwrap().len(), 1);
    let saved = TrainConfig::from_toml_file(&run_dir.join("config.toml")).unwrap();
    assert_eq!(saved.method, Method::V2);
    assert_eq!(saved.v2_small_crops, 1);
    assert_eq!(saved.v2_temperature, 0.2);
}

#[test]
fn cli_rejects_zero_temperature() {
    let dir = tempfile::tempdir().unwrap();
    let output = deepcluster(
        &[
            "train",
            "--method",
            "v2",
            "--v2-temperature",
            "0",
            "--out",
            "run",
        ],
        dir.path(),
    );
    assert_bad_input(&output, &["v2_temperature = 0", "positive"]);
    assert!(!dir.path().join("run").exists());
}

#[test]
fn cli_rejects_v2_flags_with_resume() {
    let dir = tempfile::tempdir().unwrap();
    let output = deepcluster(&["train", "--resume", "run", "--method", "v2"], dir.path());
    assert_bad_input(&output, &["--method", "--resume"]);
}

#[test]
fn cli_rejects_v1_options_that_v2_ignores() {
    let dir = tempfile::tempdir().unwrap();
    for option in [
        &["--sampling", "uniform"][..],
        &["--top-init", "centroids"],
        &["--pca-dim", "64"],
    ] {
        let mut args = vec!["train", "--method", "v2", "--out", "run"];
        args.extend_from_slice(option);
        let output = deepcluster(&args, dir.path());
        assert_bad_input(&output, &[option[0], "--method v2", "remove"]);
        assert!(!dir.path().join("run").exists());
    }
}

#[test]
fn cli_rejects_v2_options_without_method_v2() {
    let dir = tempfile::tempdir().unwrap();
    let output = deepcluster(
        &["train", "--v2-small-crops", "1", "--out", "run"],
        dir.path(),
    );
    assert_bad_input(&output, &["--v2-small-crops", "--method v2"]);
    assert!(!dir.path().join("run").exists());
}
