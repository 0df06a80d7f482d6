//! Checkpoints written before a setting existed resume with the value they trained with.
//!
//! This test trains, so it has a file of its own: burn's random generator is global to the
//! process.

use std::sync::atomic::AtomicBool;

use deepcluster::train::checkpoint::{CheckpointPaths, read_meta};
use deepcluster::train::{LossWeighting, NoProgress, Sampling, train};

mod common;

use common::{fashion_mnist, options, small_config};

#[test]
fn checkpoint_without_sampling_keys_reads_as_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train(
        &small_config(1),
        &fashion_mnist(300),
        &options(&run, false),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
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
