//! Linear probes: linear classifiers trained on the frozen activations of one layer.
//!
//! Two protocols. (a) The original DeepCluster's: the activation of a convolution (after its
//! ReLU) is average-pooled to about [`POOLED_TARGET_DIM`] values and a linear layer is trained
//! with SGD, momentum 0.9 and a learning rate that decays as lr₀ / √(1 + lr₀ · wd · t) over
//! steps t. (b) PCA of the activations followed by multinomial logistic regression, trained by
//! the same SGD.
//!
//! The network is frozen, so the features of each layer are extracted once and the classifier
//! is trained on the stored features in plain Rust.

use burn::module::Module;
use burn::tensor::Device;
use burn::tensor::Tensor;
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{EvalError, LoadedModel};
use crate::data::Dataset;
use crate::preprocess::eval_batch;
use crate::train::steps::images_tensor;

/// Values per image after pooling in protocol (a): the original DeepCluster pools each AlexNet
/// layer to between 9,216 and 9,600 values.
pub const POOLED_TARGET_DIM: usize = 9600;
/// Values per image after pooling before the PCA of protocol (b), smaller than
/// [`POOLED_TARGET_DIM`] because fitting a PCA costs the square of the dimension in memory.
pub const PCA_INPUT_TARGET_DIM: usize = 2048;
/// Smallest standard deviation used when standardising a feature.
const MIN_FEATURE_STD: f32 = 1e-6;

/// Average pooling of a `[channels, height, width]` activation, without padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pooling {
    /// Side of the square window.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Shape of the activation, `[channels, height, width]`.
    pub input: [usize; 3],
    /// Shape after pooling.
    pub output: [usize; 3],
}

impl Pooling {
    /// Chooses the square window and stride (stride ≤ window ≤ 2 × stride) whose output size is
    /// closest to `target_dim` on a log scale; an activation no larger than `target_dim` is
    /// kept whole (window and stride 1).
    pub fn choose(input: [usize; 3], target_dim: usize) -> Self {
        let [channels, height, width] = input;
        let whole = Self {
            kernel: 1,
            stride: 1,
            input,
            output: input,
        };
        if channels * height * width <= target_dim {
            return whole;
        }
        let mut best = whole;
        let mut best_distance = f64::INFINITY;
        for stride in 1..=height.min(width) {
            for kernel in stride..=(2 * stride).min(height.min(width)) {
                let output = [
                    channels,
                    (height - kernel) / stride + 1,
                    (width - kernel) / stride + 1,
                ];
                let dim = output.iter().product::<usize>() as f64;
                let distance = (dim / target_dim as f64).ln().abs();
                if distance < best_distance - 1e-12 {
                    best_distance = distance;
                    best = Self {
                        kernel,
                        stride,
                        input,
                        output,
                    };
                }
            }
        }
        best
    }

    /// Values per image after pooling.
    pub fn dim(&self) -> usize {
        self.output.iter().product()
    }

    /// Pools `activation` `[batch, channels, height, width]`.
    pub fn apply(&self, activation: Tensor<4>) -> Tensor<4> {
        if self.kernel == 1 && self.stride == 1 {
            return activation;
        }
        let options = AvgPoolOptions {
            kernel_size: [self.kernel, self.kernel],
            stride: [self.stride, self.stride],
            padding: [(0, 0), (0, 0)],
            count_include_pad: true,
            ceil_mode: false,
        };
        avg_pool2d(activation, options)
    }

    /// A one-line description, e.g. `avg 4x4 stride 3: 96x14x14 -> 96x4x4 (1536)`.
    pub fn describe(&self) -> String {
        let [c, h, w] = self.input;
        let [oc, oh, ow] = self.output;
        let window = if self.kernel == 1 && self.stride == 1 {
            "none".to_owned()
        } else {
            format!("avg {0}x{0} stride {1}", self.kernel, self.stride)
        };
        format!("{window}: {c}x{h}x{w} -> {oc}x{oh}x{ow} ({})", self.dim())
    }
}

/// Returns the `[channels, height, width]` shape of convolution `layer`'s activation.
pub fn layer_shape(
    loaded: &LoadedModel,
    dataset: &Dataset,
    layer: &str,
    device: &Device,
) -> Result<[usize; 3], EvalError> {
    let unknown = || EvalError::UnknownLayer {
        name: layer.to_owned(),
        valid: loaded.model.backbone.layer_names().join(", "),
    };
    if dataset.is_empty() {
        return Err(unknown());
    }
    let pixels = eval_batch(dataset, &[0], &loaded.normalization);
    let input = images_tensor(pixels, 1, dataset, device);
    let activation = loaded
        .model
        .valid()
        .backbone
        .forward_layer(input, layer)
        .ok_or_else(unknown)?;
    let [_, channels, height, width] = activation.dims();
    Ok([channels, height, width])
}

/// SGD settings of a linear probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeSettings {
    /// Passes over the training features.
    pub epochs: usize,
    /// Features per step.
    pub batch_size: usize,
    /// Initial learning rate lr₀.
    pub learning_rate: f64,
    /// L2 weight decay on the weights (not the bias); also sets the learning-rate decay.
    pub weight_decay: f64,
    /// Momentum, PyTorch's convention (no dampening).
    pub momentum: f64,
    /// Seed of the order in which features are visited.
    pub seed: u64,
}

impl Default for ProbeSettings {
    /// The original DeepCluster's linear probe settings (lr 0.01, weight decay 1e-4, momentum
    /// 0.9) with batches of 256 and 30 epochs.
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 256,
            learning_rate: 0.01,
            weight_decay: 1e-4,
            momentum: 0.9,
            seed: 0,
        }
    }
}

/// A softmax linear classifier over standardised features.
#[derive(Clone, Debug)]
pub struct LinearClassifier {
    dim: usize,
    n_classes: usize,
    mean: Vec<f32>,
    inverse_std: Vec<f32>,
    /// `[n_classes, dim]`.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

/// Trains a linear classifier on `features` `[n, dim]` with `labels` below `n_classes`.
///
/// Each feature is standardised with the training mean and standard deviation, a fixed affine
/// map that the original probe does not apply: it lets one learning rate suit every layer.
/// Weights start at zero. Each step takes the mean cross-entropy of a batch, adds
/// `weight_decay · w` to the weight gradient, and updates `v ← momentum · v + g`,
/// `w ← w − lr_t · v` with `lr_t = lr₀ / √(1 + lr₀ · weight_decay · t)`.
///
/// # Panics
///
/// Panics if `features.len() != labels.len() * dim` or a label is not below `n_classes`.
pub fn train_linear_classifier(
    features: &[f32],
    dim: usize,
    labels: &[u32],
    n_classes: usize,
    settings: &ProbeSettings,
) -> LinearClassifier {
    assert_eq!(
        features.len(),
        labels.len() * dim,
        "one label per feature row"
    );
    assert!(
        labels.iter().all(|&l| (l as usize) < n_classes),
        "labels below n_classes"
    );
    let (mean, inverse_std) = feature_statistics(features, dim);
    let mut classifier = LinearClassifier {
        dim,
        n_classes,
        mean,
        inverse_std,
        weights: vec![0.0; n_classes * dim],
        bias: vec![0.0; n_classes],
    };
    let standardized = classifier.standardize(features);

    let mut velocity_w = vec![0.0f32; n_classes * dim];
    let mut velocity_b = vec![0.0f32; n_classes];
    let mut order: Vec<usize> = (0..labels.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let (lr0, wd, momentum) = (
        settings.learning_rate,
        settings.weight_decay,
        settings.momentum,
    );
    let mut step = 0usize;
    for _ in 0..settings.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(settings.batch_size.max(1)) {
            let x = gather_rows(&standardized, dim, batch);
            let mut gradient = classifier.logits_of(&x, batch.len());
            softmax_minus_targets(&mut gradient, n_classes, batch, labels);
            let (grad_w, grad_b) = classifier.parameter_gradients(&x, &gradient, batch.len());

            let lr = (lr0 / (1.0 + lr0 * wd * step as f64).sqrt()) as f32;
            for ((w, v), g) in classifier
                .weights
                .iter_mut()
                .zip(&mut velocity_w)
                .zip(&grad_w)
            {
                *v = momentum as f32 * *v + g + wd as f32 * *w;
                *w -= lr * *v;
            }
            for ((b, v), g) in classifier.bias.iter_mut().zip(&mut velocity_b).zip(&grad_b) {
                *v = momentum as f32 * *v + g;
                *b -= lr * *v;
            }
            step += 1;
        }
    }
    classifier
}

impl LinearClassifier {
    /// Returns the class of highest score for each row of `features` `[n, dim]`.
    pub fn predict(&self, features: &[f32]) -> Vec<u32> {
        let n = features.len() / self.dim;
        let logits = self.logits_of(&self.standardize(features), n);
        logits
            .chunks(self.n_classes)
            .map(|row| {
                let mut best = 0;
                for (class, &value) in row.iter().enumerate() {
                    if value > row[best] {
                        best = class;
                    }
                }
                best as u32
            })
            .collect()
    }

    fn standardize(&self, features: &[f32]) -> Vec<f32> {
        let mut out = features.to_vec();
        for row in out.chunks_mut(self.dim) {
            for ((value, mean), scale) in row.iter_mut().zip(&self.mean).zip(&self.inverse_std) {
                *value = (*value - mean) * scale;
            }
        }
        out
    }

    /// `x · wᵀ + b`, `[n, n_classes]`.
    fn logits_of(&self, x: &[f32], n: usize) -> Vec<f32> {
        let (dim, classes) = (self.dim, self.n_classes);
        let mut logits: Vec<f32> = (0..n).flat_map(|_| self.bias.iter().copied()).collect();
        // SAFETY: `x` is `[n, dim]`, `weights` `[classes, dim]` read transposed and `logits`
        // `[n, classes]`, all row-major with the strides given.
        unsafe {
            matrixmultiply::sgemm(
                n,
                dim,
                classes,
                1.0,
                x.as_ptr(),
                dim as isize,
                1,
                self.weights.as_ptr(),
                1,
                dim as isize,
                1.0,
                logits.as_mut_ptr(),
                classes as isize,
                1,
            );
        }
        logits
    }

    /// Gradients of the mean loss: `gradientᵀ · x` `[classes, dim]` and the column sums.
    fn parameter_gradients(&self, x: &[f32], gradient: &[f32], n: usize) -> (Vec<f32>, Vec<f32>) {
        let (dim, classes) = (self.dim, self.n_classes);
        let mut grad_w = vec![0.0f32; classes * dim];
        // SAFETY: `gradient` is `[n, classes]` read transposed, `x` `[n, dim]` and `grad_w`
        // `[classes, dim]`, all row-major with the strides given.
        unsafe {
            matrixmultiply::sgemm(
                classes,
                n,
                dim,
                1.0,
                gradient.as_ptr(),
                1,
                classes as isize,
                x.as_ptr(),
                dim as isize,
                1,
                0.0,
                grad_w.as_mut_ptr(),
                dim as isize,
                1,
            );
        }
        let mut grad_b = vec![0.0f32; classes];
        for row in gradient.chunks(classes) {
            for (sum, &g) in grad_b.iter_mut().zip(row) {
                *sum += g;
            }
        }
        (grad_w, grad_b)
    }
}

/// Turns `logits` `[batch, classes]` into the gradient of the mean cross-entropy:
/// `(softmax − one_hot) / batch`.
fn softmax_minus_targets(logits: &mut [f32], classes: usize, batch: &[usize], labels: &[u32]) {
    let scale = 1.0 / batch.len() as f32;
    for (row, &index) in logits.chunks_mut(classes).zip(batch) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for value in row.iter_mut() {
            *value = (*value - max).exp();
            sum += *value;
        }
        for value in row.iter_mut() {
            *value *= scale / sum;
        }
        row[labels[index] as usize] -= scale;
    }
}

fn gather_rows(points: &[f32], dim: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * dim);
    for &row in rows {
        out.extend_from_slice(&points[row * dim..(row + 1) * dim]);
    }
    out
}

/// Per-column mean and inverse standard deviation of `[n, dim]` features.
fn feature_statistics(features: &[f32], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let n = (features.len() / dim).max(1) as f64;
    let mut sums = vec![(0.0f64, 0.0f64); dim];
    for row in features.chunks(dim) {
        for (sum, &value) in sums.iter_mut().zip(row) {
            sum.0 += f64::from(value);
            sum.1 += f64::from(value) * f64::from(value);
        }
    }
    sums.iter()
        .map(|&(sum, sum_squares)| {
            let mean = sum / n;
            let std = (sum_squares / n - mean * mean).max(0.0).sqrt() as f32;
            (mean as f32, 1.0 / std.max(MIN_FEATURE_STD))
        })
        .unzip()
}

/// Fraction of `predicted` equal to `labels`; 0 for empty input.
pub fn top1_accuracy(predicted: &[u32], labels: &[u32]) -> f64 {
    let correct = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    correct as f64 / labels.len().max(1) as f64
}
