//! The response of every filter of one layer to one image.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use image::imageops::FilterType;

use super::grid::{Tile, compose_grid, enlarge, planes_to_rgb, to_u8_range};
use super::{VizError, layer_channels, tensor_values};
use crate::data::Dataset;
use crate::eval::LoadedModel;

/// One input image: its pixels `[channels, height, width]` in the dataset's layout and how to
/// caption it.
pub struct InputImage {
    /// Pixels, planes of `u8`.
    pub pixels: Vec<u8>,
    /// Channels of `pixels`.
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// Caption, e.g. `image 12 (Sandal)`.
    pub caption: String,
}

impl InputImage {
    /// Image `index` of `dataset`, captioned with its index and class when known.
    pub fn from_dataset(dataset: &Dataset, index: usize) -> Result<Self, VizError> {
        if index >= dataset.len() {
            return Err(VizError::ImageOutOfRange {
                index,
                n_images: dataset.len(),
            });
        }
        let class = dataset.labels.as_ref().map(|labels| {
            let label = labels[index] as usize;
            dataset
                .class_names
                .as_ref()
                .and_then(|names| names.get(label).cloned())
                .unwrap_or_else(|| format!("class {label}"))
        });
        let caption = match class {
            Some(class) => format!("image {index} ({class})"),
            None => format!("image {index}"),
        };
        Ok(Self {
            pixels: dataset.image(index).to_vec(),
            channels: dataset.channels,
            height: dataset.height,
            width: dataset.width,
            caption,
        })
    }

    /// Reads a PNG or JPEG file and converts it to `channels` channels (1 or 3) of `height` ×
    /// `width` pixels, resizing with a Lanczos filter when its size differs.
    pub fn from_file(
        path: &Path,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<Self, VizError> {
        let decoded = image::open(path).map_err(|error| VizError::ImageFile {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        let resized = decoded.resize_exact(width as u32, height as u32, FilterType::Lanczos3);
        let pixels = if channels == 1 {
            resized.to_luma8().into_raw()
        } else {
            let rgb = resized.to_rgb8();
            let plane = height * width;
            let mut planes = vec![0u8; 3 * plane];
            for (offset, pixel) in rgb.pixels().enumerate() {
                for channel in 0..3 {
                    planes[channel * plane + offset] = pixel[channel];
                }
            }
            planes
        };
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(Self {
            pixels,
            channels,
            height,
            width,
            caption: name,
        })
    }

    /// The image normalised with the model's statistics, as a batch of one on `device`.
    pub fn to_tensor(&self, loaded: &LoadedModel, device: &Device) -> Tensor<4> {
        let plane = self.height * self.width;
        let values: Vec<f32> = self
            .pixels
            .iter()
            .enumerate()
            .map(|(offset, &pixel)| {
                let channel = offset / plane;
                let mean = loaded.normalization.mean[channel];
                let std = loaded.normalization.std[channel];
                (f32::from(pixel) / 255.0 - mean) / std
            })
            .collect();
        let shape = [1, self.channels, self.height, self.width];
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// The image as it is displayed.
    pub fn to_rgb(&self) -> RgbImage {
        planes_to_rgb(&self.pixels, self.channels, self.height, self.width)
    }
}

/// Draws the input, then the map of every filter of `layer` for it (after the ReLU, each
/// normalised to its own range, black when the filter does not fire), enlarged `scale` times.
pub fn draw_responses(
    loaded: &LoadedModel,
    input: &InputImage,
    layer: &str,
    scale: u32,
    columns: usize,
    device: &Device,
) -> Result<RgbImage, VizError> {
    let backbone = &loaded.model.backbone;
    layer_channels(backbone, layer, input.height, input.width, input.channels)?;
    let activation = backbone
        .forward_layer(input.to_tensor(loaded, device), layer)
        .expect("the layer was checked above");
    let [_, n_filters, height, width] = activation.dims();
    let values = tensor_values(activation)?;

    // Feature maps are smaller than the input after pooling: enlarge them to the input's size.
    let map_scale = (scale as usize * input.height / height.max(1)).max(1) as u32;
    let mut tiles = vec![Tile::new(enlarge(&input.to_rgb(), scale), "input")];
    for (filter, map) in values.chunks_exact(height * width).enumerate() {
        let pixels = to_u8_range(map, false);
        let image = enlarge(&planes_to_rgb(&pixels, 1, height, width), map_scale);
        tiles.push(Tile::new(image, filter.to_string()));
    }
    let title = format!(
        "{layer}: {n_filters} feature maps ({height}x{width}) for {}",
        input.caption
    );
    Ok(compose_grid(&tiles, columns, Some(&title)))
}
