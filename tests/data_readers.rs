//! Dataset readers against real files: the Fashion-MNIST test split shipped in `data/`, and
//! CIFAR files and image folders generated in temporary directories.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use deepcluster::data::{
    Cifar100Label, DataError, Dataset, Format, LoadOptions, Split, detect_format, load,
    load_embedded_fashion_mnist,
};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use image::{GrayImage, Luma, Rgb, RgbImage};
use tempfile::TempDir;

const FASHION_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/fashion-mnist");

fn fashion_dir() -> PathBuf {
    PathBuf::from(FASHION_DIR)
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn options(format: Option<Format>, split: Split) -> LoadOptions {
    LoadOptions {
        format,
        split,
        ..LoadOptions::default()
    }
}

fn test_split() -> LoadOptions {
    options(None, Split::Test)
}

/// Builds an IDX file: magic number, dimensions, then elements.
fn idx_file(magic: u32, dims: &[u32], elements: &[u8]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    for dim in dims {
        bytes.extend_from_slice(&dim.to_be_bytes());
    }
    bytes.extend_from_slice(elements);
    bytes
}

// ---------------------------------------------------------------------------------------------
// IDX

#[test]
fn fashion_mnist_test_split_shape() {
    let dataset = load(&fashion_dir(), &test_split()).unwrap();
    assert_eq!(dataset.len(), 10_000);
    assert_eq!(dataset.channels, 1);
    assert_eq!(dataset.height, 28);
    assert_eq!(dataset.width, 28);
    assert_eq!(dataset.images.len(), 10_000 * 28 * 28);
    assert_eq!(dataset.image_len(), 784);
    assert_eq!(dataset.n_classes(), Some(10));
    assert_eq!(dataset.n_skipped, 0);
    assert!(dataset.source.contains("test split"), "{}", dataset.source);
}

#[test]
fn fashion_mnist_known_labels() {
    let dataset = load(&fashion_dir(), &test_split()).unwrap();
    let labels = dataset.labels.as_ref().unwrap();
    assert_eq!(labels.len(), 10_000);
    // The first ten labels of the Fashion-MNIST test split. Label 9 is "Ankle boot".
    assert_eq!(&labels[..10], &[9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);

    let mut histogram = [0usize; 10];
    for &label in labels {
        histogram[label as usize] += 1;
    }
    assert_eq!(histogram, [1000; 10]);
}

#[test]
fn fashion_mnist_first_image_pixels() {
    let dataset = load(&fashion_dir(), &test_split()).unwrap();
    let first = dataset.image(0);
    assert_eq!(first.len(), 784);
    // Values computed independently with Python's gzip module on the same file.
    assert_eq!(first.iter().map(|&p| u32::from(p)).sum::<u32>(), 33_456);
    assert_eq!(first.iter().copied().max(), Some(255));
    // The top-left pixel is background.
    assert_eq!(first[0], 0);
}

#[test]
fn fashion_mnist_train_split_missing() {
    let err = load(&fashion_dir(), &options(None, Split::Train)).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::MissingFile {
                split: Split::Train,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("train-images-idx3-ubyte"), "{err}");
}

#[test]
fn embedded_matches_files() {
    let embedded = load_embedded_fashion_mnist().unwrap();
    let from_files = load(&fashion_dir(), &test_split()).unwrap();
    assert_eq!(embedded.images, from_files.images);
    assert_eq!(embedded.labels, from_files.labels);
    assert_eq!(embedded.source, "Fashion-MNIST (embedded, test split)");
    let names = embedded.class_names.as_ref().unwrap();
    assert_eq!(names.len(), 10);
    assert_eq!(names[0], "T-shirt/top");
    assert_eq!(names[9], "Ankle boot");
    assert_eq!(embedded.n_classes(), Some(10));
}

#[test]
fn uncompressed_copy_reads_same() {
    let dir = TempDir::new().unwrap();
    let images_path = dir.path().join("t10k-images-idx3-ubyte");
    let labels_path = dir.path().join("t10k-labels-idx1-ubyte");
    std::fs::write(
        &images_path,
        gunzip(&fashion_dir().join("t10k-images-idx3-ubyte.gz")),
    )
    .unwrap();
    std::fs::write(
        &labels_path,
        gunzip(&fashion_dir().join("t10k-labels-idx1-ubyte.gz")),
    )
    .unwrap();
    let reference = load(&fashion_dir(), &test_split()).unwrap();

    let from_dir = load(dir.path(), &test_split()).unwrap();
    assert_eq!(from_dir.images, reference.images);
    assert_eq!(from_dir.labels, reference.labels);

    // The images file on its own finds the labels file beside it.
    let from_file = load(&images_path, &LoadOptions::default()).unwrap();
    assert_eq!(from_file.images, reference.images);
    assert_eq!(from_file.labels, reference.labels);
}

#[test]
fn idx_gzip_detected_by_content() {
    let dir = TempDir::new().unwrap();
    let images = idx_file(0x803, &[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
    let labels = idx_file(0x801, &[2], &[3, 4]);
    // Gzipped content under names without `.gz`.
    let images_path = dir.path().join("train-images-idx3-ubyte");
    std::fs::write(&images_path, gzip(&images)).unwrap();
    std::fs::write(dir.path().join("train-labels-idx1-ubyte"), gzip(&labels)).unwrap();

    let dataset = load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(dataset.len(), 2);
    assert_eq!((dataset.height, dataset.width), (2, 2));
    assert_eq!(dataset.image(1), &[5, 6, 7, 8]);
    assert_eq!(dataset.labels, Some(vec![3, 4]));
}

#[test]
fn idx_labels_found_with_other_compression() {
    let dir = TempDir::new().unwrap();
    let images_path = dir.path().join("t10k-images-idx3-ubyte");
    std::fs::write(&images_path, idx_file(0x803, &[1, 1, 1], &[9])).unwrap();
    let labels = idx_file(0x801, &[1], &[6]);
    std::fs::write(dir.path().join("t10k-labels-idx1-ubyte.gz"), gzip(&labels)).unwrap();

    let dataset = load(&images_path, &LoadOptions::default()).unwrap();
    assert_eq!(dataset.labels, Some(vec![6]));
}

#[test]
fn idx_images_without_labels() {
    let dir = TempDir::new().unwrap();
    let images_path = dir.path().join("my-images-idx3-ubyte");
    std::fs::write(
        &images_path,
        idx_file(0x803, &[3, 1, 2], &[1, 2, 3, 4, 5, 6]),
    )
    .unwrap();

    let dataset = load(&images_path, &LoadOptions::default()).unwrap();
    assert_eq!(dataset.len(), 3);
    assert_eq!(dataset.labels, None);
    assert_eq!(dataset.n_classes(), None);
}

#[test]
fn idx_wrong_magic() {
    let dir = TempDir::new().unwrap();
    // A labels file saved under an images file name.
    let images_path = dir.path().join("train-images-idx3-ubyte");
    std::fs::write(&images_path, idx_file(0x801, &[2], &[0, 1])).unwrap();

    let err = load(&images_path, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::IdxMagic {
                found: 0x801,
                expected: 0x803,
                ..
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("0x00000801"), "{message}");
    assert!(message.contains("0x00000803"), "{message}");
    assert!(message.contains("labels file"), "{message}");
    assert!(message.contains("train-images-idx3-ubyte"), "{message}");
}

#[test]
fn idx_wrong_labels_magic() {
    let dir = TempDir::new().unwrap();
    let images_path = dir.path().join("train-images-idx3-ubyte");
    std::fs::write(&images_path, idx_file(0x803, &[1, 1, 1], &[0])).unwrap();
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte"),
        b"not an idx file",
    )
    .unwrap();

    let err = load(&images_path, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::IdxMagic {
                expected: 0x801,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn idx_truncated_file() {
    let dir = TempDir::new().unwrap();
    let full = gunzip(&fashion_dir().join("t10k-images-idx3-ubyte.gz"));
    let images_path = dir.path().join("t10k-images-idx3-ubyte");
    std::fs::write(&images_path, &full[..full.len() - 100]).unwrap();

    let err = load(&images_path, &LoadOptions::default()).unwrap_err();
    match &err {
        DataError::IdxTruncated {
            expected, actual, ..
        } => {
            assert_eq!(*expected, 7_840_016);
            assert_eq!(*actual, 7_840_016 - 100);
        }
        other => panic!("expected IdxTruncated, got {other}"),
    }
    assert!(err.to_string().contains("7840016"), "{err}");
}

#[test]
fn idx_truncated_gzip() {
    let dir = TempDir::new().unwrap();
    let compressed = std::fs::read(fashion_dir().join("t10k-images-idx3-ubyte.gz")).unwrap();
    let images_path = dir.path().join("t10k-images-idx3-ubyte.gz");
    std::fs::write(&images_path, &compressed[..compressed.len() / 2]).unwrap();

    let err = load(&images_path, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err}");
}

#[test]
fn idx_header_too_short() {
    let dir = TempDir::new().unwrap();
    let images_path = dir.path().join("t10k-images-idx3-ubyte");
    std::fs::write(&images_path, [0, 0, 8, 3, 0, 0]).unwrap();

    let err = load(&images_path, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::IdxHeaderTruncated {
                expected: 16,
                actual: 6,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn idx_count_mismatch() {
    let dir = TempDir::new().unwrap();
    let images_path = dir.path().join("train-images-idx3-ubyte");
    std::fs::write(&images_path, idx_file(0x803, &[3, 1, 1], &[1, 2, 3])).unwrap();
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte"),
        idx_file(0x801, &[2], &[0, 1]),
    )
    .unwrap();

    let err = load(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::IdxCountMismatch {
                n_images: 3,
                n_labels: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn idx_zero_images_is_empty() {
    let dir = TempDir::new().unwrap();
    let images_path = dir.path().join("train-images-idx3-ubyte");
    std::fs::write(&images_path, idx_file(0x803, &[0, 28, 28], &[])).unwrap();

    let err = load(&images_path, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
}

#[test]
fn missing_path_not_found() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("no-such-dataset");
    let err = load(&path, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("no-such-dataset"), "{err}");
    assert!(err.to_string().contains("not found"), "{err}");

    let err = detect_format(&path).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// CIFAR

/// Pixel `j` of generated CIFAR record `i`.
fn cifar_pixel(i: usize, j: usize) -> u8 {
    ((i * 7 + j * 3) % 256) as u8
}

fn cifar_pixels(i: usize) -> Vec<u8> {
    (0..3072).map(|j| cifar_pixel(i, j)).collect()
}

/// Writes CIFAR-10 records for the given (record index, label) pairs.
fn write_cifar10(path: &Path, records: &[(usize, u8)]) {
    let mut bytes = Vec::new();
    for &(i, label) in records {
        bytes.push(label);
        bytes.extend(cifar_pixels(i));
    }
    std::fs::write(path, bytes).unwrap();
}

/// Writes CIFAR-100 records for the given (record index, coarse label, fine label) triples.
fn write_cifar100(path: &Path, records: &[(usize, u8, u8)]) {
    let mut bytes = Vec::new();
    for &(i, coarse, fine) in records {
        bytes.push(coarse);
        bytes.push(fine);
        bytes.extend(cifar_pixels(i));
    }
    std::fs::write(path, bytes).unwrap();
}

fn cifar10_names() -> Vec<String> {
    [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    .iter()
    .map(|name| name.to_string())
    .collect()
}

/// Writes a CIFAR-10 directory: two training batches (3 and 2 records), a test batch and the
/// class names file.
fn cifar10_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    write_cifar10(&dir.join("data_batch_1.bin"), &[(0, 3), (1, 8), (2, 0)]);
    write_cifar10(&dir.join("data_batch_2.bin"), &[(3, 9), (4, 1)]);
    write_cifar10(&dir.join("test_batch.bin"), &[(5, 6)]);
    let mut names = cifar10_names().join("\n");
    names.push_str("\n\n");
    std::fs::write(dir.join("batches.meta.txt"), names).unwrap();
}

#[test]
fn cifar10_train_split() {
    let dir = TempDir::new().unwrap();
    cifar10_dir(dir.path());

    let dataset = load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(dataset.len(), 5);
    assert_eq!(
        (dataset.channels, dataset.height, dataset.width),
        (3, 32, 32)
    );
    assert_eq!(dataset.labels, Some(vec![3, 8, 0, 9, 1]));
    for i in 0..5 {
        assert_eq!(dataset.image(i), cifar_pixels(i).as_slice(), "image {i}");
    }
    assert_eq!(dataset.class_names, Some(cifar10_names()));
    assert_eq!(dataset.n_classes(), Some(10));
}

#[test]
fn cifar10_test_split() {
    let dir = TempDir::new().unwrap();
    cifar10_dir(dir.path());

    let dataset = load(dir.path(), &options(None, Split::Test)).unwrap();
    assert_eq!(dataset.len(), 1);
    assert_eq!(dataset.labels, Some(vec![6]));
    assert_eq!(dataset.image(0), cifar_pixels(5).as_slice());
}

#[test]
fn cifar10_archive_subfolder() {
    let dir = TempDir::new().unwrap();
    cifar10_dir(&dir.path().join("cifar-10-batches-bin"));

    assert_eq!(detect_format(dir.path()).unwrap(), Format::Cifar10);
    let dataset = load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(dataset.len(), 5);
    assert_eq!(dataset.class_names, Some(cifar10_names()));
}

#[test]
fn cifar10_single_file() {
    let dir = TempDir::new().unwrap();
    cifar10_dir(dir.path());

    let dataset = load(
        &dir.path().join("data_batch_2.bin"),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(dataset.len(), 2);
    assert_eq!(dataset.labels, Some(vec![9, 1]));
    assert_eq!(dataset.image(0), cifar_pixels(3).as_slice());
    assert_eq!(dataset.class_names, Some(cifar10_names()));
}

#[test]
fn cifar10_wrong_size() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("data_batch_1.bin");
    std::fs::write(&path, vec![0u8; 3073 * 2 + 5]).unwrap();

    let err = load(dir.path(), &LoadOptions::default()).unwrap_err();
    match &err {
        DataError::CifarSize {
            path: file,
            size,
            record_size,
            ..
        } => {
            assert_eq!(file, &path);
            assert_eq!(*size, 3073 * 2 + 5);
            assert_eq!(*record_size, 3073);
        }
        other => panic!("expected CifarSize, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains("data_batch_1.bin"), "{message}");
    assert!(message.contains("6151"), "{message}");
    assert!(message.contains("3073"), "{message}");
}

#[test]
fn cifar10_label_out_of_range() {
    let dir = TempDir::new().unwrap();
    write_cifar10(&dir.path().join("test_batch.bin"), &[(0, 2), (1, 10)]);

    let err = load(dir.path(), &options(None, Split::Test)).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CifarLabel {
                record: 1,
                label: 10,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn cifar10_missing_split() {
    let dir = TempDir::new().unwrap();
    write_cifar10(&dir.path().join("data_batch_1.bin"), &[(0, 2)]);

    let err = load(dir.path(), &options(None, Split::Test)).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::MissingFile {
                split: Split::Test,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("test_batch.bin"), "{err}");
}

fn cifar100_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    write_cifar100(
        &dir.join("train.bin"),
        &[(0, 11, 42), (1, 19, 99), (2, 0, 7)],
    );
    write_cifar100(&dir.join("test.bin"), &[(3, 4, 55)]);
    let fine: Vec<String> = (0..100).map(|i| format!("fine_{i}")).collect();
    let coarse: Vec<String> = (0..20).map(|i| format!("coarse_{i}")).collect();
    std::fs::write(dir.join("fine_label_names.txt"), fine.join("\n")).unwrap();
    std::fs::write(dir.join("coarse_label_names.txt"), coarse.join("\n")).unwrap();
}

#[test]
fn cifar100_fine_labels_default() {
    let dir = TempDir::new().unwrap();
    cifar100_dir(dir.path());

    let dataset = load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(dataset.len(), 3);
    assert_eq!(
        (dataset.channels, dataset.height, dataset.width),
        (3, 32, 32)
    );
    assert_eq!(dataset.labels, Some(vec![42, 99, 7]));
    assert_eq!(dataset.image(2), cifar_pixels(2).as_slice());
    assert_eq!(dataset.n_classes(), Some(100));
    assert_eq!(dataset.class_names.as_ref().unwrap()[42], "fine_42");
}

#[test]
fn cifar100_coarse_labels() {
    let dir = TempDir::new().unwrap();
    cifar100_dir(dir.path());

    let load_options = LoadOptions {
        cifar100_label: Cifar100Label::Coarse,
        ..LoadOptions::default()
    };
    let dataset = load(dir.path(), &load_options).unwrap();
    assert_eq!(dataset.labels, Some(vec![11, 19, 0]));
    assert_eq!(dataset.n_classes(), Some(20));
    assert_eq!(dataset.class_names.as_ref().unwrap()[19], "coarse_19");
}

#[test]
fn cifar100_test_split_subfolder() {
    let dir = TempDir::new().unwrap();
    cifar100_dir(&dir.path().join("cifar-100-binary"));

    assert_eq!(detect_format(dir.path()).unwrap(), Format::Cifar100);
    let dataset = load(dir.path(), &options(None, Split::Test)).unwrap();
    assert_eq!(dataset.labels, Some(vec![55]));
    assert_eq!(dataset.image(0), cifar_pixels(3).as_slice());
}

#[test]
fn cifar100_wrong_size() {
    let dir = TempDir::new().unwrap();
    // A CIFAR-10 file (3073-byte records) renamed to a CIFAR-100 name.
    write_cifar10(&dir.path().join("train.bin"), &[(0, 1), (1, 2)]);

    let err = load(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CifarSize {
                size: 6146,
                record_size: 3074,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("train.bin"), "{err}");
}

#[test]
fn cifar100_coarse_label_out_of_range() {
    let dir = TempDir::new().unwrap();
    write_cifar100(&dir.path().join("train.bin"), &[(0, 20, 5)]);

    let err = load(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CifarLabel {
                label: 20,
                kind: "coarse",
                n_classes: 20,
                ..
            }
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Folder of images

fn solid_rgb(width: u32, height: u32, colour: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(width, height, Rgb(colour))
}

fn solid_gray(width: u32, height: u32, value: u8) -> GrayImage {
    GrayImage::from_pixel(width, height, Luma([value]))
}

/// Asserts that every pixel in channel `channel` of image `index` equals `value`.
fn assert_plane(dataset: &Dataset, index: usize, channel: usize, value: u8) {
    let plane_len = dataset.height * dataset.width;
    let plane = &dataset.image(index)[channel * plane_len..(channel + 1) * plane_len];
    assert!(
        plane.iter().all(|&p| p == value),
        "image {index} channel {channel}: expected all {value}, got {plane:?}"
    );
}

/// Writes `cat/a.png` (red 4x4), `cat/b.PNG` (green 8x8), `dog/c.jpg` (blue 6x6) and a text
/// file that is not an image.
fn class_folder(dir: &Path) {
    std::fs::create_dir_all(dir.join("cat")).unwrap();
    std::fs::create_dir_all(dir.join("dog")).unwrap();
    solid_rgb(4, 4, [255, 0, 0])
        .save(dir.join("cat/a.png"))
        .unwrap();
    solid_rgb(8, 8, [0, 255, 0])
        .save_with_format(dir.join("cat/b.PNG"), image::ImageFormat::Png)
        .unwrap();
    solid_rgb(6, 6, [0, 0, 255])
        .save(dir.join("dog/c.jpg"))
        .unwrap();
    std::fs::write(dir.join("dog/notes.txt"), "not an image").unwrap();
}

#[test]
fn folder_class_subfolders() {
    let dir = TempDir::new().unwrap();
    class_folder(dir.path());

    let dataset = load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(dataset.len(), 3);
    assert_eq!(dataset.channels, 3);
    // Every image takes the size of the first one decoded, cat/a.png.
    assert_eq!((dataset.height, dataset.width), (4, 4));
    assert_eq!(dataset.labels, Some(vec![0, 0, 1]));
    assert_eq!(
        dataset.class_names,
        Some(vec!["cat".to_string(), "dog".to_string()])
    );
    assert_eq!(dataset.n_skipped, 0);

    // PNG is lossless and resizing a solid image keeps its colour.
    assert_plane(&dataset, 0, 0, 255);
    assert_plane(&dataset, 0, 1, 0);
    assert_plane(&dataset, 0, 2, 0);
    assert_plane(&dataset, 1, 1, 255);
    assert_plane(&dataset, 1, 0, 0);
    // JPEG is lossy: check that blue dominates.
    let plane_len = 16;
    let blue = &dataset.image(2)[2 * plane_len..];
    let red = &dataset.image(2)[..plane_len];
    assert!(blue.iter().all(|&p| p > 200), "{blue:?}");
    assert!(red.iter().all(|&p| p < 50), "{red:?}");
}

#[test]
fn folder_explicit_image_size() {
    let dir = TempDir::new().unwrap();
    class_folder(dir.path());

    let load_options = LoadOptions {
        image_size: Some((6, 5)),
        ..LoadOptions::default()
    };
    let dataset = load(dir.path(), &load_options).unwrap();
    assert_eq!(dataset.width, 6);
    assert_eq!(dataset.height, 5);
    assert_eq!(dataset.image_len(), 3 * 5 * 6);
    assert_eq!(dataset.images.len(), 3 * 3 * 5 * 6);
    assert_plane(&dataset, 1, 1, 255);
}

#[test]
fn folder_zero_image_size() {
    let dir = TempDir::new().unwrap();
    class_folder(dir.path());

    let load_options = LoadOptions {
        image_size: Some((0, 5)),
        ..LoadOptions::default()
    };
    let err = load(dir.path(), &load_options).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::InvalidImageSize {
                width: 0,
                height: 5
            }
        ),
        "{err}"
    );
}

#[test]
fn folder_flat_grayscale() {
    let dir = TempDir::new().unwrap();
    solid_gray(3, 2, 10).save(dir.path().join("b.png")).unwrap();
    solid_gray(3, 2, 200)
        .save(dir.path().join("a.png"))
        .unwrap();

    let dataset = load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(dataset.len(), 2);
    assert_eq!(dataset.channels, 1);
    assert_eq!((dataset.height, dataset.width), (2, 3));
    assert_eq!(dataset.labels, None);
    assert_eq!(dataset.class_names, None);
    // Files are loaded in name order.
    assert_eq!(dataset.image(0), &[200; 6]);
    assert_eq!(dataset.image(1), &[10; 6]);
}

#[test]
fn folder_mixed_gray_and_colour() {
    let dir = TempDir::new().unwrap();
    solid_gray(2, 2, 77).save(dir.path().join("a.png")).unwrap();
    solid_rgb(2, 2, [1, 2, 3])
        .save(dir.path().join("b.png"))
        .unwrap();

    let dataset = load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(dataset.channels, 3);
    // The grayscale image is replicated into all three planes.
    assert_eq!(dataset.image(0), &[77; 12]);
    assert_eq!(dataset.image(1), &[1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);

    let mut gray = dataset.clone();
    gray.to_grayscale();
    assert_eq!(gray.channels, 1);
    assert_eq!(gray.image(0), &[77; 4]);
    // (299 * 1 + 587 * 2 + 114 * 3 + 500) / 1000 = 2.
    assert_eq!(gray.image(1), &[2; 4]);
}

#[test]
fn folder_undecodable_skipped() {
    let dir = TempDir::new().unwrap();
    class_folder(dir.path());
    std::fs::write(
        dir.path().join("cat/broken.png"),
        b"these bytes are not a PNG",
    )
    .unwrap();

    let dataset = load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(dataset.len(), 3);
    assert_eq!(dataset.n_skipped, 1);
    assert_eq!(dataset.labels, Some(vec![0, 0, 1]));
}

#[test]
fn folder_undecodable_strict_error() {
    let dir = TempDir::new().unwrap();
    class_folder(dir.path());
    let broken = dir.path().join("cat/broken.png");
    std::fs::write(&broken, b"these bytes are not a PNG").unwrap();

    let load_options = LoadOptions {
        strict: true,
        ..LoadOptions::default()
    };
    let err = load(dir.path(), &load_options).unwrap_err();
    match &err {
        DataError::ImageDecode { path, .. } => assert_eq!(path, &broken),
        other => panic!("expected ImageDecode, got {other}"),
    }
    assert!(err.to_string().contains("broken.png"), "{err}");
}

#[test]
fn folder_all_undecodable() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("a.png"), b"garbage").unwrap();
    std::fs::write(dir.path().join("b.jpg"), b"garbage").unwrap();

    let err = load(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(err, DataError::NoDecodableImages { n_skipped: 2, .. }),
        "{err}"
    );
}

#[test]
fn folder_empty_error() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("readme.txt"), "no images here").unwrap();

    let err = load(dir.path(), &options(Some(Format::Folder), Split::Train)).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
}

#[test]
fn folder_mixed_layout_error() {
    let dir = TempDir::new().unwrap();
    class_folder(dir.path());
    solid_rgb(4, 4, [9, 9, 9])
        .save(dir.path().join("stray.png"))
        .unwrap();

    let err = load(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::MixedFolderLayout { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("stray.png"), "{message}");
    assert!(message.contains("cat"), "{message}");
}

#[test]
fn folder_ignores_hidden_and_empty_subfolders() {
    let dir = TempDir::new().unwrap();
    solid_rgb(2, 2, [5, 5, 5])
        .save(dir.path().join("a.png"))
        .unwrap();
    std::fs::create_dir(dir.path().join(".cache")).unwrap();
    solid_rgb(2, 2, [5, 5, 5])
        .save(dir.path().join(".cache/thumb.png"))
        .unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();

    let dataset = load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(dataset.len(), 1);
    assert_eq!(dataset.labels, None);
}

// ---------------------------------------------------------------------------------------------
// Format detection

#[test]
fn detect_idx() {
    assert_eq!(detect_format(&fashion_dir()).unwrap(), Format::Idx);
    let file = fashion_dir().join("t10k-images-idx3-ubyte.gz");
    assert_eq!(detect_format(&file).unwrap(), Format::Idx);

    // An IDX file with an unrelated name is recognised by its magic number, even gzipped.
    let dir = TempDir::new().unwrap();
    let odd_name = dir.path().join("digits.dat");
    std::fs::write(&odd_name, gzip(&idx_file(0x803, &[1, 1, 1], &[0]))).unwrap();
    assert_eq!(detect_format(&odd_name).unwrap(), Format::Idx);
}

#[test]
fn detect_cifar10() {
    let dir = TempDir::new().unwrap();
    cifar10_dir(dir.path());
    assert_eq!(detect_format(dir.path()).unwrap(), Format::Cifar10);
    assert_eq!(
        detect_format(&dir.path().join("test_batch.bin")).unwrap(),
        Format::Cifar10
    );
    assert_eq!(
        detect_format(&dir.path().join("data_batch_1.bin")).unwrap(),
        Format::Cifar10
    );
}

#[test]
fn detect_cifar100() {
    let dir = TempDir::new().unwrap();
    cifar100_dir(dir.path());
    assert_eq!(detect_format(dir.path()).unwrap(), Format::Cifar100);
    assert_eq!(
        detect_format(&dir.path().join("train.bin")).unwrap(),
        Format::Cifar100
    );
}

#[test]
fn detect_cifar_by_file_size() {
    let dir = TempDir::new().unwrap();
    let cifar10 = dir.path().join("subset.bin");
    write_cifar10(&cifar10, &[(0, 1), (1, 2)]);
    assert_eq!(detect_format(&cifar10).unwrap(), Format::Cifar10);
    let cifar100 = dir.path().join("other.bin");
    write_cifar100(&cifar100, &[(0, 1, 2)]);
    assert_eq!(detect_format(&cifar100).unwrap(), Format::Cifar100);

    let dataset = load(&cifar100, &LoadOptions::default()).unwrap();
    assert_eq!(dataset.labels, Some(vec![2]));
}

#[test]
fn detect_folder() {
    let dir = TempDir::new().unwrap();
    class_folder(dir.path());
    assert_eq!(detect_format(dir.path()).unwrap(), Format::Folder);

    let flat = TempDir::new().unwrap();
    solid_rgb(2, 2, [0, 0, 0])
        .save(flat.path().join("x.jpeg"))
        .unwrap();
    assert_eq!(detect_format(flat.path()).unwrap(), Format::Folder);
}

#[test]
fn detect_unknown_layout() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("readme.txt"), "no dataset here").unwrap();

    let err = detect_format(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::UnknownLayout { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("--format"), "{message}");
    assert!(message.contains("cifar100"), "{message}");

    let err = load(&dir.path().join("readme.txt"), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::UnknownLayout { .. }), "{err}");
}

#[test]
fn format_names_parse() {
    assert_eq!("idx".parse::<Format>().unwrap(), Format::Idx);
    assert_eq!("cifar10".parse::<Format>().unwrap(), Format::Cifar10);
    assert_eq!("cifar100".parse::<Format>().unwrap(), Format::Cifar100);
    assert_eq!("folder".parse::<Format>().unwrap(), Format::Folder);
    assert_eq!(Format::Cifar100.to_string(), "cifar100");

    let err = "mnist".parse::<Format>().unwrap_err();
    assert!(matches!(err, DataError::UnknownFormat { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("`mnist`"), "{message}");
    assert!(
        message.contains("idx, cifar10, cifar100, folder"),
        "{message}"
    );
}

#[test]
fn dataset_truncate_keeps_labels() {
    let mut dataset = load_embedded_fashion_mnist().unwrap();
    let first_two = dataset.images[..2 * 784].to_vec();
    dataset.truncate(2);
    assert_eq!(dataset.len(), 2);
    assert_eq!(dataset.images, first_two);
    assert_eq!(dataset.labels, Some(vec![9, 2]));
    assert_eq!(dataset.n_classes(), Some(10));
}
