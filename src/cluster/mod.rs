//! Clustering stage of DeepCluster: PCA whitening, k-means, power iteration clustering (PIC)
//! and evaluation metrics.
//!
//! Every epoch DeepCluster extracts CNN features for the whole dataset, reduces them with
//! [`Pca`] to 256 whitened dimensions, L2-normalises each row with [`l2_normalize_rows`],
//! clusters them with [`kmeans`] (or [`pic`]), and trains the network to predict the cluster ids.
//! [`normalized_mutual_info`] between the assignments of consecutive epochs tracks how
//! stable the clustering is.
//!
//! All matrices are row-major `&[f32]` buffers with an explicit `dim`: a buffer of shape
//! `[n_points, dim]` has `n_points = len / dim` rows. Results are deterministic for a given
//! seed and do not depend on the number of rayon threads.
//!
//! ```
//! use deepcluster::cluster::{KMeansConfig, Pca, PcaConfig, kmeans, l2_normalize_rows};
//!
//! let dim = 4;
//! let features: Vec<f32> = (0..400).map(|i| ((i * 37) % 101) as f32 / 101.0).collect();
//! let pca_config = PcaConfig { output_dim: 2, whiten: true, max_fit_points: None, seed: 0 };
//! let pca = Pca::fit(&features, dim, &pca_config)?;
//! let mut reduced = pca.transform(&features);
//! l2_normalize_rows(&mut reduced, pca.output_dim());
//! let result = kmeans(&reduced, pca.output_dim(), &KMeansConfig::new(3))?;
//! assert_eq!(result.assignments.len(), 100);
//! # Ok::<(), deepcluster::cluster::ClusterError>(())
//! ```

mod assign;
#[cfg(target_arch = "x86_64")]
mod bf16;
mod error;
mod gemm;
mod init;
mod kmeans;
mod metrics;
mod pca;
mod pic;
mod tensor;
mod update;

pub use assign::AssignmentKernel;
pub use error::ClusterError;
pub use kmeans::{
    FAISS_DEFAULT_MAX_ITERATIONS, FAISS_MIN_POINTS_PER_CENTROID, Init, IterationStats,
    KMeansConfig, KMeansResult, SPLIT_PERTURBATION, assign, initial_centroids, kmeans,
};
pub use metrics::{
    ClusteringAccuracy, ContingencyTable, NmiNormalization, adjusted_rand_index,
    clustering_accuracy, contingency_table, normalized_mutual_info, normalized_mutual_info_with,
};
pub use pca::{L2_NORM_EPSILON, Pca, PcaConfig, WHITEN_EPSILON, l2_normalize_rows};
pub use pic::{NeighborGraph, PicConfig, PicResult, nearest_neighbors, pic};
pub use tensor::{DEFAULT_TENSOR_BLOCK_ROWS, assign_on_device, assign_tensor};

use rayon::prelude::*;

/// Checks a `[n_points, dim]` buffer and returns `n_points`.
///
/// Rejects `dim == 0`, a length that is not a multiple of `dim`, an empty buffer and any
/// NaN or infinite value (reporting the first such row).
pub(crate) fn check_points(points: &[f32], dim: usize) -> Result<usize, ClusterError> {
    if dim == 0 {
        return Err(ClusterError::ZeroDimension);
    }
    if !points.len().is_multiple_of(dim) {
        return Err(ClusterError::DimensionMismatch {
            len: points.len(),
            dim,
        });
    }
    if points.is_empty() {
        return Err(ClusterError::EmptyInput);
    }
    let bad_row = points
        .par_chunks(dim)
        .position_first(|row| row.iter().any(|v| !v.is_finite()));
    if let Some(row) = bad_row {
        let values = &points[row * dim..(row + 1) * dim];
        let column = values.iter().position(|v| !v.is_finite()).unwrap_or(0);
        return Err(ClusterError::NonFinite {
            row,
            column,
            value: values[column],
        });
    }
    Ok(points.len() / dim)
}
