//! AlexNet with batch norm, sized for small (28–32 pixel) images.
//!
//! The layout follows the network of the original DeepCluster: five convolutions, each followed
//! by batch norm and ReLU, with 2×2 max pooling after the first, second and fifth, then two fully
//! connected layers with dropout. Kernel sizes and strides are reduced so that 28 or 32 pixel
//! inputs keep a 3×3 or 4×4 map after the last pooling.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::{ModelConfig, apply_sobel};

/// Output channels of the five convolutions at width multiplier 1.0 (AlexNet's 64, 192, 384,
/// 256, 256).
const CONV_CHANNELS: [usize; 5] = [64, 192, 384, 256, 256];
/// Kernel sizes of the five convolutions.
const KERNEL_SIZES: [usize; 5] = [5, 5, 3, 3, 3];
/// Whether a 2×2 max pooling follows each convolution.
const POOL_AFTER: [bool; 5] = [true, true, false, false, true];
/// Width of the two fully connected layers at width multiplier 1.0. AlexNet uses 4096 for
/// 224 pixel inputs, whose last feature map has 36 positions instead of 9–16 here.
const FC_WIDTH: usize = 2048;

/// One convolution, its batch norm and an optional max pooling.
#[derive(Module, Debug)]
pub struct ConvBlock {
    conv: Conv2d,
    norm: BatchNorm,
    pool: Option<MaxPool2d>,
}

impl ConvBlock {
    fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        pool: bool,
        device: &Device,
    ) -> Self {
        let conv = Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
            .with_padding(PaddingConfig2d::Explicit(
                kernel / 2,
                kernel / 2,
                kernel / 2,
                kernel / 2,
            ))
            .init(device);
        let norm = BatchNormConfig::new(out_channels).init(device);
        let pool = pool.then(|| MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init());
        Self { conv, norm, pool }
    }

    /// Returns the activation after ReLU, before pooling.
    fn forward_activation(&self, input: Tensor<4>) -> Tensor<4> {
        relu(self.forward_pre_relu(input))
    }

    fn forward_pre_relu(&self, input: Tensor<4>) -> Tensor<4> {
        self.norm.forward(self.conv.forward(input))
    }

    fn forward_pooled(&self, activation: Tensor<4>) -> Tensor<4> {
        match &self.pool {
            Some(pool) => pool.forward(activation),
            None => activation,
        }
    }
}

/// AlexNet with batch norm; see the module documentation.
#[derive(Module, Debug)]
pub struct AlexNet {
    blocks: Vec<ConvBlock>,
    dropout: Dropout,
    fc6: Linear,
    fc7: Linear,
    sobel: bool,
}

impl AlexNet {
    /// Builds a freshly initialised network for the input shape and width in `config`.
    pub fn new(config: &ModelConfig, device: &Device) -> Self {
        let mut blocks = Vec::with_capacity(CONV_CHANNELS.len());
        let mut in_channels = config.conv_in_channels();
        let (mut height, mut width) = (config.height, config.width);
        for layer in 0..CONV_CHANNELS.len() {
            let out_channels = scaled(CONV_CHANNELS[layer], config.width_multiplier);
            let pool = POOL_AFTER[layer];
            blocks.push(ConvBlock::new(
                in_channels,
                out_channels,
                KERNEL_SIZES[layer],
                pool,
                device,
            ));
            if pool {
                height /= 2;
                width /= 2;
            }
            in_channels = out_channels;
        }
        let flat_dim = in_channels * height * width;
        let fc_width = scaled(FC_WIDTH, config.width_multiplier);
        Self {
            blocks,
            dropout: DropoutConfig::new(config.dropout).init(),
            fc6: LinearConfig::new(flat_dim, fc_width).init(device),
            fc7: LinearConfig::new(fc_width, fc_width).init(device),
            sobel: config.sobel,
        }
    }

    /// Returns the fc7 output before its ReLU, `[batch, feature_dim]`.
    pub fn forward_features(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = self.prepare_input(images);
        for block in &self.blocks {
            x = block.forward_pooled(block.forward_activation(x));
        }
        let x: Tensor<2> = x.flatten(1, 3);
        let x = relu(self.fc6.forward(self.dropout.forward(x)));
        self.fc7.forward(self.dropout.forward(x))
    }

    /// Length of the feature vector: the width of fc7.
    pub fn feature_dim(&self) -> usize {
        self.fc7.weight.val().dims()[1]
    }

    /// `conv1` to `conv5`.
    pub fn layer_names(&self) -> Vec<String> {
        (1..=self.blocks.len())
            .map(|i| format!("conv{i}"))
            .collect()
    }

    /// Returns the activation after the ReLU of convolution `name` (`conv1` to `conv5`).
    pub fn forward_layer(&self, images: Tensor<4>, name: &str) -> Option<Tensor<4>> {
        self.forward_layer_pre_relu(images, name).map(relu)
    }

    /// Returns the batch-normalised output of convolution `name` before its ReLU.
    pub fn forward_layer_pre_relu(&self, images: Tensor<4>, name: &str) -> Option<Tensor<4>> {
        let index: usize = name.strip_prefix("conv")?.parse().ok()?;
        if index == 0 || index > self.blocks.len() {
            return None;
        }
        let mut x = self.prepare_input(images);
        for block in &self.blocks[..index - 1] {
            x = block.forward_pooled(block.forward_activation(x));
        }
        Some(self.blocks[index - 1].forward_pre_relu(x))
    }

    /// Weights of the first convolution, `[out_channels, conv_in_channels, kernel, kernel]`.
    pub fn first_conv_weight(&self) -> Tensor<4> {
        self.blocks[0].conv.weight.val()
    }

    /// Freezes the convolutions and their batch norms: their parameters take no gradient and
    /// batch norm normalises with its running statistics, in training mode too. The fully
    /// connected layers and dropout are unchanged.
    pub fn freeze_convolutions(self) -> Self {
        Self {
            blocks: self.blocks.freeze(),
            ..self
        }
    }

    fn prepare_input(&self, images: Tensor<4>) -> Tensor<4> {
        if self.sobel {
            apply_sobel(images)
        } else {
            images
        }
    }
}

fn scaled(channels: usize, multiplier: f32) -> usize {
    ((channels as f32 * multiplier).round() as usize).max(1)
}
