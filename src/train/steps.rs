//! The steps of one DeepCluster epoch, one function each, in the order the epoch runs them.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{
    GradientsParams, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig, momentum::MomentumConfig,
};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;
use rand::seq::SliceRandom;

use crate::cluster::{self, KMeansConfig, KMeansResult, PcaConfig, PicConfig, PicResult};
use crate::data::Dataset;
use crate::model::DeepClusterNet;
use crate::preprocess::{Augmentation, Normalization, eval_batch, train_batch};

use super::{Progress, TrainError};

/// Runs the network in evaluation mode over the whole dataset and returns its features,
/// `[n_images, feature_dim]` row-major.
///
/// Batch norm uses its running statistics and dropout is off. A non-finite feature is an error
/// naming the image, because k-means cannot run on it.
pub fn extract_features(
    model: &DeepClusterNet,
    dataset: &Dataset,
    normalization: &Normalization,
    batch_size: usize,
    device: &Device,
    epoch: usize,
    progress: &dyn Progress,
) -> Result<Vec<f32>, TrainError> {
    let model = model.valid();
    let eval_device = device.clone().without_autodiff();
    let feature_dim = model.backbone.feature_dim();
    let mut features = vec![0.0f32; dataset.len() * feature_dim];
    let indices: Vec<usize> = (0..dataset.len()).collect();
    progress.start("extract", dataset.len() as u64);
    for (batch_index, batch) in indices.chunks(batch_size).enumerate() {
        let pixels = eval_batch(dataset, batch, normalization);
        let input = images_tensor(pixels, batch.len(), dataset, &eval_device);
        let output = model.backbone.forward_features(input).into_data();
        let values = output
            .as_slice::<f32>()
            .map_err(|error| TrainError::Backend(format!("{error:?}")))?;
        let start = batch_index * batch_size * feature_dim;
        features[start..start + values.len()].copy_from_slice(values);
        progress.advance(batch.len() as u64);
    }
    progress.finish();
    if let Some(position) = features.iter().position(|v| !v.is_finite()) {
        return Err(TrainError::NonFiniteFeatures {
            epoch,
            image: position / feature_dim,
        });
    }
    Ok(features)
}

/// Projects features `[n_images, feature_dim]` with a PCA fitted on them (whitened when
/// `whiten`), then L2-normalises each row. Returns the reduced features and their dimension,
/// which is smaller than `pca_dim` when there are fewer images or features than that.
pub fn pca_whiten(
    features: &[f32],
    feature_dim: usize,
    pca_dim: usize,
    whiten: bool,
    seed: u64,
) -> Result<(Vec<f32>, usize), TrainError> {
    let config = PcaConfig {
        output_dim: pca_dim,
        whiten,
        max_fit_points: None,
        seed,
    };
    let pca = cluster::Pca::fit(features, feature_dim, &config)?;
    let mut reduced = pca.transform(features);
    let dim = pca.output_dim();
    cluster::l2_normalize_rows(&mut reduced, dim);
    Ok((reduced, dim))
}

/// Clusters the reduced features into `n_clusters` with Lloyd's k-means, splitting empty
/// clusters as faiss does.
pub fn run_kmeans(
    points: &[f32],
    dim: usize,
    n_clusters: usize,
    max_n_iterations: usize,
    seed: u64,
) -> Result<KMeansResult, TrainError> {
    let config = KMeansConfig {
        max_n_iterations,
        seed,
        ..KMeansConfig::new(n_clusters)
    };
    Ok(cluster::kmeans(points, dim, &config)?)
}

/// Clusters the reduced features by power iteration clustering with DeepCluster's settings
/// (5 neighbours, σ = 0.2, α = 0.001, 200 iterations, singletons joined to a neighbour).
pub fn run_pic(points: &[f32], dim: usize) -> Result<PicResult, TrainError> {
    Ok(cluster::pic(points, dim, &PicConfig::default())?)
}

/// An epoch's pseudo-labels and the statistics recorded about them, from either method.
#[derive(Clone, Debug)]
pub struct Clustering {
    /// Cluster id of every image.
    pub assignments: Vec<u32>,
    /// Images per cluster; its length is the number of pseudo-labels.
    pub cluster_sizes: Vec<usize>,
    /// Sum of squared distances of the points to their centroids: k-means's final objective,
    /// or for PIC the same sum around the mean of each cluster.
    pub objective: f64,
    /// Empty k-means clusters refilled by splitting (0 for PIC).
    pub n_splits: usize,
}

impl From<KMeansResult> for Clustering {
    fn from(result: KMeansResult) -> Self {
        Self {
            assignments: result.assignments,
            cluster_sizes: result.cluster_sizes,
            objective: result.objective,
            n_splits: result.n_splits,
        }
    }
}

impl Clustering {
    /// Wraps a PIC result, computing the within-cluster sum of squares of `points`.
    pub fn from_pic(result: PicResult, points: &[f32], dim: usize) -> Self {
        let objective =
            within_cluster_sum_of_squares(points, dim, &result.assignments, result.n_clusters());
        Self {
            assignments: result.assignments,
            cluster_sizes: result.cluster_sizes,
            objective,
            n_splits: 0,
        }
    }
}

/// Sum over points of the squared distance to the mean of their cluster, in `f64`.
fn within_cluster_sum_of_squares(
    points: &[f32],
    dim: usize,
    assignments: &[u32],
    n_clusters: usize,
) -> f64 {
    let mut sums = vec![0.0f64; n_clusters * dim];
    let mut counts = vec![0usize; n_clusters];
    for (row, &cluster) in points.chunks_exact(dim).zip(assignments) {
        let cluster = cluster as usize;
        counts[cluster] += 1;
        let sum = &mut sums[cluster * dim..(cluster + 1) * dim];
        sum.iter_mut()
            .zip(row)
            .for_each(|(s, &v)| *s += f64::from(v));
    }
    let mut total = 0.0;
    for (row, &cluster) in points.chunks_exact(dim).zip(assignments) {
        let cluster = cluster as usize;
        let count = counts[cluster] as f64;
        let sum = &sums[cluster * dim..(cluster + 1) * dim];
        total += row
            .iter()
            .zip(sum)
            .map(|(&v, &s)| (f64::from(v) - s / count).powi(2))
            .sum::<f64>();
    }
    total
}

/// Returns an epoch's order of image indices that draws uniformly over the non-empty clusters.
///
/// Each non-empty cluster gets ⌊N / non_empty⌋ + 1 draws, with replacement only when it has
/// fewer images than that. The draws are shuffled and cut to N, the dataset size.
pub fn sample_uniformly(assignments: &[u32], n_clusters: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_clusters];
    for (image, &cluster) in assignments.iter().enumerate() {
        members[cluster as usize].push(image);
    }
    let n_images = assignments.len();
    let non_empty = members.iter().filter(|m| !m.is_empty()).count().max(1);
    let per_cluster = n_images / non_empty + 1;
    let mut order = Vec::with_capacity(per_cluster * non_empty);
    for cluster_members in members.iter_mut().filter(|m| !m.is_empty()) {
        if cluster_members.len() >= per_cluster {
            let (chosen, _) = cluster_members.partial_shuffle(rng, per_cluster);
            order.extend_from_slice(chosen);
        } else {
            for _ in 0..per_cluster {
                order.push(cluster_members[rng.random_range(0..cluster_members.len())]);
            }
        }
    }
    order.shuffle(rng);
    order.truncate(n_images);
    order
}

/// Replaces the top layer by a freshly initialised `Linear(feature_dim, n_clusters)`, because
/// cluster ids carry no meaning from one epoch to the next.
pub fn reset_top_layer(model: DeepClusterNet, n_clusters: usize) -> DeepClusterNet {
    model.reset_top_layer(n_clusters)
}

/// SGD settings of one run.
#[derive(Clone, Debug)]
pub struct SgdSettings {
    /// Learning rate of both optimisers.
    pub learning_rate: f64,
    /// Momentum of the backbone's optimiser.
    pub momentum: f64,
    /// L2 weight decay of both optimisers.
    pub weight_decay: f64,
}

/// Builds the backbone's optimiser: SGD with momentum (PyTorch's convention, without dampening) and
/// weight decay. Its state carries over from epoch to epoch.
pub fn backbone_optimizer(settings: &SgdSettings) -> ModuleOptimizer {
    // burn's MomentumConfig defaults to a dampening of 0.1; PyTorch and the original
    // DeepCluster use none.
    let momentum = MomentumConfig::new()
        .with_momentum(settings.momentum)
        .with_dampening(0.0);
    SgdConfig::new()
        .with_momentum(Some(momentum))
        .with_weight_decay(weight_decay(settings))
        .init()
}

/// Builds the top layer's optimiser: plain SGD with weight decay and no momentum, made anew at every
/// epoch as the top layer itself is.
pub fn top_layer_optimizer(settings: &SgdSettings) -> ModuleOptimizer {
    SgdConfig::new()
        .with_weight_decay(weight_decay(settings))
        .init()
}

fn weight_decay(settings: &SgdSettings) -> Option<WeightDecayConfig> {
    (settings.weight_decay > 0.0).then(|| WeightDecayConfig::new(settings.weight_decay as f32))
}

/// Inputs of one training epoch besides the model and its optimisers.
pub struct EpochInputs<'a> {
    /// The dataset.
    pub dataset: &'a Dataset,
    /// Cluster id of every image.
    pub pseudo_labels: &'a [u32],
    /// Image indices in the order they are visited.
    pub order: &'a [usize],
    /// Normalisation applied after augmentation.
    pub normalization: &'a Normalization,
    /// Training augmentation.
    pub augmentation: &'a Augmentation,
    /// Images per batch.
    pub batch_size: usize,
    /// Run seed, combined with the epoch to seed augmentation.
    pub seed: u64,
    /// Epoch number, from 1.
    pub epoch: usize,
}

/// Trains the network for one pass over `inputs.order` to predict the pseudo-labels, with
/// cross-entropy. Returns the trained network and the mean loss.
///
/// Stops early with [`TrainError::Interrupted`] when `interrupted` is set, and with
/// [`TrainError::NonFiniteLoss`] on a NaN or infinite loss.
pub fn train_epoch(
    model: DeepClusterNet,
    backbone_optimizer: &mut ModuleOptimizer,
    top_optimizer: &mut ModuleOptimizer,
    settings: &SgdSettings,
    inputs: &EpochInputs<'_>,
    device: &Device,
    progress: &dyn Progress,
    interrupted: &AtomicBool,
) -> Result<(DeepClusterNet, f64), TrainError> {
    let train_device = device.clone().autodiff();
    let loss_function = CrossEntropyLossConfig::new().init(&train_device);
    let mut model = model.train();
    let mut loss_sum = 0.0f64;
    let mut n_batches = 0usize;
    progress.start("train", inputs.order.len() as u64);
    for (batch_index, batch) in inputs.order.chunks(inputs.batch_size).enumerate() {
        if interrupted.load(Ordering::SeqCst) {
            return Err(TrainError::Interrupted);
        }
        let first_position = batch_index * inputs.batch_size;
        let pixels = train_batch(
            inputs.dataset,
            batch,
            first_position,
            inputs.normalization,
            inputs.augmentation,
            inputs.seed,
            inputs.epoch,
        );
        let images = images_tensor(pixels, batch.len(), inputs.dataset, &train_device);
        let targets = targets_tensor(batch, inputs.pseudo_labels, &train_device);
        let loss = loss_function.forward(model.forward(images), targets);
        let loss_value: f32 = loss.clone().into_scalar();
        if !loss_value.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                epoch: inputs.epoch,
                batch: batch_index + 1,
            });
        }

        let mut gradients = loss.backward();
        let backbone_gradients = GradientsParams::from_module(&mut gradients, &model.backbone);
        let top_gradients = GradientsParams::from_module(&mut gradients, &model.top);
        let DeepClusterNet { backbone, top } = model;
        let backbone =
            backbone_optimizer.step(settings.learning_rate, backbone, backbone_gradients);
        let top = top_optimizer.step(settings.learning_rate, top, top_gradients);
        model = DeepClusterNet { backbone, top };

        loss_sum += f64::from(loss_value);
        n_batches += 1;
        progress.advance(batch.len() as u64);
    }
    progress.finish();
    Ok((model, loss_sum / n_batches.max(1) as f64))
}

/// Uploads a batch `[n, channels, height, width]` of normalised pixels to `device`.
pub fn images_tensor(pixels: Vec<f32>, n: usize, dataset: &Dataset, device: &Device) -> Tensor<4> {
    let shape = [n, dataset.channels, dataset.height, dataset.width];
    Tensor::from_data(TensorData::new(pixels, shape), device)
}

fn targets_tensor(batch: &[usize], pseudo_labels: &[u32], device: &Device) -> Tensor<1, Int> {
    let targets: Vec<i64> = batch.iter().map(|&i| i64::from(pseudo_labels[i])).collect();
    Tensor::from_data(TensorData::new(targets, [batch.len()]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn sampler_covers_every_non_empty_cluster_equally() {
        // Cluster 0 has 90 images, cluster 1 has 9, cluster 2 has 1, cluster 3 is empty.
        let mut assignments = vec![0u32; 90];
        assignments.extend(std::iter::repeat_n(1, 9));
        assignments.push(2);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let order = sample_uniformly(&assignments, 4, &mut rng);

        assert_eq!(order.len(), assignments.len());
        let mut counts = [0usize; 4];
        for &image in &order {
            counts[assignments[image] as usize] += 1;
        }
        // 34 draws per cluster before the cut to 100: each cluster keeps about a third.
        for &count in &counts[..3] {
            assert!((25..=40).contains(&count), "{counts:?}");
        }
        assert_eq!(counts[3], 0);
    }

    #[test]
    fn sampler_draws_large_clusters_without_replacement() {
        // 51 draws per cluster: cluster 0 (60 images) is sampled without replacement, cluster 1
        // (40 images) with replacement.
        let mut assignments = vec![0u32; 60];
        assignments.extend(std::iter::repeat_n(1, 40));
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let order = sample_uniformly(&assignments, 2, &mut rng);
        let mut from_large: Vec<usize> = order.iter().copied().filter(|&i| i < 60).collect();
        let drawn = from_large.len();
        from_large.sort_unstable();
        from_large.dedup();
        assert_eq!(from_large.len(), drawn);
    }

    #[test]
    fn sampler_is_deterministic_for_a_seed() {
        let assignments: Vec<u32> = (0..200).map(|i| (i % 7) as u32).collect();
        let first = sample_uniformly(&assignments, 7, &mut ChaCha8Rng::seed_from_u64(3));
        let second = sample_uniformly(&assignments, 7, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(first, second);
    }
}
