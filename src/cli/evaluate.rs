//! `deepcluster evaluate`: clusters of the training split labelled by majority vote, scored as
//! a classifier on the test split.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;
use deepcluster::eval::linear::top1_accuracy;
use deepcluster::eval::majority::{MajorityClassifier, MajoritySettings, draw_prediction_grid};
use deepcluster::eval::splits::DEFAULT_TEST_FRACTION;
use deepcluster::eval::{self, FEATURES_LAYER};
use deepcluster::plot::save_png;
use serde::Serialize;

use super::Failure;
use super::eval::{EvalInput, extraction_failure, write_json};
use super::eval_linear::load_splits;

/// Options of `deepcluster evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    input: EvalInput,

    /// Fraction of the images held out for testing when the dataset has a single split. A
    /// dataset with a training and a test split (an IDX or CIFAR folder) uses both instead.
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
    /// [default: RUN/eval/evaluate.json with --run, evaluate-random.json for --model random].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
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
    let plan = args.input.network.resolve()?;
    let device = plan.device.clone();
    let out = args.out.clone().or_else(|| plan.default_output("evaluate"));
    let (train, test) = load_splits(&args.input, args.test_fraction)?;
    let (Some(train_labels), Some(test_labels)) = (&train.labels, &test.labels) else {
        return Err(Failure::bad_input(anyhow!(
            "the dataset `{}` has no labels to evaluate against",
            train.source
        )));
    };
    let networks = plan.networks_for(&train, args.seed)?;
    let settings = MajoritySettings {
        k: args.k.unwrap_or(networks[0].1.config.n_clusters),
        pca_dim: args.pca_dim,
        iterations: 20,
        seed: args.seed,
    };

    let mut rows = Vec::new();
    let mut first_predictions = None;
    for (name, loaded) in &networks {
        let extract = |dataset| {
            eval::extract_layer(
                loaded,
                dataset,
                FEATURES_LAYER,
                args.input.batch_size,
                &device,
            )
            .map_err(extraction_failure)
        };
        let (train_x, dim) = extract(&train)?;
        let (test_x, _) = extract(&test)?;
        let classifier = MajorityClassifier::fit(&train_x, dim, train_labels, &settings)
            .map_err(Failure::bad_input)?;
        let test_predictions = classifier.predict(&test_x);
        rows.push(EvaluateRow {
            model: (*name).to_owned(),
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

    let Some(out) = out else {
        return Ok(());
    };
    let report = EvaluateReport {
        train: &train.source,
        test: &test.source,
        run: args.input.network.run.clone(),
        rows: &rows,
    };
    write_json(&out, &report)?;
    // The grid shows the first model's predictions: the trained network's when there is one.
    let predictions = first_predictions.unwrap_or_default();
    let grid = draw_prediction_grid(&test, &predictions, test_labels, args.grid_images, 8, 3);
    let png = out.with_extension("png");
    save_png(&grid, &png).map_err(Failure::bad_input)?;
    tracing::info!("scores written to {} and {}", out.display(), png.display());
    Ok(())
}
