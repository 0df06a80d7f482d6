//! Errors raised while reading datasets.

use std::path::PathBuf;

/// A failure to read or parse a dataset. Each message is one line that names the file, the
/// invalid value and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The dataset path does not exist.
    #[error("`{}`: not found; check the dataset path", path.display())]
    NotFound {
        /// The missing path.
        path: PathBuf,
    },

    /// A file or directory exists but could not be read.
    #[error("`{}`: failed to read: {source}", path.display())]
    Io {
        /// The file or directory being read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A file starts with the gzip magic bytes but does not decompress.
    #[error(
        "`{}`: gzip decompression failed: {source}; the file is probably truncated, download it again",
        path.display()
    )]
    Gzip {
        /// The compressed file.
        path: PathBuf,
        /// The error reported by the decoder.
        source: std::io::Error,
    },

    /// A dataset directory lacks a file that the format and split require.
    #[error("`{}`: missing {expected} for the {split} split; check the path, split and format", dir.display())]
    MissingFile {
        /// The directory that was searched.
        dir: PathBuf,
        /// The file names that were tried, e.g. "`train-images-idx3-ubyte[.gz]`".
        expected: String,
        /// The requested split.
        split: super::Split,
    },

    /// A dataset file or directory contains no images.
    #[error("`{}`: contains no images; check the path", path.display())]
    Empty {
        /// The empty file or directory.
        path: PathBuf,
    },

    /// An IDX file is shorter than its fixed-size header.
    #[error(
        "`{}`: file is {actual} bytes, shorter than the {expected}-byte IDX header; is this an IDX file?",
        path.display()
    )]
    IdxHeaderTruncated {
        /// The IDX file (after decompression, if it was gzipped).
        path: PathBuf,
        /// The header size in bytes.
        expected: usize,
        /// The file size in bytes.
        actual: usize,
    },

    /// An IDX file starts with the wrong magic number.
    #[error(
        "`{}`: wrong IDX magic number {found:#010x} (expected {expected:#010x} for {}); {}",
        path.display(),
        idx_kind(*expected),
        idx_magic_hint(*found, *expected)
    )]
    IdxMagic {
        /// The IDX file.
        path: PathBuf,
        /// The first four bytes of the file, read as a big-endian number.
        found: u32,
        /// The magic number for the expected kind of file: 0x00000803 for images, 0x00000801
        /// for labels.
        expected: u32,
    },

    /// An IDX header declares dimensions that this reader cannot use.
    #[error("`{}`: invalid IDX dimensions {dims:?}: {reason}", path.display())]
    IdxDimensions {
        /// The IDX file.
        path: PathBuf,
        /// The dimensions declared in the header.
        dims: Vec<u32>,
        /// The reason the dimensions are invalid.
        reason: &'static str,
    },

    /// An IDX file is shorter than its header declares.
    #[error(
        "`{}`: truncated IDX file: the header declares {expected} bytes but the file has {actual}; download it again",
        path.display()
    )]
    IdxTruncated {
        /// The IDX file.
        path: PathBuf,
        /// The size in bytes implied by the header (after decompression).
        expected: usize,
        /// The actual size in bytes (after decompression).
        actual: usize,
    },

    /// An IDX file is longer than its header declares.
    #[error(
        "`{}`: IDX file has {actual} bytes but its header declares {expected}; the file is corrupt, download it again",
        path.display()
    )]
    IdxTrailingData {
        /// The IDX file.
        path: PathBuf,
        /// The size in bytes implied by the header (after decompression).
        expected: usize,
        /// The actual size in bytes (after decompression).
        actual: usize,
    },

    /// An IDX images file and its labels file contain different numbers of items.
    #[error(
        "`{}` contains {n_images} images but `{}` contains {n_labels} labels; use files from the same split",
        images_path.display(),
        labels_path.display()
    )]
    IdxCountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// The number of images.
        n_images: usize,
        /// The labels file.
        labels_path: PathBuf,
        /// The number of labels.
        n_labels: usize,
    },

    /// A CIFAR file size is not a whole number of records.
    #[error(
        "`{}`: size {size} bytes is not a multiple of the {record_size}-byte {} record; {}",
        path.display(),
        format.title(),
        cifar_size_hint(*format)
    )]
    CifarSize {
        /// The CIFAR file.
        path: PathBuf,
        /// The file size in bytes.
        size: usize,
        /// The record size in bytes: 3073 for CIFAR-10, 3074 for CIFAR-100.
        record_size: usize,
        /// The format being read.
        format: super::Format,
    },

    /// A CIFAR record contains a label outside the range of the format.
    #[error(
        "`{}`: record {record} has {kind} label {label}, but {} {kind} labels are below {n_classes}; is the format right?",
        path.display(),
        format.title()
    )]
    CifarLabel {
        /// The CIFAR file.
        path: PathBuf,
        /// The zero-based record index.
        record: usize,
        /// The label value found.
        label: u8,
        /// "class", "fine" or "coarse".
        kind: &'static str,
        /// The number of classes for that kind of label.
        n_classes: usize,
        /// The format being read.
        format: super::Format,
    },

    /// A folder contains both image files and class subfolders.
    #[error(
        "`{}` contains both image files (e.g. `{}`) and class subfolders (e.g. `{}`); put every image in a class subfolder, or none",
        dir.display(),
        file.display(),
        subfolder.display()
    )]
    MixedFolderLayout {
        /// The dataset folder.
        dir: PathBuf,
        /// An image file directly inside the folder.
        file: PathBuf,
        /// A class subfolder that contains images.
        subfolder: PathBuf,
    },

    /// An image in a folder dataset could not be decoded (raised only in strict mode).
    #[error(
        "`{}`: failed to decode image ({}); remove the file, or drop --strict to skip it",
        path.display(),
        source.to_string().replace('\n', " ")
    )]
    ImageDecode {
        /// The image file.
        path: PathBuf,
        /// The error reported by the `image` crate.
        source: image::ImageError,
    },

    /// Every image in a folder dataset failed to decode.
    #[error("`{}`: none of the {n_skipped} images could be decoded; check the files", dir.display())]
    NoDecodableImages {
        /// The dataset folder.
        dir: PathBuf,
        /// The number of images that failed.
        n_skipped: usize,
    },

    /// The requested image size has a zero side.
    #[error("invalid image size {width}x{height}: width and height must be at least 1")]
    InvalidImageSize {
        /// The requested width in pixels.
        width: u32,
        /// The requested height in pixels.
        height: u32,
    },

    /// The dataset format could not be detected from the path.
    #[error(
        "`{}`: cannot detect the dataset format; expected IDX files (`*-images-idx3-ubyte[.gz]`), CIFAR-10 (`data_batch_N.bin`, `test_batch.bin`), CIFAR-100 (`train.bin`, `test.bin`) or a folder of PNG/JPEG images; pass `--format idx|cifar10|cifar100|folder`",
        path.display()
    )]
    UnknownLayout {
        /// The dataset path.
        path: PathBuf,
    },

    /// A format name did not parse.
    #[error("unknown dataset format `{name}`; valid formats: idx, cifar10, cifar100, folder")]
    UnknownFormat {
        /// The name given.
        name: String,
    },

    /// A split name did not parse.
    #[error("unknown split `{name}`; valid splits: train, test")]
    UnknownSplit {
        /// The name given.
        name: String,
    },

    /// A CIFAR-100 label kind did not parse.
    #[error("unknown CIFAR-100 label kind `{name}`; valid kinds: fine, coarse")]
    UnknownCifar100Label {
        /// The name given.
        name: String,
    },

    /// A folder that has neither `VOC2007/ImageSets/Main` nor `ImageSets/Main`.
    #[error(
        "`{}`: not a Pascal VOC 2007 folder: it has neither `VOC2007/ImageSets/Main` nor `ImageSets/Main`; pass the `VOCdevkit` folder extracted from VOCtrainval_06-Nov-2007.tar and VOCtest_06-Nov-2007.tar",
        path.display()
    )]
    VocLayout {
        /// The folder given.
        path: PathBuf,
    },

    /// A VOC image set file (`ImageSets/Main/NAME.txt`) that does not exist.
    #[error("`{}`: not found; {hint}", path.display())]
    VocMissingImageSet {
        /// The missing file.
        path: PathBuf,
        /// The archive that contains it.
        hint: &'static str,
    },

    /// An annotation or image file that an image set lists but that does not exist.
    #[error(
        "`{}`: not found, but `{}` lists image `{id}`; extract the VOC archives again",
        path.display(),
        image_set.display()
    )]
    VocMissingFile {
        /// The missing file.
        path: PathBuf,
        /// The image set file that lists the image.
        image_set: PathBuf,
        /// The image id.
        id: String,
    },

    /// A VOC annotation that is not valid XML or lacks a required element.
    #[error(
        "`{}`: invalid VOC annotation: {message}; extract the file again from the VOC archive",
        path.display()
    )]
    VocAnnotation {
        /// The annotation file.
        path: PathBuf,
        /// The parser's message, or the element that is missing.
        message: String,
    },

    /// A VOC annotation naming a class outside the 20 VOC classes.
    #[error("`{}`: unknown class `{name}`; the VOC 2007 classes are {}", path.display(), super::voc::VOC_CLASSES.join(", "))]
    VocUnknownClass {
        /// The annotation file.
        path: PathBuf,
        /// The class name found.
        name: String,
    },

    /// A VOC image that could not be decoded.
    #[error(
        "`{}`: failed to decode image ({}); extract the file again from the VOC archive",
        path.display(),
        source.to_string().replace('\n', " ")
    )]
    VocImageDecode {
        /// The image file.
        path: PathBuf,
        /// The error reported by the `image` crate.
        source: image::ImageError,
    },
}

/// The IDX magic number of an unsigned-byte images file with 3 dimensions.
pub(crate) const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// The IDX magic number of an unsigned-byte labels file with 1 dimension.
pub(crate) const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

fn idx_kind(expected: u32) -> &'static str {
    if expected == IDX_LABELS_MAGIC {
        "labels"
    } else {
        "images"
    }
}

fn idx_magic_hint(found: u32, expected: u32) -> &'static str {
    if expected == IDX_IMAGES_MAGIC && found == IDX_LABELS_MAGIC {
        "is this a labels file?"
    } else if expected == IDX_LABELS_MAGIC && found == IDX_IMAGES_MAGIC {
        "is this an images file?"
    } else if found >> 16 == 0 && (found >> 8) & 0xff != 0x08 {
        "only unsigned-byte IDX files (type 0x08) are supported"
    } else {
        "is this an IDX file?"
    }
}

fn cifar_size_hint(format: super::Format) -> &'static str {
    match format {
        super::Format::Cifar10 => {
            "is this a CIFAR-100 file (3074-byte records) or a truncated file?"
        }
        super::Format::Cifar100 => {
            "is this a CIFAR-10 file (3073-byte records) or a truncated file?"
        }
        _ => "the file is truncated or in another format",
    }
}
