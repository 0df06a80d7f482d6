//! Networks trained by DeepCluster.
//!
//! A [`DeepClusterNet`] is a backbone, which maps images `[batch, channels, height, width]` to
//! features `[batch, feature_dim]`, plus a top layer `Linear(feature_dim, n_clusters)` that
//! predicts pseudo-labels. The top layer is a separate field because DeepCluster replaces it at
//! every epoch and trains it with its own optimiser.
//!
//! Adding an architecture means adding one file with a module that has `new` and
//! `forward_features`, and one variant to [`Architecture`] and [`Backbone`].

mod alexnet;
mod head;
mod sobel;

pub use alexnet::AlexNet;
pub use head::ProjectionHead;
pub use sobel::{SOBEL_CHANNELS, apply_sobel};

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Standard deviation of the top layer's initial weights, as in the original DeepCluster.
pub const TOP_LAYER_INIT_STD: f64 = 0.01;

/// The backbone architectures that can be trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// AlexNet with batch norm, five convolutions and two fully connected layers, sized for
    /// 28–32 pixel images.
    Alexnet,
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Architecture::Alexnet => f.write_str("alexnet"),
        }
    }
}

/// Everything needed to rebuild a network with the same shapes: saved beside every checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Backbone architecture.
    pub architecture: Architecture,
    /// Channels of the input images (1 for grayscale, 3 for colour).
    pub in_channels: usize,
    /// Height of the input images in pixels.
    pub height: usize,
    /// Width of the input images in pixels.
    pub width: usize,
    /// Whether the fixed grayscale + Sobel front end is applied before the first convolution.
    pub sobel: bool,
    /// Multiplier on every layer's channel count (1.0 is the reference width).
    pub width_multiplier: f32,
    /// Number of outputs of the top layer: the number of clusters.
    pub n_clusters: usize,
    /// Dropout probability before each fully connected layer of the backbone (AlexNet's 0.5).
    #[serde(default = "default_dropout")]
    pub dropout: f64,
}

fn default_dropout() -> f64 {
    DEFAULT_DROPOUT
}

/// Dropout probability of AlexNet's fully connected layers.
pub const DEFAULT_DROPOUT: f64 = 0.5;

/// Smallest image side the network takes: its three 2×2 poolings need 8 pixels to leave a
/// 1×1 map.
pub const MIN_INPUT_SIDE: usize = 8;
/// Largest image side the network takes. The first fully connected layer has one input per
/// value of the last pooled map, so its size grows with the image area: at 128×128 and width
/// 1 it already contains 268 million weights.
pub const MAX_INPUT_SIDE: usize = 128;

/// Checks that images of `height` × `width` pixels fit the network, and names the sizes that do.
pub fn check_input_size(height: usize, width: usize) -> Result<(), String> {
    let fits = |side: usize| (MIN_INPUT_SIDE..=MAX_INPUT_SIDE).contains(&side);
    if fits(height) && fits(width) {
        Ok(())
    } else {
        Err(format!(
            "images of {height}x{width} pixels do not fit the network, which takes sides of \
             {MIN_INPUT_SIDE} to {MAX_INPUT_SIDE} pixels; resize them with --image-size, e.g. 32x32"
        ))
    }
}

impl ModelConfig {
    /// Channels seen by the first convolution: 2 with the Sobel front end, else `in_channels`.
    pub fn conv_in_channels(&self) -> usize {
        if self.sobel {
            SOBEL_CHANNELS
        } else {
            self.in_channels
        }
    }
}

/// The backbone, one variant per [`Architecture`].
#[derive(Module, Debug)]
pub enum Backbone {
    /// See [`AlexNet`].
    Alexnet(AlexNet),
}

impl Backbone {
    /// Builds a freshly initialised backbone on `device`.
    pub fn new(config: &ModelConfig, device: &Device) -> Self {
        match config.architecture {
            Architecture::Alexnet => Backbone::Alexnet(AlexNet::new(config, device)),
        }
    }

    /// Maps images `[batch, in_channels, height, width]` to features `[batch, feature_dim]`,
    /// taken before the last ReLU.
    pub fn forward_features(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Backbone::Alexnet(net) => net.forward_features(images),
        }
    }

    /// Length of the feature vector returned by [`Self::forward_features`].
    pub fn feature_dim(&self) -> usize {
        match self {
            Backbone::Alexnet(net) => net.feature_dim(),
        }
    }

    /// Names of the layers whose activations can be read by [`Self::forward_layer`].
    pub fn layer_names(&self) -> Vec<String> {
        match self {
            Backbone::Alexnet(net) => net.layer_names(),
        }
    }

    /// Returns the activation of the layer `name` (after its ReLU) for `images`, or `None` when
    /// the backbone has no such layer.
    pub fn forward_layer(&self, images: Tensor<4>, name: &str) -> Option<Tensor<4>> {
        match self {
            Backbone::Alexnet(net) => net.forward_layer(images, name),
        }
    }

    /// Returns the output of the layer `name` before its ReLU, or `None` when the backbone has no
    /// such layer.
    pub fn forward_layer_pre_relu(&self, images: Tensor<4>, name: &str) -> Option<Tensor<4>> {
        match self {
            Backbone::Alexnet(net) => net.forward_layer_pre_relu(images, name),
        }
    }

    /// Weights of the first convolution, `[out_channels, conv_in_channels, kernel, kernel]`
    /// (after the Sobel front end when it is on).
    pub fn first_conv_weight(&self) -> Tensor<4> {
        match self {
            Backbone::Alexnet(net) => net.first_conv_weight(),
        }
    }

    /// Freezes every convolution and its normalisation, leaving the fully connected layers
    /// trainable (see [`AlexNet::freeze_convolutions`]).
    pub fn freeze_convolutions(self) -> Self {
        match self {
            Backbone::Alexnet(net) => Backbone::Alexnet(net.freeze_convolutions()),
        }
    }
}

/// Backbone plus top layer.
#[derive(Module, Debug)]
pub struct DeepClusterNet {
    /// Feature extractor.
    pub backbone: Backbone,
    /// Classifier over cluster ids; replaced at every epoch by [`Self::reset_top_layer`].
    pub top: Linear,
}

impl DeepClusterNet {
    /// Builds a freshly initialised network on `device`.
    pub fn new(config: &ModelConfig, device: &Device) -> Self {
        let backbone = Backbone::new(config, device);
        let top = new_top_layer(backbone.feature_dim(), config.n_clusters, device);
        Self { backbone, top }
    }

    /// Returns the cluster logits `[batch, n_clusters]` for images
    /// `[batch, in_channels, height, width]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let features = self.backbone.forward_features(images);
        self.top.forward(relu(features))
    }

    /// Replaces the top layer by a new `Linear(feature_dim, n_clusters)` drawn from
    /// N(0, 0.01²) with zero bias, because cluster ids carry no meaning from one epoch to the next.
    pub fn reset_top_layer(self, n_clusters: usize) -> Self {
        let device = self.top.weight.val().device();
        let top = new_top_layer(self.backbone.feature_dim(), n_clusters, &device);
        Self { top, ..self }
    }
}

impl DeepClusterNet {
    /// Replaces the top layer by `Linear(feature_dim, n_clusters)` with the given weight,
    /// `[feature_dim, n_clusters]` row-major (burn's layout), and bias `[n_clusters]`.
    ///
    /// # Panics
    /// Panics if the lengths do not match `feature_dim × n_clusters` and `n_clusters`.
    pub fn with_top_layer(self, weight: Vec<f32>, bias: Vec<f32>, n_clusters: usize) -> Self {
        let device = self.top.weight.val().device();
        let feature_dim = self.backbone.feature_dim();
        let mut top = LinearConfig::new(feature_dim, n_clusters).init(&device);
        let weight = Tensor::from_data(TensorData::new(weight, [feature_dim, n_clusters]), &device);
        top.weight = Param::from_tensor(weight);
        let bias = Tensor::from_data(TensorData::new(bias, [n_clusters]), &device);
        top.bias = Some(Param::from_tensor(bias));
        Self { top, ..self }
    }
}

fn new_top_layer(feature_dim: usize, n_clusters: usize, device: &Device) -> Linear {
    let mut top = LinearConfig::new(feature_dim, n_clusters).init(device);
    let weight_shape = top.weight.val().shape();
    let weight = Tensor::random(
        weight_shape,
        Distribution::Normal(0.0, TOP_LAYER_INIT_STD),
        device,
    );
    top.weight = Param::from_tensor(weight);
    top.bias = Some(Param::from_tensor(Tensor::zeros([n_clusters], device)));
    top
}
