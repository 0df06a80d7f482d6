//! Error type shared by PCA, k-means and the clustering metrics.

use thiserror::Error;

/// Failure of a clustering routine, carrying the offending values.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ClusterError {
    /// The input contains no points.
    #[error("input is empty: at least one point is required")]
    EmptyInput,

    /// The point dimension is 0.
    #[error("invalid dimension 0: each point needs at least one coordinate")]
    ZeroDimension,

    /// The buffer length is not a multiple of the point dimension.
    #[error("input length {len} is not a multiple of the dimension {dim}")]
    DimensionMismatch {
        /// Number of `f32` values in the buffer.
        len: usize,
        /// Expected number of values per row.
        dim: usize,
    },

    /// A coordinate is NaN or infinite.
    #[error("non-finite value {value} at row {row}, column {column}")]
    NonFinite {
        /// Row index of the first non-finite value.
        row: usize,
        /// Column index of that value.
        column: usize,
        /// The value itself (NaN, +inf or -inf).
        value: f32,
    },

    /// `n_clusters` is 0.
    #[error("invalid n_clusters 0: at least one cluster is required")]
    ZeroClusters,

    /// More clusters were requested than there are points.
    #[error("n_clusters {n_clusters} exceeds the number of points {n_points}")]
    TooManyClusters {
        /// Requested number of clusters.
        n_clusters: usize,
        /// Number of points in the input.
        n_points: usize,
    },

    /// `max_n_iterations` is 0.
    #[error("invalid max_n_iterations 0: at least one iteration is required")]
    ZeroIterations,

    /// `n_redo` is 0.
    #[error("invalid n_redo 0: at least one run is required")]
    ZeroRedo,

    /// `max_points_per_centroid` is `Some(0)`.
    #[error("invalid max_points_per_centroid 0: use None to disable subsampling")]
    ZeroMaxPointsPerCentroid,

    /// The initial centroids do not have the shape `[n_clusters, dim]`.
    #[error(
        "initial centroids have {len} values, expected n_clusters {n_clusters} x dim {dim} = {}",
        n_clusters * dim
    )]
    InitialCentroidsShape {
        /// Number of `f32` values supplied.
        len: usize,
        /// Configured number of clusters.
        n_clusters: usize,
        /// Dimension of the points.
        dim: usize,
    },

    /// An initial centroid coordinate is NaN or infinite.
    #[error("non-finite initial centroid value {value} at centroid {centroid}, column {column}")]
    NonFiniteInitialCentroid {
        /// Index of the centroid.
        centroid: usize,
        /// Column index of the value.
        column: usize,
        /// The value itself.
        value: f32,
    },

    /// A PIC setting is out of range.
    #[error("invalid PIC {field} = {value}: expected {expected}")]
    InvalidPicSetting {
        /// Name of the [`PicConfig`](super::PicConfig) field.
        field: &'static str,
        /// The value given.
        value: String,
        /// The valid range, in words.
        expected: &'static str,
    },

    /// The k-NN graph requests at least as many neighbours as there are points.
    #[error(
        "n_neighbors {n_neighbors} must be smaller than the number of points {n_points}; \
         use fewer neighbours or more points"
    )]
    TooManyNeighbors {
        /// Requested neighbours per point.
        n_neighbors: usize,
        /// Number of points in the input.
        n_points: usize,
    },

    /// The PCA output dimension is 0.
    #[error("invalid PCA output_dim 0: at least one component is required")]
    ZeroOutputDim,

    /// `max_fit_points` is `Some(0)`.
    #[error("invalid PCA max_fit_points 0: use None to fit on all points")]
    ZeroMaxFitPoints,

    /// The symmetric eigendecomposition of the covariance matrix did not converge.
    #[error("eigendecomposition of the {dim} x {dim} covariance matrix failed to converge")]
    EigenDecomposition {
        /// Size of the covariance matrix.
        dim: usize,
    },

    /// Two label vectors that must be paired have different lengths.
    #[error("label vectors differ in length: {left} and {right}")]
    LabelLengthMismatch {
        /// Length of the first label vector.
        left: usize,
        /// Length of the second label vector.
        right: usize,
    },

    /// A metric was asked for on empty label vectors.
    #[error("label vectors are empty: metrics need at least one labelled point")]
    EmptyLabels,
}
