//! Runs k-means at the scale of DeepCluster on ImageNet: 1.3 million L2-normalised Gaussian
//! points of dimension 256 and 10,000 clusters, for a few iterations. Prints one JSON line
//! with the seconds for initialisation and per iteration, and the peak resident memory.
//!
//! ```sh
//! cargo build --release --example kmeans_scale
//! /usr/bin/time -v target/release/examples/kmeans_scale
//! ```
//!
//! Settings come from environment variables: `SCALE_N` (default 1,300,000), `SCALE_DIM`
//! (256), `SCALE_K` (10,000), `SCALE_ITERATIONS` (3), and `SCALE_INIT` (`random`, the
//! default, or `kmeans++`). Threads come from `RAYON_NUM_THREADS`.

use std::time::Instant;

use deepcluster::cluster::{Init, KMeansConfig, initial_centroids, kmeans, l2_normalize_rows};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Points generated per seeded chunk, so that the data do not depend on the thread count.
const CHUNK_POINTS: usize = 4096;

fn setting(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a non-negative integer")),
        Err(_) => default,
    }
}

fn init() -> Init {
    match std::env::var("SCALE_INIT").as_deref() {
        Err(_) | Ok("random") => Init::RandomPoints,
        Ok("kmeans++") => Init::KMeansPlusPlus,
        Ok(other) => panic!("SCALE_INIT={other} is not random or kmeans++"),
    }
}

/// Standard normal points by the Box–Muller transform, chunk `i` from seed `i`.
fn gaussian_points(n_points: usize, dim: usize) -> Vec<f32> {
    let mut points = vec![0.0f32; n_points * dim];
    points
        .par_chunks_mut(CHUNK_POINTS * dim)
        .enumerate()
        .for_each(|(chunk, values)| {
            let mut rng = ChaCha8Rng::seed_from_u64(chunk as u64);
            for pair in values.chunks_mut(2) {
                let radius = (-2.0 * (1.0 - rng.random::<f64>()).ln()).sqrt();
                let angle = std::f64::consts::TAU * rng.random::<f64>();
                pair[0] = (radius * angle.cos()) as f32;
                if let Some(second) = pair.get_mut(1) {
                    *second = (radius * angle.sin()) as f32;
                }
            }
        });
    points
}

/// Returns the resident-set high-water mark in MiB, or `None` where `/proc` is missing.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let n_points = setting("SCALE_N", 1_300_000);
    let dim = setting("SCALE_DIM", 256);
    let n_clusters = setting("SCALE_K", 10_000);
    let n_iterations = setting("SCALE_ITERATIONS", 3);

    let start = Instant::now();
    let mut points = gaussian_points(n_points, dim);
    l2_normalize_rows(&mut points, dim);
    let data_seconds = start.elapsed().as_secs_f64();

    let mut config = KMeansConfig {
        max_n_iterations: n_iterations,
        init: init(),
        ..KMeansConfig::new(n_clusters)
    };
    let start = Instant::now();
    let centroids = initial_centroids(&points, dim, &config).expect("initialisation runs");
    let init_seconds = start.elapsed().as_secs_f64();
    config.initial_centroids = Some(centroids);

    let start = Instant::now();
    let result = kmeans(&points, dim, &config).expect("k-means runs");
    let kmeans_seconds = start.elapsed().as_secs_f64();
    let iteration_seconds: Vec<f64> = result.iterations.iter().map(|s| s.seconds).collect();
    let per_iteration = iteration_seconds.iter().sum::<f64>() / iteration_seconds.len() as f64;
    let report = serde_json::json!({
        "n_points": n_points,
        "dim": dim,
        "n_clusters": n_clusters,
        "n_iterations": n_iterations,
        "init": format!("{:?}", config.init),
        "threads": rayon::current_num_threads(),
        "data_seconds": data_seconds,
        "init_seconds": init_seconds,
        "kmeans_seconds": kmeans_seconds,
        "seconds_per_iteration": per_iteration,
        "iteration_seconds": iteration_seconds,
        "objective": result.iterations.last().map_or(f64::NAN, |s| s.objective),
        "n_splits": result.n_splits,
        "peak_memory_mib": peak_memory_mib(),
    });
    println!("{report}");
}
