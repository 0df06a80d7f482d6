//! The projection head of DeepCluster-v2.
//!
//! The head maps the backbone's features to unit-length embeddings, which the training loss
//! compares with the cluster prototypes by dot product. It is the head that DeepCluster-v2
//! (Caron et al., NeurIPS 2020) shares with SwAV: linear, batch norm, ReLU, linear, then L2
//! normalisation.

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// Largest hidden width of the head. A backbone with fewer features gets a hidden layer as wide
/// as its features, so the head never widens the representation.
pub const MAX_HIDDEN_DIM: usize = 512;

/// Floor of an embedding's norm in the L2 normalisation (PyTorch's `F.normalize` default), so a
/// zero vector stays zero instead of becoming NaN.
pub const NORM_EPSILON: f32 = 1e-12;

/// Linear → batch norm → ReLU → linear → L2 normalisation.
#[derive(Module, Debug)]
pub struct ProjectionHead {
    hidden: Linear,
    norm: BatchNorm,
    output: Linear,
}

impl ProjectionHead {
    /// Builds a freshly initialised head from `feature_dim` inputs through `hidden_dim` units to
    /// `embedding_dim` outputs.
    pub fn new(
        feature_dim: usize,
        hidden_dim: usize,
        embedding_dim: usize,
        device: &Device,
    ) -> Self {
        Self {
            hidden: LinearConfig::new(feature_dim, hidden_dim).init(device),
            norm: BatchNormConfig::new(hidden_dim).init(device),
            output: LinearConfig::new(hidden_dim, embedding_dim).init(device),
        }
    }

    /// Returns the hidden width for a backbone of `feature_dim` features: [`MAX_HIDDEN_DIM`], or
    /// `feature_dim` when the backbone is narrower than that.
    pub fn hidden_dim_for(feature_dim: usize) -> usize {
        feature_dim.min(MAX_HIDDEN_DIM)
    }

    /// Maps backbone features `[batch, feature_dim]` (fc7 before its ReLU, as
    /// [`Backbone::forward_features`](super::Backbone::forward_features) returns them) to
    /// unit-length embeddings `[batch, embedding_dim]`.
    ///
    /// The ReLU the backbone leaves off is applied first, as v1's top layer does.
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let x = self.hidden.forward(relu(features));
        let x = relu(self.norm.forward(x));
        l2_normalize(self.output.forward(x))
    }

    /// Length of the input features.
    pub fn feature_dim(&self) -> usize {
        self.hidden.weight.val().dims()[0]
    }

    /// Width of the hidden layer.
    pub fn hidden_dim(&self) -> usize {
        self.hidden.weight.val().dims()[1]
    }

    /// Length of the embeddings.
    pub fn embedding_dim(&self) -> usize {
        self.output.weight.val().dims()[1]
    }
}

/// Divides each row of `x` by its L2 norm, floored at [`NORM_EPSILON`].
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norms = x.clone().square().sum_dim(1).sqrt().clamp_min(NORM_EPSILON);
    x / norms
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn embeddings_have_unit_norm() {
        let device = Device::flex();
        device.seed(3);
        let head = ProjectionHead::new(24, 16, 8, &device);
        let features = Tensor::<2>::random(
            [5, 24],
            burn::tensor::Distribution::Normal(0.0, 3.0),
            &device,
        );
        let embeddings = head.forward(features);
        assert_eq!(embeddings.dims(), [5, 8]);
        let values = embeddings.into_data().try_to_vec::<f32>().unwrap();
        for row in values.chunks_exact(8) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        }
    }

    #[test]
    fn zero_row_stays_zero() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 0.0, 3.0, 4.0], [2, 2]),
            &device,
        );
        let values = l2_normalize(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(values, vec![0.0, 0.0, 0.6, 0.8]);
    }
}
