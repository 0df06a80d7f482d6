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

/// Training augmentation: a random resized crop scaled back to the image size, a random
/// horizontal flip, and optionally a small rotation, a translation and brightness and contrast
/// jitter.
///
/// The default is the identity: the whole image, unflipped and unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Augmentation {
    /// Range of the crop's area as a fraction of the image's area.
    pub crop_scale: (f32, f32),
    /// Range of the crop's aspect ratio (width / height).
    pub crop_ratio: (f32, f32),
    /// Whether half of the images are mirrored left to right.
    pub horizontal_flip: bool,
    /// Largest rotation in degrees; each image turns by an angle drawn from ±this.
    pub rotation_degrees: f32,
    /// Largest translation as a fraction of the image's height and width, drawn per axis.
    pub translate: f32,
    /// Brightness jitter β: pixel values are multiplied by a factor drawn from [1 − β, 1 + β].
    pub brightness: f32,
    /// Contrast jitter γ: each channel of an image is blended with its mean by a factor drawn
    /// from [1 − γ, 1 + γ].
    pub contrast: f32,
}

impl Default for Augmentation {
    fn default() -> Self {
        Self {
            crop_scale: (1.0, 1.0),
            crop_ratio: (1.0, 1.0),
            horizontal_flip: false,
            rotation_degrees: 0.0,
            translate: 0.0,
            brightness: 0.0,
            contrast: 0.0,
        }
    }
}

/// The random choices of one augmented image: the source region of its pixels and the change
/// of their values.
#[derive(Clone, Copy, Debug)]
struct View {
    crop: Crop,
    flip: bool,
    /// Rotation about the crop's centre, in radians.
    angle: f32,
    /// Shift of the sampling grid in source pixels, `(down, right)`.
    shift: (f32, f32),
    /// Multiplier on pixel values in [0, 1].
    brightness: f32,
    /// Blend factor with the image's mean value.
    contrast: f32,
}

impl View {
    /// Draws a view. The draws without effect (rotation, translation, jitter at 0) consume no
    /// random numbers, so turning them off keeps the crops and flips of earlier versions.
    fn draw(
        height: usize,
        width: usize,
        augmentation: &Augmentation,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let crop = draw_crop(height, width, augmentation, rng);
        let flip = augmentation.horizontal_flip && rng.random_bool(0.5);
        let symmetric = |rng: &mut ChaCha8Rng, bound: f32| {
            if bound > 0.0 {
                rng.random_range(-bound..=bound)
            } else {
                0.0
            }
        };
        let angle = symmetric(rng, augmentation.rotation_degrees).to_radians();
        let shift = (
            symmetric(rng, augmentation.translate) * height as f32,
            symmetric(rng, augmentation.translate) * width as f32,
        );
        let brightness = 1.0 + symmetric(rng, augmentation.brightness);
        let contrast = 1.0 + symmetric(rng, augmentation.contrast);
        Self {
            crop,
            flip,
            angle,
            shift,
            brightness,
            contrast,
        }
    }
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
            let view = View::draw(dataset.height, dataset.width, augmentation, &mut rng);
            resample_into(dataset.image(index), dataset, &view, normalization, out);
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

/// Resamples the view's crop bilinearly to the full image size, then turns, shifts, mirrors and
/// jitters it as `view` describes.
///
/// Samples inside the image area clamp to its edge pixels. Samples that rotation or translation
/// move outside the image read black (0), as torchvision's affine transforms fill by default.
fn resample_into(
    image: &[u8],
    dataset: &Dataset,
    view: &View,
    normalization: &Normalization,
    out: &mut [f32],
) {
    let (height, width) = (dataset.height, dataset.width);
    let plane = height * width;
    let crop = view.crop;
    let scale_y = crop.height / height as f32;
    let scale_x = crop.width / width as f32;
    let (sin, cos) = view.angle.sin_cos();
    let centre_y = crop.top + crop.height / 2.0 + view.shift.0;
    let centre_x = crop.left + crop.width / 2.0 + view.shift.1;
    let inside = |coordinate: f32, size: usize| (-0.5..=size as f32 - 0.5).contains(&coordinate);
    let jitter = view.brightness != 1.0 || view.contrast != 1.0;
    let mut values = vec![0.0f32; plane];
    for (channel, pixels) in image.chunks_exact(plane).enumerate() {
        let at = |y: usize, x: usize| f32::from(pixels[y * width + x]) / 255.0;
        for row in 0..height {
            let offset_y = (row as f32 + 0.5) * scale_y - crop.height / 2.0;
            for column in 0..width {
                let out_column = if view.flip {
                    width - 1 - column
                } else {
                    column
                };
                let offset_x = (column as f32 + 0.5) * scale_x - crop.width / 2.0;
                let source_y = centre_y + sin * offset_x + cos * offset_y - 0.5;
                let source_x = centre_x + cos * offset_x - sin * offset_y - 0.5;
                let value = if inside(source_y, height) && inside(source_x, width) {
                    let source_y = source_y.clamp(0.0, (height - 1) as f32);
                    let source_x = source_x.clamp(0.0, (width - 1) as f32);
                    let (y0, x0) = (source_y.floor() as usize, source_x.floor() as usize);
                    let (y1, x1) = ((y0 + 1).min(height - 1), (x0 + 1).min(width - 1));
                    let (fy, fx) = (source_y - y0 as f32, source_x - x0 as f32);
                    let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                    let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                    top * (1.0 - fy) + bottom * fy
                } else {
                    0.0
                };
                values[row * width + out_column] = value;
            }
        }
        if jitter {
            apply_jitter(&mut values, view.brightness, view.contrast);
        }
        let (mean, std) = (normalization.mean[channel], normalization.std[channel]);
        let target = &mut out[channel * plane..(channel + 1) * plane];
        for (target, &value) in target.iter_mut().zip(&values) {
            *target = (value - mean) / std;
        }
    }
}

/// Scales values in [0, 1] by `brightness`, then blends them with their mean by `contrast`,
/// clamping to [0, 1] after each step as torchvision's `ColorJitter` does.
fn apply_jitter(values: &mut [f32], brightness: f32, contrast: f32) {
    for value in values.iter_mut() {
        *value = (*value * brightness).clamp(0.0, 1.0);
    }
    let mean = values.iter().sum::<f32>() / values.len().max(1) as f32;
    for value in values.iter_mut() {
        *value = (contrast * *value + (1.0 - contrast) * mean).clamp(0.0, 1.0);
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
            ..Augmentation::default()
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
            rotation_degrees: 15.0,
            translate: 0.1,
            brightness: 0.4,
            contrast: 0.4,
        };
        let first = train_batch(&dataset, &[0, 1], 5, &normalization, &augmentation, 3, 2);
        let second = train_batch(&dataset, &[0, 1], 5, &normalization, &augmentation, 3, 2);
        assert_eq!(first, second);
    }

    /// Returns a view of the whole 4×4 test image, turned by `angle` and shifted by `shift`.
    fn whole_image_view(angle: f32, shift: (f32, f32)) -> View {
        View {
            crop: Crop {
                top: 0.0,
                left: 0.0,
                height: 4.0,
                width: 4.0,
            },
            flip: false,
            angle,
            shift,
            brightness: 1.0,
            contrast: 1.0,
        }
    }

    #[test]
    fn half_turn_rotation_reverses_the_image() {
        let dataset = tiny_dataset();
        let normalization = Normalization {
            mean: vec![0.0],
            std: vec![1.0],
        };
        let view = whole_image_view(std::f32::consts::PI, (0.0, 0.0));
        let mut out = vec![0.0f32; 16];
        resample_into(dataset.image(0), &dataset, &view, &normalization, &mut out);
        let original = eval_batch(&dataset, &[0], &normalization);
        for (turned, expected) in out.iter().zip(original.iter().rev()) {
            assert!((turned - expected).abs() < 1e-4, "{turned} != {expected}");
        }
    }

    #[test]
    fn translation_fills_uncovered_pixels_with_black() {
        let dataset = tiny_dataset();
        let normalization = Normalization {
            mean: vec![0.0],
            std: vec![1.0],
        };
        // The sampling grid moves two pixels right, so the image moves two pixels left.
        let view = whole_image_view(0.0, (0.0, 2.0));
        let mut out = vec![0.0f32; 16];
        resample_into(dataset.image(1), &dataset, &view, &normalization, &mut out);
        let original = eval_batch(&dataset, &[1], &normalization);
        for row in 0..4 {
            assert_eq!(out[row * 4], original[row * 4 + 2]);
            assert_eq!(out[row * 4 + 1], original[row * 4 + 3]);
            assert_eq!(out[row * 4 + 2], 0.0);
            assert_eq!(out[row * 4 + 3], 0.0);
        }
    }

    #[test]
    fn jitter_scales_brightness_and_contrast() {
        let mut values = vec![0.2f32, 0.4, 0.6];
        apply_jitter(&mut values, 1.5, 1.0);
        for (value, expected) in values.iter().zip([0.3, 0.6, 0.9]) {
            assert!((value - expected).abs() < 1e-6, "{value}");
        }
        let mut values = vec![0.5f32, 0.9];
        apply_jitter(&mut values, 2.0, 1.0);
        assert_eq!(values, vec![1.0, 1.0]);
        let mut values = vec![0.2f32, 0.4, 0.6];
        apply_jitter(&mut values, 1.0, 0.0);
        for value in values {
            assert!((value - 0.4).abs() < 1e-6, "{value}");
        }
    }

    #[test]
    fn disabled_extras_keep_crops_and_flips() {
        let augmentation = Augmentation {
            crop_scale: (0.3, 1.0),
            crop_ratio: (0.75, 1.333),
            horizontal_flip: true,
            ..Augmentation::default()
        };
        let mut rng = item_rng(1, 1, 0);
        let view = View::draw(4, 4, &augmentation, &mut rng);
        let mut rng = item_rng(1, 1, 0);
        let crop = draw_crop(4, 4, &augmentation, &mut rng);
        assert_eq!(view.crop, crop);
        assert_eq!(view.angle, 0.0);
        assert_eq!(view.shift, (0.0, 0.0));
        assert_eq!(view.brightness, 1.0);
        assert_eq!(view.contrast, 1.0);
    }
}
