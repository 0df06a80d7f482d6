//! `deepcluster eval linear`: linear probes on the frozen activations of each convolution.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::anyhow;
use clap::Args;
use deepcluster::cluster::{Pca, PcaConfig};
use deepcluster::data::Dataset;
use deepcluster::eval::linear::{
    PCA_INPUT_TARGET_DIM, POOLED_TARGET_DIM, Pooling, ProbeSettings, layer_shape, top1_accuracy,
    train_linear_classifier,
};
use deepcluster::eval::splits::{DEFAULT_TEST_FRACTION, hold_out};
use deepcluster::eval::{self, LoadedModel};
use deepcluster::plot::{BarSeries, draw_grouped_bar_chart, save_png};
use deepcluster::preprocess::{Normalization, eval_batch};
use deepcluster::train::TrainConfig;
use serde::Serialize;

use super::Failure;
use super::eval::{EvalInput, extraction_failure, run_data, write_json};
use super::train::load_dataset;

/// Options of `deepcluster eval linear`.
#[derive(Debug, Args)]
pub struct LinearArgs {
    #[command(flatten)]
    input: EvalInput,

    /// Fraction of the images held out for testing when the dataset has a single split. A
    /// dataset with a training and a test split (an IDX or CIFAR folder) uses both instead.
    #[arg(long, default_value_t = DEFAULT_TEST_FRACTION)]
    test_fraction: f64,

    /// Comma-separated convolution layers to probe [default: every convolution].
    #[arg(long, value_delimiter = ',')]
    layers: Vec<String>,

    /// Protocols: `pooled` (average pooling to about 9,600 values, SGD), `pca` (PCA then
    /// logistic regression), or both.
    #[arg(long, default_value = "both", value_parser = ["pooled", "pca", "both"])]
    protocol: String,

    /// PCA dimension of the `pca` protocol.
    #[arg(long, default_value_t = 256)]
    pca_dim: usize,

    /// Passes over the training features.
    #[arg(long, default_value_t = 30)]
    epochs: usize,

    /// Initial learning rate lr₀.
    #[arg(long, default_value_t = 0.01)]
    lr: f64,

    /// Weight decay; the learning rate decays as lr₀ / √(1 + lr₀ · wd · step).
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,

    /// Seed of the random network and of the probes.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Write the scores as JSON to FILE, and the bar chart beside it as FILE with `.png`
    /// [default: RUN/eval/linear.json with --run, linear-random.json for --model random].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// One probe's result.
#[derive(Clone, Debug, Serialize)]
struct ProbeRow {
    model: String,
    layer: String,
    protocol: &'static str,
    pooling: String,
    input_dim: usize,
    top1: f64,
    seconds: f64,
}

#[derive(Serialize)]
struct LinearReport<'a> {
    train: &'a str,
    test: &'a str,
    n_train: usize,
    n_test: usize,
    run: Option<PathBuf>,
    settings: &'a ProbeSettings,
    pca_dim: usize,
    rows: &'a [ProbeRow],
}

/// Runs `deepcluster eval linear`.
pub fn run(args: LinearArgs) -> Result<(), Failure> {
    if !(args.test_fraction > 0.0 && args.test_fraction < 1.0) {
        return Err(Failure::bad_input(anyhow!(
            "invalid --test-fraction {}: use a value between 0 and 1",
            args.test_fraction
        )));
    }
    let plan = args.input.network.resolve()?;
    let device = plan.device.clone();
    let out = args.out.clone().or_else(|| plan.default_output("linear"));
    let (train, test) = load_splits(&args.input, args.test_fraction)?;
    let n_classes = train
        .n_classes()
        .unwrap_or(0)
        .max(test.n_classes().unwrap_or(0));
    let (Some(train_labels), Some(test_labels)) = (&train.labels, &test.labels) else {
        return Err(Failure::bad_input(anyhow!(
            "the dataset `{}` has no labels to train the probes on",
            train.source
        )));
    };

    let networks = plan.networks_for(&train, args.seed)?;
    let valid_layers = networks[0].1.model.backbone.layer_names();
    let layers = if args.layers.is_empty() {
        valid_layers.clone()
    } else {
        args.layers.clone()
    };
    if let Some(bad) = layers.iter().find(|l| !valid_layers.contains(l)) {
        return Err(Failure::bad_input(anyhow!(
            "unknown layer `{bad}`; valid layers: {}",
            valid_layers.join(", ")
        )));
    }

    let settings = ProbeSettings {
        epochs: args.epochs,
        learning_rate: args.lr,
        weight_decay: args.weight_decay,
        seed: args.seed,
        ..ProbeSettings::default()
    };
    let probe = Probe {
        train: &train,
        test: &test,
        train_labels,
        test_labels,
        n_classes,
        settings: &settings,
        args: &args,
        device: &device,
    };
    let mut rows = Vec::new();
    for layer in &layers {
        for (name, loaded) in &networks {
            rows.extend(probe.layer(name, loaded, layer)?);
        }
    }
    rows.extend(probe.pixels()?);
    print_table(&rows);
    match out {
        Some(out) => write_outputs(&out, &args, &train, &test, &settings, &rows),
        None => Ok(()),
    }
}

/// Training and test features of one probe, `[n_images, dim]` each.
struct Features<'a> {
    train: &'a [f32],
    test: &'a [f32],
    dim: usize,
    /// Pooling and reduction applied to the layer, as printed in the table.
    description: String,
}

/// What every probe of one invocation shares.
struct Probe<'a> {
    train: &'a Dataset,
    test: &'a Dataset,
    train_labels: &'a [u32],
    test_labels: &'a [u32],
    n_classes: usize,
    settings: &'a ProbeSettings,
    args: &'a LinearArgs,
    device: &'a burn::tensor::Device,
}

impl Probe<'_> {
    /// Runs the chosen protocols on one layer of one model.
    fn layer(
        &self,
        model: &str,
        loaded: &LoadedModel,
        layer: &str,
    ) -> Result<Vec<ProbeRow>, Failure> {
        let shape =
            layer_shape(loaded, self.train, layer, self.device).map_err(Failure::bad_input)?;
        let mut rows = Vec::new();
        if self.args.protocol != "pca" {
            let pooling = Pooling::choose(shape, POOLED_TARGET_DIM);
            tracing::info!("{model} {layer}: pooling {}", pooling.describe());
            let started = Instant::now();
            let (train_x, test_x) = self.features(loaded, layer, &pooling)?;
            let features = Features {
                train: &train_x,
                test: &test_x,
                dim: pooling.dim(),
                description: pooling.describe(),
            };
            rows.push(self.pooled_row(model, layer, &features, started));
        }
        if self.args.protocol != "pooled" {
            let pooling = Pooling::choose(shape, PCA_INPUT_TARGET_DIM);
            let started = Instant::now();
            let (train_x, test_x) = self.features(loaded, layer, &pooling)?;
            let features = Features {
                train: &train_x,
                test: &test_x,
                dim: pooling.dim(),
                description: pooling.describe(),
            };
            rows.push(self.pca_row(model, layer, &features, started)?);
        }
        Ok(rows)
    }

    /// Runs the chosen protocols on the normalised pixels themselves, the baseline that a
    /// learned representation has to beat.
    fn pixels(&self) -> Result<Vec<ProbeRow>, Failure> {
        let started = Instant::now();
        let normalization = Normalization::from_dataset(self.train);
        let all = |dataset: &Dataset| {
            let indices: Vec<usize> = (0..dataset.len()).collect();
            eval_batch(dataset, &indices, &normalization)
        };
        let (train_x, test_x) = (all(self.train), all(self.test));
        let dim = self.train.image_len();
        let features = Features {
            train: &train_x,
            test: &test_x,
            dim,
            description: format!("none ({dim} pixels)"),
        };
        let mut rows = Vec::new();
        if self.args.protocol != "pca" {
            rows.push(self.pooled_row("pixels", "input", &features, started));
        }
        if self.args.protocol != "pooled" {
            let started = Instant::now();
            rows.push(self.pca_row("pixels", "input", &features, started)?);
        }
        Ok(rows)
    }

    /// Trains the SGD probe on the features as they are.
    fn pooled_row(
        &self,
        model: &str,
        layer: &str,
        features: &Features<'_>,
        started: Instant,
    ) -> ProbeRow {
        let classifier = train_linear_classifier(
            features.train,
            features.dim,
            self.train_labels,
            self.n_classes,
            self.settings,
        );
        ProbeRow {
            model: model.to_owned(),
            layer: layer.to_owned(),
            protocol: "pooled",
            pooling: features.description.clone(),
            input_dim: features.dim,
            top1: top1_accuracy(&classifier.predict(features.test), self.test_labels),
            seconds: started.elapsed().as_secs_f64(),
        }
    }

    /// Reduces the features with a whitened PCA fitted on the training split, then trains the
    /// logistic regression.
    fn pca_row(
        &self,
        model: &str,
        layer: &str,
        features: &Features<'_>,
        started: Instant,
    ) -> Result<ProbeRow, Failure> {
        let config = PcaConfig {
            output_dim: self.args.pca_dim,
            whiten: true,
            max_fit_points: None,
            seed: self.args.seed,
        };
        let pca = Pca::fit(features.train, features.dim, &config).map_err(Failure::bad_input)?;
        let (train_x, test_x) = (pca.transform(features.train), pca.transform(features.test));
        let classifier = train_linear_classifier(
            &train_x,
            pca.output_dim(),
            self.train_labels,
            self.n_classes,
            self.settings,
        );
        Ok(ProbeRow {
            model: model.to_owned(),
            layer: layer.to_owned(),
            protocol: "pca",
            pooling: format!("{}, PCA to {}", features.description, pca.output_dim()),
            input_dim: pca.output_dim(),
            top1: top1_accuracy(&classifier.predict(&test_x), self.test_labels),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Pooled features of the training and test splits.
    fn features(
        &self,
        loaded: &LoadedModel,
        layer: &str,
        pooling: &Pooling,
    ) -> Result<(Vec<f32>, Vec<f32>), Failure> {
        let extract = |dataset: &Dataset| {
            eval::extract_layer_pooled(
                loaded,
                dataset,
                layer,
                Some(pooling),
                self.args.input.batch_size,
                self.device,
            )
            .map(|(features, _)| features)
            .map_err(extraction_failure)
        };
        Ok((extract(self.train)?, extract(self.test)?))
    }
}

/// Loads the training and test splits: both splits of `data` when it has them, otherwise the
/// dataset with its last `--test-fraction` held out.
pub fn load_splits(input: &EvalInput, test_fraction: f64) -> Result<(Dataset, Dataset), Failure> {
    let data = input
        .data
        .clone()
        .or_else(|| run_data(input.network.run.as_deref()));
    let (format, max_images) = (&input.format, input.max_images);
    let config = |split: &str| TrainConfig {
        data: data.clone(),
        format: format.clone(),
        split: split.to_owned(),
        ..TrainConfig::default()
    };
    let mut test = load_dataset(&config("test"))?;
    if data.is_some()
        && let Ok(mut train) = load_dataset(&config("train"))
        && train.source != test.source
    {
        if let Some(max_images) = max_images {
            train.truncate(max_images);
            test.truncate(max_images);
        }
        return Ok((train, test));
    }
    if let Some(max_images) = max_images {
        test.truncate(max_images);
    }
    Ok(hold_out(&test, test_fraction))
}

fn print_table(rows: &[ProbeRow]) {
    println!(
        "{:<8} {:<6} {:<8} {:>7} {:>7} {:>8}  pooling",
        "model", "layer", "protocol", "dim", "top-1", "seconds"
    );
    for row in rows {
        println!(
            "{:<8} {:<6} {:<8} {:>7} {:>7.3} {:>8.1}  {}",
            row.model, row.layer, row.protocol, row.input_dim, row.top1, row.seconds, row.pooling
        );
    }
}

fn write_outputs(
    out: &Path,
    args: &LinearArgs,
    train: &Dataset,
    test: &Dataset,
    settings: &ProbeSettings,
    rows: &[ProbeRow],
) -> Result<(), Failure> {
    let report = LinearReport {
        train: &train.source,
        test: &test.source,
        n_train: train.len(),
        n_test: test.len(),
        run: args.input.network.run.clone(),
        settings,
        pca_dim: args.pca_dim,
        rows,
    };
    write_json(out, &report)?;

    let mut layers: Vec<String> = Vec::new();
    for row in rows {
        if !layers.contains(&row.layer) {
            layers.push(row.layer.clone());
        }
    }
    // One value per layer in every series; NaN draws no bar where a series lacks the layer
    // (the pixels have only `input`).
    let mut series: Vec<BarSeries> = Vec::new();
    for row in rows {
        let name = format!("{} {}", row.model, row.protocol);
        let position = layers.iter().position(|l| *l == row.layer).unwrap_or(0);
        let index = match series.iter().position(|s| s.name == name) {
            Some(index) => index,
            None => {
                series.push(BarSeries {
                    name,
                    values: vec![f64::NAN; layers.len()],
                });
                series.len() - 1
            }
        };
        series[index].values[position] = row.top1;
    }
    let chart = draw_grouped_bar_chart(
        "Linear probe top-1 accuracy",
        "top-1",
        &layers,
        &series,
        Some(1.0),
    )
    .map_err(Failure::bad_input)?;
    let png = out.with_extension("png");
    save_png(&chart, &png).map_err(Failure::bad_input)?;
    tracing::info!("scores written to {} and {}", out.display(), png.display());
    Ok(())
}
