//! Times the network on one batch: feature extraction in evaluation mode, as
//! `extract_features` runs it, and full SGD training steps, as `train_epoch` runs them.
//!
//! The network is the default one: AlexNet with the Sobel front end for 1×28×28 images,
//! k = 100 clusters, dropout 0.5, batch 256, and the default learning rate, momentum and weight
//! decay. Pixels are uniform in [0, 1), normalised to zero mean and unit variance, and targets
//! are uniform cluster ids, both from a seeded ChaCha8 generator. Data loading and augmentation
//! are not timed.
//!
//! Run with `cargo bench --bench train_step`, or through `scripts/bench_train.sh`, which also
//! runs `scripts/bench_train_step.py` and prints the Rust/PyTorch ratios. Settings:
//!
//! - `--width-multiplier X` or `BENCH_WIDTH_MULTIPLIER` (default 0.5, the training default)
//! - `--steps N` or `BENCH_STEPS`: timed batches per measurement (default 10)
//! - `--warmup N` or `BENCH_WARMUP`: untimed batches before each measurement (default 2)
//! - `RAYON_NUM_THREADS`: threads of burn's `flex` backend
//!
//! Besides the readable summary, each measurement prints one line `RESULT rust NAME IMAGES_PER_S`.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use deepcluster::model::{Architecture, DEFAULT_DROPOUT, DeepClusterNet, ModelConfig};
use deepcluster::train::TrainConfig;
use deepcluster::train::steps::{SgdSettings, backbone_optimizer, top_layer_optimizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const IN_CHANNELS: usize = 1;
const IMAGE_SIZE: usize = 28;
const DEFAULT_STEPS: usize = 10;
const DEFAULT_WARMUP: usize = 2;
const SEED: u64 = 0;

struct BenchSettings {
    width_multiplier: f32,
    steps: usize,
    warmup: usize,
}

/// Reads the settings from the command line, then from the environment, then the defaults.
///
/// `cargo bench` passes `--bench` to every benchmark binary, so that flag is skipped.
fn parse_settings() -> Result<BenchSettings, String> {
    let mut width_multiplier = env_value("BENCH_WIDTH_MULTIPLIER")?;
    let mut steps = env_value("BENCH_STEPS")?;
    let mut warmup = env_value("BENCH_WARMUP")?;

    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => {}
            "--width-multiplier" => width_multiplier = Some(parse_value(&arg, args.next())?),
            "--steps" => steps = Some(parse_value(&arg, args.next())?),
            "--warmup" => warmup = Some(parse_value(&arg, args.next())?),
            _ => {
                return Err(format!(
                    "unknown argument `{arg}`; expected --width-multiplier X, --steps N or \
                     --warmup N"
                ));
            }
        }
    }

    let settings = BenchSettings {
        width_multiplier: width_multiplier.unwrap_or(TrainConfig::default().width_multiplier),
        steps: steps.unwrap_or(DEFAULT_STEPS),
        warmup: warmup.unwrap_or(DEFAULT_WARMUP),
    };
    if !(settings.width_multiplier.is_finite() && settings.width_multiplier > 0.0) {
        return Err(format!(
            "invalid width multiplier {}; use a positive number such as 0.5",
            settings.width_multiplier
        ));
    }
    if settings.steps == 0 {
        return Err("invalid step count 0; time at least 1 step".to_owned());
    }
    Ok(settings)
}

fn env_value<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .map(Some)
            .map_err(|_| format!("invalid {name}={text:?}; expected a number")),
        Err(_) => Ok(None),
    }
}

fn parse_value<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
    let value = value.ok_or_else(|| format!("missing value after {flag}"))?;
    value
        .parse()
        .map_err(|_| format!("invalid value {value:?} for {flag}; expected a number"))
}

/// Returns `batch_size` images of uniform pixels in [0, 1), normalised by that distribution's
/// mean (1/2) and standard deviation (1/√12), row-major `[batch, 1, 28, 28]`.
fn random_pixels(batch_size: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let std = (1.0f32 / 12.0).sqrt();
    (0..batch_size * IN_CHANNELS * IMAGE_SIZE * IMAGE_SIZE)
        .map(|_| (rng.random::<f32>() - 0.5) / std)
        .collect()
}

/// Uploads the batch as `images_tensor` does: a fresh tensor for every step.
fn images_tensor(pixels: &[f32], batch_size: usize, device: &Device) -> Tensor<4> {
    let shape = [batch_size, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE];
    Tensor::from_data(TensorData::new(pixels.to_vec(), shape), device)
}

fn targets_tensor(targets: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(targets.to_vec(), [targets.len()]), device)
}

/// Runs `warmup` untimed calls of `step`, then `steps` timed ones, and returns the seconds of
/// the timed ones.
fn time_steps(warmup: usize, steps: usize, mut step: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        step();
    }
    let start = Instant::now();
    for _ in 0..steps {
        step();
    }
    start.elapsed().as_secs_f64()
}

fn report(name: &str, batch_size: usize, steps: usize, seconds: f64) {
    let images_per_second = (batch_size * steps) as f64 / seconds;
    println!(
        "{name:<8} {images_per_second:>10.1} images/s  ({steps} steps in {seconds:.3} s, \
         {:.1} ms/step)",
        1000.0 * seconds / steps as f64
    );
    println!("RESULT rust {name} {images_per_second:.1}");
}

fn main() {
    let settings = parse_settings().unwrap_or_else(|message| {
        eprintln!("error: {message}");
        std::process::exit(2);
    });
    let defaults = TrainConfig::default();
    let batch_size = defaults.batch_size;
    let n_clusters = defaults.k;
    let sgd_settings = SgdSettings {
        learning_rate: defaults.learning_rate,
        momentum: defaults.momentum,
        weight_decay: defaults.weight_decay,
    };
    let config = ModelConfig {
        architecture: Architecture::Alexnet,
        in_channels: IN_CHANNELS,
        height: IMAGE_SIZE,
        width: IMAGE_SIZE,
        sobel: true,
        width_multiplier: settings.width_multiplier,
        n_clusters,
        dropout: DEFAULT_DROPOUT,
    };

    let device = Device::flex();
    let train_device = device.clone().autodiff();
    let model = DeepClusterNet::new(&config, &train_device);
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let pixels = random_pixels(batch_size, &mut rng);
    let targets: Vec<i64> = (0..batch_size)
        .map(|_| rng.random_range(0..n_clusters as i64))
        .collect();

    println!(
        "train_step: AlexNet + Sobel, {IN_CHANNELS}x{IMAGE_SIZE}x{IMAGE_SIZE}, width multiplier \
         {}, k = {n_clusters}, batch {batch_size}, {} warm-up + {} timed steps, {} threads \
         (burn flex)",
        settings.width_multiplier,
        settings.warmup,
        settings.steps,
        rayon::current_num_threads()
    );

    // Feature extraction, as `extract_features` runs it: running batch-norm statistics, no
    // dropout, no autodiff, and the features copied back to a host vector.
    let eval_model = model.valid();
    let seconds = time_steps(settings.warmup, settings.steps, || {
        let input = images_tensor(&pixels, batch_size, &device);
        let features = eval_model.backbone.forward_features(input).into_data();
        std::hint::black_box(features);
    });
    report("extract", batch_size, settings.steps, seconds);

    // Training steps, as `train_epoch` runs them, without its data loading and augmentation.
    let loss_function = CrossEntropyLossConfig::new().init(&train_device);
    let mut backbone_sgd = backbone_optimizer(&sgd_settings);
    let mut top_sgd = top_layer_optimizer(&sgd_settings);
    let mut model = Some(model.train());
    let mut last_loss = f32::NAN;
    let seconds = time_steps(settings.warmup, settings.steps, || {
        let current = model
            .take()
            .expect("the model is put back after every step");
        let images = images_tensor(&pixels, batch_size, &train_device);
        let targets = targets_tensor(&targets, &train_device);
        let loss = loss_function.forward(current.forward(images), targets);
        last_loss = loss.clone().into_scalar();
        assert!(
            last_loss.is_finite(),
            "the training loss became {last_loss}"
        );

        let mut gradients = loss.backward();
        let backbone_gradients = GradientsParams::from_module(&mut gradients, &current.backbone);
        let top_gradients = GradientsParams::from_module(&mut gradients, &current.top);
        let DeepClusterNet { backbone, top } = current;
        let backbone = backbone_sgd.step(sgd_settings.learning_rate, backbone, backbone_gradients);
        let top = top_sgd.step(sgd_settings.learning_rate, top, top_gradients);
        model = Some(DeepClusterNet { backbone, top });
    });
    report("train", batch_size, settings.steps, seconds);
    println!("last training loss: {last_loss:.4}");
}
