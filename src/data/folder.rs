//! Reader for a folder of PNG and JPEG images.
//!
//! Either every image sits in a class subfolder (`root/cat/1.png`, `root/dog/2.jpg`), which gives
//! labels, or every image sits directly in the root, which gives none. Entries whose names start
//! with a dot are ignored, as are files with other extensions, subfolders without images and
//! images nested more than one subfolder deep.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, RgbImage};

use super::files::{file_name, io_error, read_file, sorted_entries};
use super::{DataError, Dataset};

/// Image file extensions that are loaded, compared case-insensitively.
const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Loads every image under `dir`, resized to `image_size` (width, height) or, when that is
/// `None`, to the size of the first image decoded. With `strict`, an image that cannot be read
/// or decoded is an error. Without it, the image is skipped and counted in
/// [`Dataset::n_skipped`].
pub(crate) fn load_folder(
    dir: &Path,
    image_size: Option<(u32, u32)>,
    strict: bool,
) -> Result<Dataset, DataError> {
    if let Some((width, height)) = image_size
        && (width == 0 || height == 0)
    {
        return Err(DataError::InvalidImageSize { width, height });
    }
    let layout = scan_layout(dir)?;
    if layout.files.is_empty() {
        return Err(DataError::Empty {
            path: dir.to_path_buf(),
        });
    }

    tracing::info!(dir = %dir.display(), n_files = layout.files.len(), "decoding images");
    let mut target = image_size;
    let mut pixels = Vec::new();
    let mut labels = Vec::with_capacity(layout.files.len());
    let mut all_grayscale = true;
    let mut n_skipped = 0;
    for (path, label) in &layout.files {
        let image = match decode_image(path) {
            Ok(image) => image,
            Err(error) if strict => return Err(error),
            Err(error) => {
                let (file, reason) = match &error {
                    DataError::ImageDecode { path, source } => (
                        path.display().to_string(),
                        source.to_string().replace('\n', " "),
                    ),
                    other => (path.display().to_string(), other.to_string()),
                };
                tracing::warn!(file, reason, "skipping undecodable image");
                n_skipped += 1;
                continue;
            }
        };
        all_grayscale &= !image.color().has_color();
        let (width, height) = *target.get_or_insert((image.width(), image.height()));
        let mut rgb = image.to_rgb8();
        if rgb.dimensions() != (width, height) {
            rgb = image::imageops::resize(&rgb, width, height, FilterType::Triangle);
        }
        append_planar(&rgb, &mut pixels);
        labels.push(*label);
    }

    let n_images = labels.len();
    let Some((width, height)) = target.filter(|_| n_images > 0) else {
        return Err(DataError::NoDecodableImages {
            dir: dir.to_path_buf(),
            n_skipped,
        });
    };
    let (width, height) = (width as usize, height as usize);
    let channels = if all_grayscale {
        // Grayscale images were expanded to three equal planes, so the first plane is the image.
        pixels = keep_first_plane(&pixels, n_images, width * height);
        1
    } else {
        3
    };

    let (labels, class_names, layout_name) = match layout.class_names {
        Some(names) => {
            let labels = labels.into_iter().map(|label| label.unwrap_or(0)).collect();
            let description = format!("{} classes", names.len());
            (Some(labels), Some(names), description)
        }
        None => (None, None, "unlabelled".to_string()),
    };
    Ok(Dataset {
        images: pixels,
        n_images,
        channels,
        height,
        width,
        labels,
        class_names,
        source: format!(
            "image folder `{}` ({layout_name}, {width}x{height})",
            dir.display()
        ),
        n_skipped,
    })
}

/// Returns true when `path` has a PNG or JPEG extension.
pub(crate) fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| {
            IMAGE_EXTENSIONS
                .iter()
                .any(|known| ext.eq_ignore_ascii_case(known))
        })
}

/// Returns true when `dir` contains images, directly or in its subfolders.
pub(crate) fn dir_has_images(dir: &Path) -> bool {
    let Ok(entries) = sorted_entries(dir) else {
        return false;
    };
    entries
        .iter()
        .filter(|entry| !is_hidden(entry))
        .any(|entry| {
            (entry.is_file() && is_image_file(entry)) || (entry.is_dir() && count_images(entry) > 0)
        })
}

/// The image files of a dataset folder, with their class index when the layout has classes.
struct Layout {
    files: Vec<(PathBuf, Option<u32>)>,
    class_names: Option<Vec<String>>,
}

fn scan_layout(dir: &Path) -> Result<Layout, DataError> {
    if !dir.is_dir() {
        let source = std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "the folder format expects a directory of images or of class subfolders",
        );
        return Err(io_error(dir, source));
    }
    let entries = sorted_entries(dir)?;
    let visible = entries.into_iter().filter(|entry| !is_hidden(entry));
    let (subfolders, files): (Vec<PathBuf>, Vec<PathBuf>) = visible.partition(|p| p.is_dir());
    let flat_images: Vec<PathBuf> = files.into_iter().filter(|p| is_image_file(p)).collect();

    let mut class_dirs = Vec::new();
    for subfolder in subfolders {
        let images = image_files(&subfolder)?;
        if images.is_empty() {
            tracing::warn!(folder = %subfolder.display(), "ignoring a subfolder without images");
        } else {
            class_dirs.push((subfolder, images));
        }
    }

    match (flat_images.first(), class_dirs.first()) {
        (Some(file), Some((subfolder, _))) => Err(DataError::MixedFolderLayout {
            dir: dir.to_path_buf(),
            file: file.clone(),
            subfolder: subfolder.clone(),
        }),
        (_, None) => Ok(Layout {
            files: flat_images.into_iter().map(|path| (path, None)).collect(),
            class_names: None,
        }),
        (None, Some(_)) => {
            let mut files = Vec::new();
            let mut class_names = Vec::with_capacity(class_dirs.len());
            for (class_index, (subfolder, images)) in (0u32..).zip(class_dirs) {
                let name = subfolder.file_name().unwrap_or_default().to_string_lossy();
                class_names.push(name.into_owned());
                files.extend(images.into_iter().map(|path| (path, Some(class_index))));
            }
            Ok(Layout {
                files,
                class_names: Some(class_names),
            })
        }
    }
}

/// Lists the image files directly inside `dir`, sorted by name.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries = sorted_entries(dir)?;
    Ok(entries
        .into_iter()
        .filter(|entry| !is_hidden(entry) && entry.is_file() && is_image_file(entry))
        .collect())
}

fn count_images(dir: &Path) -> usize {
    image_files(dir).map(|files| files.len()).unwrap_or(0)
}

fn is_hidden(path: &Path) -> bool {
    file_name(path).starts_with('.')
}

/// Reads and decodes one image. The format comes from the file contents when they are
/// recognised, and from the extension otherwise.
fn decode_image(path: &Path) -> Result<DynamicImage, DataError> {
    let bytes = read_file(path)?;
    let decode_error = |source| DataError::ImageDecode {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = ImageReader::new(Cursor::new(bytes));
    if let Ok(format) = ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    let reader = reader
        .with_guessed_format()
        .map_err(|source| decode_error(image::ImageError::IoError(source)))?;
    let image = reader.decode().map_err(decode_error)?;
    if image.width() == 0 || image.height() == 0 {
        let source = image::ImageError::Limits(image::error::LimitError::from_kind(
            image::error::LimitErrorKind::DimensionError,
        ));
        return Err(decode_error(source));
    }
    Ok(image)
}

/// Appends an interleaved RGB image to `pixels` as three planes (red, green, blue).
pub(super) fn append_planar(rgb: &RgbImage, pixels: &mut Vec<u8>) {
    let interleaved = rgb.as_raw();
    pixels.reserve(interleaved.len());
    for channel in 0..3 {
        pixels.extend(interleaved.iter().skip(channel).step_by(3));
    }
}

/// Keeps the first of the three planes of every image.
fn keep_first_plane(pixels: &[u8], n_images: usize, plane_len: usize) -> Vec<u8> {
    let mut gray = Vec::with_capacity(n_images * plane_len);
    for image in pixels.chunks_exact(3 * plane_len) {
        gray.extend_from_slice(&image[..plane_len]);
    }
    gray
}
