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
/// `[n_images, feature_dim]` row-major, with `feature_dim` returned beside them.
///
/// The features are those of the last fully connected layer, or the flattened activations of
/// the convolution `layer` (after its ReLU) when one is named. Batch norm uses its running
/// statistics and dropout is off. A non-finite feature is an error naming the image, because
/// k-means cannot run on it.
#[allow(clippy::too_many_arguments)]
pub fn extract_features(
    model: &DeepClusterNet,
    dataset: &Dataset,
    normalization: &Normalization,
    layer: Option<&str>,
    batch_size: usize,
    device: &Device,
    epoch: usize,
    progress: &dyn Progress,
) -> Result<(Vec<f32>, usize), TrainError> {
    let model = model.valid();
    let eval_device = device.clone().without_autodiff();
    let mut features = Vec::new();
    let mut feature_dim = 0;
    let indices: Vec<usize> = (0..dataset.len()).collect();
    progress.start("extract", dataset.len() as u64);
    for batch in indices.chunks(batch_size) {
        let pixels = eval_batch(dataset, batch, normalization);
        let input = images_tensor(pixels, batch.len(), dataset, &eval_device);
        let output = match layer {
            None => model.backbone.forward_features(input),
            Some(name) => {
                let activation = model.backbone.forward_layer(input, name).ok_or_else(|| {
                    TrainError::UnknownLayer {
                        layer: name.to_owned(),
                        valid: model.backbone.layer_names().join(", "),
                    }
                })?;
                activation.flatten::<2>(1, 3)
            }
        };
        feature_dim = output.dims()[1];
        let output = output.into_data();
        let values = output
            .as_slice::<f32>()
            .map_err(|error| TrainError::Backend(format!("{error:?}")))?;
        if features.is_empty() {
            features.reserve_exact(dataset.len() * feature_dim);
        }
        features.extend_from_slice(values);
        progress.advance(batch.len() as u64);
    }
    progress.finish();
    if let Some(position) = features.iter().position(|v| !v.is_finite()) {
        return Err(TrainError::NonFiniteFeatures {
            epoch,
            image: position / feature_dim.max(1),
        });
    }
    Ok((features, feature_dim))
}

/// Features after PCA and L2 normalisation, with what produced them.
pub struct Reduced {
    /// `[n_images, dim]`, each row of unit length.
    pub points: Vec<f32>,
    /// Dimension after PCA, smaller than requested when there are fewer images or features.
    pub dim: usize,
    /// The fitted PCA.
    pub pca: cluster::Pca,
    /// Mean length of the projected rows before normalisation.
    pub mean_norm: f32,
}

/// Projects features `[n_images, feature_dim]` with a PCA fitted on them (whitened when
/// `whiten`), then L2-normalises each row.
pub fn pca_whiten(
    features: &[f32],
    feature_dim: usize,
    pca_dim: usize,
    whiten: bool,
    seed: u64,
) -> Result<Reduced, TrainError> {
    let config = PcaConfig {
        output_dim: pca_dim,
        whiten,
        max_fit_points: None,
        seed,
    };
    let pca = cluster::Pca::fit(features, feature_dim, &config)?;
    let mut points = pca.transform(features);
    let dim = pca.output_dim();
    let n_rows = (points.len() / dim.max(1)).max(1);
    let norm_sum: f64 = points
        .chunks_exact(dim)
        .map(|row| f64::from(row.iter().map(|v| v * v).sum::<f32>().sqrt()))
        .sum();
    cluster::l2_normalize_rows(&mut points, dim);
    Ok(Reduced {
        points,
        dim,
        pca,
        mean_norm: (norm_sum / n_rows as f64) as f32,
    })
}

/// Temperature of a top layer initialised from the centroids: its logits are cosine
/// similarities divided by this.
pub const CENTROID_TOP_TEMPERATURE: f32 = 0.1;

/// Returns the weight `[feature_dim, n_clusters]` and bias `[n_clusters]` of a top layer whose
/// logits approximate the cosine similarity between an image's reduced feature and each centroid,
/// divided by [`CENTROID_TOP_TEMPERATURE`], so the layer starts by predicting the k-means
/// assignment.
///
/// The layer is linear, so it divides by the mean length of the projected rows instead of each
/// row's own length. It also reads the features after the ReLU, while k-means saw them before
/// it: on those inputs the whitened projection can give far larger logits, which made training
/// diverge. So the weight and bias are finally scaled to give the logits, on up to
/// [`CALIBRATION_ROWS`] rows of `features` (`[n_images, feature_dim]`, before the ReLU) passed
/// through a ReLU, the standard deviation of the target cosine similarities divided by the
/// temperature.
pub fn centroid_top_layer(
    reduced: &Reduced,
    centroids: &[f32],
    features: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (mut weight, mut bias) = project_centroids(reduced, centroids);
    let scale = calibration_scale(reduced, centroids, features, &weight, &bias);
    weight.iter_mut().for_each(|w| *w *= scale);
    bias.iter_mut().for_each(|b| *b *= scale);
    (weight, bias)
}

/// Rows of features used to scale a centroid-initialised top layer.
pub const CALIBRATION_ROWS: usize = 2048;

/// Returns the factor that gives the top layer's logits on ReLU'd features the spread of the
/// cosine similarities they stand for; 1 when either spread is zero.
fn calibration_scale(
    reduced: &Reduced,
    centroids: &[f32],
    features: &[f32],
    weight: &[f32],
    bias: &[f32],
) -> f32 {
    let dim = reduced.dim;
    let feature_dim = reduced.pca.input_dim();
    let n_clusters = bias.len();
    let rows = (features.len() / feature_dim).min(CALIBRATION_ROWS);
    let mut logits = Vec::with_capacity(rows * n_clusters);
    let mut targets = Vec::with_capacity(rows * n_clusters);
    for row in 0..rows {
        let x = &features[row * feature_dim..(row + 1) * feature_dim];
        let z = &reduced.points[row * dim..(row + 1) * dim];
        for (cluster, centroid) in centroids.chunks_exact(dim).enumerate() {
            let logit: f32 = bias[cluster]
                + x.iter()
                    .enumerate()
                    .map(|(f, v)| v.max(0.0) * weight[f * n_clusters + cluster])
                    .sum::<f32>();
            logits.push(f64::from(logit));
            let cosine: f32 = centroid.iter().zip(z).map(|(c, v)| c * v).sum();
            targets.push(f64::from(cosine / CENTROID_TOP_TEMPERATURE));
        }
    }
    let (logit_std, target_std) = (standard_deviation(&logits), standard_deviation(&targets));
    if logit_std > 0.0 && target_std > 0.0 && logit_std.is_finite() {
        (target_std / logit_std) as f32
    } else {
        1.0
    }
}

fn standard_deviation(values: &[f64]) -> f64 {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// Returns the weight and bias that map a feature `x` to `c · P(x − μ) / (mean_norm · τ)` for
/// every centroid `c`, where `P` is the PCA projection and `μ` its mean.
fn project_centroids(reduced: &Reduced, centroids: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let dim = reduced.dim;
    let feature_dim = reduced.pca.input_dim();
    let n_clusters = centroids.len() / dim;
    let components = reduced.pca.components();
    let scale = 1.0 / (reduced.mean_norm.max(f32::EPSILON) * CENTROID_TOP_TEMPERATURE);
    let mut weight = vec![0.0f32; feature_dim * n_clusters];
    for (cluster, centroid) in centroids.chunks_exact(dim).enumerate() {
        for (component, &coefficient) in components.chunks_exact(feature_dim).zip(centroid) {
            for (feature, &value) in component.iter().enumerate() {
                weight[feature * n_clusters + cluster] += coefficient * value * scale;
            }
        }
    }
    let mean = reduced.pca.mean();
    let bias = (0..n_clusters)
        .map(|cluster| {
            -mean
                .iter()
                .enumerate()
                .map(|(feature, m)| m * weight[feature * n_clusters + cluster])
                .sum::<f32>()
        })
        .collect();
    (weight, bias)
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
    /// k-means centroids `[n_clusters, dim]` (`None` for PIC).
    pub centroids: Option<Vec<f32>>,
}

impl From<KMeansResult> for Clustering {
    fn from(result: KMeansResult) -> Self {
        Self {
            assignments: result.assignments,
            cluster_sizes: result.cluster_sizes,
            objective: result.objective,
            n_splits: result.n_splits,
            centroids: Some(result.centroids),
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
            centroids: None,
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

/// Returns an epoch's order of image indices: every image once, shuffled.
pub fn shuffle_all(n_images: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n_images).collect();
    order.shuffle(rng);
    order
}

/// Returns the loss weight of each cluster: 1/√size, scaled so that the weights average 1
/// over the images (so the learning rate keeps its meaning). An empty cluster, which labels no
/// image, gets the weight of a cluster of one: burn's weighted cross-entropy needs every weight
/// positive.
pub fn inverse_sqrt_weights(cluster_sizes: &[usize]) -> Vec<f32> {
    let raw: Vec<f64> = cluster_sizes
        .iter()
        .map(|&size| 1.0 / (size.max(1) as f64).sqrt())
        .collect();
    let n_images: usize = cluster_sizes.iter().sum();
    let weighted: f64 = raw
        .iter()
        .zip(cluster_sizes)
        .map(|(w, &n)| w * n as f64)
        .sum();
    let scale = if weighted > 0.0 {
        n_images as f64 / weighted
    } else {
        1.0
    };
    raw.iter().map(|w| (w * scale) as f32).collect()
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
    /// Loss weight of each cluster; `None` weighs every image the same.
    pub class_weights: Option<&'a [f32]>,
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
    let loss_function = CrossEntropyLossConfig::new()
        .with_weights(inputs.class_weights.map(<[f32]>::to_vec))
        .init(&train_device);
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

    #[test]
    fn inverse_sqrt_weights_average_one_per_image() {
        let sizes = [100usize, 25, 0, 4];
        let weights = inverse_sqrt_weights(&sizes);
        assert!((weights[2] / weights[0] - 10.0).abs() < 1e-4, "{weights:?}");
        // Relative weights follow 1/√size.
        assert!((weights[1] / weights[0] - 2.0).abs() < 1e-5, "{weights:?}");
        assert!((weights[3] / weights[0] - 5.0).abs() < 1e-5, "{weights:?}");
        let total: f32 = weights.iter().zip(&sizes).map(|(w, &n)| w * n as f32).sum();
        assert!((total - 129.0).abs() < 1e-3, "{total}");
    }

    #[test]
    fn shuffle_visits_every_image_once() {
        let mut order = shuffle_all(50, &mut ChaCha8Rng::seed_from_u64(4));
        assert_ne!(order, (0..50).collect::<Vec<_>>());
        order.sort_unstable();
        assert_eq!(order, (0..50).collect::<Vec<_>>());
    }

    /// Returns random features `[n, feature_dim]`, their whitened PCA to 4 dimensions, and `k`
    /// random centroids in that space.
    fn random_clustering(
        n: usize,
        feature_dim: usize,
        k: usize,
        seed: u64,
    ) -> (Vec<f32>, Reduced, Vec<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let features: Vec<f32> = (0..n * feature_dim)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let reduced = pca_whiten(&features, feature_dim, 4, true, 0).unwrap();
        let centroids: Vec<f32> = (0..k * reduced.dim)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        (features, reduced, centroids)
    }

    #[test]
    fn centroid_projection_scores_the_projected_features() {
        let (feature_dim, k) = (8, 3);
        let (features, reduced, centroids) = random_clustering(60, feature_dim, k, 5);
        let (weight, bias) = project_centroids(&reduced, &centroids);
        let projected = reduced.pca.transform(&features);
        let scale = reduced.mean_norm * CENTROID_TOP_TEMPERATURE;
        for (row, z) in features
            .chunks_exact(feature_dim)
            .zip(projected.chunks_exact(reduced.dim))
        {
            for (cluster, centroid) in centroids.chunks_exact(reduced.dim).enumerate() {
                let logit: f32 = bias[cluster]
                    + row
                        .iter()
                        .enumerate()
                        .map(|(f, x)| x * weight[f * k + cluster])
                        .sum::<f32>();
                let expected: f32 = centroid.iter().zip(z).map(|(c, v)| c * v).sum();
                assert!(
                    (logit * scale - expected).abs() < 1e-3,
                    "{logit} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn centroid_top_layer_matches_target_spread() {
        let (features, reduced, centroids) = random_clustering(200, 8, 4, 6);
        let (weight, bias) = centroid_top_layer(&reduced, &centroids, &features);
        let scale = calibration_scale(&reduced, &centroids, &features, &weight, &bias);
        assert!((scale - 1.0).abs() < 1e-3, "{scale}");
    }
}
