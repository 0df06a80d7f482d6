//! The dataset images that excite chosen filters most.

use burn::module::Module;
use burn::tensor::Device;
use image::RgbImage;

use super::grid::{Tile, compose_grid, dataset_image, enlarge};
use super::{VizError, check_filters, layer_channels, tensor_values};
use crate::data::Dataset;
use crate::eval::LoadedModel;
use crate::preprocess::eval_batch;
use crate::train::steps::images_tensor;

/// The images that excite one filter most.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterTopImages {
    /// Channel index of the filter in its layer.
    pub filter: usize,
    /// `(image index, spatial mean of the activation after the ReLU)`, largest first; ties are
    /// broken by the smaller image index.
    pub images: Vec<(usize, f32)>,
}

/// Returns the mean activation after the ReLU of each filter of `layer` for every image of
/// `dataset`: `[n_images, n_filters]` as a flat vector, with `n_filters`.
pub fn mean_activations(
    loaded: &LoadedModel,
    dataset: &Dataset,
    layer: &str,
    batch_size: usize,
    device: &Device,
) -> Result<(Vec<f32>, usize), VizError> {
    let model = loaded.model.valid();
    let n_filters = layer_channels(
        &model.backbone,
        layer,
        dataset.height,
        dataset.width,
        dataset.channels,
    )?;
    let indices: Vec<usize> = (0..dataset.len()).collect();
    let mut means = Vec::with_capacity(dataset.len() * n_filters);
    for batch in indices.chunks(batch_size.max(1)) {
        let pixels = eval_batch(dataset, batch, &loaded.normalization);
        let input = images_tensor(pixels, batch.len(), dataset, device);
        let activation = model
            .backbone
            .forward_layer(input, layer)
            .expect("the layer was checked above");
        let batch_means = activation.mean_dim(3).mean_dim(2);
        means.extend(tensor_values(batch_means)?);
    }
    Ok((means, n_filters))
}

/// Finds, for each of `filters`, the `n` images of `dataset` whose mean activation after the
/// ReLU in `layer` is largest.
pub fn find_top_images(
    loaded: &LoadedModel,
    dataset: &Dataset,
    layer: &str,
    filters: &[usize],
    n: usize,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<FilterTopImages>, VizError> {
    let n_filters = layer_channels(
        &loaded.model.backbone,
        layer,
        dataset.height,
        dataset.width,
        dataset.channels,
    )?;
    check_filters(layer, filters, n_filters)?;
    let (means, n_filters) = mean_activations(loaded, dataset, layer, batch_size, device)?;
    let tops = filters
        .iter()
        .map(|&filter| {
            let mut images: Vec<(usize, f32)> = means
                .chunks_exact(n_filters)
                .map(|row| row[filter])
                .enumerate()
                .collect();
            images.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            images.truncate(n);
            FilterTopImages { filter, images }
        })
        .collect();
    Ok(tops)
}

/// Draws one filter's top images as a grid, each captioned with its activation.
pub fn draw_top_images(
    dataset: &Dataset,
    layer: &str,
    top: &FilterTopImages,
    scale: u32,
    columns: usize,
) -> RgbImage {
    let tiles: Vec<Tile> = top
        .images
        .iter()
        .map(|&(index, activation)| {
            Tile::new(
                enlarge(&dataset_image(dataset, index), scale),
                format!("#{index} {activation:.2}"),
            )
        })
        .collect();
    let title = format!("{layer} filter {}", top.filter);
    compose_grid(&tiles, columns, Some(&title))
}
