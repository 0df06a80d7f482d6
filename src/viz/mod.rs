//! Pictures of what a network learned and of how a run went, each written as a PNG file.
//!
//! - [`filters`]: the first convolution's weights.
//! - [`responses`]: every feature map of one layer for one image.
//! - [`top_images`]: the dataset images that excite chosen filters most.
//! - [`ascent`]: images synthesised by gradient ascent to excite one filter.
//! - [`data`]: raw images beside their preprocessed views.
//! - [`clusters`]: sample images per cluster and the histogram of cluster sizes.
//! - [`curves`]: per-epoch curves from `metrics.jsonl`.
//!
//! Every function returns an image; only the command-line tool and [`crate::report`] write files.

pub mod ascent;
pub mod charts;
pub mod clusters;
pub mod curves;
pub mod data;
pub mod filters;
pub mod grid;
pub mod responses;
pub mod top_images;

pub use crate::plot::save_png;

use std::path::PathBuf;

use burn::tensor::Tensor;

use crate::model::Backbone;
use crate::plot::PlotError;
use crate::train::TrainError;

/// Why a picture could not be made.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    /// An unknown layer name.
    #[error("unknown layer `{name}`; valid layers: {valid}")]
    UnknownLayer {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// A filter index past the layer's channels.
    #[error("invalid filter {filter} for layer {layer}: valid filters are 0 to {}", n_filters - 1)]
    FilterOutOfRange {
        /// The layer.
        layer: String,
        /// The index given.
        filter: usize,
        /// Channels of the layer.
        n_filters: usize,
    },
    /// An image index past the dataset's end.
    #[error("invalid image index {index}: the dataset has {n_images} images (0 to {})", n_images.saturating_sub(1))]
    ImageOutOfRange {
        /// The index given.
        index: usize,
        /// Images in the dataset.
        n_images: usize,
    },
    /// An image file that cannot be read or decoded.
    #[error("cannot read the image `{path}`: {message}")]
    ImageFile {
        /// The file.
        path: PathBuf,
        /// The decoder's or file system's message.
        message: String,
    },
    /// An assignment's length differs from the dataset's.
    #[error(
        "the assignment has {n_assigned} entries but the dataset has {n_images} images; pass the dataset the run was trained on"
    )]
    AssignmentLength {
        /// Entries of the assignment.
        n_assigned: usize,
        /// Images in the dataset.
        n_images: usize,
    },
    /// A metrics file without any record.
    #[error("the run folder `{path}` has no epoch in metrics.jsonl yet")]
    NoRecords {
        /// The run folder.
        path: PathBuf,
    },
    /// A run folder, metrics or assignment file that cannot be read.
    #[error(transparent)]
    Run(#[from] TrainError),
    /// Drawing or writing failed.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// The backend returned something other than `f32` values.
    #[error("backend error: {0}")]
    Backend(String),
}

impl VizError {
    /// Whether the error comes from the user's input (exit code 2) rather than a failure.
    pub fn is_bad_input(&self) -> bool {
        match self {
            VizError::Run(error) => error.is_bad_input(),
            VizError::Plot(_) | VizError::Backend(_) => false,
            _ => true,
        }
    }
}

/// Checks that `layer` is a convolution of `backbone` and returns its number of channels.
pub fn layer_channels(
    backbone: &Backbone,
    layer: &str,
    height: usize,
    width: usize,
    channels: usize,
) -> Result<usize, VizError> {
    let device = backbone.first_conv_weight().device();
    let probe = Tensor::<4>::zeros([1, channels, height, width], &device);
    let output = backbone
        .forward_layer(probe, layer)
        .ok_or_else(|| VizError::UnknownLayer {
            name: layer.to_owned(),
            valid: backbone.layer_names().join(", "),
        })?;
    Ok(output.dims()[1])
}

/// Checks every index of `filters` against the `n_filters` channels of `layer`.
pub fn check_filters(layer: &str, filters: &[usize], n_filters: usize) -> Result<(), VizError> {
    match filters.iter().find(|&&filter| filter >= n_filters) {
        Some(&filter) => Err(VizError::FilterOutOfRange {
            layer: layer.to_owned(),
            filter,
            n_filters,
        }),
        None => Ok(()),
    }
}

/// Copies a tensor's values to a vector.
pub(crate) fn tensor_values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, VizError> {
    tensor
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|error| VizError::Backend(format!("{error:?}")))
}
