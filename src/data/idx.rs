//! IDX reader for MNIST-style datasets (MNIST, Fashion-MNIST).
//!
//! An IDX file starts with a 4-byte magic number: two zero bytes, the element type (0x08 for
//! unsigned byte) and the number of dimensions. One big-endian `u32` per dimension follows, then
//! the elements in row-major order. Images files have 3 dimensions (count, rows, columns) and labels
//! files have 1 (count). Either file may be gzipped.

use std::path::{Path, PathBuf};

use super::error::{IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC};
use super::files::{decompress_if_gzip, file_name, find_file, read_maybe_gzip, read_prefix};
use super::{DataError, Dataset, Split};

/// Loads an IDX dataset from a directory (the split picks the `train` or `t10k` files) or from
/// an images file (the labels file is looked up beside it).
pub(crate) fn load_idx(path: &Path, split: Split) -> Result<Dataset, DataError> {
    let (images_path, labels_path, source) = if path.is_dir() {
        let prefix = split_prefix(split);
        let images_path =
            find_file(path, &idx_names(prefix, "images", "idx3")).ok_or_else(|| {
                DataError::MissingFile {
                    dir: path.to_path_buf(),
                    expected: format!("`{prefix}-images-idx3-ubyte[.gz]`"),
                    split,
                }
            })?;
        let labels_path = find_file(path, &idx_names(prefix, "labels", "idx1"));
        let source = format!("IDX `{}` ({split} split)", path.display());
        (images_path, labels_path, source)
    } else {
        let labels_path = find_labels_beside(path);
        (
            path.to_path_buf(),
            labels_path,
            format!("IDX `{}`", path.display()),
        )
    };

    let images = parse_images(&images_path, read_maybe_gzip(&images_path)?)?;
    let labels = match &labels_path {
        Some(labels_path) => {
            let labels = parse_labels(labels_path, read_maybe_gzip(labels_path)?)?;
            check_counts(&images_path, images.n_images, labels_path, labels.len())?;
            Some(labels)
        }
        None => {
            tracing::warn!(
                images = %images_path.display(),
                "no IDX labels file found beside the images file; loading without labels"
            );
            None
        }
    };

    Ok(images.into_dataset(labels, source))
}

/// Parses an in-memory IDX images file and labels file, each optionally gzipped. The paths only
/// name the data in errors.
pub(crate) fn parse_idx_pair(
    images_path: &Path,
    images_raw: Vec<u8>,
    labels_path: &Path,
    labels_raw: Vec<u8>,
    source: String,
) -> Result<Dataset, DataError> {
    let images = parse_images(images_path, decompress_if_gzip(images_path, images_raw)?)?;
    let labels = parse_labels(labels_path, decompress_if_gzip(labels_path, labels_raw)?)?;
    check_counts(images_path, images.n_images, labels_path, labels.len())?;
    Ok(images.into_dataset(Some(labels), source))
}

/// Returns true when `name` looks like an IDX images file name, such as
/// `train-images-idx3-ubyte.gz` or `t10k-images.idx3-ubyte`.
pub(crate) fn is_images_file_name(name: &str) -> bool {
    name.contains("images-idx3") || name.contains("images.idx3")
}

/// Returns true when `dir` contains an IDX images file for either split.
pub(crate) fn dir_has_idx_images(dir: &Path) -> bool {
    ["train", "t10k"]
        .iter()
        .any(|prefix| find_file(dir, &idx_names(prefix, "images", "idx3")).is_some())
}

/// Returns true when the file at `path` starts with an IDX magic number, after decompression if
/// it is gzipped. Any read error returns false.
pub(crate) fn has_idx_magic(path: &Path) -> bool {
    match read_prefix(path, 4) {
        Ok(bytes) => {
            let magic = read_u32(&bytes, 0);
            magic == Some(IDX_IMAGES_MAGIC) || magic == Some(IDX_LABELS_MAGIC)
        }
        Err(_) => false,
    }
}

fn split_prefix(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Test => "t10k",
    }
}

/// File names tried for one IDX file: the standard `-idx3-ubyte` spelling and the
/// `.idx3-ubyte` spelling used by some mirrors, each plain and gzipped.
fn idx_names(prefix: &str, kind: &str, idx: &str) -> Vec<String> {
    vec![
        format!("{prefix}-{kind}-{idx}-ubyte"),
        format!("{prefix}-{kind}-{idx}-ubyte.gz"),
        format!("{prefix}-{kind}.{idx}-ubyte"),
        format!("{prefix}-{kind}.{idx}-ubyte.gz"),
    ]
}

/// Finds the labels file beside an images file by replacing `images-idx3` with `labels-idx1` in
/// its name, trying both with and without the `.gz` suffix.
fn find_labels_beside(images_path: &Path) -> Option<PathBuf> {
    let name = file_name(images_path);
    let labels_name = name
        .replace("images-idx3", "labels-idx1")
        .replace("images.idx3", "labels.idx1");
    if labels_name == name {
        return None;
    }
    let dir = images_path.parent().unwrap_or(Path::new(""));
    let toggled = match labels_name.strip_suffix(".gz") {
        Some(plain) => plain.to_string(),
        None => format!("{labels_name}.gz"),
    };
    find_file(dir, &[labels_name, toggled])
}

fn check_counts(
    images_path: &Path,
    n_images: usize,
    labels_path: &Path,
    n_labels: usize,
) -> Result<(), DataError> {
    if n_images == n_labels {
        return Ok(());
    }
    Err(DataError::IdxCountMismatch {
        images_path: images_path.to_path_buf(),
        n_images,
        labels_path: labels_path.to_path_buf(),
        n_labels,
    })
}

/// The pixels of an IDX images file, header removed.
struct IdxImages {
    pixels: Vec<u8>,
    n_images: usize,
    rows: usize,
    columns: usize,
}

impl IdxImages {
    fn into_dataset(self, labels: Option<Vec<u32>>, source: String) -> Dataset {
        Dataset {
            images: self.pixels,
            n_images: self.n_images,
            channels: 1,
            height: self.rows,
            width: self.columns,
            labels,
            class_names: None,
            source,
            n_skipped: 0,
        }
    }
}

fn parse_images(path: &Path, bytes: Vec<u8>) -> Result<IdxImages, DataError> {
    let (dims, pixels) = parse_idx(path, bytes, IDX_IMAGES_MAGIC)?;
    // `parse_idx` reads as many dimensions as the magic number declares, which is 3 here.
    let [n_images, rows, columns] = dims[..] else {
        return Err(DataError::IdxDimensions {
            path: path.to_path_buf(),
            dims: dims.iter().map(|&d| d as u32).collect(),
            reason: "an images file must have 3 dimensions (count, rows, columns)",
        });
    };
    Ok(IdxImages {
        pixels,
        n_images,
        rows,
        columns,
    })
}

fn parse_labels(path: &Path, bytes: Vec<u8>) -> Result<Vec<u32>, DataError> {
    let (_, labels) = parse_idx(path, bytes, IDX_LABELS_MAGIC)?;
    Ok(labels.into_iter().map(u32::from).collect())
}

/// Validates an IDX header against `expected_magic` and the file size, and returns the
/// dimensions and the elements.
fn parse_idx(
    path: &Path,
    mut bytes: Vec<u8>,
    expected_magic: u32,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let n_dims = (expected_magic & 0xff) as usize;
    let header_len = 4 + 4 * n_dims;
    let header_truncated = || DataError::IdxHeaderTruncated {
        path: path.to_path_buf(),
        expected: header_len,
        actual: bytes.len(),
    };

    let magic = read_u32(&bytes, 0).ok_or_else(header_truncated)?;
    if magic != expected_magic {
        return Err(DataError::IdxMagic {
            path: path.to_path_buf(),
            found: magic,
            expected: expected_magic,
        });
    }
    let raw_dims = (0..n_dims)
        .map(|i| read_u32(&bytes, 4 + 4 * i))
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(header_truncated)?;

    let invalid = |reason| DataError::IdxDimensions {
        path: path.to_path_buf(),
        dims: raw_dims.clone(),
        reason,
    };
    let dims: Vec<usize> = raw_dims.iter().map(|&d| d as usize).collect();
    if dims.iter().skip(1).any(|&d| d == 0) {
        return Err(invalid("every image dimension must be at least 1"));
    }
    let n_elements = dims
        .iter()
        .try_fold(1usize, |product, &d| product.checked_mul(d))
        .ok_or_else(|| invalid("the element count overflows"))?;
    let expected = header_len
        .checked_add(n_elements)
        .ok_or_else(|| invalid("the element count overflows"))?;

    let actual = bytes.len();
    if actual < expected {
        return Err(DataError::IdxTruncated {
            path: path.to_path_buf(),
            expected,
            actual,
        });
    }
    if actual > expected {
        return Err(DataError::IdxTrailingData {
            path: path.to_path_buf(),
            expected,
            actual,
        });
    }
    if dims.first() == Some(&0) {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }

    bytes.drain(..header_len);
    Ok((dims, bytes))
}

fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let word = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_be_bytes(word.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_bytes(magic: u32, dims: &[u32], elements: &[u8]) -> Vec<u8> {
        let mut bytes = magic.to_be_bytes().to_vec();
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(elements);
        bytes
    }

    #[test]
    fn parse_idx_images_shape() {
        let bytes = idx_bytes(
            IDX_IMAGES_MAGIC,
            &[2, 2, 3],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        );
        let images = parse_images(Path::new("x"), bytes).unwrap();
        assert_eq!(images.n_images, 2);
        assert_eq!(images.rows, 2);
        assert_eq!(images.columns, 3);
        assert_eq!(images.pixels, (1..=12).collect::<Vec<u8>>());
    }

    #[test]
    fn parse_idx_short_header() {
        let bytes = idx_bytes(IDX_IMAGES_MAGIC, &[2], &[]);
        let err = parse_images(Path::new("x"), bytes).err().unwrap();
        assert!(matches!(
            err,
            DataError::IdxHeaderTruncated {
                expected: 16,
                actual: 8,
                ..
            }
        ));
    }

    #[test]
    fn parse_idx_zero_rows() {
        let bytes = idx_bytes(IDX_IMAGES_MAGIC, &[1, 0, 28], &[]);
        let err = parse_images(Path::new("x"), bytes).err().unwrap();
        assert!(matches!(err, DataError::IdxDimensions { .. }), "{err}");
    }

    #[test]
    fn parse_idx_overflowing_dims() {
        let bytes = idx_bytes(IDX_IMAGES_MAGIC, &[u32::MAX, u32::MAX, u32::MAX], &[]);
        let err = parse_images(Path::new("x"), bytes).err().unwrap();
        assert!(matches!(err, DataError::IdxDimensions { .. }), "{err}");
    }

    #[test]
    fn parse_idx_trailing_bytes() {
        let bytes = idx_bytes(IDX_LABELS_MAGIC, &[2], &[1, 2, 3]);
        let err = parse_labels(Path::new("x"), bytes).err().unwrap();
        assert!(matches!(
            err,
            DataError::IdxTrailingData {
                expected: 10,
                actual: 11,
                ..
            }
        ));
    }

    #[test]
    fn labels_name_beside_images() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("t10k-images-idx3-ubyte");
        assert_eq!(find_labels_beside(&images), None);
        let labels = dir.path().join("t10k-labels-idx1-ubyte.gz");
        std::fs::write(&labels, b"").unwrap();
        assert_eq!(find_labels_beside(&images), Some(labels));
    }
}
