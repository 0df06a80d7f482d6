//! The first convolution's weights as a grid of small images.

use image::RgbImage;

use super::grid::{Tile, compose_grid, enlarge, planes_to_rgb, side_by_side, to_u8_range};
use super::{VizError, tensor_values};
use crate::model::{DeepClusterNet, ModelConfig};

/// Draws every filter of the first convolution, each normalised to its own range and enlarged
/// `scale` times, `columns` per row. A filter over 3 input channels is drawn in colour, over 1 in
/// grey; with the Sobel front end its x and y kernels are drawn side by side.
pub fn draw_filters(
    model: &DeepClusterNet,
    config: &ModelConfig,
    scale: u32,
    columns: usize,
) -> Result<RgbImage, VizError> {
    let weight = model.backbone.first_conv_weight();
    let [n_filters, in_channels, kernel_height, kernel_width] = weight.dims();
    let values = tensor_values(weight)?;
    let filter_len = in_channels * kernel_height * kernel_width;
    let plane = kernel_height * kernel_width;

    let tiles = values
        .chunks_exact(filter_len)
        .enumerate()
        .map(|(index, filter)| {
            let pixels = to_u8_range(filter, true);
            let image = if config.sobel || in_channels == 2 {
                let kernels: Vec<RgbImage> = pixels
                    .chunks_exact(plane)
                    .map(|kernel| {
                        enlarge(
                            &planes_to_rgb(kernel, 1, kernel_height, kernel_width),
                            scale,
                        )
                    })
                    .collect();
                side_by_side(&kernels)
            } else {
                let channels = if in_channels == 3 { 3 } else { 1 };
                enlarge(
                    &planes_to_rgb(&pixels, channels, kernel_height, kernel_width),
                    scale,
                )
            };
            Tile::new(image, index.to_string())
        })
        .collect::<Vec<_>>();
    let title = format!(
        "conv1: {n_filters} filters, {kernel_height}x{kernel_width}{}",
        if config.sobel {
            ", Sobel x | y inputs"
        } else {
            ""
        }
    );
    Ok(compose_grid(&tiles, columns, Some(&title)))
}
