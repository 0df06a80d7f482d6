//! Readers for the binary versions of CIFAR-10 and CIFAR-100.
//!
//! Both formats are a plain sequence of fixed-size records with no header. A CIFAR-10 record is
//! one label byte followed by 3072 pixel bytes. A CIFAR-100 record is a coarse label byte, a fine
//! label byte and 3072 pixel bytes. The pixels are a 3x32x32 image stored as the red, green and
//! blue planes in turn, each row-major, which is already the [channels, height, width] layout of
//! [`Dataset`].

use std::path::{Path, PathBuf};

use super::files::read_file;
use super::{Cifar100Label, DataError, Dataset, Format, Split};

/// Side length of a CIFAR image in pixels.
const SIDE: usize = 32;
/// Number of colour channels of a CIFAR image.
const CHANNELS: usize = 3;
/// Pixel bytes per record.
const PIXELS: usize = CHANNELS * SIDE * SIDE;

/// Subfolder created by extracting the CIFAR-10 binary archive.
pub(crate) const CIFAR10_SUBDIR: &str = "cifar-10-batches-bin";
/// Subfolder created by extracting the CIFAR-100 binary archive.
pub(crate) const CIFAR100_SUBDIR: &str = "cifar-100-binary";
/// Training batch files of CIFAR-10.
pub(crate) const CIFAR10_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// Test batch file of CIFAR-10.
pub(crate) const CIFAR10_TEST_FILE: &str = "test_batch.bin";
/// Training file of CIFAR-100.
pub(crate) const CIFAR100_TRAIN_FILE: &str = "train.bin";
/// Test file of CIFAR-100.
pub(crate) const CIFAR100_TEST_FILE: &str = "test.bin";

/// Number of fine and coarse classes of CIFAR-100.
const CIFAR100_FINE_CLASSES: usize = 100;
const CIFAR100_COARSE_CLASSES: usize = 20;
/// Number of classes of CIFAR-10.
const CIFAR10_CLASSES: usize = 10;

/// Loads CIFAR-10 (`format` is [`Format::Cifar10`]) or CIFAR-100 (any other value) from a
/// directory, where `split` picks the files, or from a single `.bin` file.
pub(crate) fn load_cifar(
    path: &Path,
    format: Format,
    split: Split,
    label_kind: Cifar100Label,
) -> Result<Dataset, DataError> {
    let is_cifar10 = format == Format::Cifar10;
    let mut details = Vec::new();
    let (files, names_dir) = if path.is_dir() {
        let subdir = path.join(if is_cifar10 {
            CIFAR10_SUBDIR
        } else {
            CIFAR100_SUBDIR
        });
        let dir = if subdir.is_dir() {
            subdir
        } else {
            path.to_path_buf()
        };
        details.push(format!("{split} split"));
        (split_files(&dir, is_cifar10, split)?, dir)
    } else {
        let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
        (vec![path.to_path_buf()], dir)
    };

    let mut images = Vec::new();
    let mut labels = Vec::new();
    for file in &files {
        let bytes = read_file(file)?;
        if is_cifar10 {
            parse_cifar10(file, &bytes, &mut images, &mut labels)?;
        } else {
            parse_cifar100(file, &bytes, label_kind, &mut images, &mut labels)?;
        }
    }
    if labels.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }

    let class_names = if is_cifar10 {
        read_class_names(&names_dir.join("batches.meta.txt"), CIFAR10_CLASSES)
    } else {
        match label_kind {
            Cifar100Label::Fine => read_class_names(
                &names_dir.join("fine_label_names.txt"),
                CIFAR100_FINE_CLASSES,
            ),
            Cifar100Label::Coarse => read_class_names(
                &names_dir.join("coarse_label_names.txt"),
                CIFAR100_COARSE_CLASSES,
            ),
        }
    };

    if is_cifar10 {
        details.push(format!("{} files", files.len()));
    } else {
        details.push(format!("{label_kind} labels"));
    }
    let source = format!(
        "{} `{}` ({})",
        format.title(),
        path.display(),
        details.join(", ")
    );

    Ok(Dataset {
        n_images: labels.len(),
        images,
        channels: CHANNELS,
        height: SIDE,
        width: SIDE,
        labels: Some(labels),
        class_names,
        source,
        n_skipped: 0,
    })
}

/// Returns the CIFAR format implied by a file name: `data_batch_N.bin` and `test_batch.bin` are
/// CIFAR-10, `train.bin` and `test.bin` are CIFAR-100.
pub(crate) fn format_from_file_name(name: &str) -> Option<Format> {
    let is_cifar10_batch = name == CIFAR10_TEST_FILE
        || name
            .strip_prefix("data_batch_")
            .and_then(|rest| rest.strip_suffix(".bin"))
            .is_some_and(|number| number.parse::<u32>().is_ok());
    if is_cifar10_batch {
        Some(Format::Cifar10)
    } else if name == CIFAR100_TRAIN_FILE || name == CIFAR100_TEST_FILE {
        Some(Format::Cifar100)
    } else {
        None
    }
}

/// Returns the CIFAR format whose record size divides `size`, when exactly one does.
pub(crate) fn format_from_file_size(size: u64) -> Option<Format> {
    let fits_cifar10 = size > 0 && size.is_multiple_of(record_size(Format::Cifar10) as u64);
    let fits_cifar100 = size > 0 && size.is_multiple_of(record_size(Format::Cifar100) as u64);
    match (fits_cifar10, fits_cifar100) {
        (true, false) => Some(Format::Cifar10),
        (false, true) => Some(Format::Cifar100),
        _ => None,
    }
}

/// Returns the CIFAR format of a directory: its files, or those of its `cifar-10-batches-bin`
/// or `cifar-100-binary` subfolder.
pub(crate) fn format_of_dir(dir: &Path) -> Option<Format> {
    for candidate in [
        dir.to_path_buf(),
        dir.join(CIFAR10_SUBDIR),
        dir.join(CIFAR100_SUBDIR),
    ] {
        let has_any = |names: &[&str]| names.iter().any(|name| candidate.join(name).is_file());
        if has_any(&CIFAR10_TRAIN_FILES) || has_any(&[CIFAR10_TEST_FILE]) {
            return Some(Format::Cifar10);
        }
        if has_any(&[CIFAR100_TRAIN_FILE, CIFAR100_TEST_FILE]) {
            return Some(Format::Cifar100);
        }
    }
    None
}

fn record_size(format: Format) -> usize {
    match format {
        Format::Cifar10 => 1 + PIXELS,
        _ => 2 + PIXELS,
    }
}

/// Lists the files of `split` in `dir`. A CIFAR-10 training set with some of its five batches
/// missing loads the ones present, with a warning.
fn split_files(dir: &Path, is_cifar10: bool, split: Split) -> Result<Vec<PathBuf>, DataError> {
    let missing = |expected: &str| DataError::MissingFile {
        dir: dir.to_path_buf(),
        expected: expected.to_string(),
        split,
    };
    let single = |name: &str| {
        let file = dir.join(name);
        if file.is_file() {
            Ok(vec![file])
        } else {
            Err(missing(&format!("`{name}`")))
        }
    };

    match (is_cifar10, split) {
        (true, Split::Train) => {
            let files: Vec<PathBuf> = CIFAR10_TRAIN_FILES
                .iter()
                .map(|name| dir.join(name))
                .filter(|file| file.is_file())
                .collect();
            if files.is_empty() {
                return Err(missing("`data_batch_1.bin` to `data_batch_5.bin`"));
            }
            if files.len() < CIFAR10_TRAIN_FILES.len() {
                tracing::warn!(
                    dir = %dir.display(),
                    found = files.len(),
                    "some CIFAR-10 training batches are missing; loading the ones present"
                );
            }
            Ok(files)
        }
        (true, Split::Test) => single(CIFAR10_TEST_FILE),
        (false, Split::Train) => single(CIFAR100_TRAIN_FILE),
        (false, Split::Test) => single(CIFAR100_TEST_FILE),
    }
}

/// Splits `bytes` into records of `format`, or returns [`DataError::CifarSize`].
fn records<'a>(
    path: &Path,
    bytes: &'a [u8],
    format: Format,
) -> Result<std::slice::ChunksExact<'a, u8>, DataError> {
    let record_size = record_size(format);
    if !bytes.len().is_multiple_of(record_size) {
        return Err(DataError::CifarSize {
            path: path.to_path_buf(),
            size: bytes.len(),
            record_size,
            format,
        });
    }
    Ok(bytes.chunks_exact(record_size))
}

fn parse_cifar10(
    path: &Path,
    bytes: &[u8],
    images: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<(), DataError> {
    let records = records(path, bytes, Format::Cifar10)?;
    images.reserve(records.len() * PIXELS);
    labels.reserve(records.len());
    for (index, record) in records.enumerate() {
        let (label, pixels) = record.split_at(1);
        let label = check_label(
            path,
            index,
            label,
            "class",
            CIFAR10_CLASSES,
            Format::Cifar10,
        )?;
        labels.push(label);
        images.extend_from_slice(pixels);
    }
    Ok(())
}

fn parse_cifar100(
    path: &Path,
    bytes: &[u8],
    label_kind: Cifar100Label,
    images: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<(), DataError> {
    let records = records(path, bytes, Format::Cifar100)?;
    images.reserve(records.len() * PIXELS);
    labels.reserve(records.len());
    for (index, record) in records.enumerate() {
        let (coarse, rest) = record.split_at(1);
        let (fine, pixels) = rest.split_at(1);
        let format = Format::Cifar100;
        let coarse = check_label(
            path,
            index,
            coarse,
            "coarse",
            CIFAR100_COARSE_CLASSES,
            format,
        )?;
        let fine = check_label(path, index, fine, "fine", CIFAR100_FINE_CLASSES, format)?;
        labels.push(match label_kind {
            Cifar100Label::Fine => fine,
            Cifar100Label::Coarse => coarse,
        });
        images.extend_from_slice(pixels);
    }
    Ok(())
}

/// Reads the single label byte in `label` and checks that it is below `n_classes`.
fn check_label(
    path: &Path,
    record: usize,
    label: &[u8],
    kind: &'static str,
    n_classes: usize,
    format: Format,
) -> Result<u32, DataError> {
    let value = label.first().copied().unwrap_or(0);
    if usize::from(value) >= n_classes {
        return Err(DataError::CifarLabel {
            path: path.to_path_buf(),
            record,
            label: value,
            kind,
            n_classes,
            format,
        });
    }
    Ok(u32::from(value))
}

/// Reads one class name per non-empty line. A missing file returns `None`. An unreadable file,
/// or one with a number of names other than `n_classes`, is ignored with a warning.
fn read_class_names(path: &Path, n_classes: usize) -> Option<Vec<String>> {
    if !path.is_file() {
        return None;
    }
    let bytes = match read_file(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%error, "ignoring the class names file");
            return None;
        }
    };
    let names: Vec<String> = String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    if names.len() != n_classes {
        tracing::warn!(
            file = %path.display(),
            found = names.len(),
            expected = n_classes,
            "ignoring the class names file because it lists the wrong number of names"
        );
        return None;
    }
    Some(names)
}
