//! Pascal VOC 2007 classification: how well a network's features transfer to a multi-label
//! task on natural images.
//!
//! The network's top layer is replaced by a linear layer with one output per VOC class. The
//! network is then trained on the training image set with a binary cross-entropy per class, SGD
//! with momentum, and random resized crops with horizontal flips. [`VocMode::Fc`] trains only the
//! fully connected layers on frozen convolutions, and [`VocMode::Finetune`] trains every layer.
//! Each test image is scored by the mean of the network's outputs (logits) over random crops
//! drawn as in training. Each class is scored by its average precision over the test images,
//! leaving out the images where the class appears only as difficult objects.
//!
//! Images are decoded at [`STORED_SCALE`] times the network's input size and each crop is
//! resized down to the input size, so crops keep the detail a network of 28–32 pixels can use.

use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use image::imageops::{self, FilterType};
use image::{ImageBuffer, Luma};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use super::ap::{average_precision, voc07_average_precision};
use super::{EvalError, LoadedModel};
use crate::data::Dataset;
use crate::data::voc::{N_VOC_CLASSES, Presence, VOC_CLASSES, VocImages};
use crate::model::DeepClusterNet;
use crate::preprocess::{Normalization, item_rng};
use crate::train::steps::{SgdSettings, backbone_optimizer};

/// VOC images are decoded at this multiple of the network's input height and width.
pub const STORED_SCALE: usize = 2;
/// Attempts at drawing a crop that fits inside the image before the whole image is used.
const CROP_ATTEMPTS: usize = 10;
/// First random stream of the test crops; training epochs use streams 1, 2, …
const TEST_CROP_STREAM: usize = 1 << 20;

/// The layers trained on VOC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum VocMode {
    /// The fully connected layers and the new output layer, on frozen convolutions whose batch
    /// norms use their running statistics.
    Fc,
    /// Every layer.
    Finetune,
}

impl VocMode {
    /// Returns the name used on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            VocMode::Fc => "fc",
            VocMode::Finetune => "finetune",
        }
    }
}

/// Settings of the VOC classification protocol.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VocSettings {
    /// Layers trained.
    pub mode: VocMode,
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per training and test batch.
    pub batch_size: usize,
    /// SGD learning rate, constant.
    pub learning_rate: f64,
    /// SGD momentum, PyTorch's convention (no dampening).
    pub momentum: f64,
    /// L2 weight decay on every trained parameter.
    pub weight_decay: f64,
    /// Range of a crop's area as a fraction of the stored image's area.
    pub crop_scale: (f32, f32),
    /// Range of a crop's aspect ratio (width / height).
    pub crop_ratio: (f32, f32),
    /// Random crops averaged per test image.
    pub test_crops: usize,
    /// Seed of the new output layer, dropout, the image order and every crop.
    pub seed: u64,
}

impl Default for VocSettings {
    /// 20 epochs of batches of 64 at a learning rate of 0.05, momentum 0.9 and weight decay
    /// 1e-6; crops of 30–100% of the image with aspect ratios from 3/4 to 4/3; 10 test crops.
    fn default() -> Self {
        Self {
            mode: VocMode::Fc,
            epochs: 20,
            batch_size: 64,
            learning_rate: 0.05,
            momentum: 0.9,
            weight_decay: 1e-6,
            crop_scale: (0.3, 1.0),
            crop_ratio: (3.0 / 4.0, 4.0 / 3.0),
            test_crops: 10,
            seed: 0,
        }
    }
}

/// The average precisions of one class on the test images.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassScore {
    /// Class name.
    pub class: &'static str,
    /// Test images that show the class (not only as difficult objects).
    pub n_positives: usize,
    /// Test images left out because they show the class only as difficult objects.
    pub n_difficult: usize,
    /// Area under the precision-recall curve (scikit-learn's definition); `None` without
    /// positives.
    pub average_precision: Option<f64>,
    /// VOC 2007 11-point interpolated average precision; `None` without positives.
    pub voc07_average_precision: Option<f64>,
}

/// The scores of one network on the test images.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VocScores {
    /// One entry per class, in the VOC order.
    pub classes: Vec<ClassScore>,
    /// Mean of [`ClassScore::average_precision`] over the classes with positives; `None` when
    /// no class has any.
    pub mean_average_precision: Option<f64>,
    /// Mean of [`ClassScore::voc07_average_precision`] over the classes with positives.
    pub mean_voc07_average_precision: Option<f64>,
}

/// Measurements of [`evaluate_voc`] for one network.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VocResult {
    /// Mean training loss of each epoch.
    pub epoch_losses: Vec<f64>,
    /// Scores on the test images.
    pub scores: VocScores,
    /// Seconds spent training and testing.
    pub seconds: f64,
}

/// Trains a copy of `loaded`'s network on `train` with `settings` and scores it on `test`.
///
/// The images of both sets must have the channels the network expects (see
/// [`match_channels`]). Each crop is resized to the network's input size and normalised with
/// `loaded.normalization`.
pub fn evaluate_voc(
    loaded: &LoadedModel,
    train: &VocImages,
    test: &VocImages,
    settings: &VocSettings,
    device: &Device,
) -> Result<VocResult, EvalError> {
    for images in [&train.images, &test.images] {
        if images.channels != loaded.config.in_channels {
            return Err(EvalError::InputShape {
                message: format!(
                    "{} has {} channels but the network expects {}",
                    images.source, images.channels, loaded.config.in_channels
                ),
            });
        }
    }
    let started = Instant::now();
    let input = InputFormat {
        height: loaded.config.height,
        width: loaded.config.width,
        normalization: &loaded.normalization,
    };
    let model = new_classifier(loaded.model.clone(), settings, device);
    let (model, epoch_losses) = train_classifier(model, train, &input, settings, device)?;
    let logits = predict_scores(&model, test, &input, settings, device)?;
    Ok(VocResult {
        epoch_losses,
        scores: score_classes(&logits, &test.targets),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Converts `images` to the `channels` a network expects: RGB to grayscale for 1 channel.
pub fn match_channels(images: &mut VocImages, channels: usize) -> Result<(), EvalError> {
    match (images.images.channels, channels) {
        (3, 1) => images.images.to_grayscale(),
        (found, expected) if found == expected => {}
        (found, expected) => {
            return Err(EvalError::InputShape {
                message: format!(
                    "the network expects {expected} channels and VOC images have {found}; only 1 (grayscale) or 3 (RGB) are supported"
                ),
            });
        }
    }
    Ok(())
}

/// Size and normalisation of the network's input.
struct InputFormat<'a> {
    height: usize,
    width: usize,
    normalization: &'a Normalization,
}

/// Replaces the top layer by a new one with an output per VOC class, drawn from
/// burn's generator seeded with `settings.seed`, and freezes the convolutions in
/// [`VocMode::Fc`].
fn new_classifier(
    model: DeepClusterNet,
    settings: &VocSettings,
    device: &Device,
) -> DeepClusterNet {
    device.seed(settings.seed);
    let model = model.reset_top_layer(N_VOC_CLASSES);
    match settings.mode {
        VocMode::Fc => DeepClusterNet {
            backbone: model.backbone.freeze_convolutions(),
            top: model.top,
        },
        VocMode::Finetune => model,
    }
}

/// Trains `model` for `settings.epochs` passes over `train` and returns it with the mean loss
/// of each epoch.
fn train_classifier(
    model: DeepClusterNet,
    train: &VocImages,
    input: &InputFormat<'_>,
    settings: &VocSettings,
    device: &Device,
) -> Result<(DeepClusterNet, Vec<f64>), EvalError> {
    let train_device = device.clone().autodiff();
    let mut optimizer = backbone_optimizer(&SgdSettings {
        learning_rate: settings.learning_rate,
        momentum: settings.momentum,
        weight_decay: settings.weight_decay,
    });
    let mut model = model.train();
    let mut order: Vec<usize> = (0..train.images.len()).collect();
    let mut order_rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let batch_size = settings.batch_size.max(1);
    let mut epoch_losses = Vec::with_capacity(settings.epochs);

    for epoch in 1..=settings.epochs {
        let started = Instant::now();
        order.shuffle(&mut order_rng);
        let mut loss_sum = 0.0;
        let mut n_batches = 0usize;
        for (batch_index, batch) in order.chunks(batch_size).enumerate() {
            let pixels = crop_batch(
                &train.images,
                batch,
                input,
                settings,
                epoch,
                batch_index * batch_size,
            );
            let images = images_tensor(pixels, batch.len(), &train.images, input, &train_device);
            let (targets, mask) = target_tensors(batch, &train.targets, &train_device);
            let loss = masked_bce_with_logits(model.forward(images), targets, mask);
            let loss_value: f32 = loss.clone().into_scalar();
            if !loss_value.is_finite() {
                return Err(EvalError::NonFiniteLoss {
                    epoch,
                    batch: batch_index + 1,
                });
            }
            let gradients = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(settings.learning_rate, model, gradients);
            loss_sum += f64::from(loss_value);
            n_batches += 1;
        }
        let loss = loss_sum / n_batches.max(1) as f64;
        tracing::info!(
            epoch,
            loss,
            seconds = started.elapsed().as_secs_f64(),
            "VOC training epoch"
        );
        epoch_losses.push(loss);
    }
    Ok((model, epoch_losses))
}

/// Returns the network's outputs `[n_images, N_VOC_CLASSES]` for every image of `test`,
/// averaged over `settings.test_crops` random crops.
fn predict_scores(
    model: &DeepClusterNet,
    test: &VocImages,
    input: &InputFormat<'_>,
    settings: &VocSettings,
    device: &Device,
) -> Result<Vec<f32>, EvalError> {
    let model = model.valid();
    let n_images = test.images.len();
    let indices: Vec<usize> = (0..n_images).collect();
    let mut sums = vec![0.0f32; n_images * N_VOC_CLASSES];
    let n_crops = settings.test_crops.max(1);
    for crop in 0..n_crops {
        for batch in indices.chunks(settings.batch_size.max(1)) {
            let stream = TEST_CROP_STREAM + crop;
            let pixels = crop_batch(&test.images, batch, input, settings, stream, batch[0]);
            let images = images_tensor(pixels, batch.len(), &test.images, input, device);
            let logits = model.forward(images).into_data();
            let values = logits
                .as_slice::<f32>()
                .map_err(|error| EvalError::Backend(format!("{error:?}")))?;
            let start = batch[0] * N_VOC_CLASSES;
            for (sum, &value) in sums[start..start + values.len()].iter_mut().zip(values) {
                *sum += value;
            }
        }
    }
    if let Some(position) = sums.iter().position(|value| !value.is_finite()) {
        return Err(EvalError::NonFiniteScore {
            image: test.ids[position / N_VOC_CLASSES].clone(),
        });
    }
    for sum in &mut sums {
        *sum /= n_crops as f32;
    }
    Ok(sums)
}

/// Scores each class of `scores` `[n_images, N_VOC_CLASSES]` against `targets` by its average
/// precisions, leaving out the images where the class is [`Presence::DifficultOnly`].
pub fn score_classes(scores: &[f32], targets: &[[Presence; N_VOC_CLASSES]]) -> VocScores {
    assert_eq!(
        scores.len(),
        targets.len() * N_VOC_CLASSES,
        "one score per image and class"
    );
    let mut classes = Vec::with_capacity(N_VOC_CLASSES);
    for (class, &name) in VOC_CLASSES.iter().enumerate() {
        let mut class_scores = Vec::with_capacity(targets.len());
        let mut positives = Vec::with_capacity(targets.len());
        for (image, target) in targets.iter().enumerate() {
            if target[class] != Presence::DifficultOnly {
                class_scores.push(f64::from(scores[image * N_VOC_CLASSES + class]));
                positives.push(target[class] == Presence::Present);
            }
        }
        let n_positives = positives.iter().filter(|&&positive| positive).count();
        let scored = n_positives > 0;
        classes.push(ClassScore {
            class: name,
            n_positives,
            n_difficult: targets.len() - positives.len(),
            average_precision: scored.then(|| average_precision(&class_scores, &positives)),
            voc07_average_precision: scored
                .then(|| voc07_average_precision(&class_scores, &positives)),
        });
    }
    let mean = |values: Vec<f64>| {
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    VocScores {
        mean_average_precision: mean(classes.iter().filter_map(|c| c.average_precision).collect()),
        mean_voc07_average_precision: mean(
            classes
                .iter()
                .filter_map(|c| c.voc07_average_precision)
                .collect(),
        ),
        classes,
    }
}

/// Mean binary cross-entropy with logits over the entries where `mask` is 1:
/// Σ mask · (max(x, 0) − x·y + ln(1 + e^−|x|)) / Σ mask, the numerically stable form of
/// −y ln σ(x) − (1 − y) ln(1 − σ(x)).
///
/// # Shapes
///
/// `logits`, `targets` and `mask`: `[batch, classes]`. Returns `[1]`.
pub fn masked_bce_with_logits(logits: Tensor<2>, targets: Tensor<2>, mask: Tensor<2>) -> Tensor<1> {
    let losses = relu(logits.clone()) - logits.clone() * targets + logits.abs().neg().exp().log1p();
    let count = mask.clone().sum();
    (losses * mask).sum() / count.clamp_min(1.0)
}

/// Targets (1 for [`Presence::Present`]) and mask (0 for [`Presence::DifficultOnly`]) of the
/// images at `batch`, each `[batch.len(), N_VOC_CLASSES]`.
fn target_tensors(
    batch: &[usize],
    targets: &[[Presence; N_VOC_CLASSES]],
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    let mut values = Vec::with_capacity(batch.len() * N_VOC_CLASSES);
    let mut mask = Vec::with_capacity(batch.len() * N_VOC_CLASSES);
    for &image in batch {
        for presence in targets[image] {
            values.push(f32::from(u8::from(presence == Presence::Present)));
            mask.push(f32::from(u8::from(presence != Presence::DifficultOnly)));
        }
    }
    let shape = [batch.len(), N_VOC_CLASSES];
    (
        Tensor::from_data(TensorData::new(values, shape), device),
        Tensor::from_data(TensorData::new(mask, shape), device),
    )
}

fn images_tensor(
    pixels: Vec<f32>,
    n_images: usize,
    images: &Dataset,
    input: &InputFormat<'_>,
    device: &Device,
) -> Tensor<4> {
    let shape = [n_images, images.channels, input.height, input.width];
    Tensor::from_data(TensorData::new(pixels, shape), device)
}

/// A crop rectangle in whole pixels of the stored image, and whether it is mirrored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CropBox {
    top: u32,
    left: u32,
    height: u32,
    width: u32,
    flip: bool,
}

/// Draws a random resized crop of an image of `height` × `width` pixels: an area drawn
/// uniformly from `settings.crop_scale` and an aspect ratio drawn log-uniformly from
/// `settings.crop_ratio`, placed uniformly, and mirrored with probability 1/2. After
/// [`CROP_ATTEMPTS`] draws that do not fit, the whole image is used.
fn draw_crop_box(height: u32, width: u32, settings: &VocSettings, rng: &mut ChaCha8Rng) -> CropBox {
    let area = (height * width) as f32;
    let (scale_low, scale_high) = settings.crop_scale;
    let log_ratio = (settings.crop_ratio.0.ln(), settings.crop_ratio.1.ln());
    let mut crop = CropBox {
        top: 0,
        left: 0,
        height,
        width,
        flip: false,
    };
    for _ in 0..CROP_ATTEMPTS {
        let target_area = area * rng.random_range(scale_low..=scale_high);
        let ratio = rng.random_range(log_ratio.0..=log_ratio.1).exp();
        let crop_width = (target_area * ratio).sqrt().round() as u32;
        let crop_height = (target_area / ratio).sqrt().round() as u32;
        if (1..=width).contains(&crop_width) && (1..=height).contains(&crop_height) {
            crop = CropBox {
                top: rng.random_range(0..=height - crop_height),
                left: rng.random_range(0..=width - crop_width),
                height: crop_height,
                width: crop_width,
                flip: false,
            };
            break;
        }
    }
    crop.flip = rng.random_bool(0.5);
    crop
}

/// Returns a random crop of each image at `indices`, resized to the input size with a
/// triangle filter and normalised, `[indices.len(), channels, input height, input width]`.
/// Image `indices[i]` draws its crop from `item_rng(settings.seed, stream, first_position + i)`.
fn crop_batch(
    images: &Dataset,
    indices: &[usize],
    input: &InputFormat<'_>,
    settings: &VocSettings,
    stream: usize,
    first_position: usize,
) -> Vec<f32> {
    let plane = images.height * images.width;
    let output_plane = input.height * input.width;
    let output_len = images.channels * output_plane;
    let mut batch = vec![0.0f32; indices.len() * output_len];
    batch
        .par_chunks_mut(output_len)
        .zip(indices.par_iter())
        .enumerate()
        .for_each(|(offset, (out, &index))| {
            let mut rng = item_rng(settings.seed, stream, first_position + offset);
            let crop = draw_crop_box(
                images.height as u32,
                images.width as u32,
                settings,
                &mut rng,
            );
            let planes = images.image(index).chunks_exact(plane);
            let targets = out.chunks_exact_mut(output_plane);
            for (channel, (pixels, target)) in planes.zip(targets).enumerate() {
                let source: ImageBuffer<Luma<u8>, &[u8]> =
                    ImageBuffer::from_raw(images.width as u32, images.height as u32, pixels)
                        .expect("a plane has height × width pixels");
                let cropped =
                    imageops::crop_imm(&source, crop.left, crop.top, crop.width, crop.height);
                let mut resized = imageops::resize(
                    &*cropped,
                    input.width as u32,
                    input.height as u32,
                    FilterType::Triangle,
                );
                if crop.flip {
                    imageops::flip_horizontal_in_place(&mut resized);
                }
                let mean = input.normalization.mean[channel];
                let std = input.normalization.std[channel];
                for (value, &pixel) in target.iter_mut().zip(resized.as_raw()) {
                    *value = (f32::from(pixel) / 255.0 - mean) / std;
                }
            }
        });
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Architecture, ModelConfig};

    /// Four random 3×16×16 images, each showing one class.
    fn tiny_images() -> VocImages {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let pixels: Vec<u8> = (0..4 * 3 * 16 * 16).map(|_| rng.random()).collect();
        let targets = (0..4)
            .map(|image| {
                let mut target = [Presence::Absent; N_VOC_CLASSES];
                target[image] = Presence::Present;
                target
            })
            .collect();
        VocImages {
            ids: (0..4).map(|image| image.to_string()).collect(),
            targets,
            images: Dataset {
                images: pixels,
                n_images: 4,
                channels: 3,
                height: 16,
                width: 16,
                labels: None,
                class_names: None,
                source: "random pixels".into(),
                n_skipped: 0,
            },
        }
    }

    /// Returns the first convolution's weights and the output layer's weights before and
    /// after one epoch on [`tiny_images`] in `mode`, as `(before, after)` pairs.
    fn weights_before_and_after(mode: VocMode) -> [(Vec<f32>, Vec<f32>); 2] {
        let device = Device::flex();
        let config = ModelConfig {
            architecture: Architecture::Alexnet,
            in_channels: 3,
            height: 8,
            width: 8,
            sobel: false,
            width_multiplier: 0.125,
            n_clusters: 4,
            dropout: 0.5,
        };
        device.seed(1);
        let settings = VocSettings {
            mode,
            epochs: 1,
            batch_size: 2,
            ..VocSettings::default()
        };
        let model = new_classifier(DeepClusterNet::new(&config, &device), &settings, &device);
        let weights = |model: &DeepClusterNet| {
            let conv = model.backbone.first_conv_weight().into_data();
            let top = model.top.weight.val().into_data();
            (
                conv.try_to_vec::<f32>().unwrap(),
                top.try_to_vec::<f32>().unwrap(),
            )
        };
        let before = weights(&model);

        let images = tiny_images();
        let normalization = Normalization::from_dataset(&images.images);
        let input = InputFormat {
            height: 8,
            width: 8,
            normalization: &normalization,
        };
        let (model, _) = train_classifier(model, &images, &input, &settings, &device).unwrap();
        let after = weights(&model);
        [(before.0, after.0), (before.1, after.1)]
    }

    #[test]
    fn fc_mode_keeps_convolutions_fixed() {
        let [conv, top] = weights_before_and_after(VocMode::Fc);
        assert_eq!(conv.0, conv.1);
        assert_ne!(top.0, top.1);
    }

    #[test]
    fn finetune_mode_trains_convolutions() {
        let [conv, top] = weights_before_and_after(VocMode::Finetune);
        assert_ne!(conv.0, conv.1);
        assert_ne!(top.0, top.1);
    }

    #[test]
    fn masked_loss_skips_masked_entries() {
        let device = Device::flex();
        let tensor = |values: [f32; 3]| {
            Tensor::<2>::from_data(TensorData::new(values.to_vec(), [1, 3]), &device)
        };
        let loss = masked_bce_with_logits(
            tensor([0.0, 2.0, -3.0]),
            tensor([1.0, 0.0, 1.0]),
            tensor([1.0, 1.0, 0.0]),
        );
        let value: f32 = loss.into_scalar();
        // −ln σ(0) = ln 2 and −ln(1 − σ(2)) = 2 + ln(1 + e^−2); the third entry is masked.
        let expected = (2f32.ln() + 2.0 + (-2f32).exp().ln_1p()) / 2.0;
        assert!((value - expected).abs() < 1e-6, "{value} != {expected}");
    }

    #[test]
    fn crop_box_fits_inside_image() {
        let settings = VocSettings::default();
        for position in 0..200 {
            let mut rng = item_rng(3, 1, position);
            let crop = draw_crop_box(48, 64, &settings, &mut rng);
            assert!(crop.height >= 1, "{crop:?}");
            assert!(crop.width >= 1, "{crop:?}");
            assert!(crop.top + crop.height <= 48, "{crop:?}");
            assert!(crop.left + crop.width <= 64, "{crop:?}");
        }
    }

    #[test]
    fn difficult_images_are_left_out_of_scores() {
        let mut targets = vec![[Presence::Absent; N_VOC_CLASSES]; 3];
        targets[0][0] = Presence::Present;
        targets[1][0] = Presence::DifficultOnly;
        // Image 1 has the highest score for class 0, but it is left out, so the ranking of
        // the two others is perfect.
        let mut scores = vec![0.0f32; 3 * N_VOC_CLASSES];
        scores[0] = 0.5;
        scores[N_VOC_CLASSES] = 0.9;
        scores[2 * N_VOC_CLASSES] = 0.1;
        let result = score_classes(&scores, &targets);
        let first = &result.classes[0];
        assert_eq!(first.n_positives, 1);
        assert_eq!(first.n_difficult, 1);
        assert_eq!(first.average_precision, Some(1.0));
        assert_eq!(result.classes[1].average_precision, None);
        assert_eq!(result.mean_average_precision, Some(1.0));
    }
}
