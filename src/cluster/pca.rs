//! PCA with optional whitening, fitted by a symmetric eigendecomposition of the covariance.

use faer::{Mat, Side};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::check_points;
use super::error::ClusterError;
use super::gemm::{gram_at_a, matmul_a_bt};

/// Added to each eigenvalue before whitening, so that a zero-variance direction is scaled by
/// `1e4` instead of dividing by zero. faiss's `PCAMatrix` exposes the same term as `epsilon`.
pub const WHITEN_EPSILON: f64 = 1e-8;

/// Added to each row norm in [`l2_normalize_rows`], so that an all-zero row stays zero.
/// The original DeepCluster code uses the same value.
pub const L2_NORM_EPSILON: f32 = 1e-10;

/// Rows per block when accumulating the covariance and when transforming.
const ROW_BLOCK: usize = 4096;

/// Settings for [`Pca::fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaConfig {
    /// Number of components to keep (DeepCluster uses 256). Must be at least 1. A value above
    /// `min(n_points, dim)` is lowered to that bound with a warning.
    pub output_dim: usize,
    /// Scale each component by `(eigenvalue + WHITEN_EPSILON)^-0.5`, so that the transformed
    /// fitting data has unit variance along every component. DeepCluster whitens.
    pub whiten: bool,
    /// Fit on at most this many rows, drawn uniformly without replacement. `None` fits on
    /// all rows; `Some(0)` is rejected.
    pub max_fit_points: Option<usize>,
    /// Seed of the row sample drawn when `max_fit_points` is below the number of rows.
    pub seed: u64,
}

impl Default for PcaConfig {
    /// DeepCluster's setting: 256 whitened components fitted on all points, seed 0.
    fn default() -> Self {
        Self {
            output_dim: 256,
            whiten: true,
            max_fit_points: None,
            seed: 0,
        }
    }
}

/// A fitted PCA projection from `input_dim` to `output_dim` dimensions.
///
/// `transform(x) = (x - mean) · componentsᵀ`, where the component rows are unit
/// eigenvectors of the covariance (times `(eigenvalue + WHITEN_EPSILON)^-0.5` when
/// whitening), sorted by decreasing eigenvalue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pca {
    input_dim: usize,
    output_dim: usize,
    whiten: bool,
    mean: Vec<f32>,
    components: Vec<f32>,
    eigenvalues: Vec<f64>,
}

impl Pca {
    /// Fits a PCA on `points` of shape `[n_points, dim]`.
    ///
    /// The covariance is the population covariance (divided by the number of fitting rows,
    /// as faiss does), accumulated in `f64` across blocks of rows. Each eigenvector's sign is
    /// fixed so that its coordinate of largest magnitude is positive, which makes the result
    /// reproducible.
    ///
    /// # Errors
    /// [`ClusterError::ZeroOutputDim`] and [`ClusterError::ZeroMaxFitPoints`] for invalid
    /// settings, the input errors of [`ClusterError`] for an empty, misshaped or non-finite
    /// buffer, and [`ClusterError::EigenDecomposition`] if faer's solver fails.
    pub fn fit(points: &[f32], dim: usize, config: &PcaConfig) -> Result<Pca, ClusterError> {
        if config.output_dim == 0 {
            return Err(ClusterError::ZeroOutputDim);
        }
        if config.max_fit_points == Some(0) {
            return Err(ClusterError::ZeroMaxFitPoints);
        }
        let n_points = check_points(points, dim)?;
        let sample = sample_rows(points, dim, n_points, config);
        let fit_points: &[f32] = sample.as_deref().unwrap_or(points);
        let n_fit = fit_points.len() / dim;

        let output_dim = clamp_output_dim(config.output_dim, n_fit, dim);
        let mean = column_means(fit_points, dim);
        let covariance = covariance(fit_points, dim, &mean);
        let (eigenvalues, vectors) = top_eigenpairs(&covariance, dim, output_dim)?;

        let mut components = vectors;
        if config.whiten {
            for (row, &eigenvalue) in components.chunks_mut(dim).zip(&eigenvalues) {
                let scale = (eigenvalue + WHITEN_EPSILON).powf(-0.5) as f32;
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }
        Ok(Pca {
            input_dim: dim,
            output_dim,
            whiten: config.whiten,
            mean,
            components,
            eigenvalues,
        })
    }

    /// Projects `points` of shape `[n_points, input_dim]` to `[n_points, output_dim]`.
    ///
    /// Works on blocks of rows in parallel; an empty input gives an empty output.
    ///
    /// # Panics
    /// Panics if `points.len()` is not a multiple of [`Pca::input_dim`].
    pub fn transform(&self, points: &[f32]) -> Vec<f32> {
        let (dim, out_dim) = (self.input_dim, self.output_dim);
        assert!(
            points.len().is_multiple_of(dim),
            "input length {} is not a multiple of the PCA input dimension {dim}",
            points.len()
        );
        let mut output = vec![0.0f32; points.len() / dim * out_dim];
        output
            .par_chunks_mut(ROW_BLOCK * out_dim)
            .zip(points.par_chunks(ROW_BLOCK * dim))
            .for_each(|(out_block, in_block)| {
                let rows = in_block.len() / dim;
                let mut centred = in_block.to_vec();
                for row in centred.chunks_mut(dim) {
                    row.iter_mut().zip(&self.mean).for_each(|(v, m)| *v -= m);
                }
                matmul_a_bt(&centred, &self.components, out_block, rows, out_dim, dim);
            });
        output
    }

    /// Dimension of the input points.
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// Number of kept components, after any clamping to `min(n_points, dim)`.
    pub fn output_dim(&self) -> usize {
        self.output_dim
    }

    /// Whether the components are whitened.
    pub fn whiten(&self) -> bool {
        self.whiten
    }

    /// Covariance eigenvalues of the kept components, in decreasing order (length
    /// `output_dim`). Tiny negative values from rounding are clamped to 0.
    pub fn eigenvalues(&self) -> &[f64] {
        &self.eigenvalues
    }

    /// Column means of the fitting data, shape `[input_dim]`.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// Projection matrix of shape `[output_dim, input_dim]`, whitening scale included.
    pub fn components(&self) -> &[f32] {
        &self.components
    }
}

/// Divides each row of `points` (shape `[n_points, dim]`) by its L2 norm plus
/// [`L2_NORM_EPSILON`]. An all-zero row stays zero. `dim == 0` or an empty buffer is a no-op.
///
/// # Panics
/// Panics if `dim > 0` and `points.len()` is not a multiple of `dim`.
pub fn l2_normalize_rows(points: &mut [f32], dim: usize) {
    if dim == 0 {
        return;
    }
    assert!(
        points.len().is_multiple_of(dim),
        "input length {} is not a multiple of the dimension {dim}",
        points.len()
    );
    points.par_chunks_mut(dim).for_each(|row| {
        let norm = row.iter().map(|&v| v * v).sum::<f32>().sqrt();
        let inverse = 1.0 / (norm + L2_NORM_EPSILON);
        row.iter_mut().for_each(|v| *v *= inverse);
    });
}

/// Copies a random subset of rows when `max_fit_points` is below `n_points`.
fn sample_rows(
    points: &[f32],
    dim: usize,
    n_points: usize,
    config: &PcaConfig,
) -> Option<Vec<f32>> {
    let max = config.max_fit_points?;
    if max >= n_points {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut indices = rand::seq::index::sample(&mut rng, n_points, max).into_vec();
    indices.sort_unstable();
    let mut sample = Vec::with_capacity(max * dim);
    for i in indices {
        sample.extend_from_slice(&points[i * dim..(i + 1) * dim]);
    }
    Some(sample)
}

fn clamp_output_dim(requested: usize, n_points: usize, dim: usize) -> usize {
    let max = n_points.min(dim);
    if requested > max {
        tracing::warn!(
            requested,
            n_points,
            dim,
            used = max,
            "PCA output_dim exceeds min(n_points, dim); keeping {max} components"
        );
        return max;
    }
    requested
}

/// Column means in `f64`, summed in row order.
fn column_means(points: &[f32], dim: usize) -> Vec<f32> {
    let mut sums = vec![0.0f64; dim];
    for row in points.chunks(dim) {
        sums.iter_mut()
            .zip(row)
            .for_each(|(s, &v)| *s += f64::from(v));
    }
    let n = (points.len() / dim) as f64;
    sums.iter().map(|s| (s / n) as f32).collect()
}

/// Population covariance `[dim, dim]` of the centred rows: one `f32` product per block of
/// rows, blocks added in `f64` in a fixed order.
fn covariance(points: &[f32], dim: usize, mean: &[f32]) -> Vec<f64> {
    let partials: Vec<Vec<f32>> = points
        .par_chunks(ROW_BLOCK * dim)
        .map(|block| {
            let rows = block.len() / dim;
            let mut centred = block.to_vec();
            for row in centred.chunks_mut(dim) {
                row.iter_mut().zip(mean).for_each(|(v, m)| *v -= m);
            }
            let mut gram = vec![0.0f32; dim * dim];
            gram_at_a(&centred, &mut gram, rows, dim);
            gram
        })
        .collect();
    let mut total = vec![0.0f64; dim * dim];
    for gram in &partials {
        total
            .iter_mut()
            .zip(gram)
            .for_each(|(t, &g)| *t += f64::from(g));
    }
    let n = (points.len() / dim) as f64;
    total.iter_mut().for_each(|t| *t /= n);
    total
}

/// Returns the `count` largest eigenvalues (decreasing, clamped at 0) and their unit
/// eigenvectors as rows of a `[count, dim]` matrix, sign-normalised.
fn top_eigenpairs(
    covariance: &[f64],
    dim: usize,
    count: usize,
) -> Result<(Vec<f64>, Vec<f32>), ClusterError> {
    // The product is symmetric up to rounding; symmetrise so faer sees an exact self-adjoint
    // matrix whichever triangle it reads.
    let matrix = Mat::<f64>::from_fn(dim, dim, |i, j| {
        0.5 * (covariance[i * dim + j] + covariance[j * dim + i])
    });
    let eigen = matrix
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| ClusterError::EigenDecomposition { dim })?;
    let (values, vectors) = (eigen.S().column_vector(), eigen.U());

    let mut eigenvalues = Vec::with_capacity(count);
    let mut components = Vec::with_capacity(count * dim);
    // faer sorts eigenvalues in nondecreasing order, so walk the columns backwards.
    for column in (dim - count..dim).rev() {
        eigenvalues.push(values[column].max(0.0));
        let vector: Vec<f64> = (0..dim).map(|i| vectors[(i, column)]).collect();
        let largest = vector
            .iter()
            .copied()
            .fold(0.0f64, |a, v| if v.abs() > a.abs() { v } else { a });
        let sign = if largest < 0.0 { -1.0 } else { 1.0 };
        components.extend(vector.iter().map(|&v| (sign * v) as f32));
    }
    Ok((eigenvalues, components))
}
