//! The fixed front end of the original DeepCluster: grayscale, then Sobel x and y filters.
//!
//! The filters are constants, not parameters, so they are never trained and never saved.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};

/// Channels produced by the Sobel front end: the x and y gradients.
pub const SOBEL_CHANNELS: usize = 2;

/// Converts `images` `[batch, channels, height, width]` to grayscale (the channel mean, a 1×1
/// convolution with weights 1/channels) and returns their Sobel x and y responses
/// `[batch, 2, height, width]`, zero-padded so the spatial size is kept.
pub fn apply_sobel(images: Tensor<4>) -> Tensor<4> {
    let device = images.device();
    let [_, channels, _, _] = images.dims();
    let gray = if channels == 1 {
        images
    } else {
        images.mean_dim(1)
    };

    #[rustfmt::skip]
    let kernels = [
        1.0f32, 0.0, -1.0,
        2.0, 0.0, -2.0,
        1.0, 0.0, -1.0,

        1.0, 2.0, 1.0,
        0.0, 0.0, 0.0,
        -1.0, -2.0, -1.0,
    ];
    let weight = Tensor::<4>::from_data(TensorData::new(kernels.to_vec(), [2, 1, 3, 3]), &device);
    conv2d(
        gray,
        weight,
        None,
        ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
    )
}
