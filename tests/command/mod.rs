//! Helpers that run the `deepcluster` binary in a test's folder. Each test crate that includes
//! this module uses a subset of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `deepcluster ARGS` in `dir` and returns its output.
pub fn deepcluster(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepcluster"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the deepcluster binary runs")
}

/// Returns the standard error of `output` as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Checks that the command succeeded, showing its standard error otherwise.
pub fn assert_success(output: &Output) {
    assert!(output.status.success(), "stderr: {}", stderr(output));
}

/// Checks that the command exited with code 2 (invalid input) with a message that contains
/// every fragment of `expected`, without a panic.
pub fn assert_bad_input(output: &Output, expected: &[&str]) {
    let message = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {message}");
    for fragment in expected {
        assert!(
            message.contains(fragment),
            "`{fragment}` missing from: {message}"
        );
    }
    assert!(!message.contains("panicked"), "{message}");
}

/// Options that make a training run take seconds: 96 images, a narrow network, 4 clusters,
/// one epoch.
pub const TINY_RUN: &[&str] = &[
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
    "--pca-dim",
    "16",
    "-q",
];

/// Trains a [`TINY_RUN`] on the embedded Fashion-MNIST images into `dir/run`, in a few seconds.
pub fn train_tiny_run(dir: &Path) {
    let mut args = vec!["train", "--out", "run"];
    args.extend_from_slice(TINY_RUN);
    assert_success(&deepcluster(&args, dir));
}
