//! `deepcluster train`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Args;
use deepcluster::data::{self, Dataset, Format, LoadOptions, Split};
use deepcluster::device::parse_device;
use deepcluster::model::Architecture;
use deepcluster::train::{
    self, ClusteringMethod, LossWeighting, LrSchedule, Method, RunOptions, Sampling, TopInit,
    TrainConfig,
};

use super::Failure;
use super::progress::Bars;

/// Options of `deepcluster train`. Each option left unset keeps the value of `--config`, or the
/// default shown.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset: an IDX file or folder (MNIST, Fashion-MNIST), a CIFAR-10/100 binary file or
    /// folder, or a folder of images. Default: the embedded Fashion-MNIST test split (10,000
    /// images).
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,

    /// Dataset format; detected from the path when unset.
    #[arg(long, value_parser = ["idx", "cifar10", "cifar100", "folder"])]
    format: Option<String>,

    /// Split to read where the format has several [default: train].
    #[arg(long, value_parser = ["train", "test"])]
    split: Option<String>,

    /// Train on the first N images only.
    #[arg(long, value_name = "N")]
    max_images: Option<usize>,

    /// Convert colour images to grayscale.
    #[arg(long)]
    grayscale: bool,

    /// Resize the images of a folder dataset to HEIGHTxWIDTH pixels, e.g. 32x32 [default: the
    /// size of the first image].
    #[arg(long, value_name = "HxW", value_parser = parse_size)]
    image_size: Option<[u32; 2]>,

    /// Stop on an undecodable image instead of skipping it.
    #[arg(long)]
    strict: bool,

    /// TOML file of settings (the keys of a run folder's config.toml); options given on the
    /// command line override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Run folder to create [default: runs/run-<unix time>].
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    out: Option<PathBuf>,

    /// Continue the run in DIR from its latest checkpoint (up to --epochs in total).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,

    /// Clustering method that makes the pseudo-labels: kmeans, or pic (power iteration
    /// clustering on a 5-nearest-neighbour graph, which finds the number of clusters itself
    /// and ignores -k) [default: kmeans].
    #[arg(long, value_enum, value_name = "METHOD")]
    clustering: Option<ClusteringMethod>,

    /// Number of k-means clusters (pseudo-labels) [default: 100].
    #[arg(short, long)]
    k: Option<usize>,

    /// Dimension of the PCA before k-means [default: 256].
    #[arg(long, value_name = "DIM")]
    pca_dim: Option<usize>,

    /// Do not whiten the PCA output.
    #[arg(long)]
    no_whiten: bool,

    /// Lloyd iterations of k-means per epoch [default: 20].
    #[arg(long, value_name = "N")]
    kmeans_iterations: Option<usize>,

    /// Total number of epochs [default: 4].
    #[arg(long)]
    epochs: Option<usize>,

    /// Images per batch [default: 256].
    #[arg(long)]
    batch_size: Option<usize>,

    /// SGD learning rate [default: 0.05].
    #[arg(long)]
    lr: Option<f64>,

    /// Learning rate over the epochs: `constant`, or `cosine` (half a cosine from --lr at the
    /// first epoch towards zero after the last) [default: constant].
    #[arg(long, value_enum)]
    lr_schedule: Option<LrSchedule>,

    /// SGD momentum of the backbone [default: 0.9].
    #[arg(long)]
    momentum: Option<f64>,

    /// L2 weight decay [default: 1e-5].
    #[arg(long)]
    weight_decay: Option<f64>,

    /// Network architecture [default: alexnet].
    #[arg(long, value_enum)]
    arch: Option<Architecture>,

    /// Multiplier on every layer's width [default: 0.5].
    #[arg(long, value_name = "X")]
    width: Option<f32>,

    /// Feed the images to the first convolution directly, without the grayscale + Sobel front
    /// end.
    #[arg(long)]
    no_sobel: bool,

    /// Smallest area of a random resized crop, as a fraction of the image [default: 0.5].
    #[arg(long, value_name = "FRACTION")]
    crop_scale_min: Option<f32>,

    /// Do not mirror training images.
    #[arg(long)]
    no_flip: bool,

    /// Largest random rotation of a training image, in degrees [default: 0].
    #[arg(long, value_name = "DEGREES", allow_negative_numbers = true)]
    rotation: Option<f32>,

    /// Largest random translation of a training image, as a fraction of its size [default: 0].
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    translate: Option<f32>,

    /// Brightness jitter: pixel values are scaled by a factor in [1 − X, 1 + X] [default: 0].
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    brightness: Option<f32>,

    /// Contrast jitter: each image is blended with its mean by a factor in [1 − X, 1 + X]
    /// [default: 0].
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    contrast: Option<f32>,

    /// Layer whose activations are clustered: conv1 to conv5 (after the ReLU) [default: the
    /// last fully connected layer].
    #[arg(long, value_name = "LAYER")]
    cluster_layer: Option<String>,

    /// Order of the training images: `uniform` draws equally from every cluster (the original
    /// DeepCluster), `shuffle` visits every image once [default: shuffle].
    #[arg(long, value_enum)]
    sampling: Option<Sampling>,

    /// Per-cluster loss weights: `none` (the original DeepCluster), or `inverse-sqrt` (1/√cluster
    /// size) [default: inverse-sqrt].
    #[arg(long, value_enum)]
    loss_weighting: Option<LossWeighting>,

    /// Top layer at each epoch: `random`, or `centroids` (logits start as the cosine
    /// similarity to each k-means centroid) [default: random].
    #[arg(long, value_enum)]
    top_init: Option<TopInit>,

    /// DeepCluster version: v1, the original, or v2, with a projection head, prototypes set to
    /// the k-means centroids of a memory bank of embeddings, and several crops per image
    /// [default: v1].
    #[arg(long, value_enum)]
    method: Option<Method>,

    /// v2: small crops per image (10–40% of its area) besides the two large ones [default: 2].
    #[arg(long, value_name = "N")]
    v2_small_crops: Option<usize>,

    /// v2: softmax temperature of the loss over the prototypes [default: 0.1].
    #[arg(long, value_name = "T")]
    v2_temperature: Option<f64>,

    /// Seed of every random choice [default: 0].
    #[arg(long)]
    seed: Option<u64>,

    /// Device to train on: cpu, or tch, tch-cuda:N, wgpu when built with those features.
    #[arg(long, default_value = "cpu")]
    device: String,

    /// Rewrite the HTML report (RUN_DIR/report/index.html) after each epoch.
    #[arg(long)]
    report: bool,
}

fn parse_size(text: &str) -> Result<[u32; 2], String> {
    let invalid = || format!("invalid size `{text}`; expected HEIGHTxWIDTH, e.g. 32x32");
    let (height, width) = text.split_once(['x', 'X']).ok_or_else(invalid)?;
    let height: u32 = height.trim().parse().map_err(|_| invalid())?;
    let width: u32 = width.trim().parse().map_err(|_| invalid())?;
    if height == 0 || width == 0 {
        return Err(invalid());
    }
    deepcluster::model::check_input_size(height as usize, width as usize)?;
    Ok([height, width])
}

impl TrainArgs {
    /// Names of the options given that change the configuration, which `--resume` does not
    /// accept because the run's own configuration is used.
    fn config_options_given(&self) -> Vec<&'static str> {
        let given = [
            ("--data", self.data.is_some()),
            ("--format", self.format.is_some()),
            ("--split", self.split.is_some()),
            ("--max-images", self.max_images.is_some()),
            ("--grayscale", self.grayscale),
            ("--image-size", self.image_size.is_some()),
            ("--strict", self.strict),
            ("--config", self.config.is_some()),
            ("--clustering", self.clustering.is_some()),
            ("-k", self.k.is_some()),
            ("--pca-dim", self.pca_dim.is_some()),
            ("--no-whiten", self.no_whiten),
            ("--kmeans-iterations", self.kmeans_iterations.is_some()),
            ("--batch-size", self.batch_size.is_some()),
            ("--lr", self.lr.is_some()),
            ("--lr-schedule", self.lr_schedule.is_some()),
            ("--momentum", self.momentum.is_some()),
            ("--weight-decay", self.weight_decay.is_some()),
            ("--arch", self.arch.is_some()),
            ("--width", self.width.is_some()),
            ("--no-sobel", self.no_sobel),
            ("--crop-scale-min", self.crop_scale_min.is_some()),
            ("--no-flip", self.no_flip),
            ("--rotation", self.rotation.is_some()),
            ("--translate", self.translate.is_some()),
            ("--brightness", self.brightness.is_some()),
            ("--contrast", self.contrast.is_some()),
            ("--cluster-layer", self.cluster_layer.is_some()),
            ("--sampling", self.sampling.is_some()),
            ("--loss-weighting", self.loss_weighting.is_some()),
            ("--top-init", self.top_init.is_some()),
            ("--method", self.method.is_some()),
            ("--v2-small-crops", self.v2_small_crops.is_some()),
            ("--v2-temperature", self.v2_temperature.is_some()),
            ("--seed", self.seed.is_some()),
        ];
        given
            .iter()
            .filter(|(_, is_given)| *is_given)
            .map(|(name, _)| *name)
            .collect()
    }

    /// Builds the configuration: `--config` (or the defaults),
    /// overridden by every option given.
    fn resolve_config(&self) -> Result<TrainConfig, Failure> {
        let mut config = match &self.config {
            Some(path) => TrainConfig::from_toml_file(path).map_err(Failure::bad_input)?,
            None => TrainConfig::default(),
        };
        macro_rules! set {
            ($($field:ident = $value:expr),* $(,)?) => {
                $(if let Some(value) = $value.clone() { config.$field = value; })*
            };
        }
        set!(
            split = self.split,
            clustering = self.clustering,
            k = self.k,
            pca_dim = self.pca_dim,
            kmeans_iterations = self.kmeans_iterations,
            epochs = self.epochs,
            batch_size = self.batch_size,
            learning_rate = self.lr,
            lr_schedule = self.lr_schedule,
            momentum = self.momentum,
            weight_decay = self.weight_decay,
            architecture = self.arch,
            width_multiplier = self.width,
            crop_scale_min = self.crop_scale_min,
            rotation_degrees = self.rotation,
            translate = self.translate,
            brightness = self.brightness,
            contrast = self.contrast,
            sampling = self.sampling,
            loss_weighting = self.loss_weighting,
            top_init = self.top_init,
            method = self.method,
            v2_small_crops = self.v2_small_crops,
            v2_temperature = self.v2_temperature,
            seed = self.seed,
        );
        if self.cluster_layer.is_some() {
            config.cluster_layer = self.cluster_layer.clone();
        }
        if self.data.is_some() {
            config.data = self.data.clone();
        }
        if self.format.is_some() {
            config.format = self.format.clone();
        }
        if self.max_images.is_some() {
            config.max_images = self.max_images;
        }
        if self.image_size.is_some() {
            config.image_size = self.image_size;
        }
        config.grayscale |= self.grayscale;
        config.strict |= self.strict;
        config.whiten &= !self.no_whiten;
        config.sobel &= !self.no_sobel;
        config.horizontal_flip &= !self.no_flip;
        config.validate().map_err(Failure::bad_input)?;
        match config.method {
            Method::V1 => reject_given(
                &[
                    ("--v2-small-crops", self.v2_small_crops.is_some()),
                    ("--v2-temperature", self.v2_temperature.is_some()),
                ],
                "applies only to --method v2; add --method v2 or remove it",
            )?,
            Method::V2 => reject_given(
                &[
                    ("--pca-dim", self.pca_dim.is_some()),
                    ("--no-whiten", self.no_whiten),
                    ("--sampling", self.sampling.is_some()),
                    ("--loss-weighting", self.loss_weighting.is_some()),
                    ("--top-init", self.top_init.is_some()),
                ],
                "has no effect with --method v2, which clusters its unit-length embeddings and trains on every image once per epoch with an unweighted loss; remove it",
            )?,
        }
        Ok(config)
    }
}

/// Rejects the first option of `options` (name, whether given) that was given, with `reason`.
fn reject_given(options: &[(&str, bool)], reason: &str) -> Result<(), Failure> {
    match options.iter().find(|(_, given)| *given) {
        Some((name, _)) => Err(Failure::bad_input(anyhow::anyhow!("{name} {reason}"))),
        None => Ok(()),
    }
}

/// Loads the dataset a configuration names, applies grayscale and `max_images`.
pub fn load_dataset(config: &TrainConfig) -> Result<Dataset, Failure> {
    let mut dataset = match &config.data {
        None => data::load_embedded_fashion_mnist().map_err(Failure::bad_input)?,
        Some(path) => {
            let format = match &config.format {
                Some(name) => Some(name.parse::<Format>().map_err(Failure::bad_input)?),
                None => None,
            };
            let split: Split = config.split.parse().map_err(Failure::bad_input)?;
            let options = LoadOptions {
                format,
                split,
                strict: config.strict,
                image_size: config.image_size.map(|[height, width]| (width, height)),
                ..LoadOptions::default()
            };
            data::load(path, &options).map_err(Failure::bad_input)?
        }
    };
    if dataset.n_skipped > 0 {
        tracing::warn!(
            "skipped {} undecodable images (use --strict to stop on them)",
            dataset.n_skipped
        );
    }
    if config.grayscale {
        dataset.to_grayscale();
    }
    if let Some(max_images) = config.max_images {
        dataset.truncate(max_images);
    }
    tracing::info!(
        "dataset: {} ({} images, {}x{}x{}{})",
        dataset.source,
        dataset.len(),
        dataset.channels,
        dataset.height,
        dataset.width,
        if dataset.labels.is_some() {
            ", labels used for metrics only"
        } else {
            ""
        }
    );
    Ok(dataset)
}

/// Runs `deepcluster train`.
pub fn run(args: TrainArgs, quiet: bool) -> Result<(), Failure> {
    let device = parse_device(&args.device).map_err(Failure::bad_input)?;

    let (config, run_dir, resume) = match &args.resume {
        Some(run_dir) => {
            let given = args.config_options_given();
            if !given.is_empty() {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "{} cannot be combined with --resume: a resumed run keeps the settings in \
                     its checkpoint; only --epochs, --threads and --device apply",
                    given.join(", ")
                )));
            }
            let mut config = checkpointed_config(run_dir)?;
            if let Some(epochs) = args.epochs {
                config.epochs = epochs;
            }
            (config, run_dir.clone(), true)
        }
        None => {
            let config = args.resolve_config()?;
            let run_dir = args.out.clone().unwrap_or_else(train::run::default_run_dir);
            (config, run_dir, false)
        }
    };
    let dataset = load_dataset(&config)?;
    deepcluster::model::check_input_size(dataset.height, dataset.width).map_err(|message| {
        Failure::bad_input(anyhow::anyhow!("`{}`: {message}", dataset.source))
    })?;

    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C stops at once; the last checkpoint is complete on disk.
            std::process::exit(super::EXIT_INTERRUPTED);
        }
        eprintln!("\nstopping after the current batch (press Ctrl-C again to stop now)");
    })
    .context("cannot install the Ctrl-C handler")
    .map_err(|error| Failure {
        error,
        exit_code: super::EXIT_FAILURE,
    })?;

    let options = RunOptions {
        run_dir: run_dir.clone(),
        resume,
        device,
    };
    let bars = Bars::new(quiet);
    let summary = if args.report {
        let progress = super::report::ReportingProgress {
            inner: bars,
            run_dir: run_dir.clone(),
            dataset: &dataset,
            device: options.device.clone(),
        };
        train::train(&config, &dataset, &options, &progress, &interrupted)?
    } else {
        train::train(&config, &dataset, &options, &bars, &interrupted)?
    };
    tracing::info!(
        "finished {} epoch{}; run folder {} (metrics.jsonl, assignments/, checkpoints/)",
        summary.epochs_completed,
        if summary.epochs_completed == 1 {
            ""
        } else {
            "s"
        },
        run_dir.display()
    );
    Ok(())
}

/// Reads the configuration saved in a run folder's latest readable checkpoint.
fn checkpointed_config(run_dir: &std::path::Path) -> Result<TrainConfig, Failure> {
    Ok(train::checkpoint::read_latest_meta(run_dir)?.config)
}
