//! Resuming a run from its checkpoint gives the same epochs as a run that never stopped.
//!
//! This test has a file of its own so that it runs in a process of its own: burn's random
//! generator is global to the process, and a test training in parallel would draw from it.

use std::sync::atomic::AtomicBool;

use deepcluster::train::record::{assignment_path, read_assignments, read_records};
use deepcluster::train::{NoProgress, train};

mod common;

use common::{fashion_mnist, options, small_config};

#[test]
fn resuming_gives_same_epoch_as_not_stopping() {
    let dataset = fashion_mnist(600);
    let dir = tempfile::tempdir().unwrap();
    let straight = dir.path().join("straight");
    let stopped = dir.path().join("stopped");
    let no_interrupt = AtomicBool::new(false);

    train(
        &small_config(2),
        &dataset,
        &options(&straight, false),
        &NoProgress,
        &no_interrupt,
    )
    .unwrap();
    train(
        &small_config(1),
        &dataset,
        &options(&stopped, false),
        &NoProgress,
        &no_interrupt,
    )
    .unwrap();
    train(
        &small_config(2),
        &dataset,
        &options(&stopped, true),
        &NoProgress,
        &no_interrupt,
    )
    .unwrap();

    let expected = read_records(&straight).unwrap();
    let resumed = read_records(&stopped).unwrap();
    assert_eq!(resumed.len(), 2);
    for (a, b) in expected.iter().zip(&resumed) {
        assert_eq!(a.loss, b.loss, "epoch {}", a.epoch);
        assert_eq!(a.kmeans_objective, b.kmeans_objective, "epoch {}", a.epoch);
        assert_eq!(a.nmi_previous, b.nmi_previous, "epoch {}", a.epoch);
    }
    assert_eq!(
        read_assignments(&assignment_path(&straight, 2)).unwrap(),
        read_assignments(&assignment_path(&stopped, 2)).unwrap()
    );
}
