//! `deepcluster viz` and `deepcluster report` on a network trained for one epoch on 300 real
//! Fashion-MNIST images: every picture is written at a plausible size and is not blank,
//! gradient ascent raises its filter's activation, top-images agrees with a direct computation,
//! and bad input exits with code 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use burn::tensor::Device;
use deepcluster::data::{Dataset, load_embedded_fashion_mnist};
use deepcluster::eval::load_run;
use deepcluster::preprocess::eval_batch;
use deepcluster::train::steps::images_tensor;
use deepcluster::viz::ascent::{AscentSettings, gradient_ascent};
use deepcluster::viz::grid::is_blank;
use deepcluster::viz::top_images::find_top_images;

const N_IMAGES: usize = 300;

/// The run folder shared by every test, trained once.
fn run_dir() -> &'static Path {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = RUN.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let run = dir.path().join("run");
        let output = deepcluster(&[
            "train",
            "--out",
            run.to_str().unwrap(),
            "--max-images",
            &N_IMAGES.to_string(),
            "--width",
            "0.125",
            "-k",
            "10",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--pca-dim",
            "32",
            "-q",
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        (dir, run)
    });
    path
}

fn deepcluster(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepcluster"))
        .args(args)
        .output()
        .expect("the deepcluster binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn dataset() -> Dataset {
    let mut dataset = load_embedded_fashion_mnist().unwrap();
    dataset.truncate(N_IMAGES);
    dataset
}

/// Runs `viz ARGS --run RUN --out-or-out-dir OUT` and returns the PNG at `expected`.
fn run_viz(args: &[&str], out_flag: &str, out: &Path) -> Output {
    let run = run_dir().to_str().unwrap().to_owned();
    let mut all = vec!["viz"];
    all.extend_from_slice(args);
    all.extend(["--run", &run, out_flag, out.to_str().unwrap()]);
    deepcluster(&all)
}

/// Asserts that `path` is a PNG at least `min_width` × `min_height` pixels with more than one
/// colour, and returns its size.
fn assert_picture(path: &Path, min_width: u32, min_height: u32) -> (u32, u32) {
    let image = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    assert!(
        image.width() >= min_width,
        "{}: width {}",
        path.display(),
        image.width()
    );
    assert!(
        image.height() >= min_height,
        "{}: height {}",
        path.display(),
        image.height()
    );
    assert!(!is_blank(&image), "{} is blank", path.display());
    image.dimensions()
}

fn assert_exit(output: &Output, code: i32, fragments: &[&str]) {
    let message = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {message}");
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "`{fragment}` missing from: {message}"
        );
    }
}

#[test]
fn filters_picture_shows_every_filter() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("filters.png");
    let output = run_viz(
        &["filters", "--scale", "5", "--columns", "4"],
        "--out",
        &file,
    );
    assert_exit(&output, 0, &[]);
    // conv1 has 8 filters at width 0.125, 5x5 Sobel x and y kernels side by side: 2 rows of 4.
    assert_picture(&file, 4 * 2 * 25, 2 * 25);
}

#[test]
fn responses_picture_has_input_and_maps() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("responses.png");
    let output = run_viz(
        &[
            "responses",
            "--layer",
            "conv2",
            "--index",
            "3",
            "--scale",
            "2",
            "--columns",
            "5",
        ],
        "--out",
        &file,
    );
    assert_exit(&output, 0, &[]);
    // The input plus 24 maps of conv2 is 25 tiles of at least 56 pixels, in 5 rows of 5.
    assert_picture(&file, 5 * 56, 5 * 56);
}

#[test]
fn top_images_pictures_one_per_filter() {
    let out = tempfile::tempdir().unwrap();
    let output = run_viz(
        &[
            "top-images",
            "--layer",
            "conv3",
            "--filters",
            "0,5",
            "-n",
            "4",
            "--columns",
            "2",
        ],
        "--out-dir",
        out.path(),
    );
    assert_exit(&output, 0, &[]);
    for filter in [0, 5] {
        assert_picture(
            &out.path().join(format!("top-conv3-{filter}.png")),
            2 * 84,
            2 * 84,
        );
    }
}

#[test]
fn gradient_ascent_picture_has_every_filter() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("ascent.png");
    let output = run_viz(
        &[
            "gradient-ascent",
            "--layer",
            "conv4",
            "--filters",
            "0,1,2",
            "--iterations",
            "30",
            "--columns",
            "3",
        ],
        "--out",
        &file,
    );
    assert_exit(&output, 0, &[]);
    assert_picture(&file, 3 * 112, 112);
}

#[test]
fn data_picture_has_six_views_per_image() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("data.png");
    let output = run_viz(
        &["data", "--images", "0,7,9", "--scale", "3"],
        "--out",
        &file,
    );
    assert_exit(&output, 0, &[]);
    assert_picture(&file, 6 * 84, 3 * 84);
}

#[test]
fn clusters_pictures_samples_and_histogram() {
    let out = tempfile::tempdir().unwrap();
    let output = run_viz(
        &[
            "clusters",
            "--clusters",
            "5",
            "--per-cluster",
            "6",
            "--scale",
            "2",
        ],
        "--out-dir",
        out.path(),
    );
    assert_exit(&output, 0, &[]);
    assert_picture(&out.path().join("clusters-1.png"), 6 * 56, 5 * 56);
    let size = assert_picture(&out.path().join("cluster-sizes-1.png"), 1, 1);
    assert_eq!(size, (720, 400));
}

#[test]
fn curves_pictures_have_requested_size() {
    let out = tempfile::tempdir().unwrap();
    let run = run_dir().to_str().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let output = deepcluster(&[
        "viz",
        "curves",
        "--run",
        run,
        "--out-dir",
        out_dir,
        "--width",
        "640",
        "--height",
        "360",
    ]);
    assert_exit(&output, 0, &[]);
    // One epoch: no NMI with a previous epoch, so that chart is skipped.
    for name in ["loss", "kmeans-objective", "labels", "seconds"] {
        let size = assert_picture(&out.path().join(format!("{name}.png")), 1, 1);
        assert_eq!(size, (640, 360), "{name}");
    }
    assert!(!out.path().join("nmi-previous.png").exists());
}

#[test]
fn report_links_only_local_pictures() {
    let output = deepcluster(&["report", run_dir().to_str().unwrap()]);
    assert_exit(&output, 0, &[]);
    let report = run_dir().join("report");
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    let sources: Vec<&str> = html
        .split("src=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert!(sources.len() >= 8, "{sources:?}");
    for source in sources {
        assert!(
            !source.contains('/'),
            "{source} is not in the report folder"
        );
        assert_picture(&report.join(source), 1, 1);
    }
}

/// Copies the folder `from` into `to`, recursively.
fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn failed_report_keeps_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    copy_folder(run_dir(), &run);
    let run_arg = run.to_str().unwrap();
    assert_exit(&deepcluster(&["report", run_arg]), 0, &[]);
    let page = run.join("report/index.html");
    let before = std::fs::read_to_string(&page).unwrap();

    // The curves are drawn before the unknown layer is found.
    let output = deepcluster(&["report", run_arg, "--layer", "conv9"]);
    assert_exit(&output, 2, &["conv9"]);
    assert_eq!(std::fs::read_to_string(&page).unwrap(), before);
    let mut names: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("report"))
        .collect();
    names.sort();
    assert_eq!(names, ["report"]);

    // A file where the report folder goes is replaced, and nothing else is left.
    std::fs::remove_dir_all(run.join("report")).unwrap();
    std::fs::write(run.join("report"), "not a folder").unwrap();
    assert_exit(&deepcluster(&["report", run_arg]), 0, &[]);
    assert!(page.exists());
    assert!(!run.join("report.previous").exists());
}

#[test]
fn gradient_ascent_raises_activation() {
    let device = Device::flex();
    let loaded = load_run(run_dir(), &device).unwrap();
    let settings = AscentSettings {
        iterations: 40,
        ..AscentSettings::for_layer(3)
    };
    let results = gradient_ascent(&loaded, "conv3", &[0, 1, 2, 3], &settings, &device).unwrap();
    assert_eq!(results.len(), 4);
    for result in results {
        assert!(
            result.final_activation > result.start_activation,
            "filter {}: {} -> {}",
            result.filter,
            result.start_activation,
            result.final_activation
        );
    }
}

#[test]
fn top_images_match_direct_computation() {
    let device = Device::flex();
    let loaded = load_run(run_dir(), &device).unwrap();
    let dataset = dataset();
    let filters = [1, 6];
    let tops = find_top_images(&loaded, &dataset, "conv2", &filters, 9, 64, &device).unwrap();

    // One image at a time, mean over the map of the activation after the ReLU.
    for (top, &filter) in tops.iter().zip(&filters) {
        let mut direct: Vec<(usize, f32)> = (0..dataset.len())
            .map(|index| {
                let pixels = eval_batch(&dataset, &[index], &loaded.normalization);
                let input = images_tensor(pixels, 1, &dataset, &device);
                let map = loaded.model.backbone.forward_layer(input, "conv2").unwrap();
                let values = map
                    .narrow(1, filter, 1)
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap();
                (index, values.iter().sum::<f32>() / values.len() as f32)
            })
            .collect();
        direct.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(top.filter, filter);
        assert_eq!(top.images.len(), 9);
        for (found, expected) in top.images.iter().zip(&direct) {
            assert!(
                (found.1 - expected.1).abs() < 1e-4,
                "{found:?} vs {expected:?}"
            );
        }
        // Ties aside, the same images in the same order.
        let found: Vec<usize> = top.images.iter().map(|t| t.0).collect();
        let expected: Vec<usize> = direct[..9].iter().map(|t| t.0).collect();
        let last = top.images[8].1;
        if direct[9].1 < last - 1e-4 {
            assert_eq!(found, expected);
        }
    }
}

#[test]
fn unknown_layer_lists_valid_layers() {
    let output = deepcluster(&[
        "viz",
        "responses",
        "--run",
        run_dir().to_str().unwrap(),
        "--layer",
        "conv9",
    ]);
    assert_exit(&output, 2, &["conv9", "conv1, conv2, conv3, conv4, conv5"]);
}

#[test]
fn filter_out_of_range_gives_range() {
    let run = run_dir().to_str().unwrap();
    let output = deepcluster(&[
        "viz",
        "top-images",
        "--run",
        run,
        "--layer",
        "conv1",
        "--filters",
        "8",
    ]);
    assert_exit(&output, 2, &["invalid filter 8", "0 to 7"]);
    let output = deepcluster(&[
        "viz",
        "gradient-ascent",
        "--run",
        run,
        "--layer",
        "conv1",
        "--filters",
        "0,99",
    ]);
    assert_exit(&output, 2, &["invalid filter 99", "0 to 7"]);
}

#[test]
fn unreadable_image_file_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-an-image.png");
    std::fs::write(&bad, b"plain text").unwrap();
    let run = run_dir().to_str().unwrap();
    let output = deepcluster(&[
        "viz",
        "responses",
        "--run",
        run,
        "--image",
        bad.to_str().unwrap(),
    ]);
    assert_exit(&output, 2, &["cannot read the image", "not-an-image.png"]);
}

#[test]
fn run_without_metrics_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let output = deepcluster(&["viz", "curves", "--run", path]);
    assert_exit(&output, 2, &["metrics.jsonl"]);
    let output = deepcluster(&["report", path]);
    assert_exit(&output, 2, &[path]);
}
