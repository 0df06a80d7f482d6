//! End-to-end training on real Fashion-MNIST images from the embedded test split.

use std::sync::atomic::AtomicBool;

use burn::module::Module;
use burn::tensor::Device;
use deepcluster::model::{DeepClusterNet, ModelConfig};
use deepcluster::preprocess::{Normalization, eval_batch};
use deepcluster::train::checkpoint::{self, CheckpointPaths};
use deepcluster::train::record::{assignment_path, read_assignments, read_records};
use deepcluster::train::steps::images_tensor;
use deepcluster::train::{
    ClusteringMethod, LossWeighting, NoProgress, Sampling, TopInit, TrainConfig, train,
};

mod common;

use common::{fashion_mnist, options, small_config};

#[test]
fn training_on_fashion_mnist_writes_complete_run_folder() {
    let dataset = fashion_mnist(2000);
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let config = small_config(3);

    let summary = train(
        &config,
        &dataset,
        &options(&run_dir, false),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();

    assert_eq!(summary.epochs_completed, 3);
    let records = read_records(&run_dir).unwrap();
    assert_eq!(records.len(), 3);
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record.epoch, index + 1);
        assert!(
            record.loss.is_finite(),
            "epoch {}: loss {}",
            record.epoch,
            record.loss
        );
        assert!(record.kmeans_objective.is_finite());
        let labels = record.labels.as_ref().expect("Fashion-MNIST has labels");
        assert!(labels.nmi > 0.0, "nmi {}", labels.nmi);
        assert!(labels.nmi <= 1.0, "nmi {}", labels.nmi);
        assert_eq!(record.nmi_previous.is_some(), index > 0);
        let assignments = read_assignments(&assignment_path(&run_dir, record.epoch)).unwrap();
        assert_eq!(assignments.len(), 2000);
        assert!(assignments.iter().all(|&c| c < 20));
    }
    assert!(run_dir.join("config.toml").is_file());

    // Only the two latest checkpoints are kept, and the last one loads.
    assert_eq!(checkpoint::list_checkpoints(&run_dir).unwrap(), vec![2, 3]);
    let paths = CheckpointPaths::for_epoch(&run_dir, 3);
    let (_, _, meta) = checkpoint::load_checkpoint(&paths, &Device::flex().autodiff()).unwrap();
    assert_eq!(meta.epoch, 3);
    assert_eq!(meta.config, config);
}

#[test]
fn training_with_every_lever_on() {
    let dataset = fashion_mnist(600);
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let config = TrainConfig {
        cluster_layer: Some("conv3".into()),
        sampling: Sampling::Shuffle,
        loss_weighting: LossWeighting::InverseSqrt,
        crop_scale_min: 0.2,
        rotation_degrees: 15.0,
        translate: 0.1,
        brightness: 0.4,
        contrast: 0.4,
        ..small_config(2)
    };
    train(
        &config,
        &dataset,
        &options(&run_dir, false),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();

    let records = read_records(&run_dir).unwrap();
    assert_eq!(records.len(), 2);
    for record in &records {
        assert!(record.loss.is_finite(), "loss {}", record.loss);
        assert_eq!(record.pca_dim, 32);
        assert_eq!(record.cluster_sizes.mean, 30.0);
    }
    let saved = TrainConfig::from_toml_file(&run_dir.join("config.toml")).unwrap();
    assert_eq!(saved, config);
}

#[test]
fn training_with_centroid_top_layer() {
    let dataset = fashion_mnist(600);
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let config = TrainConfig {
        top_init: TopInit::Centroids,
        ..small_config(2)
    };
    train(
        &config,
        &dataset,
        &options(&run_dir, false),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    let records = read_records(&run_dir).unwrap();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|record| record.loss.is_finite()));
}

#[test]
fn training_with_pic_uses_its_cluster_count() {
    let dataset = fashion_mnist(600);
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let config = TrainConfig {
        clustering: ClusteringMethod::Pic,
        ..small_config(1)
    };
    train(
        &config,
        &dataset,
        &options(&run_dir, false),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();

    // The top layer and the checkpoint follow the number of clusters PIC found, so resuming
    // rebuilds a network of the saved shape.
    let assignments = read_assignments(&assignment_path(&run_dir, 1)).unwrap();
    let n_clusters = *assignments.iter().max().unwrap() as usize + 1;
    let paths = CheckpointPaths::for_epoch(&run_dir, 1);
    let (model, _, meta) = checkpoint::load_checkpoint(&paths, &Device::flex().autodiff()).unwrap();
    assert_eq!(meta.model.n_clusters, n_clusters);
    assert_eq!(model.top.weight.dims()[1], n_clusters);
    assert_eq!(meta.config.clustering, ClusteringMethod::Pic);

    let resumed = TrainConfig {
        epochs: 2,
        ..config
    };
    let summary = train(
        &resumed,
        &dataset,
        &options(&run_dir, true),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(summary.epochs_completed, 2);
    let record = &summary.records[0];
    assert!(record.kmeans_objective.is_finite());
    assert_eq!(record.kmeans_splits, 0);
}

#[test]
fn checkpoint_round_trip_gives_identical_outputs() {
    let dataset = fashion_mnist(64);
    let device = Device::flex().autodiff();
    let model_config = ModelConfig {
        architecture: deepcluster::model::Architecture::Alexnet,
        in_channels: 1,
        height: 28,
        width: 28,
        sobel: true,
        width_multiplier: 0.25,
        n_clusters: 7,
        dropout: deepcluster::model::DEFAULT_DROPOUT,
    };
    device.seed(5);
    let model = DeepClusterNet::new(&model_config, &device);
    let optimizer =
        deepcluster::train::steps::backbone_optimizer(&deepcluster::train::steps::SgdSettings {
            learning_rate: 0.05,
            momentum: 0.9,
            weight_decay: 1e-5,
        });
    let normalization = Normalization::from_dataset(&dataset);
    let meta = checkpoint::CheckpointMeta {
        version: checkpoint::CHECKPOINT_VERSION,
        epoch: 1,
        config: TrainConfig::default(),
        model: model_config,
        normalization: normalization.clone(),
        n_images: dataset.len(),
        dataset: dataset.source.clone(),
        backbone_param_ids: checkpoint::backbone_param_ids(&model),
        seed: 0,
    };
    let dir = tempfile::tempdir().unwrap();
    let paths = checkpoint::save_checkpoint(dir.path(), &model, &optimizer, &meta, 2).unwrap();
    let (loaded, _, loaded_meta) = checkpoint::load_checkpoint(&paths, &device).unwrap();
    assert_eq!(loaded_meta, meta);

    let indices: Vec<usize> = (0..16).collect();
    let eval_device = Device::flex();
    let logits = |net: &DeepClusterNet| {
        let input = images_tensor(
            eval_batch(&dataset, &indices, &normalization),
            16,
            &dataset,
            &eval_device,
        );
        net.valid()
            .forward(input)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    assert_eq!(logits(&model), logits(&loaded));
}
