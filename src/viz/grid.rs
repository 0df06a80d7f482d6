//! Building pictures from small images: scaling values to pixels, enlarging, and laying tiles out
//! in a captioned grid.

use image::{Rgb, RgbImage, imageops};

use crate::data::Dataset;
use crate::plot::{draw_label, label_size};

/// Gap in pixels between tiles and around the grid.
pub const PADDING: u32 = 4;
/// Height in pixels of caption and title text.
pub const TEXT_SIZE: f32 = 12.0;

const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const TEXT_COLOR: Rgb<u8> = Rgb([0, 0, 0]);

/// One image of a grid with the caption drawn under it (empty for none).
pub struct Tile {
    /// The image, already at its display size.
    pub image: RgbImage,
    /// Text under the image.
    pub caption: String,
}

impl Tile {
    /// A tile with a caption.
    pub fn new(image: RgbImage, caption: impl Into<String>) -> Self {
        Self {
            image,
            caption: caption.into(),
        }
    }
}

/// Scales `values` linearly so that their minimum maps to 0 and their maximum to 255; constant
/// values map to 0 (black), or to 128 when `mid_grey_if_constant`.
pub fn to_u8_range(values: &[f32], mid_grey_if_constant: bool) -> Vec<u8> {
    let (min, max) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if max.partial_cmp(&min) != Some(std::cmp::Ordering::Greater) {
        let level = if mid_grey_if_constant { 128 } else { 0 };
        return vec![level; values.len()];
    }
    values
        .iter()
        .map(|&v| ((v - min) / (max - min) * 255.0).round() as u8)
        .collect()
}

/// Builds an RGB image from planes of `u8` values: one plane gives grey, three give red, green
/// and blue.
pub fn planes_to_rgb(planes: &[u8], channels: usize, height: usize, width: usize) -> RgbImage {
    let plane = height * width;
    RgbImage::from_fn(width as u32, height as u32, |x, y| {
        let offset = y as usize * width + x as usize;
        if channels >= 3 {
            Rgb([
                planes[offset],
                planes[plane + offset],
                planes[2 * plane + offset],
            ])
        } else {
            let v = planes[offset];
            Rgb([v, v, v])
        }
    })
}

/// Returns image `index` of `dataset` as it is stored (grey or colour).
pub fn dataset_image(dataset: &Dataset, index: usize) -> RgbImage {
    planes_to_rgb(
        dataset.image(index),
        dataset.channels,
        dataset.height,
        dataset.width,
    )
}

/// Enlarges `image` by an integer `factor` without smoothing, so each pixel stays visible.
pub fn enlarge(image: &RgbImage, factor: u32) -> RgbImage {
    let factor = factor.max(1);
    imageops::resize(
        image,
        image.width() * factor,
        image.height() * factor,
        imageops::FilterType::Nearest,
    )
}

/// Places `tiles` row by row, `columns` per row, each in a cell as large as the largest tile,
/// with its caption under it and an optional `title` above the grid.
pub fn compose_grid(tiles: &[Tile], columns: usize, title: Option<&str>) -> RgbImage {
    let columns = columns.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(columns).max(1);
    let has_captions = tiles.iter().any(|tile| !tile.caption.is_empty());
    let caption_height = if has_captions {
        TEXT_SIZE as u32 + 2
    } else {
        0
    };
    let title_height = if title.is_some() {
        TEXT_SIZE as u32 + 2 * PADDING
    } else {
        0
    };
    let caption_width = tiles
        .iter()
        .map(|tile| label_size(TEXT_SIZE, &tile.caption).0)
        .max()
        .unwrap_or(0);
    let cell_width = tiles
        .iter()
        .map(|tile| tile.image.width())
        .max()
        .unwrap_or(1)
        .max(caption_width);
    let cell_height = tiles
        .iter()
        .map(|tile| tile.image.height())
        .max()
        .unwrap_or(1);
    let width = PADDING + columns as u32 * (cell_width + PADDING);
    let height = title_height + PADDING + rows as u32 * (cell_height + caption_height + PADDING);

    let mut canvas = RgbImage::from_pixel(width, height, BACKGROUND);
    if let Some(title) = title {
        draw_label(
            &mut canvas,
            PADDING as i32,
            PADDING as i32,
            TEXT_SIZE,
            title,
            TEXT_COLOR,
        );
    }
    for (index, tile) in tiles.iter().enumerate() {
        let (row, column) = ((index / columns) as u32, (index % columns) as u32);
        let x = PADDING + column * (cell_width + PADDING);
        let y = title_height + PADDING + row * (cell_height + caption_height + PADDING);
        let x_image = x + (cell_width - tile.image.width()) / 2;
        imageops::replace(&mut canvas, &tile.image, i64::from(x_image), i64::from(y));
        if !tile.caption.is_empty() {
            draw_label(
                &mut canvas,
                x as i32,
                (y + cell_height + 1) as i32,
                TEXT_SIZE,
                &tile.caption,
                TEXT_COLOR,
            );
        }
    }
    canvas
}

/// Places `images` side by side with `PADDING` between them, aligned at the top.
pub fn side_by_side(images: &[RgbImage]) -> RgbImage {
    let gaps = PADDING * images.len().saturating_sub(1) as u32;
    let width = images.iter().map(RgbImage::width).sum::<u32>() + gaps;
    let height = images.iter().map(RgbImage::height).max().unwrap_or(1);
    let mut canvas = RgbImage::from_pixel(width.max(1), height, BACKGROUND);
    let mut x = 0u32;
    for image in images {
        imageops::replace(&mut canvas, image, i64::from(x), 0);
        x += image.width() + PADDING;
    }
    canvas
}

/// Whether every pixel of `image` has the same colour, so nothing was drawn on it.
pub fn is_blank(image: &RgbImage) -> bool {
    let mut pixels = image.pixels();
    match pixels.next() {
        Some(first) => pixels.all(|p| p == first),
        None => true,
    }
}
