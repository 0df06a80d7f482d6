//! DeepCluster (Caron et al., "Deep Clustering for Unsupervised Learning of Visual Features",
//! ECCV 2018): unsupervised training of a convolutional network by alternating k-means on its
//! features with training it to predict the cluster ids.
//!
//! - [`data`]: dataset readers (IDX, CIFAR-10/100 binary, folders of images) and the embedded
//!   Fashion-MNIST test split.
//! - [`preprocess`]: normalisation and training augmentation.
//! - [`model`]: the networks.
//! - [`cluster`]: PCA, k-means and clustering metrics.
//! - [`train`]: the training loop, run folders and checkpoints.
//! - [`eval`]: judging a network's features: k-means and linear probes against labels, and
//!   Pascal VOC 2007 classification.
//! - [`device`]: choosing a burn device by name.
//! - [`viz`]: pictures of filters, activations, clusters and training curves.
//! - [`report`]: a run's pictures gathered in one HTML page.
//! - [`plot`]: the embedded font, charts and PNG output shared by the pictures.

pub mod cluster;
pub mod data;
pub mod device;
pub mod eval;
pub mod model;
pub mod plot;
pub mod preprocess;
pub mod report;
pub mod train;
pub mod viz;
