//! Times Lloyd iterations of `kmeans` at DeepCluster-like scale: N = 50,000 points,
//! D = 256, k = 1,000, starting from the first k points.
//!
//! Run with `cargo bench --bench kmeans`. Thread counts come from `RAYON_NUM_THREADS` and
//! `MATMUL_NUM_THREADS`. To time the same points as faiss, set `KMEANS_BENCH_DATA` to the
//! raw little-endian f32 file written by `scripts/bench_faiss.py`. Without it the points are
//! uniform in [0, 1) from a seeded ChaCha8 generator.

use std::time::Instant;

use deepcluster::cluster::{KMeansConfig, kmeans};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const N_POINTS: usize = 50_000;
const DIM: usize = 256;
const N_CLUSTERS: usize = 1_000;
const N_ITERATIONS: usize = 5;

fn load_points() -> Vec<f32> {
    match std::env::var("KMEANS_BENCH_DATA") {
        Ok(path) => {
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("failed to read {path}: {e}"));
            assert_eq!(
                bytes.len(),
                N_POINTS * DIM * 4,
                "{path} must hold {N_POINTS} x {DIM} f32"
            );
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        }
        Err(_) => {
            let mut rng = ChaCha8Rng::seed_from_u64(1234);
            (0..N_POINTS * DIM).map(|_| rng.random::<f32>()).collect()
        }
    }
}

fn main() {
    let points = load_points();
    let config = KMeansConfig {
        max_n_iterations: N_ITERATIONS,
        initial_centroids: Some(points[..N_CLUSTERS * DIM].to_vec()),
        ..KMeansConfig::new(N_CLUSTERS)
    };
    let start = Instant::now();
    let result = kmeans(&points, DIM, &config).expect("k-means runs");
    let total = start.elapsed().as_secs_f64();
    let iteration_seconds: Vec<f64> = result.iterations.iter().map(|s| s.seconds).collect();
    let mean = iteration_seconds.iter().sum::<f64>() / iteration_seconds.len() as f64;
    println!(
        "N={N_POINTS} D={DIM} k={N_CLUSTERS} threads={}",
        rayon::current_num_threads()
    );
    println!("iteration seconds: {iteration_seconds:.3?}");
    println!("mean seconds/iteration: {mean:.4}");
    println!("total seconds (including final assignment): {total:.3}");
    println!("final objective: {:.6e}", result.objective);
}
