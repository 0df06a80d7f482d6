//! Dataset readers: load images (and labels, when the format has them) into one in-memory
//! [`Dataset`] of `u8` pixels in [n_images, channels, height, width] order.
//!
//! Layout of this module:
//! - `mod.rs`: [`Dataset`], the option types, [`detect_format`] and [`load`], which dispatches
//!   to one reader per format.
//! - `idx.rs`: MNIST-style IDX files, plain or gzipped.
//! - `cifar.rs`: the binary CIFAR-10 and CIFAR-100 formats, which share one record layout apart
//!   from the label bytes.
//! - `folder.rs`: a folder of PNG/JPEG images, flat or with one subfolder per class.
//! - `embedded.rs`: the Fashion-MNIST test split compiled into the binary.
//! - `voc.rs`: Pascal VOC 2007 images with their multi-label classification targets, read
//!   apart from [`load`] because each image has several labels.
//! - `files.rs`: file reading, gzip detection and directory listing shared by the readers.
//! - `error.rs`: [`DataError`].
//!
//! Labels are loaded only to evaluate clusters against them; training never reads them.

mod cifar;
mod embedded;
mod error;
mod files;
mod folder;
mod idx;
pub mod voc;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use embedded::{FASHION_MNIST_CLASSES, load_embedded_fashion_mnist};
pub use error::DataError;

/// An in-memory image dataset.
#[derive(Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Pixels in [n_images, channels, height, width] row-major order.
    pub images: Vec<u8>,
    /// Number of images.
    pub n_images: usize,
    /// Channels per image: 1 (grayscale) or 3 (red, green, blue planes).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// One class index per image, if the format has labels. Used only for evaluation metrics,
    /// never for training.
    pub labels: Option<Vec<u32>>,
    /// Class names indexed by label, if the dataset provides them.
    pub class_names: Option<Vec<String>>,
    /// Human-readable description of where the data came from, e.g.
    /// "Fashion-MNIST (embedded, test split)".
    pub source: String,
    /// Number of undecodable images skipped while loading (folder format only).
    pub n_skipped: usize,
}

impl Dataset {
    /// Returns the number of images.
    pub fn len(&self) -> usize {
        self.n_images
    }

    /// Returns true when the dataset has no images.
    pub fn is_empty(&self) -> bool {
        self.n_images == 0
    }

    /// Returns the number of bytes per image: `channels * height * width`.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Returns the pixels of image `index` in [channels, height, width] order.
    ///
    /// # Panics
    ///
    /// Panics if `index >= self.len()`.
    pub fn image(&self, index: usize) -> &[u8] {
        let len = self.image_len();
        &self.images[index * len..(index + 1) * len]
    }

    /// Returns the number of classes: the number of class names when known, otherwise one more
    /// than the largest label, or `None` without labels.
    pub fn n_classes(&self) -> Option<usize> {
        if let Some(names) = &self.class_names {
            return Some(names.len());
        }
        let max_label = self.labels.as_ref()?.iter().copied().max()?;
        Some(max_label as usize + 1)
    }

    /// Keeps only the first `max_images` images and their labels. Does nothing when the dataset
    /// is not larger than that.
    pub fn truncate(&mut self, max_images: usize) {
        if max_images >= self.n_images {
            return;
        }
        self.images.truncate(max_images * self.image_len());
        if let Some(labels) = &mut self.labels {
            labels.truncate(max_images);
        }
        self.n_images = max_images;
    }

    /// Converts 3-channel RGB images to 1-channel luma with the ITU-R BT.601 weights
    /// (0.299 R + 0.587 G + 0.114 B, rounded). Datasets with any other number of channels are
    /// left unchanged.
    pub fn to_grayscale(&mut self) {
        if self.channels != 3 {
            return;
        }
        let plane_len = self.height * self.width;
        if plane_len == 0 {
            self.channels = 1;
            return;
        }
        let mut gray = Vec::with_capacity(self.n_images * plane_len);
        for image in self.images.chunks_exact(3 * plane_len) {
            let (red, rest) = image.split_at(plane_len);
            let (green, blue) = rest.split_at(plane_len);
            for ((&r, &g), &b) in red.iter().zip(green).zip(blue) {
                let luma =
                    (299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b) + 500) / 1000;
                gray.push(luma as u8);
            }
        }
        self.images = gray;
        self.channels = 1;
    }
}

impl fmt::Debug for Dataset {
    /// Formats the shape and metadata, not the pixels.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("source", &self.source)
            .field("n_images", &self.n_images)
            .field("channels", &self.channels)
            .field("height", &self.height)
            .field("width", &self.width)
            .field("n_labels", &self.labels.as_ref().map(Vec::len))
            .field("class_names", &self.class_names)
            .field("n_skipped", &self.n_skipped)
            .finish()
    }
}

/// A dataset file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// MNIST-style IDX files, plain or gzipped.
    Idx,
    /// CIFAR-10 binary batches.
    Cifar10,
    /// CIFAR-100 binary files.
    Cifar100,
    /// A folder of PNG/JPEG images, flat or with one subfolder per class.
    Folder,
}

impl Format {
    /// Every format, in the order used by help and error messages.
    pub const ALL: [Format; 4] = [
        Format::Idx,
        Format::Cifar10,
        Format::Cifar100,
        Format::Folder,
    ];

    /// Returns the name accepted by [`FromStr`], e.g. "cifar10".
    pub fn name(self) -> &'static str {
        match self {
            Format::Idx => "idx",
            Format::Cifar10 => "cifar10",
            Format::Cifar100 => "cifar100",
            Format::Folder => "folder",
        }
    }

    /// Returns the conventional name of the format for messages, e.g. "CIFAR-10".
    pub fn title(self) -> &'static str {
        match self {
            Format::Idx => "IDX",
            Format::Cifar10 => "CIFAR-10",
            Format::Cifar100 => "CIFAR-100",
            Format::Folder => "image folder",
        }
    }
}

impl fmt::Display for Format {
    /// Writes the name accepted by [`FromStr`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = DataError;

    /// Parses a format name, ignoring ASCII case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|format| format.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| DataError::UnknownFormat {
                name: name.to_string(),
            })
    }
}

/// A dataset split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training split.
    #[default]
    Train,
    /// The test split.
    Test,
}

impl fmt::Display for Split {
    /// Writes "train" or "test".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

impl FromStr for Split {
    type Err = DataError;

    /// Parses "train" or "test", ignoring ASCII case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            _ => Err(DataError::UnknownSplit {
                name: name.to_string(),
            }),
        }
    }
}

/// The CIFAR-100 label kind: the fine class or the coarse superclass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cifar100Label {
    /// The 100 fine classes.
    #[default]
    Fine,
    /// The 20 coarse superclasses.
    Coarse,
}

impl fmt::Display for Cifar100Label {
    /// Writes "fine" or "coarse".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cifar100Label::Fine => "fine",
            Cifar100Label::Coarse => "coarse",
        })
    }
}

impl FromStr for Cifar100Label {
    type Err = DataError;

    /// Parses "fine" or "coarse", ignoring ASCII case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_lowercase().as_str() {
            "fine" => Ok(Cifar100Label::Fine),
            "coarse" => Ok(Cifar100Label::Coarse),
            _ => Err(DataError::UnknownCifar100Label {
                name: name.to_string(),
            }),
        }
    }
}

/// Options for [`load`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Dataset format. `None` detects it with [`detect_format`].
    pub format: Option<Format>,
    /// Split to load from a dataset directory. Ignored when the path is a single file.
    pub split: Split,
    /// Folder format only: an undecodable image is an error instead of being skipped.
    pub strict: bool,
    /// Folder format only: size (width, height) in pixels that every image is resized to.
    /// `None` uses the size of the first image decoded.
    pub image_size: Option<(u32, u32)>,
    /// CIFAR-100 only: the label kind to load.
    pub cifar100_label: Cifar100Label,
}

/// Detects the dataset format of `path` from its name or, for a directory, from the names of
/// the files it contains.
///
/// A file is IDX if its name contains `images-idx3` or `labels-idx1` or it starts with an IDX
/// magic number, CIFAR-10 if it is named `data_batch_N.bin` or `test_batch.bin`, and CIFAR-100
/// if it is named `train.bin` or `test.bin`. Any other `.bin` file is CIFAR-10 or CIFAR-100 when
/// exactly one of their record sizes divides its size. A directory is checked for IDX files,
/// then CIFAR files (directly or in the subfolder created by the official archive), then images.
pub fn detect_format(path: &Path) -> Result<Format, DataError> {
    let metadata = std::fs::metadata(path).map_err(|source| files::io_error(path, source))?;
    let unknown = || DataError::UnknownLayout {
        path: path.to_path_buf(),
    };

    if metadata.is_dir() {
        if idx::dir_has_idx_images(path) {
            return Ok(Format::Idx);
        }
        if let Some(format) = cifar::format_of_dir(path) {
            return Ok(format);
        }
        if folder::dir_has_images(path) {
            return Ok(Format::Folder);
        }
        return Err(unknown());
    }

    let name = files::file_name(path);
    if idx::is_images_file_name(name)
        || name.contains("labels-idx1")
        || name.contains("labels.idx1")
    {
        return Ok(Format::Idx);
    }
    if let Some(format) = cifar::format_from_file_name(name) {
        return Ok(format);
    }
    let parent_name = path.parent().map(files::file_name).unwrap_or("");
    let is_bin = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("bin"));
    if is_bin && parent_name == cifar::CIFAR10_SUBDIR {
        return Ok(Format::Cifar10);
    }
    if is_bin && parent_name == cifar::CIFAR100_SUBDIR {
        return Ok(Format::Cifar100);
    }
    if idx::has_idx_magic(path) {
        return Ok(Format::Idx);
    }
    if is_bin {
        return cifar::format_from_file_size(metadata.len()).ok_or_else(unknown);
    }
    Err(unknown())
}

/// Loads the dataset at `path`, a directory or a single file, in the format given by
/// `options.format` or detected by [`detect_format`].
pub fn load(path: &Path, options: &LoadOptions) -> Result<Dataset, DataError> {
    std::fs::metadata(path).map_err(|source| files::io_error(path, source))?;
    let format = match options.format {
        Some(format) => format,
        None => detect_format(path)?,
    };
    if options.image_size.is_some() && format != Format::Folder {
        tracing::warn!(%format, "the image size option applies only to the folder format; ignoring it");
    }

    let dataset = match format {
        Format::Idx => idx::load_idx(path, options.split)?,
        Format::Cifar10 | Format::Cifar100 => {
            cifar::load_cifar(path, format, options.split, options.cifar100_label)?
        }
        Format::Folder => folder::load_folder(path, options.image_size, options.strict)?,
    };
    tracing::debug!(
        source = %dataset.source,
        n_images = dataset.n_images,
        channels = dataset.channels,
        height = dataset.height,
        width = dataset.width,
        n_classes = dataset.n_classes(),
        n_skipped = dataset.n_skipped,
        "loaded dataset"
    );
    Ok(dataset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb_dataset() -> Dataset {
        // Two 1x2 RGB images, each stored as its R, G and B planes. Image 0 has a pure red and a
        // pure green pixel. Image 1 has the pixels (10, 50, 90) and (20, 60, 100).
        Dataset {
            images: vec![255, 0, 0, 255, 0, 0, 10, 20, 50, 60, 90, 100],
            n_images: 2,
            channels: 3,
            height: 1,
            width: 2,
            labels: Some(vec![0, 1]),
            class_names: None,
            source: "test".to_string(),
            n_skipped: 0,
        }
    }

    #[test]
    fn grayscale_uses_bt601_weights() {
        let mut dataset = rgb_dataset();
        dataset.to_grayscale();
        assert_eq!(dataset.channels, 1);
        let expected_red = (299 * 255 + 500) / 1000;
        let expected_green = (587 * 255 + 500) / 1000;
        let luma = |r: u32, g: u32, b: u32| ((299 * r + 587 * g + 114 * b + 500) / 1000) as u8;
        assert_eq!(
            dataset.images,
            vec![
                expected_red as u8,
                expected_green as u8,
                luma(10, 50, 90),
                luma(20, 60, 100)
            ]
        );
    }

    #[test]
    fn grayscale_keeps_one_channel() {
        let mut dataset = rgb_dataset();
        dataset.channels = 1;
        dataset.n_images = 6;
        let before = dataset.clone();
        dataset.to_grayscale();
        assert_eq!(dataset, before);
    }

    #[test]
    fn truncate_keeps_prefix() {
        let mut dataset = rgb_dataset();
        dataset.labels = Some(vec![4, 7]);
        dataset.truncate(1);
        assert_eq!(dataset.len(), 1);
        assert_eq!(dataset.images, vec![255, 0, 0, 255, 0, 0]);
        assert_eq!(dataset.labels, Some(vec![4]));
        dataset.truncate(5);
        assert_eq!(dataset.len(), 1);
    }

    #[test]
    fn n_classes_from_labels() {
        let mut dataset = rgb_dataset();
        dataset.labels = Some(vec![0, 4, 2]);
        assert_eq!(dataset.n_classes(), Some(5));
        dataset.class_names = Some(vec!["a".into(); 7]);
        assert_eq!(dataset.n_classes(), Some(7));
        dataset.class_names = None;
        dataset.labels = None;
        assert_eq!(dataset.n_classes(), None);
    }

    #[test]
    fn format_names_round_trip() {
        for format in Format::ALL {
            assert_eq!(format.to_string().parse::<Format>().unwrap(), format);
        }
        assert_eq!("CIFAR10".parse::<Format>().unwrap(), Format::Cifar10);
        let message = "png".parse::<Format>().unwrap_err().to_string();
        assert!(
            message.contains("idx, cifar10, cifar100, folder"),
            "{message}"
        );
    }

    #[test]
    fn split_and_label_names_parse() {
        assert_eq!("test".parse::<Split>().unwrap(), Split::Test);
        assert_eq!(Split::Train.to_string(), "train");
        assert!(matches!(
            "val".parse::<Split>(),
            Err(DataError::UnknownSplit { .. })
        ));
        assert_eq!(
            "coarse".parse::<Cifar100Label>().unwrap(),
            Cifar100Label::Coarse
        );
        assert!("medium".parse::<Cifar100Label>().is_err());
    }
}
