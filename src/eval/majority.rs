//! Clusters as classifiers: k-means on the training split's features, each cluster labelled
//! with its most frequent class, and test images classified by their nearest centroid.

use image::{Rgb, RgbImage};

use crate::cluster::{self, ClusterError, KMeansConfig, Pca, PcaConfig, l2_normalize_rows};
use crate::data::Dataset;
use crate::plot::draw_label;

/// Height in pixels of the caption text under each image of the grid.
const CAPTION_SIZE: f32 = 12.0;

/// A clustering fitted on training features, with one class per cluster.
#[derive(Clone, Debug)]
pub struct MajorityClassifier {
    pca: Pca,
    centroids: Vec<f32>,
    /// Class of each cluster.
    pub cluster_classes: Vec<u32>,
}

/// Settings of [`MajorityClassifier::fit`].
#[derive(Clone, Debug, PartialEq)]
pub struct MajoritySettings {
    /// Number of clusters.
    pub k: usize,
    /// Whitened PCA dimension before k-means, as in training.
    pub pca_dim: usize,
    /// Lloyd iterations.
    pub iterations: usize,
    /// Seed of the PCA sample and of k-means.
    pub seed: u64,
}

impl MajorityClassifier {
    /// Reduces `features` `[n, dim]` with a whitened PCA and L2 normalisation, clusters them,
    /// and gives each cluster the most frequent of its `labels` (ties to the lower class). An
    /// empty cluster gets the most frequent class overall.
    pub fn fit(
        features: &[f32],
        dim: usize,
        labels: &[u32],
        settings: &MajoritySettings,
    ) -> Result<Self, ClusterError> {
        let config = PcaConfig {
            output_dim: settings.pca_dim,
            whiten: true,
            max_fit_points: None,
            seed: settings.seed,
        };
        let pca = Pca::fit(features, dim, &config)?;
        let mut reduced = pca.transform(features);
        l2_normalize_rows(&mut reduced, pca.output_dim());
        let kmeans_config = KMeansConfig {
            max_n_iterations: settings.iterations,
            seed: settings.seed,
            ..KMeansConfig::new(settings.k)
        };
        let result = cluster::kmeans(&reduced, pca.output_dim(), &kmeans_config)?;
        let n_classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(1);
        let cluster_classes = majority_classes(&result.assignments, labels, settings.k, n_classes);
        Ok(Self {
            pca,
            centroids: result.centroids,
            cluster_classes,
        })
    }

    /// Returns the class of the nearest centroid for each row of `features` `[n, dim]`.
    pub fn predict(&self, features: &[f32]) -> Vec<u32> {
        let mut reduced = self.pca.transform(features);
        l2_normalize_rows(&mut reduced, self.pca.output_dim());
        let (clusters, _) = cluster::assign(&reduced, self.pca.output_dim(), &self.centroids);
        clusters
            .iter()
            .map(|&c| self.cluster_classes[c as usize])
            .collect()
    }
}

/// Returns the most frequent label of each of `k` clusters (ties to the lower label), or the
/// most frequent label overall for an empty cluster.
pub fn majority_classes(
    assignments: &[u32],
    labels: &[u32],
    k: usize,
    n_classes: usize,
) -> Vec<u32> {
    let mut counts = vec![0usize; k * n_classes];
    let mut overall = vec![0usize; n_classes];
    for (&cluster, &label) in assignments.iter().zip(labels) {
        counts[cluster as usize * n_classes + label as usize] += 1;
        overall[label as usize] += 1;
    }
    let argmax = |row: &[usize]| {
        let mut best = 0;
        for (class, &count) in row.iter().enumerate() {
            if count > row[best] {
                best = class;
            }
        }
        best as u32
    };
    let fallback = argmax(&overall);
    counts
        .chunks(n_classes)
        .map(|row| {
            if row.iter().all(|&c| c == 0) {
                fallback
            } else {
                argmax(row)
            }
        })
        .collect()
}

/// Draws the first `n_images` of `dataset` in a grid of `columns`, each enlarged `scale`
/// times with its predicted and true class under it. Wrong predictions are framed and
/// captioned in red.
pub fn draw_prediction_grid(
    dataset: &Dataset,
    predicted: &[u32],
    truth: &[u32],
    n_images: usize,
    columns: usize,
    scale: u32,
) -> RgbImage {
    let name = |class: u32| {
        dataset
            .class_names
            .as_ref()
            .and_then(|names| names.get(class as usize).cloned())
            .unwrap_or_else(|| class.to_string())
    };
    let n_images = n_images.min(dataset.len()).min(predicted.len());
    let columns = columns.max(1) as u32;
    let rows = (n_images as u32).div_ceil(columns).max(1);
    let (tile_width, tile_height) = (dataset.width as u32 * scale, dataset.height as u32 * scale);
    let cell_width = tile_width.max(110) + 8;
    let cell_height = tile_height + 2 * CAPTION_SIZE as u32 + 14;
    let mut canvas = RgbImage::from_pixel(cell_width * columns, cell_height * rows, Rgb([255; 3]));
    for index in 0..n_images {
        let (row, column) = (index as u32 / columns, index as u32 % columns);
        let left = column * cell_width + (cell_width - tile_width) / 2;
        let top = row * cell_height + 4;
        let wrong = predicted[index] != truth[index];
        let color = if wrong {
            Rgb([200, 0, 0])
        } else {
            Rgb([0, 0, 0])
        };
        paste_image(
            &mut canvas,
            dataset.image(index),
            dataset,
            (left, top),
            scale,
        );
        if wrong {
            draw_frame(&mut canvas, (left, top), (tile_width, tile_height), color);
        }
        let text_left = (column * cell_width + 4) as i32;
        let text_top = (top + tile_height + 3) as i32;
        let predicted_text = format!("pred: {}", name(predicted[index]));
        draw_label(
            &mut canvas,
            text_left,
            text_top,
            CAPTION_SIZE,
            &predicted_text,
            color,
        );
        let true_text = format!("true: {}", name(truth[index]));
        let second_line = text_top + CAPTION_SIZE as i32 + 2;
        draw_label(
            &mut canvas,
            text_left,
            second_line,
            CAPTION_SIZE,
            &true_text,
            Rgb([0; 3]),
        );
    }
    canvas
}

/// Copies an image `[channels, height, width]` of `dataset` enlarged `scale` times.
fn paste_image(
    canvas: &mut RgbImage,
    pixels: &[u8],
    dataset: &Dataset,
    (left, top): (u32, u32),
    scale: u32,
) {
    let plane = dataset.height * dataset.width;
    for y in 0..dataset.height as u32 * scale {
        for x in 0..dataset.width as u32 * scale {
            let source = (y / scale) as usize * dataset.width + (x / scale) as usize;
            let channel = |c: usize| pixels[c.min(dataset.channels - 1) * plane + source];
            canvas.put_pixel(left + x, top + y, Rgb([channel(0), channel(1), channel(2)]));
        }
    }
}

/// Draws a 2-pixel frame just outside the rectangle at `(left, top)` of `size`.
fn draw_frame(
    canvas: &mut RgbImage,
    (left, top): (u32, u32),
    (width, height): (u32, u32),
    color: Rgb<u8>,
) {
    let (canvas_width, canvas_height) = canvas.dimensions();
    let x0 = left.saturating_sub(2);
    let y0 = top.saturating_sub(2);
    let x1 = (left + width + 1).min(canvas_width - 1);
    let y1 = (top + height + 1).min(canvas_height - 1);
    for x in x0..=x1 {
        for y in [y0, y0 + 1, y1 - 1, y1] {
            canvas.put_pixel(x, y, color);
        }
    }
    for y in y0..=y1 {
        for x in [x0, x0 + 1, x1 - 1, x1] {
            canvas.put_pixel(x, y, color);
        }
    }
}
