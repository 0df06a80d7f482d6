//! `deepcluster eval voc`: Pascal VOC 2007 classification with a network's features.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Args;
use deepcluster::data::voc::{VOC_CLASSES, VocImageSet, VocImages, load_voc};
use deepcluster::eval::voc::{
    STORED_SCALE, VocMode, VocResult, VocSettings, evaluate_voc, match_channels,
};
use deepcluster::model::ModelConfig;
use deepcluster::plot::{BarSeries, draw_grouped_bar_chart, save_png};
use serde::Serialize;

use super::Failure;
use super::eval::{NetworkArgs, extraction_failure, reject_with_run, write_json};

/// Options of `deepcluster eval voc`.
#[derive(Debug, Args)]
pub struct VocArgs {
    #[command(flatten)]
    network: NetworkArgs,

    /// The `VOCdevkit` folder, or its `VOC2007` subfolder, with the VOC 2007 trainval and test
    /// archives extracted into it.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,

    /// Layers trained: `fc` (the fully connected layers and a new output layer, on frozen
    /// convolutions) or `finetune` (every layer).
    #[arg(long, value_enum, default_value = "fc")]
    mode: VocMode,

    /// Image set the classifier is trained on.
    #[arg(long, value_enum, default_value = "trainval")]
    train_set: VocImageSet,

    /// Image set the classifier is scored on.
    #[arg(long, value_enum, default_value = "test")]
    test_set: VocImageSet,

    /// Keep the first N images of each image set, for a quick check; the scores are then not
    /// comparable with published ones.
    #[arg(long, value_name = "N")]
    max_images: Option<usize>,

    /// Input size of the random network without --run, HEIGHTxWIDTH pixels [default: 32x32].
    #[arg(long, value_name = "HxW", value_parser = parse_image_size)]
    image_size: Option<[usize; 2]>,

    /// Feed grayscale images to the random network without --run [default: RGB].
    #[arg(long)]
    grayscale: bool,

    /// Passes over the training images.
    #[arg(long, default_value_t = VocSettings::default().epochs)]
    epochs: usize,

    /// Images per batch.
    #[arg(long, default_value_t = VocSettings::default().batch_size)]
    batch_size: usize,

    /// SGD learning rate, constant over the epochs.
    #[arg(long, default_value_t = VocSettings::default().learning_rate)]
    lr: f64,

    /// SGD momentum.
    #[arg(long, default_value_t = VocSettings::default().momentum)]
    momentum: f64,

    /// L2 weight decay on every trained parameter.
    #[arg(long, default_value_t = VocSettings::default().weight_decay)]
    weight_decay: f64,

    /// Smallest area of a random crop, as a fraction of the image.
    #[arg(long, value_name = "FRACTION", default_value_t = VocSettings::default().crop_scale.0)]
    crop_scale_min: f32,

    /// Random crops whose outputs are averaged for each test image.
    #[arg(long, default_value_t = VocSettings::default().test_crops)]
    test_crops: usize,

    /// Seed of the random network, the new output layer, dropout, the image order and the
    /// crops.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Write the scores as JSON to FILE and the bar chart of per-class AP beside it as FILE
    /// with `.png` [default: RUN/eval/voc-MODE.json with --run, voc-MODE-random.json for
    /// --model random].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Input size of the random network when neither a run nor `--image-size` sets it.
const DEFAULT_IMAGE_SIZE: [usize; 2] = [32, 32];

/// One network's result.
#[derive(Serialize)]
struct VocRow {
    model: &'static str,
    #[serde(flatten)]
    result: VocResult,
}

#[derive(Serialize)]
struct VocReport<'a> {
    train: &'a str,
    test: &'a str,
    n_train: usize,
    n_test: usize,
    run: Option<PathBuf>,
    /// `[channels, height, width]` of the network's input.
    input: [usize; 3],
    settings: &'a VocSettings,
    classes: [&'static str; VOC_CLASSES.len()],
    rows: &'a [VocRow],
}

/// Runs `deepcluster eval voc`.
pub fn run(args: VocArgs) -> Result<(), Failure> {
    let settings = args.settings()?;
    let plan = args.network.resolve()?;
    reject_with_run(
        plan.run.as_deref(),
        &[
            ("--image-size", args.image_size.is_some()),
            ("--grayscale", args.grayscale),
        ],
    )?;
    let out = args
        .out
        .clone()
        .or_else(|| plan.default_output(&format!("voc-{}", args.mode.name())));

    let [channels, height, width] = plan.input_shape().unwrap_or_else(|| {
        let [height, width] = args.image_size.unwrap_or(DEFAULT_IMAGE_SIZE);
        [if args.grayscale { 1 } else { 3 }, height, width]
    });
    let load = |image_set| -> Result<VocImages, Failure> {
        let stored_size = (height * STORED_SCALE, width * STORED_SCALE);
        let mut images = load_voc(&args.data, image_set, stored_size, args.max_images)
            .map_err(Failure::bad_input)?;
        match_channels(&mut images, channels).map_err(extraction_failure)?;
        Ok(images)
    };
    let train = load(args.train_set)?;
    let test = load(args.test_set)?;
    if args.train_set == args.test_set {
        tracing::warn!(
            "--train-set and --test-set are both `{}`: the scores are on the training images",
            format!("{:?}", args.train_set).to_lowercase()
        );
    }

    // Without a run, the new network's shapes come from the VOC images, which are decoded
    // larger than the network's input.
    let model_config = ModelConfig {
        height,
        width,
        ..plan.model_config(&train.images)
    };
    let normalization = plan.normalization(&train.images);
    let device = plan.device.clone();
    let networks = plan.networks(&model_config, normalization, args.seed);

    let mut rows = Vec::new();
    for (name, loaded) in &networks {
        tracing::info!(
            "training the {name} network on {} VOC images ({} mode, {} epochs)",
            train.images.len(),
            args.mode.name(),
            settings.epochs
        );
        let result =
            evaluate_voc(loaded, &train, &test, &settings, &device).map_err(extraction_failure)?;
        rows.push(VocRow {
            model: name,
            result,
        });
    }
    print_table(&rows);

    let Some(out) = out else {
        return Ok(());
    };
    let report = VocReport {
        train: &train.images.source,
        test: &test.images.source,
        n_train: train.images.len(),
        n_test: test.images.len(),
        run: args.network.run.clone(),
        input: [channels, height, width],
        settings: &settings,
        classes: VOC_CLASSES,
        rows: &rows,
    };
    write_json(&out, &report)?;
    let png = out.with_extension("png");
    draw_chart(&rows, args.mode, &png)?;
    tracing::info!("scores written to {} and {}", out.display(), png.display());
    Ok(())
}

impl VocArgs {
    /// Checks the protocol's options and returns them as settings.
    fn settings(&self) -> Result<VocSettings, Failure> {
        let checks = [
            (
                "--epochs",
                self.epochs.to_string(),
                self.epochs >= 1,
                "at least 1",
            ),
            (
                "--batch-size",
                self.batch_size.to_string(),
                self.batch_size >= 1,
                "at least 1",
            ),
            (
                "--lr",
                self.lr.to_string(),
                self.lr.is_finite() && self.lr > 0.0,
                "a positive number",
            ),
            (
                "--momentum",
                self.momentum.to_string(),
                (0.0..1.0).contains(&self.momentum),
                "in [0, 1)",
            ),
            (
                "--weight-decay",
                self.weight_decay.to_string(),
                self.weight_decay.is_finite() && self.weight_decay >= 0.0,
                "a number >= 0",
            ),
            (
                "--crop-scale-min",
                self.crop_scale_min.to_string(),
                self.crop_scale_min > 0.0 && self.crop_scale_min <= 1.0,
                "in (0, 1]",
            ),
            (
                "--test-crops",
                self.test_crops.to_string(),
                self.test_crops >= 1,
                "at least 1",
            ),
            (
                "--max-images",
                self.max_images.map_or_else(String::new, |n| n.to_string()),
                self.max_images != Some(0),
                "at least 1",
            ),
        ];
        if let Some((name, value, _, expected)) = checks.iter().find(|check| !check.2) {
            return Err(Failure::bad_input(anyhow!(
                "invalid {name} {value}: use {expected}"
            )));
        }
        Ok(VocSettings {
            mode: self.mode,
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            crop_scale: (self.crop_scale_min, 1.0),
            seed: self.seed,
            test_crops: self.test_crops,
            ..VocSettings::default()
        })
    }
}

/// Parses `HEIGHTxWIDTH`, e.g. `32x32`.
fn parse_image_size(text: &str) -> Result<[usize; 2], String> {
    let invalid = || format!("invalid size `{text}`; expected HEIGHTxWIDTH, e.g. 32x32");
    let (height, width) = text.split_once(['x', 'X']).ok_or_else(invalid)?;
    let side = |value: &str| value.trim().parse::<usize>().ok().filter(|&v| v > 0);
    let (height, width) = (
        side(height).ok_or_else(invalid)?,
        side(width).ok_or_else(invalid)?,
    );
    deepcluster::model::check_input_size(height, width)?;
    Ok([height, width])
}

/// Prints the average precision of each class for each network, then the means.
fn print_table(rows: &[VocRow]) {
    let mut header = format!("{:<12} {:>9}", "class", "positives");
    for row in rows {
        header += &format!(" {:>12} {:>12}", format!("{} AP", row.model), "11-point");
    }
    println!("{header}");
    let format_ap = |ap: Option<f64>| ap.map_or_else(|| "-".to_owned(), |ap| format!("{ap:.3}"));
    for (class, name) in VOC_CLASSES.iter().enumerate() {
        let positives = rows
            .first()
            .map_or(0, |row| row.result.scores.classes[class].n_positives);
        let mut line = format!("{name:<12} {positives:>9}");
        for row in rows {
            let score = &row.result.scores.classes[class];
            line += &format!(
                " {:>12} {:>12}",
                format_ap(score.average_precision),
                format_ap(score.voc07_average_precision)
            );
        }
        println!("{line}");
    }
    let mut line = format!("{:<12} {:>9}", "mean (mAP)", "");
    for row in rows {
        let scores = &row.result.scores;
        line += &format!(
            " {:>12} {:>12}",
            format_ap(scores.mean_average_precision),
            format_ap(scores.mean_voc07_average_precision)
        );
    }
    println!("{line}");
    if rows
        .iter()
        .any(|row| row.result.scores.mean_average_precision.is_none())
    {
        tracing::warn!(
            "no class has a positive test image, so there is no mAP; use a larger test set or --max-images"
        );
    }
}

/// Draws the VOC 2007 11-point AP of each class, one bar per network, to `path`. A class
/// without positives among the test images has no AP and is drawn at 0, which happens only on
/// part of the test set (`--max-images`).
fn draw_chart(rows: &[VocRow], mode: VocMode, path: &Path) -> Result<(), Failure> {
    let categories: Vec<String> = VOC_CLASSES.iter().map(|&c| c.to_owned()).collect();
    let series: Vec<BarSeries> = rows
        .iter()
        .map(|row| {
            let scores = &row.result.scores;
            let mean = scores
                .mean_voc07_average_precision
                .map_or_else(|| "-".to_owned(), |ap| format!("{ap:.3}"));
            BarSeries {
                name: format!("{} (mAP {mean})", row.model),
                values: scores
                    .classes
                    .iter()
                    .map(|class| class.voc07_average_precision.unwrap_or(0.0))
                    .collect(),
            }
        })
        .collect();
    let title = format!(
        "Pascal VOC 2007 classification ({}): 11-point AP per class",
        mode.name()
    );
    let chart = draw_grouped_bar_chart(&title, "AP", &categories, &series, Some(1.0))
        .map_err(Failure::bad_input)?;
    save_png(&chart, path).map_err(Failure::bad_input)
}
