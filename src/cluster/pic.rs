//! Power iteration clustering (PIC) on a k-nearest-neighbour graph, the second clustering
//! method of DeepCluster (Caron et al., 2018, Section 3.5).
//!
//! The steps follow `clustering.py` of the authors' code (facebookresearch/deepcluster). An
//! exact k-NN graph gets Gaussian weights `exp(−d/σ²)` on squared Euclidean distances and is
//! symmetrised as `W = A + Aᵀ`. Power iteration runs `v ← normalise(α·Wv + (1 − α)/n)` 200
//! times from the uniform vector, in `f64` where the original uses `f32`. Every node then
//! points to the neighbour `j` maximising `W_ij·(v_j − v_i)` when that is positive, and the
//! clusters are the nodes reached by following pointers (local maxima of `v`). Finally a
//! cluster of one point joins the cluster of its nearest neighbour that is not a singleton.
//! The number of clusters comes out of the data.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::check_points;
use super::error::ClusterError;
use super::gemm::matmul_a_bt;

/// Query points per parallel block of the k-NN search.
const QUERY_BLOCK: usize = 256;

/// Database points per matrix product of the k-NN search; bounds the scratch buffer to
/// `QUERY_BLOCK * DATABASE_TILE` floats per thread.
const DATABASE_TILE: usize = 2048;

/// Settings for [`pic`]. The defaults are those of DeepCluster's PIC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PicConfig {
    /// Neighbours per point in the k-NN graph, not counting the point itself. Default 5.
    pub n_neighbors: usize,
    /// Bandwidth σ of the Gaussian kernel `exp(−d/σ²)`, where `d` is the squared Euclidean
    /// distance. Default 0.2.
    pub sigma: f32,
    /// Weight α of the graph term in each power iteration, in (0, 1); the rest, `1 − α`, is a
    /// uniform restart that keeps every score positive. Default 0.001.
    pub alpha: f64,
    /// Number of power iterations, at least 1. Default 200.
    pub n_iterations: usize,
    /// Move each single-point cluster into the cluster of its nearest neighbour that is not
    /// itself a single-point cluster. Default true.
    pub distribute_singletons: bool,
}

impl Default for PicConfig {
    fn default() -> Self {
        Self {
            n_neighbors: 5,
            sigma: 0.2,
            alpha: 0.001,
            n_iterations: 200,
            distribute_singletons: true,
        }
    }
}

impl PicConfig {
    /// Checks the settings that do not depend on the data: `n_neighbors` and `n_iterations`
    /// at least 1, `sigma` finite and positive, `alpha` in (0, 1).
    pub fn validate(&self) -> Result<(), ClusterError> {
        let invalid = |field, value: String, expected| ClusterError::InvalidPicSetting {
            field,
            value,
            expected,
        };
        if self.n_neighbors == 0 {
            return Err(invalid("n_neighbors", "0".into(), "at least 1"));
        }
        if !(self.sigma.is_finite() && self.sigma > 0.0) {
            return Err(invalid(
                "sigma",
                self.sigma.to_string(),
                "a positive number",
            ));
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(invalid("alpha", self.alpha.to_string(), "in (0, 1)"));
        }
        if self.n_iterations == 0 {
            return Err(invalid("n_iterations", "0".into(), "at least 1"));
        }
        Ok(())
    }
}

/// Output of [`pic`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PicResult {
    /// Cluster id of every point, in `0..cluster_sizes.len()`. Clusters are numbered in the
    /// order of their local maximum's point index.
    pub assignments: Vec<u32>,
    /// Number of points in each cluster; none is empty.
    pub cluster_sizes: Vec<usize>,
    /// Number of single-point clusters moved into a neighbour's cluster.
    pub n_joined_singletons: usize,
}

impl PicResult {
    /// Number of clusters found.
    pub fn n_clusters(&self) -> usize {
        self.cluster_sizes.len()
    }
}

/// Exact k-nearest-neighbour lists of every point, excluding the point itself.
#[derive(Debug, Clone, PartialEq)]
pub struct NeighborGraph {
    /// Neighbours per point.
    pub n_neighbors: usize,
    /// Neighbour indices, `[n_points, n_neighbors]`, nearest first; ties go to the lower index.
    pub indices: Vec<u32>,
    /// Squared Euclidean distances matching `indices`, clamped at 0 against rounding.
    pub distances: Vec<f32>,
}

/// Clusters `points` of shape `[n_points, dim]` by power iteration clustering.
///
/// The result depends only on the inputs, not on the number of threads.
///
/// # Errors
/// Invalid settings (see [`PicConfig::validate`]), an empty, misshaped or non-finite input,
/// or `n_neighbors >= n_points`.
pub fn pic(points: &[f32], dim: usize, config: &PicConfig) -> Result<PicResult, ClusterError> {
    config.validate()?;
    let n_points = check_points(points, dim)?;
    if config.n_neighbors >= n_points {
        return Err(ClusterError::TooManyNeighbors {
            n_neighbors: config.n_neighbors,
            n_points,
        });
    }
    let graph = nearest_neighbors(points, dim, config.n_neighbors);
    let weights = SparseSymmetric::from_graph(&graph, config.sigma);
    let scores = power_iteration(&weights, config.alpha, config.n_iterations);
    let roots = follow_pointers(&weights, &scores);
    let mut result = number_clusters(&roots);
    if config.distribute_singletons {
        join_singletons(&mut result, &graph);
    }
    tracing::debug!(
        n_clusters = result.n_clusters(),
        n_joined_singletons = result.n_joined_singletons,
        "PIC finished"
    );
    Ok(result)
}

/// Computes the exact `n_neighbors` nearest neighbours of every point, excluding the point
/// itself, by blocked matrix products (`‖x‖² + ‖y‖² − 2x·y`).
///
/// # Panics
/// Panics if `dim` is 0, the length is not a multiple of `dim`, or `n_neighbors` is not
/// smaller than the number of points.
pub fn nearest_neighbors(points: &[f32], dim: usize, n_neighbors: usize) -> NeighborGraph {
    assert!(dim > 0, "dimension must be at least 1");
    assert!(
        points.len().is_multiple_of(dim),
        "points length is not a multiple of dim {dim}"
    );
    let n_points = points.len() / dim;
    assert!(
        n_neighbors < n_points,
        "n_neighbors {n_neighbors} must be smaller than the number of points {n_points}"
    );
    let norms: Vec<f32> = points
        .par_chunks(dim)
        .map(|row| row.iter().map(|&v| v * v).sum())
        .collect();
    let mut indices = vec![0u32; n_points * n_neighbors];
    let mut distances = vec![0.0f32; n_points * n_neighbors];
    indices
        .par_chunks_mut(QUERY_BLOCK * n_neighbors)
        .zip(distances.par_chunks_mut(QUERY_BLOCK * n_neighbors))
        .enumerate()
        .for_each_init(
            || vec![0.0f32; QUERY_BLOCK * DATABASE_TILE],
            |products, (block, (block_indices, block_distances))| {
                let first = block * QUERY_BLOCK;
                let rows = block_indices.len() / n_neighbors;
                let queries = &points[first * dim..(first + rows) * dim];
                block_distances.fill(f32::INFINITY);
                block_indices.fill(u32::MAX);
                for tile_start in (0..n_points).step_by(DATABASE_TILE) {
                    let width = DATABASE_TILE.min(n_points - tile_start);
                    let tile = &points[tile_start * dim..(tile_start + width) * dim];
                    let products = &mut products[..rows * width];
                    matmul_a_bt(queries, tile, products, rows, width, dim);
                    for (row, dots) in products.chunks_exact(width).enumerate() {
                        let query = first + row;
                        let list = row * n_neighbors..(row + 1) * n_neighbors;
                        let mut best = TopList {
                            indices: &mut block_indices[list.clone()],
                            distances: &mut block_distances[list],
                        };
                        for (offset, &dot) in dots.iter().enumerate() {
                            let candidate = tile_start + offset;
                            if candidate == query {
                                continue;
                            }
                            let distance = (norms[query] + norms[candidate] - 2.0 * dot).max(0.0);
                            best.offer(candidate as u32, distance);
                        }
                    }
                }
            },
        );
    NeighborGraph {
        n_neighbors,
        indices,
        distances,
    }
}

/// A list of the nearest candidates so far, sorted by distance.
struct TopList<'a> {
    indices: &'a mut [u32],
    distances: &'a mut [f32],
}

impl TopList<'_> {
    /// Inserts a candidate if it is nearer than the current last entry. Candidates arrive in
    /// increasing index order, so an equal distance keeps the earlier (lower) index first.
    fn offer(&mut self, index: u32, distance: f32) {
        let last = self.distances.len() - 1;
        if distance >= self.distances[last] {
            return;
        }
        let mut position = last;
        while position > 0 && self.distances[position - 1] > distance {
            self.distances[position] = self.distances[position - 1];
            self.indices[position] = self.indices[position - 1];
            position -= 1;
        }
        self.distances[position] = distance;
        self.indices[position] = index;
    }
}

/// The symmetrised weight matrix `W = A + Aᵀ` in compressed sparse rows, columns ascending
/// within each row.
struct SparseSymmetric {
    row_offsets: Vec<usize>,
    columns: Vec<u32>,
    weights: Vec<f32>,
}

impl SparseSymmetric {
    fn from_graph(graph: &NeighborGraph, sigma: f32) -> Self {
        let k = graph.n_neighbors;
        let n_points = graph.indices.len() / k;
        let inverse_variance = 1.0 / (sigma * sigma);
        // Each k-NN edge i → j contributes A_ij to row i and to row j.
        let mut degrees = vec![0usize; n_points];
        for (i, neighbors) in graph.indices.chunks_exact(k).enumerate() {
            degrees[i] += k;
            for &j in neighbors {
                degrees[j as usize] += 1;
            }
        }
        let mut row_offsets = Vec::with_capacity(n_points + 1);
        row_offsets.push(0);
        for &degree in &degrees {
            row_offsets.push(row_offsets[row_offsets.len() - 1] + degree);
        }
        let mut entries = vec![(0u32, 0.0f32); row_offsets[n_points]];
        let mut cursor = row_offsets[..n_points].to_vec();
        let edges = graph.indices.iter().zip(&graph.distances).enumerate();
        for (edge, (&j, &distance)) in edges {
            let i = edge / k;
            let weight = (-distance * inverse_variance).exp();
            entries[cursor[i]] = (j, weight);
            cursor[i] += 1;
            entries[cursor[j as usize]] = (i as u32, weight);
            cursor[j as usize] += 1;
        }

        // Sort each row by column and merge an edge present in both directions into one
        // entry whose weight is the sum.
        let mut merged_offsets = Vec::with_capacity(n_points + 1);
        merged_offsets.push(0);
        let mut columns = Vec::with_capacity(entries.len());
        let mut weights = Vec::with_capacity(entries.len());
        for i in 0..n_points {
            let row = &mut entries[row_offsets[i]..row_offsets[i + 1]];
            row.sort_by_key(|&(column, _)| column);
            let row_start = columns.len();
            for &(column, weight) in row.iter() {
                if columns.len() > row_start && columns[columns.len() - 1] == column {
                    let last = weights.len() - 1;
                    weights[last] += weight;
                } else {
                    columns.push(column);
                    weights.push(weight);
                }
            }
            merged_offsets.push(columns.len());
        }
        Self {
            row_offsets: merged_offsets,
            columns,
            weights,
        }
    }

    fn n_rows(&self) -> usize {
        self.row_offsets.len() - 1
    }

    fn row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let range = self.row_offsets[i]..self.row_offsets[i + 1];
        self.columns[range.clone()]
            .iter()
            .zip(&self.weights[range])
            .map(|(&column, &weight)| (column as usize, weight))
    }
}

/// Runs `v ← α·Wv + (1 − α)/n`, L1-normalised, from the uniform vector. `W` is symmetric, so
/// `Wv = Wᵀv`. Each row's sum runs in column order, so the result does not depend on threads.
fn power_iteration(weights: &SparseSymmetric, alpha: f64, n_iterations: usize) -> Vec<f64> {
    let n = weights.n_rows();
    let restart = (1.0 - alpha) / n as f64;
    let mut scores = vec![1.0 / n as f64; n];
    let mut next = vec![0.0f64; n];
    for _ in 0..n_iterations {
        next.par_iter_mut().enumerate().for_each(|(i, value)| {
            let product: f64 = weights
                .row(i)
                .map(|(j, weight)| f64::from(weight) * scores[j])
                .sum();
            *value = alpha * product + restart;
        });
        let total: f64 = next.iter().sum();
        next.iter_mut().for_each(|value| *value /= total);
        std::mem::swap(&mut scores, &mut next);
    }
    scores
}

/// Returns, for every node, the local maximum of `scores` reached by following pointers. A
/// node points to the neighbour `j` with the largest positive `W_ij·(v_j − v_i)` (the first
/// such column on ties), or to itself when there is none.
fn follow_pointers(weights: &SparseSymmetric, scores: &[f64]) -> Vec<usize> {
    let pointers: Vec<usize> = (0..weights.n_rows())
        .into_par_iter()
        .map(|i| {
            let mut best_gain = 0.0f64;
            let mut target = i;
            for (j, weight) in weights.row(i) {
                let gain = f64::from(weight) * (scores[j] - scores[i]);
                if gain > best_gain {
                    best_gain = gain;
                    target = j;
                }
            }
            target
        })
        .collect();
    // Every step strictly increases the score, so the walk ends at a node pointing to itself.
    (0..pointers.len())
        .into_par_iter()
        .map(|start| {
            let mut node = start;
            while pointers[node] != node {
                node = pointers[node];
            }
            node
        })
        .collect()
}

/// Numbers the distinct roots in increasing node order.
fn number_clusters(roots: &[usize]) -> PicResult {
    let mut cluster_of_root = vec![u32::MAX; roots.len()];
    let mut cluster_sizes = Vec::new();
    for (node, &root) in roots.iter().enumerate() {
        if root == node {
            cluster_of_root[node] = cluster_sizes.len() as u32;
            cluster_sizes.push(0);
        }
    }
    let assignments: Vec<u32> = roots.iter().map(|&root| cluster_of_root[root]).collect();
    for &cluster in &assignments {
        cluster_sizes[cluster as usize] += 1;
    }
    PicResult {
        assignments,
        cluster_sizes,
        n_joined_singletons: 0,
    }
}

/// Moves each single-point cluster into the cluster of the point's nearest neighbour whose
/// cluster (before any move) has more than one point, then renumbers the clusters without
/// gaps, keeping their order. A singleton with no such neighbour stays alone.
fn join_singletons(result: &mut PicResult, graph: &NeighborGraph) {
    let k = graph.n_neighbors;
    let sizes = result.cluster_sizes.clone();
    let original = result.assignments.clone();
    let mut n_joined = 0;
    for (point, &cluster) in original.iter().enumerate() {
        if sizes[cluster as usize] != 1 {
            continue;
        }
        let neighbors = &graph.indices[point * k..(point + 1) * k];
        let target = neighbors
            .iter()
            .map(|&j| original[j as usize])
            .find(|&c| sizes[c as usize] > 1);
        if let Some(target) = target {
            result.assignments[point] = target;
            n_joined += 1;
        }
    }

    let mut new_sizes = vec![0usize; sizes.len()];
    for &cluster in &result.assignments {
        new_sizes[cluster as usize] += 1;
    }
    let mut renumbered = vec![u32::MAX; sizes.len()];
    let mut cluster_sizes = Vec::new();
    for (cluster, &size) in new_sizes.iter().enumerate() {
        if size > 0 {
            renumbered[cluster] = cluster_sizes.len() as u32;
            cluster_sizes.push(size);
        }
    }
    for cluster in &mut result.assignments {
        *cluster = renumbered[*cluster as usize];
    }
    result.cluster_sizes = cluster_sizes;
    result.n_joined_singletons = n_joined;
}
