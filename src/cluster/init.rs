//! Initial centroids for k-means: distinct random points, or k-means++ whose distance
//! updates run as blocked assignment steps.
//!
//! Plain k-means++ updates every point's distance after each new centroid, which makes `k`
//! passes over the data with one centroid each. Here the distances are refreshed by one
//! blocked assignment step after each batch of new centroids. Draws in between use the stale
//! distances `D_old ≥ D` and are corrected by rejection: a point drawn with probability
//! proportional to `D_old` is kept with probability `D / D_old`, where `D` includes the
//! batch's centroids. Kept points are therefore drawn with probability proportional to `D`,
//! exactly as in k-means++.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::assign::{AssignmentKernel, PreparedCentroids, assign_into, squared_distance};
use super::kmeans::Init;

/// Most new centroids between two refreshes of all distances.
const MAX_BATCH: usize = 256;

/// Draws rejected in a row before the distances are refreshed early.
const MAX_REJECTIONS: usize = 32;

/// Points per block of the sampling sums.
const SAMPLE_BLOCK: usize = 1024;

/// Returns `k` initial centroids (`[k, dim]`) drawn from `points` by `init`.
pub(crate) fn initialise(
    points: &[f32],
    dim: usize,
    k: usize,
    init: Init,
    kernel: AssignmentKernel,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let n_points = points.len() / dim;
    let indices = match init {
        Init::RandomPoints => rand::seq::index::sample(rng, n_points, k).into_vec(),
        Init::KMeansPlusPlus => kmeans_plus_plus(points, dim, k, kernel, rng),
    };
    gather_rows(points, dim, &indices)
}

fn gather_rows(points: &[f32], dim: usize, indices: &[usize]) -> Vec<f32> {
    let mut rows = Vec::with_capacity(indices.len() * dim);
    for &i in indices {
        rows.extend_from_slice(&points[i * dim..(i + 1) * dim]);
    }
    rows
}

/// Squared distance of every point to its nearest chosen centroid, with block sums for
/// drawing points in proportion to it.
struct Weights {
    nearest: Vec<f32>,
    block_sums: Vec<f64>,
    total: f64,
}

impl Weights {
    /// Lowers each point's distance to its distance to the nearest of `new_centroids`, then
    /// recomputes the sums. Distances come from the assignment step, so a chosen point and
    /// its duplicates get exactly 0.
    fn refresh(
        &mut self,
        points: &[f32],
        dim: usize,
        new_centroids: &[f32],
        kernel: AssignmentKernel,
        buffers: &mut (Vec<u32>, Vec<f32>),
    ) {
        let (assignments, distances) = buffers;
        let prepared = PreparedCentroids::new(new_centroids, dim, kernel);
        assign_into(points, dim, &prepared, assignments, distances, None);
        self.nearest
            .par_iter_mut()
            .zip(distances.par_iter())
            .for_each(|(nearest, &distance)| *nearest = nearest.min(distance));
        self.block_sums = self
            .nearest
            .par_chunks(SAMPLE_BLOCK)
            .map(|block| block.iter().map(|&d| f64::from(d)).sum())
            .collect();
        self.total = self.block_sums.iter().sum();
    }

    /// Draws a point with probability proportional to its distance; `total` must be
    /// positive.
    fn draw(&self, rng: &mut ChaCha8Rng) -> usize {
        let mut target = rng.random::<f64>() * self.total;
        let mut block = 0;
        while block + 1 < self.block_sums.len() && target >= self.block_sums[block] {
            target -= self.block_sums[block];
            block += 1;
        }
        let start = block * SAMPLE_BLOCK;
        let values = &self.nearest[start..(start + SAMPLE_BLOCK).min(self.nearest.len())];
        let mut cumulative = 0.0f64;
        let mut last_positive = 0;
        for (i, &d) in values.iter().enumerate() {
            if d > 0.0 {
                last_positive = i;
                cumulative += f64::from(d);
                if cumulative > target {
                    return start + i;
                }
            }
        }
        // Rounding can leave `target` just above the block's running sum.
        start + last_positive
    }
}

/// k-means++ (Arthur and Vassilvitskii, 2007): the first centroid is a uniform draw, each
/// next one a point drawn with probability proportional to its squared distance to the
/// nearest centroid chosen so far. Returns the indices of `k` distinct points. Once every
/// remaining point coincides with a chosen one, or the squared distances overflow `f32`,
/// the rest are uniform draws among the points not chosen yet.
fn kmeans_plus_plus(
    points: &[f32],
    dim: usize,
    k: usize,
    kernel: AssignmentKernel,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    let n_points = points.len() / dim;
    let mut chosen = Vec::with_capacity(k);
    let mut is_chosen = vec![false; n_points];
    let mut weights = Weights {
        nearest: vec![f32::INFINITY; n_points],
        block_sums: Vec::new(),
        total: 0.0,
    };
    let mut buffers = (vec![0u32; n_points], vec![0.0f32; n_points]);
    // Centroids chosen since the last refresh, as rows.
    let mut batch: Vec<f32> = Vec::new();

    let first = rng.random_range(0..n_points);
    chosen.push(first);
    is_chosen[first] = true;
    batch.extend_from_slice(&points[first * dim..(first + 1) * dim]);
    let mut rejections = 0;
    while chosen.len() < k {
        let batch_len = batch.len() / dim;
        let batch_limit = (chosen.len() / 2).clamp(1, MAX_BATCH);
        if batch_len > 0 && (batch_len >= batch_limit || rejections >= MAX_REJECTIONS) {
            weights.refresh(points, dim, &batch, kernel, &mut buffers);
            batch.clear();
            rejections = 0;
        }
        let next = if weights.total > 0.0 && weights.total.is_finite() {
            let candidate = weights.draw(rng);
            let stale = weights.nearest[candidate];
            let current = batch
                .chunks_exact(dim)
                .map(|c| squared_distance(&points[candidate * dim..(candidate + 1) * dim], c))
                .fold(stale, f32::min);
            if rng.random::<f64>() * f64::from(stale) < f64::from(current) {
                candidate
            } else {
                rejections += 1;
                continue;
            }
        } else if batch.is_empty() {
            // Every point coincides with a chosen centroid, or the distances overflow.
            let rank = rng.random_range(0..n_points - chosen.len());
            is_chosen
                .iter()
                .enumerate()
                .filter(|(_, chosen)| !**chosen)
                .nth(rank)
                .map(|(i, _)| i)
                .expect("fewer points chosen than there are points")
        } else {
            // Weights are stale only until the next refresh, which comes at once.
            rejections = MAX_REJECTIONS;
            continue;
        };
        debug_assert!(!is_chosen[next], "k-means++ drew point {next} twice");
        chosen.push(next);
        is_chosen[next] = true;
        batch.extend_from_slice(&points[next * dim..(next + 1) * dim]);
    }
    chosen
}
