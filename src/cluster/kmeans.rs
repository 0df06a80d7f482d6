//! Lloyd's k-means in the style of faiss's `Clustering`: exact assignment by screened
//! matrix products (`assign.rs`), per-cluster mean update, and splitting of empty clusters.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::assign::{AssignmentKernel, PreparedCentroids, assign_into};
use super::check_points;
use super::error::ClusterError;
use super::init::initialise;
use super::pca::l2_normalize_rows;
use super::update::ClusterSums;

/// Default number of Lloyd iterations, as `niter` in faiss's `ClusteringParameters`
/// (faiss 1.x). DeepCluster keeps it.
pub const FAISS_DEFAULT_MAX_ITERATIONS: usize = 20;

/// Below this many points per centroid [`kmeans`] logs a warning, as faiss's
/// `ClusteringParameters::min_points_per_centroid` does (faiss 1.x).
pub const FAISS_MIN_POINTS_PER_CENTROID: usize = 39;

/// Relative perturbation applied when an empty cluster takes over half of a donor cluster:
/// coordinates are scaled by `1 ± SPLIT_PERTURBATION`, with opposite signs for the two
/// centroids and alternating signs across coordinates (faiss's `Clustering.cpp` uses the same `EPS`).
pub const SPLIT_PERTURBATION: f32 = 1.0 / 1024.0;

/// Initialisation method, used when [`KMeansConfig::initial_centroids`] is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Init {
    /// `n_clusters` distinct points drawn uniformly, as faiss and DeepCluster do.
    #[default]
    RandomPoints,
    /// k-means++ (Arthur and Vassilvitskii, 2007): each next centroid is a point drawn with
    /// probability proportional to its squared distance to the nearest chosen centroid.
    /// Distances are updated by blocked assignment steps after batches of new centroids
    /// (see `init.rs`), which costs one to two Lloyd iterations in all.
    KMeansPlusPlus,
}

/// Settings for [`kmeans`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansConfig {
    /// Number of clusters `k`, at least 1 and at most the number of points.
    pub n_clusters: usize,
    /// Number of Lloyd iterations (assignment and update), at least 1. There is no early
    /// stop, as in faiss. Default [`FAISS_DEFAULT_MAX_ITERATIONS`].
    pub max_n_iterations: usize,
    /// Number of independent runs, at least 1. The run with the lowest final objective is
    /// returned. Default 1.
    pub n_redo: usize,
    /// Initialisation used when `initial_centroids` is `None`. Default
    /// [`Init::RandomPoints`].
    pub init: Init,
    /// Seed for initialisation, subsampling and empty-cluster splitting. Default 0.
    pub seed: u64,
    /// Train on at most `n_clusters * max_points_per_centroid` random points (faiss uses
    /// 256). `None`, the default and DeepCluster's choice, trains on all points. The final
    /// assignments always cover all points.
    pub max_points_per_centroid: Option<usize>,
    /// Starting centroids of shape `[n_clusters, dim]`, used by every run. Overrides `init`.
    pub initial_centroids: Option<Vec<f32>>,
    /// Rescales every centroid to unit length after initialisation and after each update and
    /// split: spherical k-means. On unit-length points the nearest unit-length centroid is the
    /// one of largest dot product, so points go to the centroid of highest cosine similarity
    /// and the objective is `Σ (2 − 2 cos)`. Default `false`.
    #[serde(default)]
    pub spherical: bool,
    /// Screening in the assignment step. Every kernel gives the same result. Default
    /// [`AssignmentKernel::Auto`].
    #[serde(default)]
    pub assignment_kernel: AssignmentKernel,
}

impl KMeansConfig {
    /// Creates a configuration for `n_clusters` clusters with all other fields at their
    /// defaults.
    pub fn new(n_clusters: usize) -> Self {
        Self {
            n_clusters,
            max_n_iterations: FAISS_DEFAULT_MAX_ITERATIONS,
            n_redo: 1,
            init: Init::RandomPoints,
            seed: 0,
            max_points_per_centroid: None,
            initial_centroids: None,
            spherical: false,
            assignment_kernel: AssignmentKernel::Auto,
        }
    }

    /// Checks the settings that do not depend on the data: `n_clusters`,
    /// `max_n_iterations` and `n_redo` at least 1, `max_points_per_centroid` not `Some(0)`,
    /// and initial centroids (if any) finite with a length that is a multiple of
    /// `n_clusters`. [`kmeans`] also checks their shape against `dim`.
    pub fn validate(&self) -> Result<(), ClusterError> {
        if self.n_clusters == 0 {
            return Err(ClusterError::ZeroClusters);
        }
        if self.max_n_iterations == 0 {
            return Err(ClusterError::ZeroIterations);
        }
        if self.n_redo == 0 {
            return Err(ClusterError::ZeroRedo);
        }
        if self.max_points_per_centroid == Some(0) {
            return Err(ClusterError::ZeroMaxPointsPerCentroid);
        }
        if let Some(centroids) = &self.initial_centroids {
            let dim = centroids.len() / self.n_clusters;
            if dim == 0 || !centroids.len().is_multiple_of(self.n_clusters) {
                return Err(ClusterError::InitialCentroidsShape {
                    len: centroids.len(),
                    n_clusters: self.n_clusters,
                    dim,
                });
            }
            if let Some(i) = centroids.iter().position(|v| !v.is_finite()) {
                return Err(ClusterError::NonFiniteInitialCentroid {
                    centroid: i / dim,
                    column: i % dim,
                    value: centroids[i],
                });
            }
        }
        Ok(())
    }
}

impl Default for KMeansConfig {
    /// 10,000 clusters, DeepCluster's setting for ImageNet; other fields as in
    /// [`KMeansConfig::new`].
    fn default() -> Self {
        Self::new(10_000)
    }
}

/// Statistics of one Lloyd iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationStats {
    /// Sum of squared distances from each training point to its nearest centroid, measured
    /// in this iteration's assignment step, i.e. before the centroids are updated (faiss's
    /// `obj`).
    pub objective: f64,
    /// `k * Σ size² / n²` over this iteration's assignment: 1 for equal sizes, larger
    /// when unbalanced.
    pub imbalance_factor: f64,
    /// Number of empty clusters re-seeded by splitting in this iteration.
    pub n_splits: usize,
    /// Wall-clock duration of the iteration in seconds.
    pub seconds: f64,
}

/// Output of [`kmeans`]; all fields come from the same (best) run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansResult {
    /// Final centroids, shape `[n_clusters, dim]`.
    pub centroids: Vec<f32>,
    /// Index of the nearest final centroid for every input point, shape `[n_points]`.
    /// Ties go to the lower index.
    pub assignments: Vec<u32>,
    /// Sum of squared distances from every input point to its assigned final centroid.
    pub objective: f64,
    /// Number of input points assigned to each cluster, shape `[n_clusters]`. Can contain
    /// zeros: splitting keeps clusters non-empty only during training.
    pub cluster_sizes: Vec<usize>,
    /// Total number of empty-cluster splits over all iterations.
    pub n_splits: usize,
    /// Per-iteration statistics, one entry per iteration.
    pub iterations: Vec<IterationStats>,
}

/// Clusters `points` of shape `[n_points, dim]` into `config.n_clusters` clusters.
///
/// Each iteration assigns every training point to its nearest centroid (squared Euclidean
/// distance computed as `‖x‖² − 2x·c + ‖c‖²` by blocked matrix products), replaces each
/// centroid by the mean of its points, and re-seeds every empty cluster by splitting a donor
/// cluster drawn with probability proportional to `size − 1`. After the last iteration all
/// points are assigned to the final centroids. The result depends only on the inputs and
/// `config.seed`, not on the number of threads.
///
/// Logs a warning when there are fewer than [`FAISS_MIN_POINTS_PER_CENTROID`] points per
/// centroid.
///
/// # Errors
/// Invalid settings (see [`KMeansConfig::validate`]), an empty, misshaped or non-finite
/// input, `n_clusters > n_points`, or initial centroids whose shape is not
/// `[n_clusters, dim]`.
pub fn kmeans(
    points: &[f32],
    dim: usize,
    config: &KMeansConfig,
) -> Result<KMeansResult, ClusterError> {
    check_inputs(points, dim, config)?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut best: Option<KMeansResult> = None;
    for redo in 0..config.n_redo {
        let run = run_once(points, dim, config, &mut rng);
        tracing::debug!(redo, objective = run.objective, "k-means run finished");
        if best.as_ref().is_none_or(|b| run.objective < b.objective) {
            best = Some(run);
        }
    }
    Ok(best.expect("n_redo >= 1 was validated"))
}

/// Returns the centroids (`[n_clusters, dim]`) that the first run of [`kmeans`] starts
/// from with the same arguments: `config.initial_centroids` when set, otherwise the rows
/// of `points` that `config.init` draws with `config.seed`.
///
/// # Errors
/// The same as [`kmeans`].
pub fn initial_centroids(
    points: &[f32],
    dim: usize,
    config: &KMeansConfig,
) -> Result<Vec<f32>, ClusterError> {
    check_inputs(points, dim, config)?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let subsample = subsample(points, dim, config, &mut rng);
    let train = subsample.as_deref().unwrap_or(points);
    Ok(match &config.initial_centroids {
        Some(initial) => initial.clone(),
        None => initialise(
            train,
            dim,
            config.n_clusters,
            config.init,
            config.assignment_kernel,
            &mut rng,
        ),
    })
}

/// Checks the settings and their fit to the data, and warns about too few points per
/// centroid.
fn check_inputs(points: &[f32], dim: usize, config: &KMeansConfig) -> Result<(), ClusterError> {
    config.validate()?;
    let n_points = check_points(points, dim)?;
    let k = config.n_clusters;
    if k > n_points {
        return Err(ClusterError::TooManyClusters {
            n_clusters: k,
            n_points,
        });
    }
    if let Some(centroids) = &config.initial_centroids
        && centroids.len() != k * dim
    {
        return Err(ClusterError::InitialCentroidsShape {
            len: centroids.len(),
            n_clusters: k,
            dim,
        });
    }
    if n_points < k * FAISS_MIN_POINTS_PER_CENTROID {
        tracing::warn!(
            n_points,
            n_clusters = k,
            "k-means has fewer than {FAISS_MIN_POINTS_PER_CENTROID} points per centroid; \
             provide at least {} points for stable centroids",
            k * FAISS_MIN_POINTS_PER_CENTROID
        );
    }
    Ok(())
}

/// Assigns each point of `points` (`[n_points, dim]`) to its nearest centroid in
/// `centroids` (`[n_clusters, dim]`).
///
/// Returns the centroid index and the squared Euclidean distance `Σ (xᵢ − cᵢ)²` for every
/// point; ties go to the lower index. Inputs are not checked for NaN.
///
/// # Panics
/// Panics if `dim` is 0, if either length is not a multiple of `dim`, or if there are
/// points but no centroids.
pub fn assign(points: &[f32], dim: usize, centroids: &[f32]) -> (Vec<u32>, Vec<f32>) {
    assert!(dim > 0, "dimension must be at least 1");
    assert!(
        points.len().is_multiple_of(dim),
        "points length is not a multiple of dim {dim}"
    );
    assert!(
        centroids.len().is_multiple_of(dim),
        "centroids length is not a multiple of dim {dim}"
    );
    let n_points = points.len() / dim;
    assert!(
        n_points == 0 || !centroids.is_empty(),
        "at least one centroid is required"
    );
    let mut assignments = vec![0u32; n_points];
    let mut distances = vec![0.0f32; n_points];
    if n_points > 0 {
        let prepared = PreparedCentroids::new(centroids, dim, AssignmentKernel::Auto);
        assign_into(
            points,
            dim,
            &prepared,
            &mut assignments,
            &mut distances,
            None,
        );
    }
    (assignments, distances)
}

/// One complete k-means run: optional subsampling, initialisation, Lloyd iterations and
/// the final assignment of all points.
fn run_once(
    points: &[f32],
    dim: usize,
    config: &KMeansConfig,
    rng: &mut ChaCha8Rng,
) -> KMeansResult {
    let k = config.n_clusters;
    let kernel = config.assignment_kernel;
    let subsample = subsample(points, dim, config, rng);
    let train = subsample.as_deref().unwrap_or(points);
    let n_train = train.len() / dim;

    let mut centroids = match &config.initial_centroids {
        Some(initial) => initial.clone(),
        None => initialise(train, dim, k, config.init, kernel, rng),
    };
    if config.spherical {
        l2_normalize_rows(&mut centroids, dim);
    }
    let mut assignments = vec![0u32; n_train];
    let mut distances = vec![0.0f32; n_train];
    let mut sums = ClusterSums::new(train, dim, k);
    let mut iterations = Vec::with_capacity(config.max_n_iterations);
    for iteration in 0..config.max_n_iterations {
        let start = Instant::now();
        sums.clear();
        let prepared = PreparedCentroids::new(&centroids, dim, kernel);
        let objective = assign_into(
            train,
            dim,
            &prepared,
            &mut assignments,
            &mut distances,
            Some(&sums),
        );
        let mut sizes = sums.update_centroids(&mut centroids);
        let imbalance_factor = imbalance_factor(&sizes, n_train);
        let n_splits = split_empty_clusters(&mut centroids, &mut sizes, dim, rng);
        if config.spherical {
            l2_normalize_rows(&mut centroids, dim);
        }
        let stats = IterationStats {
            objective,
            imbalance_factor,
            n_splits,
            seconds: start.elapsed().as_secs_f64(),
        };
        tracing::debug!(iteration, ?stats, "k-means iteration");
        iterations.push(stats);
    }

    let n_points = points.len() / dim;
    let mut assignments = vec![0u32; n_points];
    let mut distances = vec![0.0f32; n_points];
    let prepared = PreparedCentroids::new(&centroids, dim, kernel);
    let objective = assign_into(
        points,
        dim,
        &prepared,
        &mut assignments,
        &mut distances,
        None,
    );
    let mut cluster_sizes = vec![0usize; k];
    assignments
        .iter()
        .for_each(|&a| cluster_sizes[a as usize] += 1);
    let n_splits = iterations.iter().map(|s| s.n_splits).sum();
    KMeansResult {
        centroids,
        assignments,
        objective,
        cluster_sizes,
        n_splits,
        iterations,
    }
}

/// Draws `n_clusters * max_points_per_centroid` rows when the input is larger than that;
/// `None` means train on all points.
fn subsample(
    points: &[f32],
    dim: usize,
    config: &KMeansConfig,
    rng: &mut ChaCha8Rng,
) -> Option<Vec<f32>> {
    let max_points = config
        .n_clusters
        .saturating_mul(config.max_points_per_centroid?);
    let n_points = points.len() / dim;
    if n_points <= max_points {
        return None;
    }
    tracing::info!(
        n_points,
        max_points,
        "k-means trains on a random subset of the points"
    );
    let mut indices = rand::seq::index::sample(rng, n_points, max_points).into_vec();
    indices.sort_unstable();
    let mut rows = Vec::with_capacity(max_points * dim);
    for i in indices {
        rows.extend_from_slice(&points[i * dim..(i + 1) * dim]);
    }
    Some(rows)
}

/// Re-seeds every empty cluster from a donor drawn with probability proportional to
/// `size − 1`; the two centroids are perturbed in opposite directions by
/// [`SPLIT_PERTURBATION`] and the donor's size is shared between them. Returns the number
/// of splits.
///
/// A donor always exists because `n_points >= n_clusters`: with an empty cluster, some
/// other cluster holds at least two points.
fn split_empty_clusters(
    centroids: &mut [f32],
    sizes: &mut [usize],
    dim: usize,
    rng: &mut ChaCha8Rng,
) -> usize {
    let mut n_splits = 0;
    for empty in 0..sizes.len() {
        if sizes[empty] != 0 {
            continue;
        }
        let total_weight: usize = sizes.iter().map(|s| s.saturating_sub(1)).sum();
        let mut target = rng.random_range(0..total_weight);
        let mut donor = 0;
        while target >= sizes[donor].saturating_sub(1) {
            target -= sizes[donor].saturating_sub(1);
            donor += 1;
        }

        let donor_row = centroids[donor * dim..(donor + 1) * dim].to_vec();
        for (j, &value) in donor_row.iter().enumerate() {
            let sign = if j % 2 == 0 { 1.0 } else { -1.0 };
            centroids[empty * dim + j] = value * (1.0 + sign * SPLIT_PERTURBATION);
            centroids[donor * dim + j] = value * (1.0 - sign * SPLIT_PERTURBATION);
        }
        sizes[empty] = sizes[donor] / 2;
        sizes[donor] -= sizes[empty];
        n_splits += 1;
    }
    n_splits
}

fn imbalance_factor(sizes: &[usize], n_points: usize) -> f64 {
    let sum_of_squares: f64 = sizes.iter().map(|&s| (s as f64) * (s as f64)).sum();
    sizes.len() as f64 * sum_of_squares / (n_points as f64 * n_points as f64)
}
