//! The k-means assignment step on burn tensors, so that a run on a GPU can assign points to
//! centroids on the device that holds the features.

use burn::tensor::{Device, Int, Tensor, TensorData};

/// Default number of points per block in [`assign_tensor`]: the block's distance matrix has
/// `block_rows × n_clusters` values (655 MB of `f32` for 16,384 points and 10,000 centroids).
pub const DEFAULT_TENSOR_BLOCK_ROWS: usize = 16_384;

/// Assigns each row of `points` (`[n_points, dim]`) to its nearest row of `centroids`
/// (`[n_clusters, dim]`) on the tensors' device.
///
/// Returns the centroid indices (`[n_points]`) and the squared Euclidean distances
/// (`[n_points]`, clamped at 0). Distances are `‖x‖² − 2x·c + ‖c‖²`, computed `block_rows`
/// points at a time so that no `[n_points, n_clusters]` matrix is made. Which of several
/// equally near centroids is chosen depends on the backend's `min_dim_with_indices`.
///
/// # Panics
/// Panics if the dimensions differ, if there are no points or no centroids, or if
/// `block_rows` is 0.
pub fn assign_tensor(
    points: Tensor<2>,
    centroids: Tensor<2>,
    block_rows: usize,
) -> (Tensor<1, Int>, Tensor<1>) {
    let [n_points, dim] = points.dims();
    let [n_clusters, centroid_dim] = centroids.dims();
    assert_eq!(
        dim, centroid_dim,
        "points have dimension {dim} but centroids {centroid_dim}"
    );
    assert!(n_points > 0, "at least one point is required");
    assert!(n_clusters > 0, "at least one centroid is required");
    assert!(block_rows > 0, "block_rows must be at least 1");

    let centroid_norms = centroids
        .clone()
        .square()
        .sum_dim(1)
        .reshape([1, n_clusters]);
    let centroids_transposed = centroids.transpose();
    let mut indices = Vec::new();
    let mut distances = Vec::new();
    for start in (0..n_points).step_by(block_rows) {
        let end = (start + block_rows).min(n_points);
        let block = points.clone().slice([start..end, 0..dim]);
        let products = block.clone().matmul(centroids_transposed.clone());
        let partial = centroid_norms.clone() - products.mul_scalar(2.0);
        let (nearest, index) = partial.min_dim_with_indices(1);
        let point_norms = block.square().sum_dim(1);
        let rows = end - start;
        distances.push((nearest + point_norms).clamp_min(0.0).reshape([rows]));
        indices.push(index.reshape([rows]));
    }
    (Tensor::cat(indices, 0), Tensor::cat(distances, 0))
}

/// Uploads row-major `points` and `centroids` to `device`, runs [`assign_tensor`] there and
/// downloads the result as in [`assign`](super::assign).
///
/// # Panics
/// Panics as [`assign_tensor`] does, if a length is not a multiple of `dim`, or if the
/// backend fails to read back its output.
pub fn assign_on_device(
    points: &[f32],
    dim: usize,
    centroids: &[f32],
    device: &Device,
) -> (Vec<u32>, Vec<f32>) {
    assert!(dim > 0, "dimension must be at least 1");
    assert!(
        points.len().is_multiple_of(dim) && centroids.len().is_multiple_of(dim),
        "buffer lengths must be multiples of dim {dim}"
    );
    let upload = |values: &[f32]| {
        let shape = [values.len() / dim, dim];
        Tensor::<2>::from_data(TensorData::new(values.to_vec(), shape), device)
    };
    let (indices, distances) =
        assign_tensor(upload(points), upload(centroids), DEFAULT_TENSOR_BLOCK_ROWS);
    let indices = indices
        .into_data()
        .try_into_vec_as::<i64>()
        .expect("backend returns integer indices");
    let distances = distances
        .into_data()
        .try_into_vec_as::<f32>()
        .expect("backend returns float distances");
    (indices.into_iter().map(|i| i as u32).collect(), distances)
}
