//! Evaluation protocols: the linear probe on synthetic features, the choice of pooling, and
//! `eval linear` and `eval cluster` end to end on a small Fashion-MNIST slice with a network
//! trained for one epoch.

mod command;

use std::path::Path;

use command::{assert_bad_input, assert_success, deepcluster, train_tiny_run};

use deepcluster::data::load_embedded_fashion_mnist;
use deepcluster::eval::linear::{
    POOLED_TARGET_DIM, Pooling, ProbeSettings, top1_accuracy, train_linear_classifier,
};
use deepcluster::eval::splits::hold_out;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `n_per_class` points around each of `n_classes` centres, in `dim` dimensions.
fn separable_points(
    n_classes: usize,
    n_per_class: usize,
    dim: usize,
    seed: u64,
) -> (Vec<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for index in 0..n_classes * n_per_class {
        let class = index % n_classes;
        for d in 0..dim {
            let centre = if d % n_classes == class { 3.0 } else { 0.0 };
            features.push(centre + rng.random_range(-1.0f32..1.0));
        }
        labels.push(class as u32);
    }
    (features, labels)
}

#[test]
fn probe_learns_separable_classes() {
    let (train_x, train_y) = separable_points(4, 100, 24, 1);
    let (test_x, test_y) = separable_points(4, 50, 24, 2);
    let settings = ProbeSettings {
        epochs: 10,
        batch_size: 32,
        ..ProbeSettings::default()
    };
    let classifier = train_linear_classifier(&train_x, 24, &train_y, 4, &settings);
    let accuracy = top1_accuracy(&classifier.predict(&test_x), &test_y);
    assert!(accuracy > 0.97, "top-1 {accuracy}");
}

#[test]
fn probe_is_deterministic_for_a_seed() {
    let (x, y) = separable_points(3, 40, 10, 3);
    let settings = ProbeSettings {
        epochs: 2,
        batch_size: 16,
        ..ProbeSettings::default()
    };
    let first = train_linear_classifier(&x, 10, &y, 3, &settings).predict(&x);
    let second = train_linear_classifier(&x, 10, &y, 3, &settings).predict(&x);
    assert_eq!(first, second);
}

#[test]
fn pooling_keeps_small_layers_whole() {
    let pooling = Pooling::choose([128, 7, 7], POOLED_TARGET_DIM);
    assert_eq!((pooling.kernel, pooling.stride), (1, 1));
    assert_eq!(pooling.dim(), 128 * 49);
}

#[test]
fn pooling_brings_large_layers_near_target() {
    for input in [[64, 28, 28], [192, 14, 14], [64, 32, 32], [384, 8, 8]] {
        let pooling = Pooling::choose(input, POOLED_TARGET_DIM);
        let ratio = pooling.dim() as f64 / POOLED_TARGET_DIM as f64;
        assert!((0.5..=2.0).contains(&ratio), "{}", pooling.describe());
        assert!(pooling.kernel >= pooling.stride, "{}", pooling.describe());
    }
}

#[test]
fn hold_out_splits_at_the_end() {
    let mut dataset = load_embedded_fashion_mnist().unwrap();
    dataset.truncate(100);
    let (train, test) = hold_out(&dataset, 0.2);
    assert_eq!(train.len(), 80);
    assert_eq!(test.len(), 20);
    assert_eq!(test.image(0), dataset.image(80));
    assert_eq!(
        test.labels.as_ref().unwrap()[..],
        dataset.labels.as_ref().unwrap()[80..]
    );
}

#[test]
fn eval_linear_and_cluster_on_trained_run() {
    let dir = tempfile::tempdir().unwrap();
    let train = deepcluster(
        &[
            "train",
            "--max-images",
            "300",
            "-k",
            "10",
            "--width",
            "0.125",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--pca-dim",
            "16",
            "--out",
            "run",
            "-q",
        ],
        dir.path(),
    );
    assert_success(&train);

    let linear = deepcluster(
        &[
            "eval",
            "linear",
            "--run",
            "run",
            "--max-images",
            "300",
            "--epochs",
            "5",
            "--layers",
            "conv1,conv5",
            "--pca-dim",
            "16",
            "-q",
        ],
        dir.path(),
    );
    assert_success(&linear);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run/eval/linear.json")).unwrap())
            .unwrap();
    let rows = json["rows"].as_array().unwrap();
    // Two layers, two models (trained and random), two protocols, then the pixels baseline
    // under both protocols.
    assert_eq!(rows.len(), 10);
    for row in rows {
        let top1 = row["top1"].as_f64().unwrap();
        // Ten classes: a probe on any of these features beats chance by far.
        assert!(top1 > 0.3, "{row}");
        assert!(top1 <= 1.0, "{row}");
    }
    assert!(rows.iter().any(|r| r["model"] == "trained"));
    assert!(rows.iter().any(|r| r["model"] == "random"));
    assert_eq!(rows.iter().filter(|r| r["model"] == "pixels").count(), 2);
    assert!(dir.path().join("run/eval/linear.png").is_file());
    let table = String::from_utf8_lossy(&linear.stdout);
    assert!(table.contains("conv5"), "{table}");

    let cluster = deepcluster(
        &[
            "eval",
            "cluster",
            "--run",
            "run",
            "--max-images",
            "300",
            "-q",
        ],
        dir.path(),
    );
    assert_success(&cluster);
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("run/eval/cluster-fc7.json")).unwrap(),
    )
    .unwrap();
    let names: Vec<&str> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["trained fc7", "random fc7", "pixels"]);
    let png = image::open(dir.path().join("run/eval/cluster-fc7.png")).unwrap();
    assert!(png.width() > 300, "width {}", png.width());
    assert!(png.height() > 300, "height {}", png.height());
}

#[test]
fn eval_linear_rejects_unknown_layer() {
    let dir = tempfile::tempdir().unwrap();
    let output = deepcluster(
        &["eval", "linear", "--max-images", "50", "--layers", "conv9"],
        dir.path(),
    );
    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(message.contains("conv9"), "{message}");
    assert!(
        message.contains("conv1, conv2, conv3, conv4, conv5"),
        "{message}"
    );
}

#[test]
fn majority_vote_labels_clusters() {
    use deepcluster::eval::majority::majority_classes;
    // Cluster 0: classes 1, 1, 2; cluster 1: class 0; cluster 2: a tie of 2 and 0, so the lower
    // class. Cluster 3 is empty and gets the most frequent class overall: a three-way tie, so 0.
    let assignments = [0, 0, 0, 1, 2, 2];
    let labels = [1, 1, 2, 0, 2, 0];
    assert_eq!(majority_classes(&assignments, &labels, 4, 3), [1, 0, 0, 0]);
}

#[test]
fn evaluate_writes_scores_and_grid() {
    let dir = tempfile::tempdir().unwrap();
    let output = deepcluster(
        &[
            "evaluate",
            "--max-images",
            "300",
            "-k",
            "10",
            "--pca-dim",
            "16",
            "--grid-images",
            "8",
            "--out",
            "ev.json",
            "-q",
        ],
        dir.path(),
    );
    assert_success(&output);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("ev.json")).unwrap()).unwrap();
    let test_accuracy = json["rows"][0]["test_accuracy"].as_f64().unwrap();
    // Ten classes: clusters of random features still beat chance.
    assert!(test_accuracy > 0.2, "{json}");
    assert!(dir.path().join("ev.png").is_file());
}

#[test]
fn eval_cluster_rejects_unknown_layer() {
    let dir = tempfile::tempdir().unwrap();
    let output = deepcluster(
        &["eval", "cluster", "--max-images", "50", "--layer", "conv9"],
        dir.path(),
    );
    assert_bad_input(
        &output,
        &["`conv9`", "conv1, conv2, conv3, conv4, conv5, fc7"],
    );
}

#[test]
fn model_trained_needs_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let output = deepcluster(&["eval", "cluster", "--model", "trained"], dir.path());
    assert_bad_input(&output, &["--model trained", "--run"]);
}

/// Reads the `name` (or `model`) of every row of a JSON report.
fn row_names(path: &Path, key: &str) -> Vec<String> {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[key].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn model_random_scores_only_the_random_network() {
    let dir = tempfile::tempdir().unwrap();
    train_tiny_run(dir.path());

    // With --run, the random network takes the run's shapes and its scores go to a file of
    // their own, beside the trained network's.
    let linear = deepcluster(
        &[
            "eval",
            "linear",
            "--run",
            "run",
            "--model",
            "random",
            "--max-images",
            "100",
            "--layers",
            "conv1",
            "--protocol",
            "pooled",
            "--epochs",
            "2",
            "-q",
        ],
        dir.path(),
    );
    assert_success(&linear);
    let names = row_names(&dir.path().join("run/eval/linear-random.json"), "model");
    assert_eq!(names, ["random", "pixels"]);
    assert!(!dir.path().join("run/eval/linear.json").exists());

    let cluster = deepcluster(
        &[
            "eval",
            "cluster",
            "--model",
            "random",
            "--width",
            "0.125",
            "--no-sobel",
            "--max-images",
            "100",
            "--out",
            "cluster.json",
            "-q",
        ],
        dir.path(),
    );
    assert_success(&cluster);
    let names = row_names(&dir.path().join("cluster.json"), "name");
    assert_eq!(names, ["random fc7", "pixels"]);

    let evaluate = deepcluster(
        &[
            "evaluate",
            "--run",
            "run",
            "--model",
            "random",
            "--max-images",
            "200",
            "-k",
            "10",
            "--pca-dim",
            "16",
            "--grid-images",
            "4",
            "-q",
        ],
        dir.path(),
    );
    assert_success(&evaluate);
    let names = row_names(&dir.path().join("run/eval/evaluate-random.json"), "model");
    assert_eq!(names, ["random"]);

    // The run fixes the network's shapes, so the options that set them are rejected.
    let output = deepcluster(
        &["eval", "cluster", "--run", "run", "--width", "0.25"],
        dir.path(),
    );
    assert_bad_input(&output, &["--width", "`run`"]);
}
