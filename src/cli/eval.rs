//! `deepcluster eval`: scoring features against the true labels.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use deepcluster::device::parse_device;
use deepcluster::eval::cluster::{
    ClusterScores, ClusterSettings, draw_confusion_matrix, score_features,
};
use deepcluster::eval::{self, LoadedModel, PIXELS_LAYER};
use deepcluster::plot::save_png;
use deepcluster::preprocess::Normalization;
use deepcluster::train::TrainConfig;
use deepcluster::train::record::write_atomically;
use serde::Serialize;

use super::Failure;
use super::train::load_dataset;

/// Evaluation protocols.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// k-means with k = number of classes on a layer's features: NMI, ARI and accuracy against
    /// the labels, for the trained network, the same network at its random initialisation, and
    /// raw pixels.
    Cluster(ClusterArgs),
    /// Linear classifiers on the frozen activations of each convolution: top-1 accuracy on the
    /// test split for the trained and the random network.
    Linear(super::eval_linear::LinearArgs),
}

/// Options shared by the evaluation commands: the network, the images and the device.
#[derive(Debug, Args)]
pub struct EvalInput {
    /// Run folder whose latest checkpoint is evaluated; without it only the baselines are scored.
    #[arg(long, value_name = "DIR")]
    pub run: Option<PathBuf>,

    /// Dataset [default: the run's dataset, or the embedded Fashion-MNIST test split].
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,

    /// Dataset format; detected from the path when unset.
    #[arg(long, value_parser = ["idx", "cifar10", "cifar100", "folder"])]
    pub format: Option<String>,

    /// Keep the first N images (of each split where the command uses two).
    #[arg(long, value_name = "N")]
    pub max_images: Option<usize>,

    /// Images per batch during feature extraction.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,

    /// Device: cpu, or tch, tch-cuda:N, wgpu when built with those features.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Options of `deepcluster eval cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    input: EvalInput,

    /// Split to read where the format has several.
    #[arg(long, default_value = "test", value_parser = ["train", "test"])]
    split: String,

    /// Layer whose features are clustered: conv1 to conv5 (after ReLU) or fc7 (before ReLU).
    #[arg(long, default_value = eval::FEATURES_LAYER)]
    layer: String,

    /// Number of clusters [default: the number of classes].
    #[arg(short, long)]
    k: Option<usize>,

    /// Reduce the features with a whitened PCA to DIM and L2-normalise them first, as training
    /// does [default: cluster the features as they are].
    #[arg(long, value_name = "DIM")]
    pca_dim: Option<usize>,

    /// Lloyd iterations of each k-means run.
    #[arg(long, default_value_t = 50)]
    iterations: usize,

    /// k-means restarts; the run with the lowest objective is kept.
    #[arg(long, default_value_t = 3)]
    n_redo: usize,

    /// Seed of k-means and of the random network.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Write the scores as JSON to FILE [default: RUN/eval/cluster-LAYER.json with --run].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Serialize)]
struct ClusterReport<'a> {
    dataset: &'a str,
    n_images: usize,
    layer: &'a str,
    settings: &'a ClusterSettings,
    run: Option<PathBuf>,
    rows: &'a [ClusterScores],
}

/// Runs `deepcluster eval SUBCOMMAND`.
pub fn run(command: EvalCommand) -> Result<(), Failure> {
    match command {
        EvalCommand::Cluster(args) => run_cluster(args),
        EvalCommand::Linear(args) => super::eval_linear::run(args),
    }
}

fn run_cluster(args: ClusterArgs) -> Result<(), Failure> {
    let device = parse_device(&args.input.device).map_err(Failure::bad_input)?;
    let trained = match &args.input.run {
        Some(run_dir) => Some(eval::load_run(run_dir, &device)?),
        None => None,
    };
    let dataset_config = TrainConfig {
        data: args.input.data.clone().or_else(|| {
            trained
                .as_ref()
                .and_then(|_| run_data(args.input.run.as_deref()))
        }),
        format: args.input.format.clone(),
        split: args.split.clone(),
        max_images: args.input.max_images,
        ..TrainConfig::default()
    };
    let dataset = load_dataset(&dataset_config)?;
    let labels = dataset.labels.clone().ok_or_else(|| {
        Failure::bad_input(anyhow!(
            "the dataset `{}` has no labels to score the clusters against",
            dataset.source
        ))
    })?;
    let k = args.k.or_else(|| dataset.n_classes()).unwrap_or(2);
    let settings = ClusterSettings {
        k,
        pca_dim: args.pca_dim,
        iterations: args.iterations,
        n_redo: args.n_redo,
        seed: args.seed,
    };

    let normalization = trained.as_ref().map_or_else(
        || Normalization::from_dataset(&dataset),
        |m| m.normalization.clone(),
    );
    let model_config = trained.as_ref().map_or_else(
        || TrainConfig::default().model_config(&dataset),
        |m| m.config.clone(),
    );
    check_input_shape(&model_config, &dataset)?;
    let random = eval::random_model(&model_config, normalization, args.seed, &device);

    let mut rows = Vec::new();
    let mut score = |name: &str, loaded: &LoadedModel| -> Result<(), Failure> {
        let (features, dim) = eval::extract_layer(
            loaded,
            &dataset,
            &args.layer,
            args.input.batch_size,
            &device,
        )
        .map_err(extraction_failure)?;
        tracing::info!("clustering {name} ({dim} features per image)");
        rows.push(
            score_features(name, &features, dim, &labels, &settings).map_err(Failure::bad_input)?,
        );
        Ok(())
    };
    if let Some(trained) = &trained {
        score(&format!("trained {}", args.layer), trained)?;
    }
    score(&format!("random {}", args.layer), &random)?;
    let (pixels, dim) = eval::pixel_features(&dataset);
    rows.push(
        score_features(PIXELS_LAYER, &pixels, dim, &labels, &settings)
            .map_err(Failure::bad_input)?,
    );

    println!(
        "{:<16} {:>8} {:>7} {:>7} {:>9} {:>8}",
        "features", "dim", "NMI", "ARI", "accuracy", "seconds"
    );
    for row in &rows {
        println!(
            "{:<16} {:>8} {:>7.3} {:>7.3} {:>9.3} {:>8.1}",
            row.name, row.feature_dim, row.nmi, row.ari, row.accuracy, row.seconds
        );
    }

    let out = args.out.clone().or_else(|| {
        args.input.run.as_ref().map(|run| {
            run.join("eval")
                .join(format!("cluster-{}.json", args.layer))
        })
    });
    if let Some(out) = out {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| {
                Failure::bad_input(anyhow!("cannot create `{}`: {error}", parent.display()))
            })?;
        }
        let report = ClusterReport {
            dataset: &dataset.source,
            n_images: dataset.len(),
            layer: &args.layer,
            settings: &settings,
            run: args.input.run.clone(),
            rows: &rows,
        };
        let json = serde_json::to_vec_pretty(&report)
            .map_err(|error| Failure::bad_input(anyhow!(error)))?;
        write_atomically(&out, &json)?;
        tracing::info!("scores written to {}", out.display());

        // The first row is the trained network's, or the random network's without --run.
        let first = &rows[0];
        let title = format!("{}: clusters against classes", first.name);
        let chart = draw_confusion_matrix(
            &title,
            &first.assignments,
            &labels,
            dataset.class_names.as_deref(),
        )
        .map_err(Failure::bad_input)?;
        let png = out.with_extension("png");
        save_png(&chart, &png).map_err(Failure::bad_input)?;
        tracing::info!("confusion matrix written to {}", png.display());
    }
    Ok(())
}

/// Rejects a dataset whose images do not have the shape the network expects.
pub fn check_input_shape(
    model_config: &deepcluster::model::ModelConfig,
    dataset: &deepcluster::data::Dataset,
) -> Result<(), Failure> {
    let expected = (
        model_config.in_channels,
        model_config.height,
        model_config.width,
    );
    if expected != (dataset.channels, dataset.height, dataset.width) {
        return Err(Failure::bad_input(anyhow!(
            "the network expects {}x{}x{} images but `{}` has {}x{}x{}",
            model_config.in_channels,
            model_config.height,
            model_config.width,
            dataset.source,
            dataset.channels,
            dataset.height,
            dataset.width
        )));
    }
    Ok(())
}

/// Maps an extraction error to its exit code: an unknown layer is bad input (2), a backend
/// error a failure (1).
pub fn extraction_failure(error: eval::EvalError) -> Failure {
    match error {
        error @ eval::EvalError::UnknownLayer { .. } => Failure::bad_input(error),
        error => Failure {
            error: error.into(),
            exit_code: super::EXIT_FAILURE,
        },
    }
}

/// The dataset path a run was trained on, from its `config.toml`.
pub fn run_data(run_dir: Option<&std::path::Path>) -> Option<PathBuf> {
    let path = run_dir?.join(deepcluster::train::run::CONFIG_FILE);
    TrainConfig::from_toml_file(&path).ok()?.data
}
