//! Sample images of an epoch's clusters and the histogram of their sizes.

use image::RgbImage;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::VizError;
use super::charts::draw_histogram;
use super::grid::{Tile, compose_grid, dataset_image, enlarge, side_by_side};
use crate::data::Dataset;

/// Returns the image indices of each cluster, largest cluster first (ties by cluster id), with
/// the cluster id; empty clusters are left out.
pub fn clusters_by_size(assignments: &[u32]) -> Vec<(u32, Vec<usize>)> {
    let n_clusters = assignments
        .iter()
        .map(|&c| c as usize + 1)
        .max()
        .unwrap_or(0);
    let mut members = vec![Vec::new(); n_clusters];
    for (image, &cluster) in assignments.iter().enumerate() {
        members[cluster as usize].push(image);
    }
    let mut clusters: Vec<(u32, Vec<usize>)> = members
        .into_iter()
        .enumerate()
        .filter(|(_, images)| !images.is_empty())
        .map(|(cluster, images)| (cluster as u32, images))
        .collect();
    clusters.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    clusters
}

/// Draws one row per cluster for the `n_clusters` largest clusters: `per_cluster` images drawn
/// at random (seeded by `seed`) from it, the first captioned with the cluster id and size.
pub fn draw_cluster_samples(
    dataset: &Dataset,
    assignments: &[u32],
    n_clusters: usize,
    per_cluster: usize,
    scale: u32,
    seed: u64,
) -> Result<RgbImage, VizError> {
    if assignments.len() != dataset.len() {
        return Err(VizError::AssignmentLength {
            n_assigned: assignments.len(),
            n_images: dataset.len(),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let per_cluster = per_cluster.max(1);
    let mut tiles = Vec::new();
    for (cluster, mut images) in clusters_by_size(assignments).into_iter().take(n_clusters) {
        let size = images.len();
        images.shuffle(&mut rng);
        images.truncate(per_cluster);
        let row: Vec<RgbImage> = images
            .iter()
            .map(|&index| enlarge(&dataset_image(dataset, index), scale))
            .collect();
        tiles.push(Tile::new(
            side_by_side(&row),
            format!("cluster {cluster}: {size} images"),
        ));
    }
    let title = format!(
        "{} largest of {} clusters",
        tiles.len(),
        clusters_by_size(assignments).len()
    );
    Ok(compose_grid(&tiles, 1, Some(&title)))
}

/// Draws the histogram of cluster sizes: how many clusters have each size, in at most `n_bins`
/// equal bins from 0 to the largest size. Empty clusters (ids below `n_clusters` without images)
/// count in the first bin.
pub fn draw_size_histogram(
    assignments: &[u32],
    n_clusters: usize,
    n_bins: usize,
    size: (u32, u32),
) -> Result<RgbImage, VizError> {
    let n_clusters = n_clusters.max(
        assignments
            .iter()
            .map(|&c| c as usize + 1)
            .max()
            .unwrap_or(0),
    );
    let mut sizes = vec![0usize; n_clusters];
    for &cluster in assignments {
        sizes[cluster as usize] += 1;
    }
    let max_size = sizes.iter().copied().max().unwrap_or(0).max(1);
    let bin_width = (max_size + 1).div_ceil(n_bins.max(1));
    let n_bins = (max_size + 1).div_ceil(bin_width);
    let mut counts = vec![0.0f64; n_bins];
    for &cluster_size in &sizes {
        counts[cluster_size / bin_width] += 1.0;
    }
    let bin_starts: Vec<usize> = (0..n_bins).map(|bin| bin * bin_width).collect();
    let title = format!("Cluster sizes ({n_clusters} clusters)");
    let x_label = format!("images in the cluster (bins of {bin_width})");
    Ok(draw_histogram(
        &title,
        &x_label,
        &bin_starts,
        &counts,
        size,
    )?)
}
