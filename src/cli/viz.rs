//! `deepcluster viz`: pictures of a run's network, data, clusters and curves, written as PNG.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use deepcluster::data::Dataset;
use deepcluster::device::parse_device;
use deepcluster::eval::{self, LoadedModel};
use deepcluster::preprocess::Normalization;
use deepcluster::train::record::{assignment_path, read_assignments, read_records};
use deepcluster::train::run::CONFIG_FILE;
use deepcluster::train::{TrainConfig, TrainError, checkpoint};
use deepcluster::viz::ascent::{AscentSettings, draw_ascent, gradient_ascent};
use deepcluster::viz::clusters::{draw_cluster_samples, draw_size_histogram};
use deepcluster::viz::curves::{Curve, draw_curve};
use deepcluster::viz::data::draw_data_views;
use deepcluster::viz::filters::draw_filters;
use deepcluster::viz::responses::{InputImage, draw_responses};
use deepcluster::viz::top_images::{draw_top_images, find_top_images};
use deepcluster::viz::{VizError, save_png};

use super::train::load_dataset;
use super::{EXIT_FAILURE, Failure};

/// Pictures written as PNG files.
#[derive(Debug, Subcommand)]
pub enum VizCommand {
    /// The first convolution's filters as a grid (Sobel x and y kernels side by side).
    Filters(FiltersArgs),
    /// Every feature map of a layer for one image, beside the image.
    Responses(ResponsesArgs),
    /// For chosen filters, the dataset images with the largest mean activation.
    TopImages(TopImagesArgs),
    /// Images synthesised from noise by gradient ascent to excite chosen filters.
    GradientAscent(AscentArgs),
    /// Raw images beside their grayscale, Sobel, normalised and augmented views.
    Data(DataArgs),
    /// Sample images of the largest clusters of an epoch, and the histogram of cluster sizes.
    Clusters(ClustersArgs),
    /// One chart per quantity of metrics.jsonl: loss, k-means objective, NMI, seconds.
    Curves(CurvesArgs),
}

/// The run folder and where its images come from.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run folder written by `deepcluster train`.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,

    /// Dataset to draw images from [default: the run's dataset].
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,

    /// Dataset format; detected from the path when unset.
    #[arg(long, value_parser = ["idx", "cifar10", "cifar100", "folder"])]
    format: Option<String>,

    /// Device: cpu, or tch, tch-cuda:N, wgpu when built with those features.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Layout of a grid picture.
#[derive(Debug, Args)]
pub struct GridArgs {
    /// Enlargement of each image or map, in screen pixels per pixel.
    #[arg(long, default_value_t = 4)]
    scale: u32,

    /// Images per row of the grid.
    #[arg(long, default_value_t = 16)]
    columns: usize,
}

/// Options of `viz filters`.
#[derive(Debug, Args)]
pub struct FiltersArgs {
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    grid: GridArgs,
    /// Output file [default: RUN/viz/filters.png].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Options of `viz responses`.
#[derive(Debug, Args)]
pub struct ResponsesArgs {
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    grid: GridArgs,
    /// Layer whose feature maps are drawn: conv1 to conv5.
    #[arg(long, default_value = "conv1")]
    layer: String,
    /// Index of the dataset image to feed.
    #[arg(long, default_value_t = 0, conflicts_with = "image")]
    index: usize,
    /// PNG or JPEG file to feed instead of a dataset image; it is converted and resized to the
    /// network's input.
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// Output file [default: RUN/viz/responses-LAYER.png].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Options of `viz top-images`.
#[derive(Debug, Args)]
pub struct TopImagesArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Layer of the filters: conv1 to conv5.
    #[arg(long, default_value = "conv5")]
    layer: String,
    /// Filter indices, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3")]
    filters: Vec<usize>,
    /// Images per filter.
    #[arg(short, default_value_t = 9)]
    n: usize,
    /// Enlargement of each image.
    #[arg(long, default_value_t = 3)]
    scale: u32,
    /// Images per row.
    #[arg(long, default_value_t = 3)]
    columns: usize,
    /// Images per batch of the forward passes.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Output folder, one file top-LAYER-FILTER.png per filter [default: RUN/viz].
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Options of `viz gradient-ascent`.
#[derive(Debug, Args)]
pub struct AscentArgs {
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    grid: GridArgs,
    /// Layer of the filters: conv1 to conv5.
    #[arg(long, default_value = "conv5")]
    layer: String,
    /// Filter indices, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4,5,6,7")]
    filters: Vec<usize>,
    /// Gradient steps [default: 400 for conv1, 300 for conv2, 200 deeper].
    #[arg(long)]
    iterations: Option<usize>,
    /// Step size in standard deviations of a normalised pixel [default: 0.1].
    #[arg(long)]
    lr: Option<f32>,
    /// Fraction of the image removed at each step [default: 0.001].
    #[arg(long)]
    l2_decay: Option<f32>,
    /// Steps between Gaussian blurs, 0 for none [default: 8].
    #[arg(long)]
    blur_every: Option<usize>,
    /// Standard deviation of the blur in pixels [default: 0.4].
    #[arg(long)]
    blur_sigma: Option<f32>,
    /// Largest random shift in pixels before each step [default: 1].
    #[arg(long)]
    jitter: Option<usize>,
    /// Seed of the starting noise and the jitter.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output file [default: RUN/viz/gradient-ascent-LAYER.png].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Options of `viz data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Dataset image indices, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3")]
    images: Vec<usize>,
    /// Enlargement of each image.
    #[arg(long, default_value_t = 4)]
    scale: u32,
    /// Seed of the augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output file [default: RUN/viz/data.png].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Options of `viz clusters`.
#[derive(Debug, Args)]
pub struct ClustersArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Epoch whose assignment is drawn [default: the last].
    #[arg(long)]
    epoch: Option<usize>,
    /// Largest clusters shown.
    #[arg(long, default_value_t = 10)]
    clusters: usize,
    /// Images shown per cluster.
    #[arg(long, default_value_t = 10)]
    per_cluster: usize,
    /// Bars of the size histogram.
    #[arg(long, default_value_t = 20)]
    bins: usize,
    /// Enlargement of each image.
    #[arg(long, default_value_t = 2)]
    scale: u32,
    /// Output folder for clusters-EPOCH.png and cluster-sizes-EPOCH.png [default: RUN/viz].
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Options of `viz curves`.
#[derive(Debug, Args)]
pub struct CurvesArgs {
    /// Run folder written by `deepcluster train`.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// Chart width in pixels.
    #[arg(long, default_value_t = 720)]
    width: u32,
    /// Chart height in pixels.
    #[arg(long, default_value_t = 400)]
    height: u32,
    /// Output folder, one file per curve [default: RUN/viz].
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Maps a picture error to its exit code.
pub fn viz_failure(error: VizError) -> Failure {
    if error.is_bad_input() {
        Failure::bad_input(error)
    } else {
        Failure {
            error: error.into(),
            exit_code: EXIT_FAILURE,
        }
    }
}

/// Runs `deepcluster viz SUBCOMMAND`.
pub fn run(command: VizCommand) -> Result<(), Failure> {
    match command {
        VizCommand::Filters(args) => run_filters(args),
        VizCommand::Responses(args) => run_responses(args),
        VizCommand::TopImages(args) => run_top_images(args),
        VizCommand::GradientAscent(args) => run_ascent(args),
        VizCommand::Data(args) => run_data(args),
        VizCommand::Clusters(args) => run_clusters(args),
        VizCommand::Curves(args) => run_curves(args),
    }
}

fn run_filters(args: FiltersArgs) -> Result<(), Failure> {
    let (loaded, _) = load_model(&args.run)?;
    let image = draw_filters(
        &loaded.model,
        &loaded.config,
        args.grid.scale,
        args.grid.columns,
    )
    .map_err(viz_failure)?;
    let out = output(args.out, &args.run.run, "filters.png");
    write(&image, &out)
}

fn run_responses(args: ResponsesArgs) -> Result<(), Failure> {
    let (loaded, device) = load_model(&args.run)?;
    let config = &loaded.config;
    let input = match &args.image {
        Some(path) => InputImage::from_file(path, config.in_channels, config.height, config.width),
        None => InputImage::from_dataset(&run_dataset(&args.run)?, args.index),
    }
    .map_err(viz_failure)?;
    let image = draw_responses(
        &loaded,
        &input,
        &args.layer,
        args.grid.scale,
        args.grid.columns,
        &device,
    )
    .map_err(viz_failure)?;
    let name = format!("responses-{}.png", args.layer);
    write(&image, &output(args.out, &args.run.run, &name))
}

fn run_top_images(args: TopImagesArgs) -> Result<(), Failure> {
    let (loaded, device) = load_model(&args.run)?;
    let dataset = run_dataset(&args.run)?;
    let tops = find_top_images(
        &loaded,
        &dataset,
        &args.layer,
        &args.filters,
        args.n,
        args.batch_size,
        &device,
    )
    .map_err(viz_failure)?;
    let out_dir = args.out_dir.unwrap_or_else(|| args.run.run.join("viz"));
    for top in &tops {
        let image = draw_top_images(&dataset, &args.layer, top, args.scale, args.columns);
        write(
            &image,
            &out_dir.join(format!("top-{}-{}.png", args.layer, top.filter)),
        )?;
    }
    Ok(())
}

fn run_ascent(args: AscentArgs) -> Result<(), Failure> {
    let (loaded, device) = load_model(&args.run)?;
    let layer_number = args
        .layer
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0);
    let defaults = AscentSettings::for_layer(layer_number);
    let settings = AscentSettings {
        iterations: args.iterations.unwrap_or(defaults.iterations),
        learning_rate: args.lr.unwrap_or(defaults.learning_rate),
        l2_decay: args.l2_decay.unwrap_or(defaults.l2_decay),
        blur_every: args.blur_every.unwrap_or(defaults.blur_every),
        blur_sigma: args.blur_sigma.unwrap_or(defaults.blur_sigma),
        jitter: args.jitter.unwrap_or(defaults.jitter),
        seed: args.seed,
        ..defaults
    };
    let results = gradient_ascent(&loaded, &args.layer, &args.filters, &settings, &device)
        .map_err(viz_failure)?;
    for result in &results {
        tracing::info!(
            "{} filter {}: mean activation {:.3} -> {:.3}{}",
            args.layer,
            result.filter,
            result.start_activation,
            result.final_activation,
            if result.used_pre_relu {
                " (pre-ReLU steps used)"
            } else {
                ""
            }
        );
    }
    let image = draw_ascent(
        &results,
        &loaded,
        &args.layer,
        args.grid.scale,
        args.grid.columns,
    );
    let name = format!("gradient-ascent-{}.png", args.layer);
    write(&image, &output(args.out, &args.run.run, &name))
}

fn run_data(args: DataArgs) -> Result<(), Failure> {
    let device = parse_device(&args.run.device).map_err(Failure::bad_input)?;
    let config = run_config(&args.run.run)?;
    let dataset = run_dataset(&args.run)?;
    let normalization = match eval::load_run(&args.run.run, &device) {
        Ok(loaded) => loaded.normalization,
        Err(_) => Normalization::from_dataset(&dataset),
    };
    let augmentation = config.augmentation();
    let image = draw_data_views(
        &dataset,
        &args.images,
        &normalization,
        &augmentation,
        args.seed,
        args.scale,
        &device,
    )
    .map_err(viz_failure)?;
    write(&image, &output(args.out, &args.run.run, "data.png"))
}

fn run_clusters(args: ClustersArgs) -> Result<(), Failure> {
    let records = read_records(&args.run.run)?;
    let epoch = match args.epoch.or_else(|| records.last().map(|r| r.epoch)) {
        Some(epoch) => epoch,
        None => {
            return Err(viz_failure(VizError::NoRecords {
                path: args.run.run.clone(),
            }));
        }
    };
    let assignments = read_assignments(&assignment_path(&args.run.run, epoch))?;
    let dataset = run_dataset(&args.run)?;
    let config = run_config(&args.run.run)?;
    let out_dir = args.out_dir.unwrap_or_else(|| args.run.run.join("viz"));
    let samples = draw_cluster_samples(
        &dataset,
        &assignments,
        args.clusters,
        args.per_cluster,
        args.scale,
        epoch as u64,
    )
    .map_err(viz_failure)?;
    write(&samples, &out_dir.join(format!("clusters-{epoch}.png")))?;
    let histogram =
        draw_size_histogram(&assignments, config.k, args.bins, (720, 400)).map_err(viz_failure)?;
    write(
        &histogram,
        &out_dir.join(format!("cluster-sizes-{epoch}.png")),
    )
}

fn run_curves(args: CurvesArgs) -> Result<(), Failure> {
    let records = read_records(&args.run)?;
    if records.is_empty() {
        return Err(viz_failure(VizError::NoRecords { path: args.run }));
    }
    let out_dir = args.out_dir.unwrap_or_else(|| args.run.join("viz"));
    for curve in Curve::ALL {
        match draw_curve(curve, &records, args.width, args.height).map_err(viz_failure)? {
            Some(image) => write(&image, &out_dir.join(format!("{}.png", curve.name())))?,
            None => tracing::info!("no values for the {} curve; skipped", curve.name()),
        }
    }
    Ok(())
}

/// Loads the latest checkpoint of the run and the device it runs on.
fn load_model(args: &RunArgs) -> Result<(LoadedModel, burn::tensor::Device), Failure> {
    let device = parse_device(&args.device).map_err(Failure::bad_input)?;
    let loaded = eval::load_run(&args.run, &device)?;
    Ok((loaded, device))
}

/// The run's configuration, from its config.toml.
pub fn run_config(run_dir: &Path) -> Result<TrainConfig, Failure> {
    let path = run_dir.join(CONFIG_FILE);
    if !path.exists() {
        // A run folder from before config.toml existed, or not a run folder: use the latest
        // checkpoint's configuration.
        let epochs = checkpoint::list_checkpoints(run_dir)?;
        let Some(&epoch) = epochs.last() else {
            return Err(TrainError::NoCheckpoint {
                path: run_dir.to_owned(),
            }
            .into());
        };
        let paths = checkpoint::CheckpointPaths::for_epoch(run_dir, epoch);
        return Ok(checkpoint::read_meta(&paths.meta)?.config);
    }
    TrainConfig::from_toml_file(&path).map_err(Failure::bad_input)
}

/// The dataset the run was trained on, or the one given with `--data`.
fn run_dataset(args: &RunArgs) -> Result<Dataset, Failure> {
    let mut config = run_config(&args.run)?;
    if let Some(data) = &args.data {
        config.data = Some(data.clone());
        config.format = args.format.clone();
    }
    load_dataset(&config)
}

fn output(out: Option<PathBuf>, run_dir: &Path, name: &str) -> PathBuf {
    out.unwrap_or_else(|| run_dir.join("viz").join(name))
}

fn write(image: &image::RgbImage, path: &Path) -> Result<(), Failure> {
    save_png(image, path).map_err(|error| viz_failure(VizError::Plot(error)))?;
    println!("{}", path.display());
    Ok(())
}
