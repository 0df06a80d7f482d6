//! Runs the `deepcluster` binary on bad input: each case must exit with code 2 (or 1 for a run
//! that fails after its input was accepted), print one clear error naming the file or value, and
//! leave no partial file behind.

mod command;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use command::{TINY_RUN, assert_bad_input, deepcluster, stderr};

/// Lists every file under `dir` whose name marks it as partial.
fn temporary_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(temporary_files(&path));
        } else if entry.file_name().to_string_lossy().ends_with(".tmp") {
            found.push(path);
        }
    }
    found
}

fn run_with(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train"];
    args.extend_from_slice(extra);
    args.extend_from_slice(TINY_RUN);
    deepcluster(&args, dir)
}

#[test]
fn missing_data_path() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_with(dir.path(), &["--data", "no/such/file", "--out", "run"]);
    assert_bad_input(&output, &["no/such/file"]);
    assert!(!dir.path().join("run").exists());
}

#[test]
fn unknown_format_name() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_with(dir.path(), &["--data", ".", "--format", "jpeg2000"]);
    assert_bad_input(&output, &["jpeg2000"]);
}

#[test]
fn undetectable_format() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let output = run_with(dir.path(), &["--data", "notes.txt"]);
    assert_bad_input(&output, &["notes.txt", "--format"]);
}

#[test]
fn wrong_idx_magic_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = vec![0, 0, 8, 1, 0, 0, 0, 1];
    bytes.extend([0u8; 16]);
    fs::write(dir.path().join("train-images-idx3-ubyte"), bytes).unwrap();
    let output = run_with(dir.path(), &["--data", "train-images-idx3-ubyte"]);
    assert_bad_input(&output, &["train-images-idx3-ubyte", "magic"]);
}

fn idx_images(n: u32, rows: u32, columns: u32, pixels: usize) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 3];
    for value in [n, rows, columns] {
        bytes.extend(value.to_be_bytes());
    }
    bytes.extend(std::iter::repeat_n(7u8, pixels));
    bytes
}

fn idx_labels(n: u32) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 1];
    bytes.extend(n.to_be_bytes());
    bytes.extend((0..n).map(|i| (i % 10) as u8));
    bytes
}

#[test]
fn truncated_idx_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("train-images-idx3-ubyte"),
        idx_images(10, 28, 28, 100),
    )
    .unwrap();
    let output = run_with(dir.path(), &["--data", "train-images-idx3-ubyte"]);
    assert_bad_input(&output, &["train-images-idx3-ubyte"]);
}

#[test]
fn image_and_label_counts_differ() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("train-images-idx3-ubyte"),
        idx_images(10, 4, 4, 160),
    )
    .unwrap();
    fs::write(dir.path().join("train-labels-idx1-ubyte"), idx_labels(9)).unwrap();
    let output = run_with(dir.path(), &["--data", "train-images-idx3-ubyte"]);
    assert_bad_input(&output, &["10", "9"]);
}

#[test]
fn cifar_file_of_wrong_size() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("data_batch_1.bin"), vec![0u8; 3073 * 2 + 5]).unwrap();
    let output = run_with(dir.path(), &["--data", "data_batch_1.bin"]);
    assert_bad_input(&output, &["data_batch_1.bin", "3073"]);
}

#[test]
fn empty_image_folder() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("images")).unwrap();
    let output = run_with(dir.path(), &["--data", "images", "--format", "folder"]);
    assert_bad_input(&output, &["images"]);
}

fn write_png_folder(root: &Path, n_per_class: usize) {
    for class in ["a", "b"] {
        let class_dir = root.join(class);
        fs::create_dir_all(&class_dir).unwrap();
        for i in 0..n_per_class {
            let shade = if class == "a" {
                30 + i as u8
            } else {
                200 - i as u8
            };
            let image = image::GrayImage::from_pixel(12, 12, image::Luma([shade]));
            image.save(class_dir.join(format!("{i:03}.png"))).unwrap();
        }
    }
}

#[test]
fn undecodable_image_is_skipped_or_fatal_with_strict() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    write_png_folder(&images, 6);
    fs::write(images.join("a").join("broken.png"), b"not a png").unwrap();
    let tiny = [
        "train",
        "--data",
        "images",
        "-k",
        "2",
        "--width",
        "0.125",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--pca-dim",
        "4",
    ];

    let mut args = tiny.to_vec();
    args.extend(["--out", "run"]);
    let output = deepcluster(&args, dir.path());
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    assert!(stderr(&output).contains("skipped 1"), "{}", stderr(&output));

    let mut args = tiny.to_vec();
    args.extend(["--strict", "--out", "strict-run"]);
    let output = deepcluster(&args, dir.path());
    assert_bad_input(&output, &["broken.png"]);
    assert!(!dir.path().join("strict-run").exists());
}

#[test]
fn too_few_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let output = deepcluster(&["train", "-k", "1", "--out", "run"], dir.path());
    assert_bad_input(&output, &["k = 1"]);
    assert!(!dir.path().join("run").exists());
}

#[test]
fn more_clusters_than_images() {
    let dir = tempfile::tempdir().unwrap();
    let output = deepcluster(
        &["train", "--max-images", "50", "-k", "100", "--out", "run"],
        dir.path(),
    );
    assert_bad_input(&output, &["k = 100", "50 images"]);
}

#[test]
fn zero_pca_dim() {
    let dir = tempfile::tempdir().unwrap();
    let output = deepcluster(&["train", "--pca-dim", "0"], dir.path());
    assert_bad_input(&output, &["pca_dim = 0"]);
}

#[test]
fn rotation_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let output = deepcluster(&["train", "--rotation", "270"], dir.path());
    assert_bad_input(&output, &["rotation_degrees = 270", "[0, 180]"]);
}

#[test]
fn unknown_cluster_layer_lists_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_with(dir.path(), &["--cluster-layer", "conv9", "--out", "run"]);
    assert_bad_input(&output, &["conv9", "conv1, conv2, conv3, conv4, conv5"]);
    assert!(!dir.path().join("run").exists());
}

#[test]
fn config_value_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("bad.toml"), "momentum = 1.5\n").unwrap();
    let output = deepcluster(&["train", "--config", "bad.toml"], dir.path());
    assert_bad_input(&output, &["momentum = 1.5"]);
}

#[test]
fn unknown_config_key() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("bad.toml"), "epochs = 2\nclusters = 10\n").unwrap();
    let output = deepcluster(&["train", "--config", "bad.toml"], dir.path());
    assert_bad_input(&output, &["bad.toml", "clusters", "line 2"]);
}

#[test]
fn unwritable_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a-file"), "").unwrap();
    let output = run_with(dir.path(), &["--out", "a-file/run"]);
    assert_bad_input(&output, &["a-file/run"]);
}

#[test]
fn non_finite_loss_stops_without_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // After one step at this learning rate the weights overflow to infinity.
    let output = run_with(dir.path(), &["--out", "run", "--lr", "1e30"]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("epoch 1"), "{message}");
    assert!(message.contains("NaN or infinite"), "{message}");
    assert!(!dir.path().join("run/checkpoints/epoch_0001.json").exists());
    assert!(
        temporary_files(dir.path()).is_empty(),
        "{:?}",
        temporary_files(dir.path())
    );
}

/// Cuts a file to its first half, as a crash during a copy would.
fn truncate_to_half(path: &Path) {
    let bytes = fs::read(path).unwrap();
    fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

#[test]
fn corrupt_checkpoint_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_with(dir.path(), &["--out", "run"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    truncate_to_half(&dir.path().join("run/checkpoints/epoch_0001.safetensors"));

    let output = deepcluster(
        &["train", "--resume", "run", "--epochs", "2", "-q"],
        dir.path(),
    );
    assert_bad_input(&output, &["epoch_0001.safetensors"]);
    assert!(!dir.path().join("run/checkpoints/epoch_0002.json").exists());
    assert!(
        temporary_files(dir.path()).is_empty(),
        "{:?}",
        temporary_files(dir.path())
    );
}

#[test]
fn resume_with_another_dataset_size() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_with(dir.path(), &["--out", "run"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let meta_path = dir.path().join("run/checkpoints/epoch_0001.json");
    let meta = fs::read_to_string(&meta_path).unwrap();
    fs::write(
        &meta_path,
        meta.replace("\"n_images\": 96", "\"n_images\": 95"),
    )
    .unwrap();

    let output = deepcluster(
        &["train", "--resume", "run", "--epochs", "2", "-q"],
        dir.path(),
    );
    assert_bad_input(&output, &["epoch_0001.json", "96", "95"]);
}

#[test]
fn resume_without_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("empty-run")).unwrap();
    let output = deepcluster(&["train", "--resume", "empty-run"], dir.path());
    assert_bad_input(&output, &["empty-run", "checkpoint"]);
}

#[test]
fn existing_run_folder_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_with(dir.path(), &["--out", "run"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let before = fs::read(dir.path().join("run/metrics.jsonl")).unwrap();
    let output = run_with(dir.path(), &["--out", "run"]);
    assert_bad_input(&output, &["run", "--resume"]);
    assert_eq!(
        fs::read(dir.path().join("run/metrics.jsonl")).unwrap(),
        before
    );
}

#[test]
fn resume_rejects_changed_settings() {
    let dir = tempfile::tempdir().unwrap();
    let output = deepcluster(&["train", "--resume", "run", "-k", "10"], dir.path());
    assert_bad_input(&output, &["-k", "--resume"]);
}

#[test]
fn image_sizes_the_network_cannot_take() {
    let dir = tempfile::tempdir().unwrap();
    for size in ["4x4", "32x2000"] {
        let output = run_with(dir.path(), &["--image-size", size]);
        assert_bad_input(&output, &[size, "8 to 128"]);
    }
    // Native 6×6 images, with no --image-size.
    let images = dir.path().join("small");
    fs::create_dir_all(&images).unwrap();
    for i in 0..4u8 {
        image::GrayImage::from_pixel(6, 6, image::Luma([40 * i]))
            .save(images.join(format!("{i}.png")))
            .unwrap();
    }
    let output = run_with(dir.path(), &["--data", "small", "--out", "run"]);
    assert_bad_input(&output, &["small", "6x6", "--image-size"]);
    assert!(!dir.path().join("run").exists());
}

#[test]
fn invalid_threads_on_any_command() {
    let dir = tempfile::tempdir().unwrap();
    for command in [&["train"][..], &["eval", "cluster"], &["report", "run"]] {
        let mut args = command.to_vec();
        args.extend(["--threads", "0"]);
        let output = deepcluster(&args, dir.path());
        assert_bad_input(&output, &["--threads 0", "at least 1"]);
    }
    for command in [&["train"][..], &["eval", "linear"]] {
        let mut args = command.to_vec();
        args.extend(["--threads", "99999"]);
        let output = deepcluster(&args, dir.path());
        assert_bad_input(&output, &["--threads 99999", "at most 1024"]);
    }
}

#[test]
fn damaged_latest_checkpoint_on_eval() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_with(dir.path(), &["--out", "run"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = deepcluster(
        &["train", "--resume", "run", "--epochs", "2", "-q"],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    truncate_to_half(&dir.path().join("run/checkpoints/epoch_0002.safetensors"));

    let output = deepcluster(
        &["eval", "cluster", "--run", "run", "--max-images", "50"],
        dir.path(),
    );
    assert_bad_input(
        &output,
        &[
            "epoch_0002.safetensors",
            "epoch 1 may be intact",
            "--resume",
        ],
    );
}
