//! Exact nearest-centroid assignment in two stages: screening and exact resolution.
//!
//! Screening computes an approximate score `x·c − ½‖c‖²` for every pair, larger meaning
//! nearer, together with a bound on its error, and keeps as candidates the centroids whose
//! score is within the bound of the best one. Resolution then computes the squared distance
//! `Σ (xᵢ − cᵢ)²` of each candidate directly, in a fixed order, and picks the smallest (the
//! lower index on ties). The bound guarantees that every centroid which can win resolution
//! is a candidate, so the assignment is the same whichever screening ran: f32 matrix products
//! ([`AssignmentKernel::Float32`]) or bf16 products on AVX512-BF16 CPUs (`bf16.rs`), which
//! do twice the multiply-adds per cycle.
//!
//! Work is split into blocks of [`ROW_BLOCK`] points, each screened against all centroids
//! by one thread, so the N × k score matrix never exists.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::gemm::matmul_a_bt;
use super::update::ClusterSums;

/// Points per parallel block. Per-block objective sums are added in block order, so the
/// objective does not depend on the number of threads or on the kernel.
pub(crate) const ROW_BLOCK: usize = 256;

/// Centroids per f32 matrix product, which bounds the product buffer to
/// `ROW_BLOCK * CENTROID_TILE` floats (1 MiB) per thread.
const CENTROID_TILE: usize = 1024;

/// Lanes of the fixed-order sum in [`squared_distance`].
const DISTANCE_LANES: usize = 64;

/// Screening used by the assignment step. Every choice gives the same assignments and
/// distances; they differ only in speed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssignmentKernel {
    /// bf16 products on CPUs with AVX512-BF16 when the data's scale allows them (row norms
    /// below 2⁴⁰), f32 products otherwise.
    #[default]
    Auto,
    /// f32 products by `matrixmultiply`, the plain Lloyd step.
    Float32,
}

/// Squared Euclidean distance `Σ (xᵢ − cᵢ)²` in `f32`, summed in a fixed order: lane
/// `i mod 64` accumulates coordinate `i`, then the lanes are added pairwise (lane `l` gets
/// lane `l + 32`, then `l + 16`, and so on down to `l + 1`). Every assignment path computes final
/// distances with this function, so they agree bit for bit. The AVX-512 variant performs
/// the same roundings as the portable one.
pub(crate) fn squared_distance(x: &[f32], c: &[f32]) -> f32 {
    assert_eq!(x.len(), c.len(), "vectors differ in length");
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, checked just above.
        return unsafe { squared_distance_avx512(x, c) };
    }
    squared_distance_portable(x, c)
}

fn squared_distance_portable(x: &[f32], c: &[f32]) -> f32 {
    let mut lanes = [0.0f32; DISTANCE_LANES];
    for (xs, cs) in x.chunks(DISTANCE_LANES).zip(c.chunks(DISTANCE_LANES)) {
        for (lane, (a, b)) in xs.iter().zip(cs).enumerate() {
            let difference = a - b;
            lanes[lane] += difference * difference;
        }
    }
    let mut width = DISTANCE_LANES / 2;
    while width > 0 {
        for lane in 0..width {
            lanes[lane] += lanes[lane + width];
        }
        width /= 2;
    }
    lanes[0]
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn squared_distance_avx512(x: &[f32], c: &[f32]) -> f32 {
    use std::arch::x86_64::*;

    // Four vectors of 16 lanes: `sums[v]` contains lanes `16v..16v + 16`.
    let mut sums = [_mm512_setzero_ps(); 4];
    for (chunk, (xs, cs)) in x.chunks(16).zip(c.chunks(16)).enumerate() {
        let vector = chunk % 4;
        let mask: __mmask16 = if xs.len() == 16 {
            0xFFFF
        } else {
            (1u16 << xs.len()) - 1
        };
        // SAFETY: the mask selects only lanes inside `xs` and `cs`, which have equal lengths.
        // Masked-off lanes load 0 and add 0·0 = +0, which leaves the sum unchanged.
        let difference = unsafe {
            _mm512_sub_ps(
                _mm512_maskz_loadu_ps(mask, xs.as_ptr()),
                _mm512_maskz_loadu_ps(mask, cs.as_ptr()),
            )
        };
        sums[vector] = _mm512_add_ps(sums[vector], _mm512_mul_ps(difference, difference));
    }
    let sum = _mm512_add_ps(
        _mm512_add_ps(sums[0], sums[2]),
        _mm512_add_ps(sums[1], sums[3]),
    );
    let eight = _mm256_add_ps(
        _mm512_castps512_ps256(sum),
        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(sum))),
    );
    let four = _mm_add_ps(
        _mm256_castps256_ps128(eight),
        _mm256_extractf128_ps::<1>(eight),
    );
    let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
    let one = _mm_add_ss(two, _mm_movehdup_ps(two));
    _mm_cvtss_f32(one)
}

/// Bound on every rounding error of the f32 arithmetic behind one point's scores and
/// distances, as a slack on the score: `(dim + 64) · 2⁻²⁰ · (‖x‖ + max ‖c‖)²`, plus `2⁻¹⁰⁰`
/// against underflow.
///
/// A dot product or squared norm over `dim` terms summed in any order is off by at most
/// `dim · 2⁻²⁴` times the sum of the absolute terms, which is at most `‖x‖·‖c‖` (or
/// `‖c‖²`). The fixed-order distance is off by at most `(dim/16 + 8) · 2⁻²⁴ · (‖x‖ + ‖c‖)²`.
/// The slack covers twice the sum of these errors (two scores are compared) with a factor 4
/// to spare.
pub(crate) fn rounding_slack(dim: usize, point_norm: f32, max_centroid_norm: f32) -> f32 {
    let scale = point_norm + max_centroid_norm;
    (dim as f32 + 64.0) * (-20.0f32).exp2() * scale * scale + (-100.0f32).exp2()
}

/// Centroids and the per-centroid values that screening needs, prepared once per step.
pub(crate) struct PreparedCentroids<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) dim: usize,
    pub(crate) n_clusters: usize,
    /// `−½‖c‖²` per centroid.
    pub(crate) biases: Vec<f32>,
    /// Largest centroid norm.
    pub(crate) max_norm: f32,
    #[cfg(target_arch = "x86_64")]
    pub(crate) bf16: Option<super::bf16::PackedCentroids>,
}

impl<'a> PreparedCentroids<'a> {
    pub(crate) fn new(data: &'a [f32], dim: usize, kernel: AssignmentKernel) -> Self {
        let n_clusters = data.len() / dim;
        let norms: Vec<f64> = data
            .par_chunks(dim)
            .map(|row| row.iter().map(|&v| f64::from(v) * f64::from(v)).sum())
            .collect();
        let biases = norms.iter().map(|&n| (-0.5 * n) as f32).collect();
        let max_norm = norms.iter().copied().fold(0.0f64, f64::max).sqrt() as f32;
        #[cfg(target_arch = "x86_64")]
        let bf16 = match kernel {
            AssignmentKernel::Auto if super::bf16::is_available() => {
                super::bf16::PackedCentroids::new(data, dim, max_norm)
            }
            _ => None,
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = kernel;
        Self {
            data,
            dim,
            n_clusters,
            biases,
            max_norm,
            #[cfg(target_arch = "x86_64")]
            bf16,
        }
    }

    fn centroid(&self, index: usize) -> &[f32] {
        &self.data[index * self.dim..(index + 1) * self.dim]
    }
}

/// A centroid kept by screening for one point of a block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    /// Point index within the block.
    pub(crate) row: u32,
    pub(crate) centroid: u32,
    pub(crate) score: f32,
}

/// Screening state of one block: the best score seen per point, the slack below it within
/// which centroids stay candidates, and the candidates themselves.
#[derive(Default)]
pub(crate) struct Screen {
    pub(crate) best: Vec<f32>,
    pub(crate) slack: Vec<f32>,
    pub(crate) candidates: Vec<Candidate>,
}

impl Screen {
    pub(crate) fn reset(&mut self, rows: usize) {
        self.best.clear();
        self.best.resize(rows, f32::NEG_INFINITY);
        self.slack.clear();
        self.slack.resize(rows, 0.0);
        self.candidates.clear();
    }

    /// Returns the lowest score that keeps a centroid a candidate for `row` so far. A point
    /// with an infinite slack gets `+∞`, so it skips screening and is compared with every
    /// centroid.
    #[inline]
    pub(crate) fn threshold(&self, row: usize) -> f32 {
        if self.slack[row].is_finite() {
            self.best[row] - self.slack[row]
        } else {
            f32::INFINITY
        }
    }

    /// Records `score` for `centroid` when it is not below the row's threshold, raising the
    /// best score if it is higher.
    #[inline]
    pub(crate) fn offer(&mut self, row: usize, centroid: usize, score: f32) {
        if score >= self.threshold(row) {
            self.push(row, centroid, score);
            if score > self.best[row] {
                self.best[row] = score;
            }
        }
    }

    /// Records `centroid` as a candidate for `row`; the caller has checked the threshold.
    #[inline]
    pub(crate) fn push(&mut self, row: usize, centroid: usize, score: f32) {
        self.candidates.push(Candidate {
            row: row as u32,
            centroid: centroid as u32,
            score,
        });
    }
}

/// Per-thread buffers for [`assign_into`].
#[derive(Default)]
struct Scratch {
    screen: Screen,
    products: Vec<f32>,
    #[cfg(target_arch = "x86_64")]
    bf16: super::bf16::BlockScratch,
}

/// Writes the nearest centroid and its squared distance for every point and returns the
/// sum of those distances, added block by block in a fixed order. With `sums`, also adds
/// each point to the sums of its cluster.
pub(crate) fn assign_into(
    points: &[f32],
    dim: usize,
    centroids: &PreparedCentroids<'_>,
    assignments: &mut [u32],
    distances: &mut [f32],
    sums: Option<&ClusterSums>,
) -> f64 {
    let partial_sums: Vec<f64> = assignments
        .par_chunks_mut(ROW_BLOCK)
        .zip(distances.par_chunks_mut(ROW_BLOCK))
        .enumerate()
        .map_init(
            Scratch::default,
            |scratch, (block, (block_assignments, block_distances))| {
                let start = block * ROW_BLOCK;
                let rows = block_assignments.len();
                let block_points = &points[start * dim..(start + rows) * dim];
                screen_block(block_points, dim, centroids, scratch);
                resolve_block(
                    block_points,
                    centroids,
                    &scratch.screen,
                    block_assignments,
                    block_distances,
                );
                if let Some(sums) = sums {
                    sums.add_block(block_points, block_assignments);
                }
                block_distances.iter().map(|&d| f64::from(d)).sum::<f64>()
            },
        )
        .collect();
    partial_sums.iter().sum()
}

/// Fills `scratch.screen` for the points of one block with the fastest available kernel.
fn screen_block(
    block_points: &[f32],
    dim: usize,
    centroids: &PreparedCentroids<'_>,
    scratch: &mut Scratch,
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(packed) = &centroids.bf16 {
        super::bf16::screen_block(
            block_points,
            dim,
            centroids,
            packed,
            &mut scratch.bf16,
            &mut scratch.screen,
        );
        return;
    }
    screen_block_f32(
        block_points,
        dim,
        centroids,
        &mut scratch.products,
        &mut scratch.screen,
    );
}

/// Screens one block with f32 products, tiled over the centroids. The scores carry only
/// rounding errors, so the slack is [`rounding_slack`].
fn screen_block_f32(
    block_points: &[f32],
    dim: usize,
    centroids: &PreparedCentroids<'_>,
    products: &mut Vec<f32>,
    screen: &mut Screen,
) {
    let rows = block_points.len() / dim;
    screen.reset(rows);
    for (row, point) in block_points.chunks_exact(dim).enumerate() {
        let norm = point.iter().map(|&v| v * v).sum::<f32>().sqrt();
        screen.slack[row] = rounding_slack(dim, norm, centroids.max_norm);
    }
    products.resize(rows * CENTROID_TILE.min(centroids.n_clusters), 0.0);
    let tiles = centroids
        .data
        .chunks(CENTROID_TILE * dim)
        .zip(centroids.biases.chunks(CENTROID_TILE));
    for (tile_index, (tile, biases)) in tiles.enumerate() {
        let tile_start = tile_index * CENTROID_TILE;
        let width = biases.len();
        let products = &mut products[..rows * width];
        matmul_a_bt(block_points, tile, products, rows, width, dim);
        for (row, dots) in products.chunks_exact(width).enumerate() {
            let tile_best = max_score(dots, biases);
            if tile_best < screen.threshold(row) {
                continue;
            }
            screen.best[row] = screen.best[row].max(tile_best);
            for (j, (&dot, &bias)) in dots.iter().zip(biases).enumerate() {
                screen.offer(row, tile_start + j, dot + bias);
            }
        }
    }
}

/// Returns the maximum of `dots[j] + biases[j]`, with eight running maxima so that the
/// compiler vectorises the loop.
fn max_score(dots: &[f32], biases: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut best = [f32::NEG_INFINITY; LANES];
    let mut dot_chunks = dots.chunks_exact(LANES);
    let mut bias_chunks = biases.chunks_exact(LANES);
    for (ds, bs) in (&mut dot_chunks).zip(&mut bias_chunks) {
        for lane in 0..LANES {
            best[lane] = best[lane].max(ds[lane] + bs[lane]);
        }
    }
    let tail = dot_chunks
        .remainder()
        .iter()
        .zip(bias_chunks.remainder())
        .map(|(d, b)| d + b);
    best.into_iter()
        .chain(tail)
        .fold(f32::NEG_INFINITY, f32::max)
}

/// Picks, for every point of a block, the candidate with the smallest [`squared_distance`]
/// (the lower index on ties). A point whose screening produced no finite best score, which
/// only happens when products overflow, is compared with every centroid.
fn resolve_block(
    block_points: &[f32],
    centroids: &PreparedCentroids<'_>,
    screen: &Screen,
    assignments: &mut [u32],
    distances: &mut [f32],
) {
    let dim = centroids.dim;
    let point = |row: usize| &block_points[row * dim..(row + 1) * dim];
    let screened = |row: usize| screen.best[row].is_finite() && screen.slack[row].is_finite();
    assignments.fill(u32::MAX);
    distances.fill(f32::INFINITY);
    for candidate in &screen.candidates {
        let row = candidate.row as usize;
        if candidate.score < screen.best[row] - screen.slack[row] || !screened(row) {
            continue;
        }
        let distance =
            squared_distance(point(row), centroids.centroid(candidate.centroid as usize));
        if is_nearer(
            (candidate.centroid, distance),
            (assignments[row], distances[row]),
        ) {
            (assignments[row], distances[row]) = (candidate.centroid, distance);
        }
    }
    for row in 0..assignments.len() {
        if !screened(row) {
            let mut nearest = (u32::MAX, f32::INFINITY);
            for (index, centroid) in centroids.data.chunks_exact(dim).enumerate() {
                let distance = squared_distance(point(row), centroid);
                if is_nearer((index as u32, distance), nearest) {
                    nearest = (index as u32, distance);
                }
            }
            (assignments[row], distances[row]) = nearest;
        }
        debug_assert!(assignments[row] != u32::MAX, "point {row} has no candidate");
    }
}

/// Returns whether centroid `a` (index, distance) beats `b`: a smaller distance, or an equal
/// one and a lower index. An index of `u32::MAX` means no centroid yet.
fn is_nearer(a: (u32, f32), b: (u32, f32)) -> bool {
    b.0 == u32::MAX || a.1 < b.1 || (a.1 == b.1 && a.0 < b.0)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn random_vector(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        (0..len).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
    }

    #[test]
    fn squared_distance_variants_agree() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for len in 1..=70 {
            let (x, c) = (random_vector(len, &mut rng), random_vector(len, &mut rng));
            let portable = squared_distance_portable(&x, &c);
            assert_eq!(
                squared_distance(&x, &c).to_bits(),
                portable.to_bits(),
                "len {len}"
            );
        }
    }

    #[test]
    fn squared_distance_rounding_is_small() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for len in [1, 15, 16, 17, 256, 1000] {
            let (x, c) = (random_vector(len, &mut rng), random_vector(len, &mut rng));
            let exact: f64 = x
                .iter()
                .zip(&c)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum();
            let error = (f64::from(squared_distance(&x, &c)) - exact).abs();
            let bound = (len as f64 / 16.0 + 8.0) * 2f64.powi(-24) * exact;
            assert!(error <= bound, "len {len}: error {error}, bound {bound}");
        }
    }

    #[test]
    fn screen_keeps_scores_within_slack() {
        let mut screen = Screen::default();
        screen.reset(2);
        screen.slack = vec![1.0, f32::INFINITY];
        for (centroid, score) in [(0, 5.0), (1, 3.5), (2, 4.5), (3, 7.0), (4, 6.5)] {
            screen.offer(0, centroid, score);
            screen.offer(1, centroid, score);
        }
        assert_eq!(screen.best, vec![7.0, f32::NEG_INFINITY]);
        let kept: Vec<u32> = screen.candidates.iter().map(|c| c.centroid).collect();
        // 3.5 is below 5 − 1 when offered; 4.5 and 5 are kept until the final filter.
        assert_eq!(kept, vec![0, 2, 3, 4]);
        assert!(screen.candidates.iter().all(|c| c.row == 0));
    }
}
