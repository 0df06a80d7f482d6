//! Raw images beside the views the network receives.

use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;

use super::grid::{Tile, compose_grid, dataset_image, enlarge, planes_to_rgb, to_u8_range};
use super::{VizError, tensor_values};
use crate::data::Dataset;
use crate::model::apply_sobel;
use crate::preprocess::{Augmentation, Normalization, eval_batch, train_batch};

/// Column titles of [`draw_data_views`], left to right.
pub const VIEWS: [&str; 6] = [
    "raw",
    "grayscale",
    "Sobel x",
    "Sobel y",
    "normalised",
    "augmented",
];

/// Draws one row per image of `indices`: the raw image captioned with its label, its grayscale
/// version, its Sobel x and y responses, the normalised image, and one training augmentation
/// (drawn with `seed`). Normalised, Sobel and augmented views are scaled to their own range.
pub fn draw_data_views(
    dataset: &Dataset,
    indices: &[usize],
    normalization: &Normalization,
    augmentation: &Augmentation,
    seed: u64,
    scale: u32,
    device: &Device,
) -> Result<RgbImage, VizError> {
    if let Some(&index) = indices.iter().find(|&&i| i >= dataset.len()) {
        return Err(VizError::ImageOutOfRange {
            index,
            n_images: dataset.len(),
        });
    }
    let (channels, height, width) = (dataset.channels, dataset.height, dataset.width);
    let plane = height * width;
    let normalised = eval_batch(dataset, indices, normalization);
    let augmented = train_batch(dataset, indices, 0, normalization, augmentation, seed, 0);
    let shape = [indices.len(), channels, height, width];
    let sobel = tensor_values(apply_sobel(Tensor::<4>::from_data(
        TensorData::new(normalised.clone(), shape),
        device,
    )))?;

    let view = |values: &[f32], n_channels: usize| {
        enlarge(
            &planes_to_rgb(&to_u8_range(values, false), n_channels, height, width),
            scale,
        )
    };
    let mut tiles = Vec::with_capacity(indices.len() * VIEWS.len());
    for (row, &index) in indices.iter().enumerate() {
        let image = dataset_image(dataset, index);
        let gray = image::DynamicImage::ImageRgb8(image.clone()).to_luma8();
        let image_values = row * channels * plane..(row + 1) * channels * plane;
        let sobel_values = &sobel[row * 2 * plane..(row + 1) * 2 * plane];
        tiles.push(Tile::new(enlarge(&image, scale), label(dataset, index)));
        tiles.push(Tile::new(
            enlarge(&planes_to_rgb(gray.as_raw(), 1, height, width), scale),
            VIEWS[1],
        ));
        tiles.push(Tile::new(view(&sobel_values[..plane], 1), VIEWS[2]));
        tiles.push(Tile::new(view(&sobel_values[plane..], 1), VIEWS[3]));
        tiles.push(Tile::new(
            view(&normalised[image_values.clone()], channels),
            VIEWS[4],
        ));
        tiles.push(Tile::new(
            view(&augmented[image_values], channels),
            VIEWS[5],
        ));
    }
    let title = format!("{}: {}", dataset.source, VIEWS.join(" | "));
    Ok(compose_grid(&tiles, VIEWS.len(), Some(&title)))
}

/// `#index` followed by the class name or number when the dataset has labels.
fn label(dataset: &Dataset, index: usize) -> String {
    let Some(labels) = &dataset.labels else {
        return format!("#{index}");
    };
    let label = labels[index] as usize;
    let name = dataset
        .class_names
        .as_ref()
        .and_then(|names| names.get(label).cloned())
        .unwrap_or_else(|| format!("class {label}"));
    format!("#{index} {name}")
}
