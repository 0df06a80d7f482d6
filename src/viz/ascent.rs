//! Images synthesised from noise to excite one filter, by gradient ascent on the input.
//!
//! Each step jitters the image by a random shift, computes the gradient of the filter's mean
//! activation with respect to the input pixels, divides it by its root mean square so the step
//! size does not depend on the layer's scale, steps along it, decays the image towards zero
//! (L2), clamps it to the range real pixels can take, and every few steps blurs it. The decay
//! and the blur keep the image from filling with high-frequency patterns that excite the filter
//! but look like noise.

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use image::{ImageBuffer, Luma, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::grid::{Tile, compose_grid, enlarge, planes_to_rgb, to_u8_range};
use super::{VizError, check_filters, layer_channels, tensor_values};
use crate::eval::LoadedModel;
use crate::model::DeepClusterNet;

/// Settings of one gradient ascent.
#[derive(Clone, Debug, PartialEq)]
pub struct AscentSettings {
    /// Gradient steps.
    pub iterations: usize,
    /// Step size, in standard deviations of a normalised pixel per unit of normalised gradient.
    pub learning_rate: f32,
    /// Fraction of the image removed at each step (L2 decay towards the mean image).
    pub l2_decay: f32,
    /// Steps between two Gaussian blurs; 0 never blurs.
    pub blur_every: usize,
    /// Standard deviation of the blur, in pixels.
    pub blur_sigma: f32,
    /// Largest random shift, in pixels, applied before each step and undone after it.
    pub jitter: usize,
    /// Half-width of the uniform noise the image starts from, in normalised units.
    pub noise: f32,
    /// Seed of the starting noise and of the jitter.
    pub seed: u64,
}

impl AscentSettings {
    /// Defaults for the convolution numbered `layer` (1 for conv1). Early layers see few pixels
    /// through a weak gradient and get more steps; the original DeepCluster tools likewise ran
    /// far longer for the first layer than for the last.
    pub fn for_layer(layer: usize) -> Self {
        let iterations = match layer {
            0 | 1 => 400,
            2 => 300,
            _ => 200,
        };
        Self {
            iterations,
            learning_rate: 0.1,
            l2_decay: 1e-3,
            blur_every: 8,
            blur_sigma: 0.4,
            jitter: 1,
            noise: 0.1,
            seed: 0,
        }
    }
}

/// The image found for one filter.
#[derive(Clone, Debug, PartialEq)]
pub struct AscentResult {
    /// Channel index of the filter in its layer.
    pub filter: usize,
    /// The image, normalised like the network's input, `[channels, height, width]`.
    pub image: Vec<f32>,
    /// Mean activation after the ReLU for the starting noise.
    pub start_activation: f32,
    /// Mean activation after the ReLU for the final image.
    pub final_activation: f32,
    /// Whether some steps followed the pre-ReLU response because the filter did not fire.
    pub used_pre_relu: bool,
}

/// Runs one gradient ascent per filter of `filters` in `layer`.
pub fn gradient_ascent(
    loaded: &LoadedModel,
    layer: &str,
    filters: &[usize],
    settings: &AscentSettings,
    device: &Device,
) -> Result<Vec<AscentResult>, VizError> {
    let config = &loaded.config;
    // Frozen: batch norm keeps its running statistics although the input is tracked.
    let model = loaded.model.valid().freeze();
    let n_filters = layer_channels(
        &model.backbone,
        layer,
        config.height,
        config.width,
        config.in_channels,
    )?;
    check_filters(layer, filters, n_filters)?;
    filters
        .iter()
        .map(|&filter| ascend_one(&model, loaded, layer, filter, settings, device))
        .collect()
}

fn ascend_one(
    model: &DeepClusterNet,
    loaded: &LoadedModel,
    layer: &str,
    filter: usize,
    settings: &AscentSettings,
    device: &Device,
) -> Result<AscentResult, VizError> {
    let config = &loaded.config;
    let shape = [config.in_channels, config.height, config.width];
    let (low, high) = pixel_bounds(loaded);
    let plane = config.height * config.width;
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed ^ (filter as u64) << 32);
    let mut image: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| rng.random_range(-settings.noise..=settings.noise))
        .collect();
    let start_activation = filter_activation(model, layer, filter, &image, shape, device)?;

    let autodiff = device.clone().autodiff();
    let mut used_pre_relu = false;
    for step in 1..=settings.iterations {
        let jitter = settings.jitter as i64;
        let shift = (
            rng.random_range(-jitter..=jitter),
            rng.random_range(-jitter..=jitter),
        );
        let shifted = roll(&image, shape, shift);
        let input = Tensor::<4>::from_data(
            TensorData::new(shifted, [1, shape[0], shape[1], shape[2]]),
            &autodiff,
        )
        .require_grad();
        let response = model
            .backbone
            .forward_layer_pre_relu(input.clone(), layer)
            .expect("the layer was checked by the caller")
            .narrow(1, filter, 1);
        let post = relu(response.clone()).mean();
        let fires = tensor_values(post.clone().without_autodiff())?[0] > 0.0;
        // A filter that does not fire has no gradient after its ReLU: follow its pre-ReLU
        // response until it does.
        let objective = if fires {
            post
        } else {
            used_pre_relu = true;
            response.mean()
        };
        let gradients = objective.backward();
        let gradient = input
            .grad(&gradients)
            .map(tensor_values)
            .transpose()?
            .unwrap_or_default();
        let gradient = roll(&gradient, shape, (-shift.0, -shift.1));
        let rms =
            (gradient.iter().map(|g| g * g).sum::<f32>() / gradient.len().max(1) as f32).sqrt();
        let scale = if rms > 0.0 {
            settings.learning_rate / rms
        } else {
            0.0
        };
        for (offset, (value, g)) in image.iter_mut().zip(&gradient).enumerate() {
            let channel = offset / plane;
            *value = ((*value + scale * g) * (1.0 - settings.l2_decay))
                .clamp(low[channel], high[channel]);
        }
        if settings.blur_every > 0 && step % settings.blur_every == 0 && settings.blur_sigma > 0.0 {
            blur(&mut image, shape, settings.blur_sigma);
        }
    }

    let final_activation = filter_activation(model, layer, filter, &image, shape, device)?;
    Ok(AscentResult {
        filter,
        image,
        start_activation,
        final_activation,
        used_pre_relu,
    })
}

/// Returns the mean activation after the ReLU of `filter` in `layer` for one normalised image.
pub fn filter_activation(
    model: &DeepClusterNet,
    layer: &str,
    filter: usize,
    image: &[f32],
    shape: [usize; 3],
    device: &Device,
) -> Result<f32, VizError> {
    let input = Tensor::<4>::from_data(
        TensorData::new(image.to_vec(), [1, shape[0], shape[1], shape[2]]),
        device,
    );
    let activation = model
        .backbone
        .forward_layer(input, layer)
        .expect("the layer was checked by the caller")
        .narrow(1, filter, 1)
        .mean();
    Ok(tensor_values(activation)?[0])
}

/// Draws the image of each result, stretched to its own range and enlarged `scale` times,
/// captioned with the filter and its mean activation before and after.
pub fn draw_ascent(
    results: &[AscentResult],
    loaded: &LoadedModel,
    layer: &str,
    scale: u32,
    columns: usize,
) -> RgbImage {
    let config = &loaded.config;
    let tiles: Vec<Tile> = results
        .iter()
        .map(|result| {
            let pixels = to_u8_range(&result.image, true);
            let image = planes_to_rgb(&pixels, config.in_channels, config.height, config.width);
            let caption = format!(
                "{} {:.2}->{:.2}{}",
                result.filter,
                result.start_activation,
                result.final_activation,
                if result.used_pre_relu { "*" } else { "" }
            );
            Tile::new(enlarge(&image, scale), caption)
        })
        .collect();
    let title =
        format!("{layer}: gradient ascent (mean activation from noise -> final; * pre-ReLU steps)");
    compose_grid(&tiles, columns, Some(&title))
}

/// Smallest and largest normalised value of each channel: pixels 0 and 1 after normalisation.
fn pixel_bounds(loaded: &LoadedModel) -> (Vec<f32>, Vec<f32>) {
    let normalization = &loaded.normalization;
    normalization
        .mean
        .iter()
        .zip(&normalization.std)
        .map(|(&mean, &std)| ((0.0 - mean) / std, (1.0 - mean) / std))
        .unzip()
}

/// Shifts every channel of `image` by `(dy, dx)` pixels, wrapping around the edges.
fn roll(image: &[f32], shape: [usize; 3], (dy, dx): (i64, i64)) -> Vec<f32> {
    let [channels, height, width] = shape;
    let mut out = vec![0.0; image.len()];
    for c in 0..channels {
        for y in 0..height {
            let source_y = (y as i64 - dy).rem_euclid(height as i64) as usize;
            for x in 0..width {
                let source_x = (x as i64 - dx).rem_euclid(width as i64) as usize;
                out[(c * height + y) * width + x] =
                    image[(c * height + source_y) * width + source_x];
            }
        }
    }
    out
}

/// Blurs every channel of `image` with a Gaussian of standard deviation `sigma` pixels.
fn blur(image: &mut [f32], shape: [usize; 3], sigma: f32) {
    let [_, height, width] = shape;
    for channel in image.chunks_exact_mut(height * width) {
        let buffer: ImageBuffer<Luma<f32>, Vec<f32>> =
            ImageBuffer::from_raw(width as u32, height as u32, channel.to_vec())
                .expect("a channel holds height * width values");
        let blurred = imageproc::filter::gaussian_blur_f32(&buffer, sigma);
        channel.copy_from_slice(blurred.as_raw());
    }
}
