//! `deepcluster eval`: scoring features against the true labels.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use burn::tensor::Device;
use clap::{Args, Subcommand};
use deepcluster::data::Dataset;
use deepcluster::device::parse_device;
use deepcluster::eval::cluster::{
    ClusterScores, ClusterSettings, draw_confusion_matrix, score_features,
};
use deepcluster::eval::{self, LoadedModel, ModelKind, PIXELS_LAYER};
use deepcluster::model::ModelConfig;
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
    /// Pascal VOC 2007 classification: the network trained on VOC trainval with a new output
    /// per class, scored by average precision on VOC test.
    Voc(Box<super::eval_voc::VocArgs>),
}

/// Options shared by the evaluation commands that score a dataset with labels: the network,
/// the images and the device.
#[derive(Debug, Args)]
pub struct EvalInput {
    #[command(flatten)]
    pub network: NetworkArgs,

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
}

/// Options that choose the network an evaluation scores, shared by every evaluation command.
#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// Run folder whose latest checkpoint is evaluated.
    #[arg(long, value_name = "DIR")]
    pub run: Option<PathBuf>,

    /// Network to score: `trained` (the run's latest checkpoint, with the same architecture at
    /// its random initialisation beside it as a baseline) or `random` (only the random
    /// network, shaped like the run's with --run) [default: trained with --run, random
    /// without].
    #[arg(long = "model", value_enum, value_name = "KIND")]
    pub kind: Option<ModelKind>,

    /// Width multiplier of the random network without --run [default: 0.5].
    #[arg(long, value_name = "X")]
    pub width: Option<f32>,

    /// Build the random network without the grayscale + Sobel front end (without --run).
    #[arg(long)]
    pub no_sobel: bool,

    /// Device: cpu, or tch, tch-cuda:N, wgpu when built with those features.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The networks an evaluation scores, resolved from [`NetworkArgs`] before the images are read.
pub struct NetworkPlan {
    /// Device that every network runs on.
    pub device: Device,
    /// The run folder, with --run.
    pub run: Option<PathBuf>,
    /// The run's trained network, for `--model trained`.
    trained: Option<LoadedModel>,
    /// The run's shapes and normalisation, with --run.
    run_shapes: Option<(ModelConfig, Normalization)>,
    /// Settings that shape the random network when there is no run (`--width`, `--no-sobel`).
    defaults: TrainConfig,
}

impl NetworkArgs {
    /// Checks the options and loads what the run folder holds: the trained network for
    /// `--model trained`, its shapes and normalisation for `--model random`.
    pub fn resolve(&self) -> Result<NetworkPlan, Failure> {
        let device = parse_device(&self.device).map_err(Failure::bad_input)?;
        reject_with_run(
            self.run.as_deref(),
            &[
                ("--width", self.width.is_some()),
                ("--no-sobel", self.no_sobel),
            ],
        )?;
        let defaults = TrainConfig {
            width_multiplier: self
                .width
                .unwrap_or(TrainConfig::default().width_multiplier),
            sobel: !self.no_sobel,
            ..TrainConfig::default()
        };
        defaults.validate().map_err(Failure::bad_input)?;
        let kind = self.kind.unwrap_or(if self.run.is_some() {
            ModelKind::Trained
        } else {
            ModelKind::Random
        });
        let (trained, run_shapes) = match (kind, &self.run) {
            (ModelKind::Trained, None) => {
                return Err(Failure::bad_input(anyhow!(
                    "--model trained needs --run DIR, the run folder to evaluate; use --model random for the network at its random initialisation"
                )));
            }
            (ModelKind::Trained, Some(run)) => {
                let loaded = eval::load_run(run, &device)?;
                let shapes = (loaded.config.clone(), loaded.normalization.clone());
                (Some(loaded), Some(shapes))
            }
            (ModelKind::Random, Some(run)) => (None, Some(eval::run_shapes(run)?)),
            (ModelKind::Random, None) => (None, None),
        };
        Ok(NetworkPlan {
            device,
            run: self.run.clone(),
            trained,
            run_shapes,
            defaults,
        })
    }
}

impl NetworkPlan {
    /// Returns the `[channels, height, width]` input of the run's network, `None` without --run.
    pub fn input_shape(&self) -> Option<[usize; 3]> {
        let (config, _) = self.run_shapes.as_ref()?;
        Some([config.in_channels, config.height, config.width])
    }

    /// Returns the shapes of the networks: the run's, or those a new run builds for `dataset`.
    pub fn model_config(&self, dataset: &Dataset) -> ModelConfig {
        match &self.run_shapes {
            Some((config, _)) => config.clone(),
            None => self.defaults.model_config(dataset),
        }
    }

    /// Returns the normalisation of the networks' input: the run's, or the statistics of
    /// `dataset`.
    pub fn normalization(&self, dataset: &Dataset) -> Normalization {
        match &self.run_shapes {
            Some((_, normalization)) => normalization.clone(),
            None => Normalization::from_dataset(dataset),
        }
    }

    /// Returns the networks to score, each with its name: the trained one first when there
    /// is one, then the architecture of `model_config` at its random initialisation, seeded
    /// with `seed`.
    pub fn networks(
        self,
        model_config: &ModelConfig,
        normalization: Normalization,
        seed: u64,
    ) -> Vec<(&'static str, LoadedModel)> {
        let mut networks = Vec::new();
        if let Some(trained) = self.trained {
            networks.push(("trained", trained));
        }
        let random = eval::random_model(model_config, normalization, seed, &self.device);
        networks.push(("random", random));
        networks
    }

    /// Returns where a command writes its scores by default. Without --run it warns that nothing
    /// will be saved and returns `None`. The file is
    /// `RUN/eval/STEM.json`, or `RUN/eval/STEM-random.json` for `--model random` so that the
    /// trained network's scores are kept.
    pub fn default_output(&self, stem: &str) -> Option<PathBuf> {
        let suffix = if self.trained.is_some() {
            ""
        } else {
            "-random"
        };
        match self.run.as_ref() {
            Some(run) => Some(run.join("eval").join(format!("{stem}{suffix}.json"))),
            None => {
                tracing::warn!(
                    "the scores are printed but not saved: there is no run folder; pass --out FILE to save them"
                );
                None
            }
        }
    }

    /// Returns the networks of [`Self::networks`] for images shaped like `dataset`, after
    /// checking that the run's network takes images of that shape.
    pub fn networks_for(
        self,
        dataset: &Dataset,
        seed: u64,
    ) -> Result<Vec<(&'static str, LoadedModel)>, Failure> {
        let model_config = self.model_config(dataset);
        check_input_shape(&model_config, dataset)?;
        let normalization = self.normalization(dataset);
        Ok(self.networks(&model_config, normalization, seed))
    }
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

    /// Write the scores as JSON to FILE and the confusion matrix beside it as FILE with `.png`
    /// [default: RUN/eval/cluster-LAYER.json with --run, cluster-LAYER-random.json for
    /// --model random].
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
        EvalCommand::Voc(args) => super::eval_voc::run(*args),
    }
}

fn run_cluster(args: ClusterArgs) -> Result<(), Failure> {
    let plan = args.input.network.resolve()?;
    let dataset_config = TrainConfig {
        data: args
            .input
            .data
            .clone()
            .or_else(|| run_data(plan.run.as_deref())),
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
    let device = plan.device.clone();
    let out = args
        .out
        .clone()
        .or_else(|| plan.default_output(&format!("cluster-{}", args.layer)));
    let networks = plan.networks_for(&dataset, args.seed)?;

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
    for (name, loaded) in &networks {
        score(&format!("{name} {}", args.layer), loaded)?;
    }
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

    if let Some(out) = out {
        let report = ClusterReport {
            dataset: &dataset.source,
            n_images: dataset.len(),
            layer: &args.layer,
            settings: &settings,
            run: args.input.network.run.clone(),
            rows: &rows,
        };
        write_json(&out, &report)?;
        tracing::info!("scores written to {}", out.display());

        // The first row is the trained network's, or the random network's for --model random.
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

/// Rejects the first of `options` (name, whether it was given) that was given with `--run`:
/// these options shape the random network without a run, and a run fixes its shapes.
pub fn reject_with_run(run: Option<&Path>, options: &[(&str, bool)]) -> Result<(), Failure> {
    let (Some(run), Some((name, _))) = (run, options.iter().find(|(_, given)| *given)) else {
        return Ok(());
    };
    Err(Failure::bad_input(anyhow!(
        "{name} sets the shape of the random network without --run, but the run `{}` fixes it; drop {name}",
        run.display()
    )))
}

/// Writes `report` as pretty-printed JSON to `path` through a temporary file, creating the
/// parent folder.
pub fn write_json(path: &Path, report: &impl Serialize) -> Result<(), Failure> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|error| {
            Failure::bad_input(anyhow!("cannot create `{}`: {error}", parent.display()))
        })?;
    }
    let json =
        serde_json::to_vec_pretty(report).map_err(|error| Failure::bad_input(anyhow!(error)))?;
    write_atomically(path, &json)?;
    Ok(())
}

/// Rejects a dataset whose images do not have the shape the network expects.
pub fn check_input_shape(model_config: &ModelConfig, dataset: &Dataset) -> Result<(), Failure> {
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
    deepcluster::model::check_input_size(dataset.height, dataset.width)
        .map_err(|message| Failure::bad_input(anyhow!("`{}`: {message}", dataset.source)))
}

/// Maps an evaluation error to its exit code: an unknown layer or images of the wrong shape are
/// bad input (2), other errors a failure (1).
pub fn extraction_failure(error: eval::EvalError) -> Failure {
    match error {
        error @ (eval::EvalError::UnknownLayer { .. } | eval::EvalError::InputShape { .. }) => {
            Failure::bad_input(error)
        }
        error => Failure {
            error: error.into(),
            exit_code: super::EXIT_FAILURE,
        },
    }
}

/// The dataset path a run was trained on, from its `config.toml`.
pub fn run_data(run_dir: Option<&Path>) -> Option<PathBuf> {
    let path = run_dir?.join(deepcluster::train::run::CONFIG_FILE);
    TrainConfig::from_toml_file(&path).ok()?.data
}
