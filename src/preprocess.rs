//! Turning `u8` images into normalised `f32` batches: the deterministic view used for feature
//! extraction and the augmented view used for training.
//!
//! Batches are laid out `[batch, channels, height, width]`, the layout of the dataset itself.
//! Every random choice for the image at position `p` of epoch `e` comes from a generator seeded
//! by `(seed, e, p)`, so batches are identical whichever thread builds them and after a resume.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;

/// Attempts at drawing a crop that fits inside the image before the whole image is used.
const CROP_ATTEMPTS: usize = 10;
/// Smallest standard deviation used for normalisation, so a constant channel does not divide by
/// zero.
const MIN_STD: f32 = 1e-3;

/// Per-channel mean and standard deviation of pixel values scaled to [0, 1].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean of each channel.
    pub mean: Vec<f32>,
    /// Standard deviation of each channel.
    pub std: Vec<f32>,
}

impl Normalization {
    /// Computes the statistics of every pixel of `dataset`, per channel.
    pub fn from_dataset(dataset: &Dataset) -> Self {
        let plane = dataset.height * dataset.width;
        let mut sums = vec![(0.0f64, 0.0f64); dataset.channels];
        for image in dataset.images.chunks_exact(dataset.image_len()) {
            for (channel, pixels) in image.chunks_exact(plane).enumerate() {
                for &pixel in pixels {
                    let value = f64::from(pixel) / 255.0;
                    sums[channel].0 += value;
                    sums[channel].1 += value * value;
                }
            }
        }
        let count = (dataset.len() * plane).max(1) as f64;
        let mut mean = Vec::with_capacity(dataset.channels);
        let mut std = Vec::with_capacity(dataset.channels);
        for (sum, sum_squares) in sums {
            let channel_mean = sum / count;
            let variance = (sum_squares / count - channel_mean * channel_mean).max(0.0);
            mean.push(channel_mean as f32);
            std.push((variance.sqrt() as f32).max(MIN_STD));
        }
        Self { mean, std }
    }
}

/// Training augmentation: a random resized crop scaled back to the image size, and a random
/// horizontal flip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Augmentation {
    /// Range of the crop's area as a fraction of the image's area.
    pub crop_scale: (f32, f32),
    /// Range of the crop's aspect ratio (width / height).
    pub crop_ratio: (f32, f32),
    /// Whether half of the images are mirrored left to right.
    pub horizontal_flip: bool,
}

/// A crop rectangle in source pixel coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Crop {
    top: f32,
    left: f32,
    height: f32,
    width: f32,
}

/// Returns the images at `indices`, normalised, without augmentation: `[indices.len(),
/// channels, height, width]` as a flat vector.
pub fn eval_batch(dataset: &Dataset, indices: &[usize], normalization: &Normalization) -> Vec<f32> {
    let image_len = dataset.image_len();
    let mut batch = vec![0.0f32; indices.len() * image_len];
    batch
        .par_chunks_mut(image_len)
        .zip(indices.par_iter())
        .for_each(|(out, &index)| {
            normalize_into(dataset.image(index), dataset, normalization, out);
        });
    batch
}

/// Returns the images at `indices` with a random augmentation each, normalised. `positions`
/// gives each image's position in the epoch's order, which seeds its augmentation.
pub fn train_batch(
    dataset: &Dataset,
    indices: &[usize],
    first_position: usize,
    normalization: &Normalization,
    augmentation: &Augmentation,
    seed: u64,
    epoch: usize,
) -> Vec<f32> {
    let image_len = dataset.image_len();
    let mut batch = vec![0.0f32; indices.len() * image_len];
    batch
        .par_chunks_mut(image_len)
        .zip(indices.par_iter())
        .enumerate()
        .for_each(|(offset, (out, &index))| {
            let mut rng = item_rng(seed, epoch, first_position + offset);
            let crop = draw_crop(dataset.height, dataset.width, augmentation, &mut rng);
            let flip = augmentation.horizontal_flip && rng.random_bool(0.5);
            resample_into(
                dataset.image(index),
                dataset,
                crop,
                flip,
                normalization,
                out,
            );
        });
    batch
}

/// A generator for one item of one epoch, independent of every other item's.
pub fn item_rng(seed: u64, epoch: usize, position: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((epoch as u64) << 40) ^ position as u64);
    rng
}

fn normalize_into(image: &[u8], dataset: &Dataset, normalization: &Normalization, out: &mut [f32]) {
    let plane = dataset.height * dataset.width;
    for (channel, (pixels, target)) in image
        .chunks_exact(plane)
        .zip(out.chunks_exact_mut(plane))
        .enumerate()
    {
        let (mean, std) = (normalization.mean[channel], normalization.std[channel]);
        for (value, &pixel) in target.iter_mut().zip(pixels) {
            *value = (f32::from(pixel) / 255.0 - mean) / std;
        }
    }
}

fn draw_crop(
    height: usize,
    width: usize,
    augmentation: &Augmentation,
    rng: &mut ChaCha8Rng,
) -> Crop {
    let (height, width) = (height as f32, width as f32);
    let area = height * width;
    let (scale_low, scale_high) = augmentation.crop_scale;
    let (log_ratio_low, log_ratio_high) = (
        augmentation.crop_ratio.0.ln(),
        augmentation.crop_ratio.1.ln(),
    );
    for _ in 0..CROP_ATTEMPTS {
        let target_area = area * rng.random_range(scale_low..=scale_high);
        let ratio = rng.random_range(log_ratio_low..=log_ratio_high).exp();
        let crop_width = (target_area * ratio).sqrt();
        let crop_height = (target_area / ratio).sqrt();
        if crop_width <= width && crop_height <= height {
            let top = rng.random_range(0.0..=height - crop_height);
            let left = rng.random_range(0.0..=width - crop_width);
            return Crop {
                top,
                left,
                height: crop_height,
                width: crop_width,
            };
        }
    }
    Crop {
        top: 0.0,
        left: 0.0,
        height,
        width,
    }
}

/// Bilinear resampling of `crop` to the full image size, with an optional mirror.
fn resample_into(
    image: &[u8],
    dataset: &Dataset,
    crop: Crop,
    flip: bool,
    normalization: &Normalization,
    out: &mut [f32],
) {
    let (height, width) = (dataset.height, dataset.width);
    let plane = height * width;
    let scale_y = crop.height / height as f32;
    let scale_x = crop.width / width as f32;
    for (channel, pixels) in image.chunks_exact(plane).enumerate() {
        let (mean, std) = (normalization.mean[channel], normalization.std[channel]);
        let target = &mut out[channel * plane..(channel + 1) * plane];
        for row in 0..height {
            let source_y =
                (crop.top + (row as f32 + 0.5) * scale_y - 0.5).clamp(0.0, (height - 1) as f32);
            let y0 = source_y.floor() as usize;
            let y1 = (y0 + 1).min(height - 1);
            let fy = source_y - y0 as f32;
            for column in 0..width {
                let out_column = if flip { width - 1 - column } else { column };
                let source_x = (crop.left + (column as f32 + 0.5) * scale_x - 0.5)
                    .clamp(0.0, (width - 1) as f32);
                let x0 = source_x.floor() as usize;
                let x1 = (x0 + 1).min(width - 1);
                let fx = source_x - x0 as f32;
                let at = |y: usize, x: usize| f32::from(pixels[y * width + x]);
                let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                let value = top * (1.0 - fy) + bottom * fy;
                target[row * width + out_column] = (value / 255.0 - mean) / std;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_dataset() -> Dataset {
        Dataset {
            images: (0..2 * 4 * 4).map(|v| (v * 8) as u8).collect(),
            n_images: 2,
            channels: 1,
            height: 4,
            width: 4,
            labels: None,
            class_names: None,
            source: "test".into(),
            n_skipped: 0,
        }
    }

    #[test]
    fn full_crop_without_flip_equals_eval_view() {
        let dataset = tiny_dataset();
        let normalization = Normalization::from_dataset(&dataset);
        let augmentation = Augmentation {
            crop_scale: (1.0, 1.0),
            crop_ratio: (1.0, 1.0),
            horizontal_flip: false,
        };
        let eval = eval_batch(&dataset, &[1, 0], &normalization);
        let train = train_batch(&dataset, &[1, 0], 0, &normalization, &augmentation, 7, 0);
        for (a, b) in eval.iter().zip(&train) {
            assert!((a - b).abs() < 1e-5, "{a} != {b}");
        }
    }

    #[test]
    fn normalization_gives_zero_mean_unit_std() {
        let dataset = tiny_dataset();
        let normalization = Normalization::from_dataset(&dataset);
        let batch = eval_batch(&dataset, &[0, 1], &normalization);
        let n = batch.len() as f32;
        let mean = batch.iter().sum::<f32>() / n;
        let variance = batch.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        assert!(mean.abs() < 1e-4);
        assert!((variance - 1.0).abs() < 1e-3);
    }

    #[test]
    fn augmentation_is_reproducible() {
        let dataset = tiny_dataset();
        let normalization = Normalization::from_dataset(&dataset);
        let augmentation = Augmentation {
            crop_scale: (0.3, 1.0),
            crop_ratio: (0.75, 1.333),
            horizontal_flip: true,
        };
        let first = train_batch(&dataset, &[0, 1], 5, &normalization, &augmentation, 3, 2);
        let second = train_batch(&dataset, &[0, 1], 5, &normalization, &augmentation, 3, 2);
        assert_eq!(first, second);
    }
}
