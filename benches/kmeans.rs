//! Times the clustering stage of DeepCluster: PCA with whitening, L2 normalisation, then
//! Lloyd iterations of `kmeans` starting from the first `k` reduced points. Prints one JSON
//! line, which `scripts/bench_faiss.py` reads to compare against faiss and scikit-learn.
//!
//! Run with `cargo bench --bench kmeans`. Settings come from environment variables:
//!
//! - `KMEANS_BENCH_DATA`: raw little-endian `f32` file of `N × D` points (written by
//!   `scripts/bench_faiss.py`). Without it the points are uniform in [0, 1) from a seeded
//!   ChaCha8 generator.
//! - `KMEANS_BENCH_N` (default 50,000), `KMEANS_BENCH_DIM` (256), `KMEANS_BENCH_PCA_DIM`
//!   (0: no PCA, rows are only L2-normalised), `KMEANS_BENCH_K` (1,000),
//!   `KMEANS_BENCH_ITERATIONS` (5).
//! - `KMEANS_BENCH_KERNEL`: `auto` (default) or `f32`, the [`AssignmentKernel`].
//!
//! Thread counts come from `RAYON_NUM_THREADS` and `MATMUL_NUM_THREADS`. Peak memory is the
//! process's resident high-water mark (`VmHWM` in `/proc/self/status`, Linux only).

use std::time::Instant;

use deepcluster::cluster::{
    AssignmentKernel, KMeansConfig, Pca, PcaConfig, kmeans, l2_normalize_rows,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn setting(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a non-negative integer")),
        Err(_) => default,
    }
}

fn kernel() -> AssignmentKernel {
    match std::env::var("KMEANS_BENCH_KERNEL").as_deref() {
        Err(_) | Ok("auto") => AssignmentKernel::Auto,
        Ok("f32") => AssignmentKernel::Float32,
        Ok(other) => panic!("KMEANS_BENCH_KERNEL={other} is not auto or f32"),
    }
}

fn load_points(n_points: usize, dim: usize) -> Vec<f32> {
    match std::env::var("KMEANS_BENCH_DATA") {
        Ok(path) => {
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("failed to read {path}: {e}"));
            assert_eq!(
                bytes.len(),
                n_points * dim * 4,
                "{path} must contain {n_points} x {dim} f32 values"
            );
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        }
        Err(_) => {
            let mut rng = ChaCha8Rng::seed_from_u64(1234);
            (0..n_points * dim).map(|_| rng.random::<f32>()).collect()
        }
    }
}

/// Returns the resident-set high-water mark in MiB, or `None` where `/proc` is missing.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let n_points = setting("KMEANS_BENCH_N", 50_000);
    let dim = setting("KMEANS_BENCH_DIM", 256);
    let pca_dim = setting("KMEANS_BENCH_PCA_DIM", 0);
    let n_clusters = setting("KMEANS_BENCH_K", 1_000);
    let n_iterations = setting("KMEANS_BENCH_ITERATIONS", 5);
    let points = load_points(n_points, dim);

    let start = Instant::now();
    let (mut reduced, reduced_dim) = if pca_dim > 0 {
        let config = PcaConfig {
            output_dim: pca_dim,
            whiten: true,
            max_fit_points: None,
            seed: 0,
        };
        let pca = Pca::fit(&points, dim, &config).expect("PCA fits");
        (pca.transform(&points), pca.output_dim())
    } else {
        (points, dim)
    };
    l2_normalize_rows(&mut reduced, reduced_dim);
    let pca_seconds = start.elapsed().as_secs_f64();

    let config = KMeansConfig {
        max_n_iterations: n_iterations,
        initial_centroids: Some(reduced[..n_clusters * reduced_dim].to_vec()),
        assignment_kernel: kernel(),
        ..KMeansConfig::new(n_clusters)
    };
    let start = Instant::now();
    let result = kmeans(&reduced, reduced_dim, &config).expect("k-means runs");
    let kmeans_seconds = start.elapsed().as_secs_f64();
    let iteration_seconds: Vec<f64> = result.iterations.iter().map(|s| s.seconds).collect();
    let per_iteration = iteration_seconds.iter().sum::<f64>() / iteration_seconds.len() as f64;
    // The objective of the last iteration's assignment step, as faiss's `obj[-1]`.
    let objective = result.iterations.last().map_or(f64::NAN, |s| s.objective);
    let report = serde_json::json!({
        "library": "deepcluster-rs",
        "kernel": format!("{:?}", config.assignment_kernel),
        "n_points": n_points,
        "dim": dim,
        "pca_dim": pca_dim,
        "n_clusters": n_clusters,
        "n_iterations": n_iterations,
        "threads": rayon::current_num_threads(),
        "pca_seconds": pca_seconds,
        "seconds_per_iteration": per_iteration,
        "iteration_seconds": iteration_seconds,
        "kmeans_seconds": kmeans_seconds,
        "objective": objective,
        "peak_memory_mib": peak_memory_mib(),
    });
    println!("{report}");
}
