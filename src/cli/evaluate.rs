//! `deepcluster evaluate`: clusters of the training split labelled by majority vote, scored as
//! a classifier on the test split.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;
use deepcluster::device::parse_device;
use deepcluster::eval::linear::top1_accuracy;
use deepcluster::eval::majority::{MajorityClassifier, MajoritySettings, draw_prediction_grid};
use deepcluster::eval::splits::DEFAULT_TEST_FRACTION;
use deepcluster::eval::{self, FEATURES_LAYER, LoadedModel};
use deepcluster::plot::save_png;
use deepcluster::preprocess::Normalization;
use deepcluster::train::TrainConfig;
use deepcluster::train::record::write_atomically;
use serde::Serialize;

use super::Failure;
use super::eval::{check_input_shape, extraction_failure, run_data};
use super::eval_linear::load_splits;

/// Options of `deepcluster evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Run folder whose latest checkpoint is evaluated; without it only the random network is.
    #[arg(long, value_name = "DIR")]
    run: Option<PathBuf>,

    /// Dataset [default: the run's dataset, or the embedded Fashion-MNIST test split]; split as
    /// by `eval linear`.
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,

    /// Dataset format; detected from the path when unset.
    #[arg(long, value_parser = ["idx", "cifar10", "cifar100", "folder"])]
    format: Option<String>,

    /// Keep the first N images of each split (of the whole dataset when holding out).
    #[arg(long, value_name = "N")]
    max_images: Option<usize>,

    /// Fraction of a single-split dataset held out for testing.
    #[arg(long, default_value_t = DEFAULT_TEST_FRACTION)]
    test_fraction: f64,

    /// Number of clusters [default: the run's number of clusters, or 100].
    #[arg(short, long)]
    k: Option<usize>,

    /// Whitened PCA dimension before k-means.
    #[arg(long, default_value_t = 256)]
    pca_dim: usize,

    /// Seed of k-means and of the random network.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Test images shown in the grid.
    #[arg(long, default_value_t = 48)]
    grid_images: usize,

    /// Write the scores as JSON to FILE and the grid beside it as FILE with `.png`
    /// [default: RUN/eval/evaluate.json with --run].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,

    /// Images per batch during feature extraction.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,

    /// Device: cpu, or tch, tch-cuda:N, wgpu when built with those features.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Serialize)]
struct EvaluateRow {
    model: String,
    k: usize,
    train_accuracy: f64,
    test_accuracy: f64,
}

#[derive(Serialize)]
struct EvaluateReport<'a> {
    train: &'a str,
    test: &'a str,
    run: Option<PathBuf>,
    rows: &'a [EvaluateRow],
}

/// Runs `deepcluster evaluate`.
pub fn run(args: EvaluateArgs) -> Result<(), Failure> {
    let device = parse_device(&args.device).map_err(Failure::bad_input)?;
    let trained = match &args.run {
        Some(run_dir) => Some(eval::load_run(run_dir, &device)?),
        None => None,
    };
    let data = args.data.clone().or_else(|| run_data(args.run.as_deref()));
    let (train, test) = load_splits(data, &args.format, args.max_images, args.test_fraction)?;
    let (Some(train_labels), Some(test_labels)) = (&train.labels, &test.labels) else {
        return Err(Failure::bad_input(anyhow!(
            "the dataset `{}` has no labels to evaluate against",
            train.source
        )));
    };
    let model_config = trained.as_ref().map_or_else(
        || eval::model_config_for(&TrainConfig::default(), &train),
        |m| m.config.clone(),
    );
    check_input_shape(&model_config, &train)?;
    let normalization = trained.as_ref().map_or_else(
        || Normalization::from_dataset(&train),
        |m| m.normalization.clone(),
    );
    let random = eval::random_model(&model_config, normalization, args.seed, &device);
    let settings = MajoritySettings {
        k: args.k.unwrap_or(model_config.n_clusters),
        pca_dim: args.pca_dim,
        iterations: 20,
        seed: args.seed,
    };

    let mut models: Vec<(&str, &LoadedModel)> = Vec::new();
    if let Some(trained) = &trained {
        models.push(("trained", trained));
    }
    models.push(("random", &random));
    let mut rows = Vec::new();
    let mut first_predictions = None;
    for (name, loaded) in models {
        let extract = |dataset| {
            eval::extract_layer(loaded, dataset, FEATURES_LAYER, args.batch_size, &device)
                .map_err(extraction_failure)
        };
        let (train_x, dim) = extract(&train)?;
        let (test_x, _) = extract(&test)?;
        let classifier = MajorityClassifier::fit(&train_x, dim, train_labels, &settings)
            .map_err(Failure::bad_input)?;
        let test_predictions = classifier.predict(&test_x);
        rows.push(EvaluateRow {
            model: name.to_owned(),
            k: settings.k,
            train_accuracy: top1_accuracy(&classifier.predict(&train_x), train_labels),
            test_accuracy: top1_accuracy(&test_predictions, test_labels),
        });
        first_predictions.get_or_insert(test_predictions);
    }

    println!(
        "{:<8} {:>5} {:>10} {:>9}",
        "model", "k", "train acc", "test acc"
    );
    for row in &rows {
        println!(
            "{:<8} {:>5} {:>10.3} {:>9.3}",
            row.model, row.k, row.train_accuracy, row.test_accuracy
        );
    }

    let out = args.out.clone().or_else(|| {
        args.run
            .as_ref()
            .map(|run| run.join("eval").join("evaluate.json"))
    });
    let Some(out) = out else {
        return Ok(());
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|error| {
            Failure::bad_input(anyhow!("cannot create `{}`: {error}", parent.display()))
        })?;
    }
    let report = EvaluateReport {
        train: &train.source,
        test: &test.source,
        run: args.run.clone(),
        rows: &rows,
    };
    let json =
        serde_json::to_vec_pretty(&report).map_err(|error| Failure::bad_input(anyhow!(error)))?;
    write_atomically(&out, &json)?;
    // The grid shows the first model's predictions: the trained network's when there is one.
    let predictions = first_predictions.unwrap_or_default();
    let grid = draw_prediction_grid(&test, &predictions, test_labels, args.grid_images, 8, 3);
    let png = out.with_extension("png");
    save_png(&grid, &png).map_err(Failure::bad_input)?;
    tracing::info!("scores written to {} and {}", out.display(), png.display());
    Ok(())
}
