//! Pascal VOC 2007 classification: the VOCdevkit reader on a small folder the tests write,
//! `eval voc` end to end in both modes, and the errors for bad VOC folders and bad checkpoints.

mod command;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use command::{assert_bad_input, assert_success, deepcluster, stderr, train_tiny_run};
use deepcluster::data::voc::{N_VOC_CLASSES, Presence, VOC_CLASSES, VocImageSet, load_voc};

/// One image of the generated folder: its id, its objects (class, difficult) and its colour.
struct FixtureImage {
    id: &'static str,
    objects: &'static [(&'static str, bool)],
    rgb: [u8; 3],
}

const TRAINVAL: &[FixtureImage] = &[
    FixtureImage {
        id: "000005",
        objects: &[("dog", false), ("person", false), ("cat", true)],
        rgb: [200, 40, 40],
    },
    FixtureImage {
        id: "000007",
        objects: &[("cat", true), ("cat", false)],
        rgb: [40, 200, 40],
    },
    FixtureImage {
        id: "000009",
        objects: &[("car", false)],
        rgb: [40, 40, 200],
    },
    FixtureImage {
        id: "000012",
        objects: &[("person", true), ("person", true)],
        rgb: [200, 200, 40],
    },
    FixtureImage {
        id: "000016",
        objects: &[("dog", false)],
        rgb: [190, 50, 60],
    },
    FixtureImage {
        id: "000017",
        objects: &[("car", false), ("person", false)],
        rgb: [50, 60, 190],
    },
];

const TEST: &[FixtureImage] = &[
    FixtureImage {
        id: "000001",
        objects: &[("dog", false)],
        rgb: [210, 30, 50],
    },
    FixtureImage {
        id: "000002",
        objects: &[("car", false)],
        rgb: [30, 50, 210],
    },
    FixtureImage {
        id: "000003",
        objects: &[("person", false), ("dog", true)],
        rgb: [180, 180, 60],
    },
    FixtureImage {
        id: "000004",
        objects: &[("cat", false)],
        rgb: [60, 190, 50],
    },
];

fn annotation_xml(objects: &[(&str, bool)]) -> String {
    let mut xml = String::from(
        "<annotation>\n\t<folder>VOC2007</folder>\n\t<size>\n\t\t<width>40</width>\n\t\t<height>30</height>\n\t\t<depth>3</depth>\n\t</size>\n",
    );
    for (name, difficult) in objects {
        xml += &format!(
            "\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n\t\t<difficult>{}</difficult>\n\t\t<bndbox><xmin>2</xmin><ymin>3</ymin><xmax>30</xmax><ymax>25</ymax></bndbox>\n\t</object>\n",
            u8::from(*difficult)
        );
    }
    xml + "</annotation>\n"
}

/// Writes `parent/VOCdevkit/VOC2007` with the trainval and test images above, 40×30 JPEGs
/// with a gradient over the image's colour, and returns the `VOCdevkit` path.
fn write_devkit(parent: &Path) -> PathBuf {
    let devkit = parent.join("VOCdevkit");
    let root = devkit.join("VOC2007");
    for folder in ["Annotations", "ImageSets/Main", "JPEGImages"] {
        fs::create_dir_all(root.join(folder)).unwrap();
    }
    for (set, images) in [("trainval", TRAINVAL), ("test", TEST)] {
        let ids: Vec<&str> = images.iter().map(|image| image.id).collect();
        fs::write(
            root.join(format!("ImageSets/Main/{set}.txt")),
            ids.join("\n") + "\n",
        )
        .unwrap();
        for image in images {
            fs::write(
                root.join(format!("Annotations/{}.xml", image.id)),
                annotation_xml(image.objects),
            )
            .unwrap();
            let [r, g, b] = image.rgb;
            let picture = image::RgbImage::from_fn(40, 30, |x, y| {
                let shade = (x + y) as u8;
                image::Rgb([r.saturating_sub(shade), g, b.saturating_add(shade)])
            });
            picture
                .save(root.join(format!("JPEGImages/{}.jpg", image.id)))
                .unwrap();
        }
    }
    devkit
}

/// Returns the expected targets of `image`, written out class by class.
fn expected_targets(image: &FixtureImage) -> [Presence; N_VOC_CLASSES] {
    let mut targets = [Presence::Absent; N_VOC_CLASSES];
    let class = |name: &str| VOC_CLASSES.iter().position(|&c| c == name).unwrap();
    match image.id {
        "000005" => {
            targets[class("dog")] = Presence::Present;
            targets[class("person")] = Presence::Present;
            targets[class("cat")] = Presence::DifficultOnly;
        }
        "000007" => targets[class("cat")] = Presence::Present,
        "000009" | "000002" => targets[class("car")] = Presence::Present,
        "000012" => targets[class("person")] = Presence::DifficultOnly,
        "000016" | "000001" => targets[class("dog")] = Presence::Present,
        "000017" => {
            targets[class("car")] = Presence::Present;
            targets[class("person")] = Presence::Present;
        }
        "000003" => {
            targets[class("person")] = Presence::Present;
            targets[class("dog")] = Presence::DifficultOnly;
        }
        "000004" => targets[class("cat")] = Presence::Present,
        other => panic!("no expected targets for {other}"),
    }
    targets
}

#[test]
fn reader_targets_and_masks() {
    let dir = tempfile::tempdir().unwrap();
    let devkit = write_devkit(dir.path());
    let trainval = load_voc(&devkit, VocImageSet::Trainval, (12, 16), None).unwrap();
    let ids: Vec<&str> = TRAINVAL.iter().map(|image| image.id).collect();
    assert_eq!(trainval.ids, ids);
    for (image, targets) in TRAINVAL.iter().zip(&trainval.targets) {
        assert_eq!(*targets, expected_targets(image), "image {}", image.id);
    }
    let images = &trainval.images;
    assert_eq!(
        (
            images.n_images,
            images.channels,
            images.height,
            images.width
        ),
        (6, 3, 12, 16)
    );
    assert_eq!(images.images.len(), 6 * 3 * 12 * 16);
    // The first image is mostly red: its red plane is brighter than its green plane.
    let plane = 12 * 16;
    let mean = |values: &[u8]| values.iter().map(|&v| f64::from(v)).sum::<f64>() / plane as f64;
    let first = images.image(0);
    assert!(mean(&first[..plane]) > mean(&first[plane..2 * plane]) + 80.0);

    let test = load_voc(
        &devkit.join("VOC2007"),
        VocImageSet::Test,
        (12, 16),
        Some(3),
    )
    .unwrap();
    assert_eq!(test.ids, ["000001", "000002", "000003"]);
    for (image, targets) in TEST.iter().zip(&test.targets) {
        assert_eq!(*targets, expected_targets(image), "image {}", image.id);
    }
}

/// `eval voc` options that train for one epoch and average two test crops.
const QUICK_VOC: &[&str] = &[
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--test-crops",
    "2",
    "-q",
];

fn eval_voc(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["eval", "voc", "--data", "VOCdevkit"];
    args.extend_from_slice(extra);
    args.extend_from_slice(QUICK_VOC);
    deepcluster(&args, dir)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// Checks one row of a VOC report: 20 classes in the VOC order and mean APs in [0, 1].
fn check_voc_row(row: &serde_json::Value) {
    let classes = row["scores"]["classes"].as_array().unwrap();
    assert_eq!(classes.len(), N_VOC_CLASSES, "{row}");
    for (class, name) in classes.iter().zip(VOC_CLASSES) {
        assert_eq!(class["class"], name);
    }
    for key in ["mean_average_precision", "mean_voc07_average_precision"] {
        let map = row["scores"][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&map), "{key} = {map}");
    }
    assert_eq!(row["epoch_losses"].as_array().unwrap().len(), 1, "{row}");
}

#[test]
fn eval_voc_fc_on_random_network() {
    let dir = tempfile::tempdir().unwrap();
    write_devkit(dir.path());
    let output = eval_voc(
        dir.path(),
        &[
            "--model", "random", "--mode", "fc", "--width", "0.125", "--out", "voc.json",
        ],
    );
    assert_success(&output);
    let report = read_json(&dir.path().join("voc.json"));
    assert_eq!(report["n_train"], 6);
    assert_eq!(report["n_test"], 4);
    assert_eq!(report["input"], serde_json::json!([3, 32, 32]));
    assert_eq!(report["settings"]["mode"], "fc");
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["model"], "random");
    check_voc_row(&rows[0]);
    // Four test classes have positives: dog, car, person and cat.
    let scored = rows[0]["scores"]["classes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|class| !class["average_precision"].is_null())
        .count();
    assert_eq!(scored, 4);
    assert!(dir.path().join("voc.png").is_file());
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("tvmonitor"), "{table}");
    assert!(table.contains("mean (mAP)"), "{table}");
}

#[test]
fn eval_voc_finetune_on_trained_run() {
    let dir = tempfile::tempdir().unwrap();
    write_devkit(dir.path());
    train_tiny_run(dir.path());
    let output = eval_voc(
        dir.path(),
        &["--run", "run", "--mode", "finetune", "--max-images", "5"],
    );
    assert_success(&output);
    let report = read_json(&dir.path().join("run/eval/voc-finetune.json"));
    // The run's network reads 28×28 grayscale images, so VOC images are converted.
    assert_eq!(report["input"], serde_json::json!([1, 28, 28]));
    assert_eq!(report["n_train"], 5);
    assert_eq!(report["n_test"], 4);
    let models: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["trained", "random"]);
    for row in report["rows"].as_array().unwrap() {
        check_voc_row(row);
    }
    let chart = image::open(dir.path().join("run/eval/voc-finetune.png")).unwrap();
    assert!(chart.width() > 1000, "width {}", chart.width());
}

#[test]
fn missing_devkit_folder() {
    let dir = tempfile::tempdir().unwrap();
    let output = eval_voc(dir.path(), &[]);
    assert_bad_input(&output, &["VOCdevkit", "not found"]);
}

#[test]
fn folder_without_image_sets() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("VOCdevkit/VOC2007/JPEGImages")).unwrap();
    let output = eval_voc(dir.path(), &[]);
    assert_bad_input(&output, &["VOCdevkit", "ImageSets/Main"]);
}

#[test]
fn missing_test_image_set() {
    let dir = tempfile::tempdir().unwrap();
    write_devkit(dir.path());
    fs::remove_file(dir.path().join("VOCdevkit/VOC2007/ImageSets/Main/test.txt")).unwrap();
    let output = eval_voc(dir.path(), &[]);
    assert_bad_input(
        &output,
        &["ImageSets/Main/test.txt", "VOCtest_06-Nov-2007.tar"],
    );
}

#[test]
fn malformed_annotation_xml() {
    let dir = tempfile::tempdir().unwrap();
    write_devkit(dir.path());
    let path = dir.path().join("VOCdevkit/VOC2007/Annotations/000007.xml");
    fs::write(
        &path,
        "<annotation><object><name>cat</name></objec></annotation>",
    )
    .unwrap();
    let output = eval_voc(dir.path(), &[]);
    // roxmltree's message names the mismatched tags and the position.
    assert_bad_input(
        &output,
        &["Annotations/000007.xml", "invalid VOC annotation", "1:"],
    );
}

#[test]
fn unknown_class_in_annotation() {
    let dir = tempfile::tempdir().unwrap();
    write_devkit(dir.path());
    let path = dir.path().join("VOCdevkit/VOC2007/Annotations/000009.xml");
    fs::write(&path, annotation_xml(&[("car", false), ("giraffe", false)])).unwrap();
    let output = eval_voc(dir.path(), &[]);
    assert_bad_input(
        &output,
        &["Annotations/000009.xml", "giraffe", "aeroplane, bicycle"],
    );
}

#[test]
fn difficult_flag_other_than_0_or_1() {
    let dir = tempfile::tempdir().unwrap();
    write_devkit(dir.path());
    let path = dir.path().join("VOCdevkit/VOC2007/Annotations/000009.xml");
    let xml = annotation_xml(&[("car", false), ("dog", true)])
        .replace("<difficult>1</difficult>", "<difficult>yes</difficult>");
    assert!(xml.contains("<difficult>yes</difficult>"));
    fs::write(&path, xml).unwrap();
    let output = eval_voc(dir.path(), &[]);
    assert_bad_input(
        &output,
        &[
            "Annotations/000009.xml",
            "object 2 (`dog`)",
            "<difficult>yes</difficult>",
            "0 or 1",
        ],
    );
}

#[test]
fn same_train_and_test_set_warns() {
    let dir = tempfile::tempdir().unwrap();
    write_devkit(dir.path());
    let output = eval_voc(
        dir.path(),
        &[
            "--model",
            "random",
            "--width",
            "0.125",
            "--train-set",
            "test",
            "--test-set",
            "test",
        ],
    );
    assert_success(&output);
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("both `test`"), "{message}");
}

#[test]
fn zero_max_images() {
    let dir = tempfile::tempdir().unwrap();
    write_devkit(dir.path());
    let output = eval_voc(dir.path(), &["--max-images", "0"]);
    assert_bad_input(&output, &["invalid --max-images 0: use at least 1"]);
}

#[test]
fn image_listed_but_missing() {
    let dir = tempfile::tempdir().unwrap();
    write_devkit(dir.path());
    fs::remove_file(dir.path().join("VOCdevkit/VOC2007/JPEGImages/000003.jpg")).unwrap();
    let output = eval_voc(dir.path(), &["--model", "random"]);
    assert_bad_input(
        &output,
        &["JPEGImages/000003.jpg", "ImageSets/Main/test.txt", "000003"],
    );
}

#[test]
fn checkpoint_of_another_size() {
    let dir = tempfile::tempdir().unwrap();
    write_devkit(dir.path());
    train_tiny_run(dir.path());
    // The JSON file now describes a network twice as wide as the weights saved beside it.
    let meta_path = dir.path().join("run/checkpoints/epoch_0001.json");
    let meta = fs::read_to_string(&meta_path).unwrap();
    let wider = meta.replace("\"width_multiplier\": 0.125", "\"width_multiplier\": 0.25");
    assert_ne!(meta, wider);
    fs::write(&meta_path, wider).unwrap();
    let output = eval_voc(dir.path(), &["--run", "run"]);
    assert_bad_input(
        &output,
        &[
            "epoch_0001.safetensors",
            "Shape mismatch",
            "another architecture",
        ],
    );
    // The message names the first mismatch and counts the rest instead of listing them all.
    assert!(stderr(&output).len() < 600, "{}", stderr(&output));
}

#[test]
fn input_options_conflict_with_run() {
    let dir = tempfile::tempdir().unwrap();
    write_devkit(dir.path());
    train_tiny_run(dir.path());
    let output = eval_voc(dir.path(), &["--run", "run", "--image-size", "32x32"]);
    assert_bad_input(&output, &["--image-size", "run"]);
}
