//! Reader for the Pascal VOC 2007 classification benchmark, from the `VOCdevkit` folder that
//! the official archives extract to.
//!
//! Files read, under `VOCdevkit/VOC2007/`:
//! - `ImageSets/Main/{train,val,trainval,test}.txt`: one image id per line;
//! - `Annotations/ID.xml`: the objects of image `ID`, each with a class `<name>` and an
//!   optional `<difficult>` flag (1 for objects that are hard to recognise);
//! - `JPEGImages/ID.jpg`: the image.
//!
//! The target of an image for a class is [`Presence::Present`] when it has an object of the
//! class not marked difficult. It is [`Presence::DifficultOnly`] when every object of the class
//! is marked difficult, and [`Presence::Absent`] otherwise. These are the labels 1, 0 and −1 of
//! the devkit's per-class files `ImageSets/Main/CLASS_SET.txt`.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::ImageReader;
use image::imageops::FilterType;
use rayon::prelude::*;

use super::files::{io_error, read_file};
use super::folder::append_planar;
use super::{DataError, Dataset};

/// Number of VOC classes.
pub const N_VOC_CLASSES: usize = 20;

/// The 20 VOC classes in the devkit's order, which is also the order of every per-class array.
pub const VOC_CLASSES: [&str; N_VOC_CLASSES] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// Whether an image shows a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// No object of the class.
    Absent,
    /// At least one object of the class not marked difficult.
    Present,
    /// Objects of the class, all marked difficult. VOC leaves these images out of the class's
    /// average precision.
    DifficultOnly,
}

/// A VOC 2007 image set, one of the files in `ImageSets/Main/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VocImageSet {
    /// 2,501 training images.
    Train,
    /// 2,510 validation images.
    Val,
    /// The union of train and val: 5,011 images.
    Trainval,
    /// 4,952 test images, in the separate test archive.
    Test,
}

impl VocImageSet {
    /// Returns the file name stem, e.g. `trainval`.
    pub fn name(self) -> &'static str {
        match self {
            VocImageSet::Train => "train",
            VocImageSet::Val => "val",
            VocImageSet::Trainval => "trainval",
            VocImageSet::Test => "test",
        }
    }

    /// Returns what to do when the image set file is missing: which official archive to
    /// extract.
    fn missing_hint(self) -> &'static str {
        match self {
            VocImageSet::Test => {
                "the test set comes in its own archive: extract VOCtest_06-Nov-2007.tar into the same folder"
            }
            _ => "extract VOCtrainval_06-Nov-2007.tar into the folder",
        }
    }
}

/// The images of one VOC image set with their per-class targets.
#[derive(Clone, Debug)]
pub struct VocImages {
    /// Image ids in the order of the image set file, e.g. `000005`.
    pub ids: Vec<String>,
    /// The target of each image for each class, in [`VOC_CLASSES`] order.
    pub targets: Vec<[Presence; N_VOC_CLASSES]>,
    /// The images, RGB, each resized to the size given to [`load_voc`] (aspect ratio not kept).
    pub images: Dataset,
}

/// Returns the `VOC2007` folder of `path`, which may be the `VOCdevkit` folder or its
/// `VOC2007` subfolder.
pub fn voc2007_root(path: &Path) -> Result<PathBuf, DataError> {
    std::fs::metadata(path).map_err(|source| io_error(path, source))?;
    for root in [path.join("VOC2007"), path.to_owned()] {
        if root.join("ImageSets").join("Main").is_dir() {
            return Ok(root);
        }
    }
    Err(DataError::VocLayout {
        path: path.to_owned(),
    })
}

/// Reads the image ids listed in `ImageSets/Main/SET.txt` under the `VOC2007` folder `root`.
pub fn read_image_set(root: &Path, image_set: VocImageSet) -> Result<Vec<String>, DataError> {
    let path = image_set_path(root, image_set);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::VocMissingImageSet {
                path,
                hint: image_set.missing_hint(),
            });
        }
        Err(source) => return Err(DataError::Io { path, source }),
    };
    // Each line is an id; per-class files add a label after it, which is ignored here.
    let ids: Vec<String> = text
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return Err(DataError::Empty { path });
    }
    Ok(ids)
}

/// Parses a VOC annotation (the text of `Annotations/ID.xml`, read from `path`) into the
/// image's target for each class.
pub fn parse_annotation(text: &str, path: &Path) -> Result<[Presence; N_VOC_CLASSES], DataError> {
    let invalid = |message: String| DataError::VocAnnotation {
        path: path.to_owned(),
        message,
    };
    let document = roxmltree::Document::parse(text).map_err(|error| invalid(error.to_string()))?;
    let root = document.root_element();
    if !root.has_tag_name("annotation") {
        return Err(invalid(format!(
            "the root element is <{}>, expected <annotation>",
            root.tag_name().name()
        )));
    }

    let mut targets = [Presence::Absent; N_VOC_CLASSES];
    let objects = root.children().filter(|node| node.has_tag_name("object"));
    for (index, object) in objects.enumerate() {
        let child_text = |tag: &str| {
            object
                .children()
                .find(|node| node.has_tag_name(tag))
                .map(|node| node.text().unwrap_or("").trim())
        };
        let name = child_text("name")
            .ok_or_else(|| invalid(format!("object {} has no <name>", index + 1)))?;
        let class = VOC_CLASSES
            .iter()
            .position(|&class| class == name)
            .ok_or_else(|| DataError::VocUnknownClass {
                path: path.to_owned(),
                name: name.to_owned(),
            })?;
        let difficult = match child_text("difficult") {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => {
                return Err(invalid(format!(
                    "object {} (`{name}`) has <difficult>{other}</difficult>; VOC marks it 0 or 1",
                    index + 1
                )));
            }
        };
        targets[class] = match (targets[class], difficult) {
            (_, false) | (Presence::Present, true) => Presence::Present,
            (Presence::Absent | Presence::DifficultOnly, true) => Presence::DifficultOnly,
        };
    }
    Ok(targets)
}

/// Loads the images of `image_set` from the VOC folder `path` (`VOCdevkit` or its `VOC2007`
/// subfolder), each resized to `size` = (height, width) pixels, with their targets. With
/// `max_images`, only the first ids of the image set are read.
///
/// Every annotation and image file is checked before any image is decoded, and the first
/// missing or invalid one, in the order of the image set, is the error.
pub fn load_voc(
    path: &Path,
    image_set: VocImageSet,
    size: (usize, usize),
    max_images: Option<usize>,
) -> Result<VocImages, DataError> {
    let root = voc2007_root(path)?;
    let mut ids = read_image_set(&root, image_set)?;
    if let Some(max_images) = max_images {
        ids.truncate(max_images);
    }
    let set_path = image_set_path(&root, image_set);
    let missing = |file: PathBuf, id: &str| DataError::VocMissingFile {
        path: file,
        image_set: set_path.clone(),
        id: id.to_owned(),
    };

    let mut targets = Vec::with_capacity(ids.len());
    for id in &ids {
        let annotation = root.join("Annotations").join(format!("{id}.xml"));
        let text = match std::fs::read_to_string(&annotation) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(missing(annotation, id));
            }
            Err(source) => return Err(io_error(&annotation, source)),
        };
        targets.push(parse_annotation(&text, &annotation)?);
    }
    let image_paths: Vec<PathBuf> = ids.iter().map(|id| jpeg_path(&root, id)).collect();
    if let Some((path, id)) = image_paths.iter().zip(&ids).find(|(p, _)| !p.is_file()) {
        return Err(missing(path.clone(), id));
    }

    tracing::info!(
        image_set = image_set.name(),
        n_images = ids.len(),
        "decoding VOC images"
    );
    let decoded: Vec<Result<Vec<u8>, DataError>> = image_paths
        .par_iter()
        .map(|path| decode_resized(path, size))
        .collect();
    let mut pixels = Vec::with_capacity(ids.len() * 3 * size.0 * size.1);
    for image in decoded {
        pixels.extend(image?);
    }

    let (height, width) = size;
    let images = Dataset {
        images: pixels,
        n_images: ids.len(),
        channels: 3,
        height,
        width,
        labels: None,
        class_names: Some(VOC_CLASSES.iter().map(|&c| c.to_owned()).collect()),
        source: format!(
            "Pascal VOC 2007 `{}` ({}, {width}x{height})",
            root.display(),
            image_set.name()
        ),
        n_skipped: 0,
    };
    Ok(VocImages {
        ids,
        targets,
        images,
    })
}

fn image_set_path(root: &Path, image_set: VocImageSet) -> PathBuf {
    root.join("ImageSets")
        .join("Main")
        .join(format!("{}.txt", image_set.name()))
}

fn jpeg_path(root: &Path, id: &str) -> PathBuf {
    root.join("JPEGImages").join(format!("{id}.jpg"))
}

/// Decodes the image at `path` and returns it resized to `(height, width)` as three planes.
fn decode_resized(path: &Path, (height, width): (usize, usize)) -> Result<Vec<u8>, DataError> {
    let bytes = read_file(path)?;
    let decode_error = |source| DataError::VocImageDecode {
        path: path.to_owned(),
        source,
    };
    let image = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| decode_error(image::ImageError::IoError(source)))?
        .decode()
        .map_err(decode_error)?;
    if image.width() == 0 || image.height() == 0 {
        let kind = image::error::LimitErrorKind::DimensionError;
        let source = image::ImageError::Limits(image::error::LimitError::from_kind(kind));
        return Err(decode_error(source));
    }
    let resized = image::imageops::resize(
        &image.to_rgb8(),
        width as u32,
        height as u32,
        FilterType::Triangle,
    );
    let mut planes = Vec::with_capacity(3 * height * width);
    append_planar(&resized, &mut planes);
    Ok(planes)
}
