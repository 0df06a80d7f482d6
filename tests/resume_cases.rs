//! Edge cases of stopping and resuming a run: old checkpoints, interruptions, the epoch count,
//! and a dataset whose clusters come out empty.
//!
//! These tests train, so they have a file of their own: burn's random generator is global to
//! the process, and the exact-resume test elsewhere must not share it.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use deepcluster::train::checkpoint::{CheckpointPaths, read_meta};
use deepcluster::train::record::read_records;
use deepcluster::train::{
    LossWeighting, NoProgress, Sampling, TrainConfig, TrainError, TrainSummary, train,
};

mod common;

use common::{fashion_mnist, options, small_config};

fn train_run(
    config: &TrainConfig,
    run: &Path,
    resume: bool,
    interrupted: bool,
) -> Result<TrainSummary, TrainError> {
    train(
        config,
        &fashion_mnist(300),
        &options(run, resume),
        &NoProgress,
        &AtomicBool::new(interrupted),
    )
}

#[test]
fn old_checkpoint_keeps_original_sampling() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_run(&small_config(1), &run, false, false).unwrap();
    let path = CheckpointPaths::for_epoch(&run, 1).meta;
    let meta = read_meta(&path).unwrap();
    assert_eq!(meta.config.sampling, Sampling::Shuffle);
    assert_eq!(meta.config.loss_weighting, LossWeighting::InverseSqrt);

    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let config = json["config"].as_object_mut().unwrap();
    config.remove("sampling").unwrap();
    config.remove("loss_weighting").unwrap();
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();

    let meta = read_meta(&path).unwrap();
    assert_eq!(meta.config.sampling, Sampling::Uniform);
    assert_eq!(meta.config.loss_weighting, LossWeighting::None);
}

#[test]
fn resume_updates_epoch_count() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_run(&small_config(1), &run, false, false).unwrap();
    train_run(&small_config(2), &run, true, false).unwrap();
    let saved = TrainConfig::from_toml_file(&run.join("config.toml")).unwrap();
    assert_eq!(saved.epochs, 2);

    let error = train_run(&small_config(2), &run, true, false).unwrap_err();
    assert!(error.is_bad_input());
    let message = error.to_string();
    assert!(
        message.contains("already has 2 epochs") && message.contains("--epochs above 2"),
        "{message}"
    );
    assert_eq!(read_records(&run).unwrap().len(), 2);
}

#[test]
fn interrupt_in_first_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let error = train_run(&small_config(1), &run, false, true).unwrap_err();
    assert!(
        matches!(error, TrainError::InterruptedBeforeCheckpoint),
        "{error}"
    );
    assert!(error.to_string().contains("run the same command again"));
    // Nothing marks the folder as a run, so the same command starts over.
    train_run(&small_config(1), &run, false, false).unwrap();
}

#[test]
fn identical_images_train_with_empty_clusters() {
    let first_image = fashion_mnist(1);
    let n_images = 64;
    let dataset = deepcluster::data::Dataset {
        images: first_image.images.repeat(n_images),
        n_images,
        labels: first_image
            .labels
            .as_ref()
            .map(|labels| labels.repeat(n_images)),
        ..first_image
    };
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        k: 4,
        batch_size: 32,
        ..small_config(1)
    };
    let summary = train(
        &config,
        &dataset,
        &options(&dir.path().join("run"), false),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    let record = &summary.records[0];
    assert!(record.cluster_sizes.empty > 0, "{:?}", record.cluster_sizes);
    assert!(record.loss.is_finite());
}
