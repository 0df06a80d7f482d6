//! Tests of PCA, k-means and the clustering metrics, partly against reference values from
//! faiss, scikit-learn and NumPy stored in `tests/fixtures/cluster_reference.json`
//! (regenerate with `python scripts/cluster_reference.py`).

use deepcluster::cluster::{
    AssignmentKernel, ClusterError, Init, KMeansConfig, NmiNormalization, Pca, PcaConfig,
    PicConfig, adjusted_rand_index, assign, assign_on_device, assign_tensor, clustering_accuracy,
    contingency_table, initial_centroids, kmeans, l2_normalize_rows, nearest_neighbors,
    normalized_mutual_info, normalized_mutual_info_with, pic,
};
use deepcluster::data::load_embedded_fashion_mnist;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    kmeans: Vec<KMeansCase>,
    pca: PcaCase,
    metrics: Vec<MetricCase>,
}

#[derive(Deserialize)]
struct KMeansCase {
    name: String,
    dim: usize,
    n_clusters: usize,
    n_iterations: usize,
    points: Vec<f32>,
    initial_centroids: Vec<f32>,
    faiss_iteration_objectives: Vec<f64>,
    faiss_centroids: Vec<f32>,
    faiss_assignments: Vec<u32>,
    faiss_objective: f64,
    sklearn_assignments: Vec<u32>,
    sklearn_objective: f64,
}

#[derive(Deserialize)]
struct PcaCase {
    dim: usize,
    points: Vec<f32>,
    mean: Vec<f64>,
    eigenvalues: Vec<f64>,
    components: Vec<f64>,
}

#[derive(Deserialize)]
struct MetricCase {
    name: String,
    a: Vec<u32>,
    b: Vec<u32>,
    nmi_arithmetic: f64,
    nmi_geometric: f64,
    ari: f64,
    accuracy: f64,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("fixtures/cluster_reference.json")).expect("fixture parses")
}

fn relative_error(actual: f64, expected: f64) -> f64 {
    (actual - expected).abs() / expected.abs().max(1e-12)
}

fn random_points(n_points: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n_points * dim).map(|_| rng.random::<f32>()).collect()
}

/// Covariance (population) of a `[n, dim]` buffer, computed naively in f64.
fn covariance(points: &[f32], dim: usize) -> Vec<f64> {
    let n = points.len() / dim;
    let mut mean = vec![0.0f64; dim];
    for row in points.chunks(dim) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, &v)| *m += f64::from(v) / n as f64);
    }
    let mut cov = vec![0.0f64; dim * dim];
    for row in points.chunks(dim) {
        for i in 0..dim {
            for j in 0..dim {
                let di = f64::from(row[i]) - mean[i];
                let dj = f64::from(row[j]) - mean[j];
                cov[i * dim + j] += di * dj / n as f64;
            }
        }
    }
    cov
}

// ---------------------------------------------------------------- k-means: references

#[test]
fn kmeans_matches_faiss_and_sklearn() {
    for case in fixture().kmeans {
        let config = KMeansConfig {
            max_n_iterations: case.n_iterations,
            initial_centroids: Some(case.initial_centroids.clone()),
            ..KMeansConfig::new(case.n_clusters)
        };
        let result = kmeans(&case.points, case.dim, &config).unwrap();
        let name = &case.name;

        assert_eq!(
            result.assignments, case.faiss_assignments,
            "{name}: faiss assignments"
        );
        assert_eq!(
            result.assignments, case.sklearn_assignments,
            "{name}: sklearn assignments"
        );
        assert_eq!(
            result.iterations.len(),
            case.n_iterations,
            "{name}: iteration count"
        );
        for (i, (stats, &expected)) in result
            .iterations
            .iter()
            .zip(&case.faiss_iteration_objectives)
            .enumerate()
        {
            let error = relative_error(stats.objective, expected);
            assert!(
                error < 1e-5,
                "{name}: iteration {i} objective {} vs faiss {expected}",
                stats.objective
            );
        }
        let faiss_error = relative_error(result.objective, case.faiss_objective);
        assert!(
            faiss_error < 1e-5,
            "{name}: objective {} vs faiss {}",
            result.objective,
            case.faiss_objective
        );
        let sklearn_error = relative_error(result.objective, case.sklearn_objective);
        assert!(
            sklearn_error < 1e-5,
            "{name}: objective {} vs sklearn {}",
            result.objective,
            case.sklearn_objective
        );
        for (i, (a, b)) in result
            .centroids
            .iter()
            .zip(&case.faiss_centroids)
            .enumerate()
        {
            assert!(
                (a - b).abs() < 1e-4,
                "{name}: centroid value {i}: {a} vs faiss {b}"
            );
        }
        assert_eq!(result.n_splits, 0, "{name}: no cluster should empty");
    }
}

// ---------------------------------------------------------------- k-means: edge cases

#[test]
fn kmeans_k_equals_n() {
    let points = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 5.0, 5.0, -3.0, 2.0];
    let result = kmeans(&points, 2, &KMeansConfig::new(5)).unwrap();
    assert_eq!(result.cluster_sizes, vec![1; 5]);
    assert!(
        result.objective.abs() < 1e-9,
        "objective {}",
        result.objective
    );
    let mut sorted = result.assignments.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
}

#[test]
fn kmeans_identical_points() {
    let points = vec![0.5f32; 20 * 3];
    let result = kmeans(&points, 3, &KMeansConfig::new(3)).unwrap();
    assert_eq!(result.assignments.len(), 20);
    assert!(result.assignments.iter().all(|&a| a < 3));
    assert!(result.objective < 1e-6, "objective {}", result.objective);
    assert!(result.n_splits > 0, "empty clusters should have been split");
    assert!(result.centroids.iter().all(|c| c.is_finite()));
}

#[test]
fn kmeans_one_point() {
    let result = kmeans(&[1.0, -2.0, 3.0], 3, &KMeansConfig::new(1)).unwrap();
    assert_eq!(result.assignments, vec![0]);
    assert_eq!(result.centroids, vec![1.0, -2.0, 3.0]);
    assert_eq!(result.objective, 0.0);
    assert_eq!(result.iterations[0].imbalance_factor, 1.0);
}

/// Two well-separated groups of 50 points in 2-D, around (0, 0) and (10, 10).
fn two_groups() -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut points = Vec::new();
    for group in 0..2 {
        for _ in 0..50 {
            points.push(group as f32 * 10.0 + rng.random::<f32>());
            points.push(group as f32 * 10.0 + rng.random::<f32>());
        }
    }
    points
}

#[test]
fn kmeans_duplicated_initial_centroids() {
    let points = two_groups();
    let config = KMeansConfig {
        initial_centroids: Some(vec![0.5, 0.5, 0.5, 0.5]),
        ..KMeansConfig::new(2)
    };
    let result = kmeans(&points, 2, &config).unwrap();
    assert_eq!(
        result.iterations[0].n_splits, 1,
        "the duplicate starts empty"
    );
    assert_eq!(result.cluster_sizes, vec![50, 50]);
    assert_ne!(result.assignments[0], result.assignments[99]);
}

#[test]
fn kmeans_empty_cluster_is_split() {
    let points = two_groups();
    let config = KMeansConfig {
        initial_centroids: Some(vec![5.0, 5.0, 1000.0, 1000.0, -1000.0, 1000.0]),
        ..KMeansConfig::new(3)
    };
    let result = kmeans(&points, 2, &config).unwrap();
    assert_eq!(
        result.iterations[0].n_splits, 2,
        "both far centroids start empty"
    );
    assert!(result.n_splits >= 2);
    assert_eq!(
        result.n_splits,
        result.iterations.iter().map(|s| s.n_splits).sum::<usize>()
    );
    assert!(
        result.cluster_sizes.iter().all(|&s| s > 0),
        "sizes {:?}",
        result.cluster_sizes
    );
    assert_eq!(result.cluster_sizes.iter().sum::<usize>(), 100);
}

// ---------------------------------------------------------------- k-means: errors

#[test]
fn kmeans_rejects_k_above_n() {
    let error = kmeans(&[0.0, 1.0, 2.0], 1, &KMeansConfig::new(4)).unwrap_err();
    assert_eq!(
        error,
        ClusterError::TooManyClusters {
            n_clusters: 4,
            n_points: 3
        }
    );
    assert!(error.to_string().contains('4') && error.to_string().contains('3'));
}

#[test]
fn kmeans_rejects_nan_with_row() {
    let mut points = vec![0.0f32; 10 * 2];
    points[3 * 2 + 1] = f32::NAN;
    let error = kmeans(&points, 2, &KMeansConfig::new(2)).unwrap_err();
    assert!(
        matches!(
            error,
            ClusterError::NonFinite {
                row: 3,
                column: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("row 3"), "{error}");
}

#[test]
fn kmeans_rejects_infinity() {
    let mut points = vec![0.0f32; 10];
    points[7] = f32::INFINITY;
    let error = kmeans(&points, 1, &KMeansConfig::new(2)).unwrap_err();
    assert!(
        matches!(
            error,
            ClusterError::NonFinite {
                row: 7,
                column: 0,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn kmeans_rejects_zero_clusters() {
    let error = kmeans(&[0.0, 1.0], 1, &KMeansConfig::new(0)).unwrap_err();
    assert_eq!(error, ClusterError::ZeroClusters);
}

#[test]
fn kmeans_rejects_bad_shapes() {
    let config = KMeansConfig::new(1);
    assert_eq!(
        kmeans(&[0.0; 5], 2, &config).unwrap_err(),
        ClusterError::DimensionMismatch { len: 5, dim: 2 }
    );
    assert_eq!(
        kmeans(&[], 2, &config).unwrap_err(),
        ClusterError::EmptyInput
    );
    assert_eq!(
        kmeans(&[0.0], 0, &config).unwrap_err(),
        ClusterError::ZeroDimension
    );
    let bad_init = KMeansConfig {
        initial_centroids: Some(vec![0.0; 3]),
        ..KMeansConfig::new(1)
    };
    assert_eq!(
        kmeans(&[0.0; 4], 2, &bad_init).unwrap_err(),
        ClusterError::InitialCentroidsShape {
            len: 3,
            n_clusters: 1,
            dim: 2
        }
    );
}

#[test]
fn kmeans_config_validate() {
    assert_eq!(KMeansConfig::new(3).validate(), Ok(()));
    let zero_iterations = KMeansConfig {
        max_n_iterations: 0,
        ..KMeansConfig::new(3)
    };
    assert_eq!(
        zero_iterations.validate(),
        Err(ClusterError::ZeroIterations)
    );
    let zero_redo = KMeansConfig {
        n_redo: 0,
        ..KMeansConfig::new(3)
    };
    assert_eq!(zero_redo.validate(), Err(ClusterError::ZeroRedo));
    let zero_subsample = KMeansConfig {
        max_points_per_centroid: Some(0),
        ..KMeansConfig::new(3)
    };
    assert_eq!(
        zero_subsample.validate(),
        Err(ClusterError::ZeroMaxPointsPerCentroid)
    );
    let nan_init = KMeansConfig {
        initial_centroids: Some(vec![0.0, f32::NAN]),
        ..KMeansConfig::new(1)
    };
    assert!(matches!(
        nan_init.validate(),
        Err(ClusterError::NonFiniteInitialCentroid {
            centroid: 0,
            column: 1,
            ..
        })
    ));
    assert_eq!(KMeansConfig::default().max_n_iterations, 20);
}

// ---------------------------------------------------------------- k-means: behaviour

#[test]
fn kmeans_is_deterministic() {
    let points = random_points(5000, 16, 1);
    for init in [Init::RandomPoints, Init::KMeansPlusPlus] {
        let config = KMeansConfig {
            seed: 42,
            init,
            max_n_iterations: 5,
            ..KMeansConfig::new(50)
        };
        let first = kmeans(&points, 16, &config).unwrap();
        let second = kmeans(&points, 16, &config).unwrap();
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let sequential = one_thread.install(|| kmeans(&points, 16, &config).unwrap());
        assert_eq!(first.assignments, second.assignments, "{init:?}: rerun");
        assert_eq!(first.centroids, second.centroids, "{init:?}: rerun");
        assert_eq!(first.objective, second.objective, "{init:?}: rerun");
        assert_eq!(
            first.assignments, sequential.assignments,
            "{init:?}: one thread"
        );
        assert_eq!(
            first.centroids, sequential.centroids,
            "{init:?}: one thread"
        );
        assert_eq!(
            first.objective, sequential.objective,
            "{init:?}: one thread"
        );
    }
}

#[test]
fn kmeans_seed_changes_init() {
    let points = random_points(2000, 4, 2);
    let a = kmeans(
        &points,
        4,
        &KMeansConfig {
            seed: 1,
            ..KMeansConfig::new(10)
        },
    )
    .unwrap();
    let b = kmeans(
        &points,
        4,
        &KMeansConfig {
            seed: 2,
            ..KMeansConfig::new(10)
        },
    )
    .unwrap();
    assert_ne!(a.centroids, b.centroids);
}

#[test]
fn kmeans_redo_keeps_best_run() {
    let points = random_points(3000, 8, 4);
    let single = KMeansConfig {
        seed: 9,
        max_n_iterations: 3,
        ..KMeansConfig::new(30)
    };
    let redo = KMeansConfig {
        n_redo: 4,
        ..single.clone()
    };
    let first_run = kmeans(&points, 8, &single).unwrap();
    let best = kmeans(&points, 8, &redo).unwrap();
    assert!(best.objective <= first_run.objective);
    // Statistics belong to the returned run: its assignments reproduce its objective.
    let (assignments, distances) = assign(&points, 8, &best.centroids);
    assert_eq!(assignments, best.assignments);
    let total: f64 = distances.iter().map(|&d| f64::from(d)).sum();
    assert!(relative_error(total, best.objective) < 1e-9);
}

#[test]
fn kmeans_objective_decreases() {
    let points = random_points(4000, 8, 5);
    let result = kmeans(&points, 8, &KMeansConfig::new(20)).unwrap();
    for pair in result.iterations.windows(2) {
        assert!(
            pair[1].objective <= pair[0].objective * (1.0 + 1e-6),
            "{pair:?}"
        );
    }
    assert!(
        result
            .iterations
            .iter()
            .all(|s| s.imbalance_factor >= 1.0 - 1e-12)
    );
}

#[test]
fn kmeans_subsampling_assigns_all_points() {
    let points = random_points(2000, 4, 6);
    let config = KMeansConfig {
        max_points_per_centroid: Some(20),
        ..KMeansConfig::new(10)
    };
    let result = kmeans(&points, 4, &config).unwrap();
    assert_eq!(result.assignments.len(), 2000);
    assert_eq!(result.cluster_sizes.iter().sum::<usize>(), 2000);
}

#[test]
fn kmeans_many_centroid_tiles() {
    // More than one tile of 1024 centroids and a partial row block.
    let points = random_points(3000, 3, 7);
    let result = kmeans(
        &points,
        3,
        &KMeansConfig {
            max_n_iterations: 2,
            ..KMeansConfig::new(1500)
        },
    )
    .unwrap();
    let (expected, _) = assign(&points, 3, &result.centroids);
    assert_eq!(result.assignments, expected);
    assert_eq!(result.cluster_sizes.iter().sum::<usize>(), 3000);
}

#[test]
fn assign_matches_brute_force() {
    let dim = 5;
    let points = random_points(2500, dim, 8);
    let centroids = random_points(1100, dim, 9);
    let (assignments, distances) = assign(&points, dim, &centroids);
    for (i, row) in points.chunks(dim).enumerate().step_by(7) {
        let brute: Vec<f64> = centroids
            .chunks(dim)
            .map(|c| {
                row.iter()
                    .zip(c)
                    .map(|(a, b)| f64::from(a - b).powi(2))
                    .sum()
            })
            .collect();
        let best = brute.iter().copied().fold(f64::INFINITY, f64::min);
        let chosen = brute[assignments[i] as usize];
        assert!(
            chosen - best < 1e-5,
            "row {i}: chosen {chosen}, best {best}"
        );
        assert!(
            (f64::from(distances[i]) - chosen).abs() < 1e-4,
            "row {i} distance"
        );
    }
}

#[test]
fn assign_on_flex_device_matches_cpu() {
    let dim = 7;
    let points = random_points(3000, dim, 31);
    let centroids = random_points(150, dim, 32);
    let (expected, expected_distances) = assign(&points, dim, &centroids);
    let (assignments, distances) =
        assign_on_device(&points, dim, &centroids, &burn::tensor::Device::flex());
    assert_eq!(assignments.len(), expected.len());
    for (i, (&found, &wanted)) in assignments.iter().zip(&expected).enumerate() {
        // Rounding may pick another centroid only when both are equally near.
        let gap = (distances[i] - expected_distances[i]).abs();
        assert!(
            gap < 1e-4,
            "point {i}: distance {} vs {}",
            distances[i],
            expected_distances[i]
        );
        if found != wanted {
            let row = &points[i * dim..(i + 1) * dim];
            let distance_to = |c: u32| -> f32 {
                let centroid = &centroids[c as usize * dim..(c as usize + 1) * dim];
                row.iter()
                    .zip(centroid)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum()
            };
            assert!(
                (distance_to(found) - distance_to(wanted)).abs() < 1e-5,
                "point {i}"
            );
        }
    }
    let n_same = assignments
        .iter()
        .zip(&expected)
        .filter(|(a, b)| a == b)
        .count();
    assert!(n_same >= 2990, "{n_same} of 3000 assignments agree");
}

#[test]
fn assign_tensor_blocks_cover_all_points() {
    let device = burn::tensor::Device::flex();
    let dim = 3;
    let points = random_points(1001, dim, 33);
    let centroids = random_points(5, dim, 34);
    let upload = |values: &[f32]| {
        let data = burn::tensor::TensorData::new(values.to_vec(), [values.len() / dim, dim]);
        burn::tensor::Tensor::<2>::from_data(data, &device)
    };
    let (small_blocks, _) = assign_tensor(upload(&points), upload(&centroids), 100);
    let (one_block, _) = assign_tensor(upload(&points), upload(&centroids), 4096);
    let small_blocks = small_blocks.into_data().try_into_vec_as::<i64>().unwrap();
    let one_block = one_block.into_data().try_into_vec_as::<i64>().unwrap();
    assert_eq!(small_blocks.len(), 1001);
    assert_eq!(small_blocks, one_block);
}

#[test]
fn kmeans_spherical_centroids_are_normalised_means() {
    // Unit points around two directions; one iteration from two given unit centroids.
    let points: Vec<f32> = [
        [1.0f32, 0.0],
        [0.8, 0.6],
        [0.6, 0.8],
        [0.0, 1.0],
        [-0.6, 0.8],
    ]
    .concat();
    let config = KMeansConfig {
        max_n_iterations: 1,
        spherical: true,
        initial_centroids: Some(vec![1.0, 0.0, 0.0, 1.0]),
        ..KMeansConfig::new(2)
    };
    let result = kmeans(&points, 2, &config).unwrap();
    // Largest dot product with the initial centroids: the first two points go to (1, 0), the
    // other three to (0, 1).
    let normalise = |x: f32, y: f32| {
        let norm = (x * x + y * y).sqrt();
        [x / norm, y / norm]
    };
    let expected = [normalise(1.8, 0.6), normalise(0.0, 2.6)].concat();
    for (value, expected) in result.centroids.iter().zip(&expected) {
        assert!((value - expected).abs() < 1e-6, "{:?}", result.centroids);
    }
    // The final assignment is against the updated centroids: (0.6, 0.8) is now nearer the first.
    assert_eq!(result.assignments, vec![0, 0, 0, 1, 1]);
}

#[test]
fn kmeans_spherical_centroids_have_unit_length() {
    let mut points = random_points(500, 4, 3);
    l2_normalize_rows(&mut points, 4);
    let config = KMeansConfig {
        spherical: true,
        ..KMeansConfig::new(12)
    };
    let result = kmeans(&points, 4, &config).unwrap();
    for centroid in result.centroids.chunks_exact(4) {
        let norm = centroid.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
}

// ---------------------------------------------------------------- k-means: assignment kernels

/// Returns the first `n_images` embedded Fashion-MNIST test images with pixels scaled to
/// [0, 1], reduced by a whitened PCA to `pca_dim` dimensions and L2-normalised, as
/// DeepCluster reduces features.
fn fashion_mnist_reduced(n_images: usize, pca_dim: usize) -> Vec<f32> {
    let dataset = load_embedded_fashion_mnist().unwrap();
    let pixels = n_images * dataset.image_len();
    let features: Vec<f32> = dataset.images[..pixels]
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    let config = PcaConfig {
        output_dim: pca_dim,
        whiten: true,
        max_fit_points: None,
        seed: 0,
    };
    let pca = Pca::fit(&features, dataset.image_len(), &config).unwrap();
    let mut reduced = pca.transform(&features);
    l2_normalize_rows(&mut reduced, pca_dim);
    reduced
}

/// Gaussian points with the given mean, from a seeded generator (Box–Muller).
fn gaussian_points(n_points: usize, dim: usize, mean: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n_points * dim)
        .map(|_| {
            let (u, v) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
            let normal = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            mean + normal as f32
        })
        .collect()
}

/// Runs `config` with the default kernel and with plain f32 products, and checks that the
/// two runs agree exactly.
fn assert_kernels_agree(points: &[f32], dim: usize, config: &KMeansConfig, case: &str) {
    let auto = kmeans(points, dim, config).unwrap();
    let plain_config = KMeansConfig {
        assignment_kernel: AssignmentKernel::Float32,
        ..config.clone()
    };
    let plain = kmeans(points, dim, &plain_config).unwrap();
    assert_eq!(auto.assignments, plain.assignments, "{case}: assignments");
    assert_eq!(auto.centroids, plain.centroids, "{case}: centroids");
    assert_eq!(auto.objective, plain.objective, "{case}: objective");
    assert_eq!(auto.cluster_sizes, plain.cluster_sizes, "{case}: sizes");
    let objectives = |r: &deepcluster::cluster::KMeansResult| -> Vec<f64> {
        r.iterations.iter().map(|s| s.objective).collect()
    };
    assert_eq!(objectives(&auto), objectives(&plain), "{case}: iterations");
}

/// Checks that every point's assigned centroid is nearest up to rounding, and that the
/// reported distances match, against distances computed in `f64`.
fn assert_nearest(points: &[f32], dim: usize, centroids: &[f32], assignments: &[u32]) {
    let (_, distances) = assign(points, dim, centroids);
    for (i, row) in points.chunks(dim).enumerate() {
        let exact: Vec<f64> = centroids
            .chunks(dim)
            .map(|c| {
                row.iter()
                    .zip(c)
                    .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                    .sum()
            })
            .collect();
        let nearest = exact.iter().copied().fold(f64::INFINITY, f64::min);
        let chosen = exact[assignments[i] as usize];
        let tolerance = 1e-5 * nearest.max(1e-3);
        assert!(
            chosen - nearest <= tolerance,
            "point {i}: chosen {chosen}, nearest {nearest}"
        );
        assert!(
            (f64::from(distances[i]) - chosen).abs() <= tolerance,
            "point {i}: distance {} vs {chosen}",
            distances[i]
        );
    }
}

#[test]
fn kmeans_kernels_agree_on_fashion_mnist() {
    let dim = 64;
    let points = fashion_mnist_reduced(10_000, dim);
    for k in [10, 100, 300] {
        let config = KMeansConfig {
            max_n_iterations: 10,
            seed: 5,
            ..KMeansConfig::new(k)
        };
        assert_kernels_agree(&points, dim, &config, &format!("Fashion-MNIST, k = {k}"));
    }
    let config = KMeansConfig {
        max_n_iterations: 10,
        ..KMeansConfig::new(100)
    };
    let result = kmeans(&points, dim, &config).unwrap();
    assert_nearest(&points, dim, &result.centroids, &result.assignments);
}

#[test]
fn kmeans_kernels_agree_on_random_data() {
    // Cases are (points, dim, k, mean). They cover odd dimensions and sizes that leave partial
    // blocks, register groups and centroid tiles, a single centroid and many tiles. The last
    // case has points far from the origin, whose norms dwarf the distances between them.
    let cases = [
        (3001, 37, 1, 0.0),
        (3001, 37, 17, 0.0),
        (2000, 256, 100, 0.0),
        (4000, 5, 1500, 0.0),
        (2500, 33, 48, 300.0),
    ];
    for (n_points, dim, k, mean) in cases {
        let points = gaussian_points(n_points, dim, mean, 11);
        let config = KMeansConfig {
            max_n_iterations: 6,
            seed: 3,
            ..KMeansConfig::new(k)
        };
        let case = format!("n = {n_points}, dim = {dim}, k = {k}, mean = {mean}");
        assert_kernels_agree(&points, dim, &config, &case);
    }
    let points = gaussian_points(3001, 37, 0.0, 12);
    let result = kmeans(&points, 37, &KMeansConfig::new(40)).unwrap();
    assert_nearest(&points, 37, &result.centroids, &result.assignments);
}

#[test]
fn assign_ties_go_to_lower_index() {
    let dim = 40;
    let points = gaussian_points(600, dim, 0.0, 13);
    // Centroids 2 and 5 are the same point, as are centroids 3 and 4.
    let mut centroids = points[..6 * dim].to_vec();
    centroids.copy_within(2 * dim..3 * dim, 5 * dim);
    centroids.copy_within(3 * dim..4 * dim, 4 * dim);
    let (assignments, distances) = assign(&points, dim, &centroids);
    assert!(
        !assignments.contains(&4),
        "centroid 4 duplicates centroid 3"
    );
    assert!(
        !assignments.contains(&5),
        "centroid 5 duplicates centroid 2"
    );
    assert_eq!(assignments[2], 2);
    assert_eq!(distances[2], 0.0);
    assert_nearest(&points, dim, &centroids, &assignments);
}

#[test]
fn assign_handles_huge_norms() {
    // Norms above 2^40 are outside the bf16 kernel's range and take the exact fallback.
    let dim = 8;
    let points: Vec<f32> = random_points(300, dim, 14)
        .iter()
        .map(|v| v * 1e13)
        .collect();
    let centroids = points[..7 * dim].to_vec();
    let (assignments, _) = assign(&points, dim, &centroids);
    assert_nearest(&points, dim, &centroids, &assignments);
}

// ---------------------------------------------------------------- k-means: k-means++

fn plus_plus(k: usize, seed: u64) -> KMeansConfig {
    KMeansConfig {
        init: Init::KMeansPlusPlus,
        seed,
        ..KMeansConfig::new(k)
    }
}

/// Index of each row of `centroids` in `points` (the first equal row).
fn row_indices(points: &[f32], centroids: &[f32], dim: usize) -> Vec<usize> {
    centroids
        .chunks(dim)
        .map(|c| {
            points
                .chunks(dim)
                .position(|row| row == c)
                .expect("every initial centroid is a point")
        })
        .collect()
}

#[test]
fn kmeans_plus_plus_is_deterministic() {
    let points = gaussian_points(5000, 24, 0.0, 15);
    let config = plus_plus(600, 7);
    let first = initial_centroids(&points, 24, &config).unwrap();
    let second = initial_centroids(&points, 24, &config).unwrap();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let sequential = one_thread.install(|| initial_centroids(&points, 24, &config).unwrap());
    let other_seed = initial_centroids(&points, 24, &plus_plus(600, 8)).unwrap();
    assert_eq!(first, second, "rerun");
    assert_eq!(first, sequential, "one thread");
    assert_ne!(first, other_seed, "another seed");

    let plain = KMeansConfig {
        assignment_kernel: AssignmentKernel::Float32,
        ..config.clone()
    };
    assert_eq!(
        first,
        initial_centroids(&points, 24, &plain).unwrap(),
        "f32 kernel"
    );

    let result = kmeans(
        &points,
        24,
        &KMeansConfig {
            max_n_iterations: 1,
            ..config
        },
    )
    .unwrap();
    assert_eq!(result.iterations.len(), 1);
}

#[test]
fn kmeans_plus_plus_picks_distinct_points() {
    let dim = 6;
    // k = n: every point exactly once.
    let points = random_points(300, dim, 16);
    let centroids = initial_centroids(&points, dim, &plus_plus(300, 1)).unwrap();
    let mut indices = row_indices(&points, &centroids, dim);
    indices.sort_unstable();
    assert_eq!(indices, (0..300).collect::<Vec<_>>());

    // 100 distinct rows, each three times: the first 100 centroids are the 100 distinct
    // rows; the rest are further copies, at most three of each.
    let distinct = random_points(100, dim, 17);
    let tripled: Vec<f32> = distinct
        .iter()
        .chain(&distinct)
        .chain(&distinct)
        .copied()
        .collect();
    let centroids = initial_centroids(&tripled, dim, &plus_plus(180, 2)).unwrap();
    let indices = row_indices(&distinct, &centroids, dim);
    let mut first: Vec<usize> = indices[..100].to_vec();
    first.sort_unstable();
    assert_eq!(first, (0..100).collect::<Vec<_>>());
    let mut counts = vec![0; 100];
    indices.iter().for_each(|&i| counts[i] += 1);
    assert!(counts.iter().all(|&c| (1..=3).contains(&c)), "{counts:?}");

    // Identical points: all draws are uniform, still three different points.
    let identical = vec![0.25f32; 20 * dim];
    let centroids = initial_centroids(&identical, dim, &plus_plus(3, 3)).unwrap();
    assert_eq!(centroids, vec![0.25f32; 3 * dim]);
    let result = kmeans(&identical, dim, &plus_plus(3, 3)).unwrap();
    assert!(result.objective < 1e-9);
}

#[test]
fn kmeans_plus_plus_spreads_over_groups() {
    // Four groups 1000 apart: a second centroid in an occupied group has a chance below
    // 1e-5 per draw.
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let mut points = Vec::new();
    for group in 0..4 {
        for _ in 0..50 {
            points.push(group as f32 * 1000.0 + rng.random::<f32>());
            points.push(rng.random::<f32>());
        }
    }
    for seed in 0..10 {
        let centroids = initial_centroids(&points, 2, &plus_plus(4, seed)).unwrap();
        let mut groups: Vec<i32> = centroids
            .chunks(2)
            .map(|c| (c[0] / 1000.0).round() as i32)
            .collect();
        groups.sort_unstable();
        assert_eq!(groups, vec![0, 1, 2, 3], "seed {seed}");
    }
}

#[test]
fn kmeans_plus_plus_draws_by_squared_distance() {
    // Five points on a line. Given the first centroid, the second is drawn with probability
    // proportional to the squared distance. Over 6000 seeds the observed frequencies must
    // match within 5 standard deviations.
    let points = [0.0f32, 1.0, 3.0, 4.0, 10.0];
    let mut counts = [[0usize; 5]; 5];
    for seed in 0..6000 {
        let centroids = initial_centroids(&points, 1, &plus_plus(2, seed)).unwrap();
        let first = points.iter().position(|&p| p == centroids[0]).unwrap();
        let second = points.iter().position(|&p| p == centroids[1]).unwrap();
        counts[first][second] += 1;
    }
    for (first, row) in counts.iter().enumerate() {
        let draws: usize = row.iter().sum();
        assert!(draws > 900, "first centroid {first} drawn {draws} times");
        let weights: Vec<f64> = points
            .iter()
            .map(|&p| f64::from(p - points[first]).powi(2))
            .collect();
        let total: f64 = weights.iter().sum();
        for (second, &count) in row.iter().enumerate() {
            let probability = weights[second] / total;
            let expected = probability * draws as f64;
            let sigma = (draws as f64 * probability * (1.0 - probability)).sqrt();
            assert!(
                (count as f64 - expected).abs() <= 5.0 * sigma + 1e-9,
                "first {first}, second {second}: {count} draws, expected {expected:.1}"
            );
        }
    }
}

// ---------------------------------------------------------------- PIC

/// Two tight groups of six points, far apart, each around a centre point that is nearer to
/// the other five than any of them is to the rest. With five neighbours each group is a
/// complete component of the graph whose only local maximum is its centre.
fn two_stars() -> Vec<f32> {
    let offsets = [
        (0.0, 0.0),
        (0.05, 0.0),
        (0.0, 0.06),
        (-0.07, 0.0),
        (0.0, -0.04),
        (0.03, 0.03),
    ];
    let mut points = Vec::new();
    for (cx, cy) in [(0.0f32, 0.0f32), (3.0, 3.0)] {
        for &(dx, dy) in &offsets {
            points.extend_from_slice(&[cx + dx, cy + dy]);
        }
    }
    points
}

#[test]
fn pic_two_stars_known_answer() {
    let result = pic(&two_stars(), 2, &PicConfig::default()).unwrap();
    let expected: Vec<u32> = [0; 6].into_iter().chain([1; 6]).collect();
    assert_eq!(result.assignments, expected);
    assert_eq!(result.cluster_sizes, vec![6, 6]);
    assert_eq!(result.n_clusters(), 2);
    assert_eq!(result.n_joined_singletons, 0);
}

#[test]
fn pic_singleton_joins_nearest_group() {
    // A far point gets kernel weights that underflow to 0, so no edge leads anywhere from it
    // and it is a cluster of its own until it joins the group of its nearest neighbour
    // (squared distance 200 to the first group, 218 to the second).
    let mut points = two_stars();
    points.extend_from_slice(&[10.0, -10.0]);

    let joined = pic(&points, 2, &PicConfig::default()).unwrap();
    let mut expected: Vec<u32> = [0; 6].into_iter().chain([1; 6]).collect();
    expected.push(0);
    assert_eq!(joined.assignments, expected);
    assert_eq!(joined.cluster_sizes, vec![7, 6]);
    assert_eq!(joined.n_joined_singletons, 1);

    let config = PicConfig {
        distribute_singletons: false,
        ..PicConfig::default()
    };
    let alone = pic(&points, 2, &config).unwrap();
    expected[12] = 2;
    assert_eq!(alone.assignments, expected);
    assert_eq!(alone.cluster_sizes, vec![6, 6, 1]);
    assert_eq!(alone.n_joined_singletons, 0);
}

#[test]
fn pic_clusters_are_pure_on_separated_blobs() {
    let dim = 8;
    let n_blobs = 4;
    let per_blob = 300;
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut points = Vec::new();
    for blob in 0..n_blobs {
        for _ in 0..per_blob {
            for d in 0..dim {
                let centre = if d == blob { 10.0 } else { 0.0 };
                points.push(centre + rng.random::<f32>() - 0.5);
            }
        }
    }
    let result = pic(&points, dim, &PicConfig::default()).unwrap();
    assert_eq!(result.assignments.len(), n_blobs * per_blob);
    assert_eq!(
        result.cluster_sizes.iter().sum::<usize>(),
        n_blobs * per_blob
    );
    assert!(result.cluster_sizes.iter().all(|&size| size > 0));
    let mut blob_of_cluster = vec![None; result.n_clusters()];
    for (point, &cluster) in result.assignments.iter().enumerate() {
        let blob = point / per_blob;
        let seen = blob_of_cluster[cluster as usize].get_or_insert(blob);
        assert_eq!(*seen, blob, "cluster {cluster} mixes blobs");
    }
}

#[test]
fn pic_is_deterministic() {
    let dim = 6;
    let points = random_points(1500, dim, 13);
    let config = PicConfig::default();
    let first = pic(&points, dim, &config).unwrap();
    let second = pic(&points, dim, &config).unwrap();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let sequential = one_thread.install(|| pic(&points, dim, &config).unwrap());
    assert_eq!(first, second, "rerun");
    assert_eq!(first, sequential, "one thread");
    assert!(first.n_clusters() > 1, "{} clusters", first.n_clusters());
}

#[test]
fn nearest_neighbors_match_brute_force() {
    let dim = 5;
    let n_points = 2300;
    let n_neighbors = 4;
    let points = random_points(n_points, dim, 17);
    let graph = nearest_neighbors(&points, dim, n_neighbors);
    assert_eq!(graph.indices.len(), n_points * n_neighbors);
    for i in (0..n_points).step_by(37) {
        let row = &points[i * dim..(i + 1) * dim];
        let mut brute: Vec<(f64, usize)> = (0..n_points)
            .filter(|&j| j != i)
            .map(|j| {
                let other = &points[j * dim..(j + 1) * dim];
                let distance = row
                    .iter()
                    .zip(other)
                    .map(|(a, b)| f64::from(a - b).powi(2))
                    .sum();
                (distance, j)
            })
            .collect();
        brute.sort_by(|a, b| a.partial_cmp(b).unwrap());
        for (rank, &(expected, _)) in brute.iter().take(n_neighbors).enumerate() {
            let found = graph.indices[i * n_neighbors + rank] as usize;
            let distance = f64::from(graph.distances[i * n_neighbors + rank]);
            assert!(
                (distance - expected).abs() < 1e-4,
                "point {i} rank {rank}: distance {distance}, expected {expected}"
            );
            assert_ne!(found, i, "point {i} lists itself");
        }
    }
}

#[test]
fn nearest_neighbors_skip_self_among_duplicates() {
    let points = vec![1.0f32; 4 * 3];
    let graph = nearest_neighbors(&points, 3, 2);
    assert_eq!(graph.indices, vec![1, 2, 0, 2, 0, 1, 0, 1]);
    assert!(graph.distances.iter().all(|&d| d == 0.0));
}

#[test]
fn pic_rejects_invalid_input() {
    let points = two_stars();
    let too_many = PicConfig {
        n_neighbors: 12,
        ..PicConfig::default()
    };
    assert_eq!(
        pic(&points, 2, &too_many).unwrap_err(),
        ClusterError::TooManyNeighbors {
            n_neighbors: 12,
            n_points: 12
        }
    );
    let invalid_settings = [
        PicConfig {
            n_neighbors: 0,
            ..PicConfig::default()
        },
        PicConfig {
            sigma: 0.0,
            ..PicConfig::default()
        },
        PicConfig {
            sigma: f32::NAN,
            ..PicConfig::default()
        },
        PicConfig {
            alpha: 1.0,
            ..PicConfig::default()
        },
        PicConfig {
            n_iterations: 0,
            ..PicConfig::default()
        },
    ];
    for config in invalid_settings {
        let error = pic(&points, 2, &config).unwrap_err();
        assert!(
            matches!(error, ClusterError::InvalidPicSetting { .. }),
            "{config:?}: {error}"
        );
    }
    let mut with_nan = points.clone();
    with_nan[5] = f32::NAN;
    assert!(matches!(
        pic(&with_nan, 2, &PicConfig::default()).unwrap_err(),
        ClusterError::NonFinite {
            row: 2,
            column: 1,
            ..
        }
    ));
}

// ---------------------------------------------------------------- PCA

#[test]
fn pca_matches_numpy() {
    let case = fixture().pca;
    let config = PcaConfig {
        output_dim: case.dim,
        whiten: false,
        ..PcaConfig::default()
    };
    let pca = Pca::fit(&case.points, case.dim, &config).unwrap();
    for (i, (&actual, &expected)) in pca.eigenvalues().iter().zip(&case.eigenvalues).enumerate() {
        // The covariance is accumulated in f32 within blocks, so the smallest eigenvalue
        // (about 1e-3 of the largest) carries a relative error near 2e-4.
        assert!(
            relative_error(actual, expected) < 1e-3,
            "eigenvalue {i}: {actual} vs {expected}"
        );
    }
    for (i, (&actual, &expected)) in pca.mean().iter().zip(&case.mean).enumerate() {
        assert!(
            (f64::from(actual) - expected).abs() < 1e-4,
            "mean {i}: {actual} vs {expected}"
        );
    }
    for (i, (&actual, &expected)) in pca.components().iter().zip(&case.components).enumerate() {
        assert!(
            (f64::from(actual) - expected).abs() < 1e-3,
            "component value {i}: {actual} vs {expected}"
        );
    }
}

#[test]
fn pca_whitening_gives_identity_covariance() {
    let case = fixture().pca;
    let config = PcaConfig {
        output_dim: 4,
        ..PcaConfig::default()
    };
    let pca = Pca::fit(&case.points, case.dim, &config).unwrap();
    let transformed = pca.transform(&case.points);
    assert_eq!(transformed.len(), 500 * 4);
    let cov = covariance(&transformed, 4);
    for i in 0..4 {
        for j in 0..4 {
            let expected = if i == j { 1.0 } else { 0.0 };
            let value = cov[i * 4 + j];
            assert!(
                (value - expected).abs() < 1e-3,
                "covariance[{i}][{j}] = {value}"
            );
        }
    }
}

#[test]
fn pca_components_are_orthonormal() {
    let case = fixture().pca;
    let config = PcaConfig {
        output_dim: case.dim,
        whiten: false,
        ..PcaConfig::default()
    };
    let pca = Pca::fit(&case.points, case.dim, &config).unwrap();
    let rows: Vec<&[f32]> = pca.components().chunks(case.dim).collect();
    for i in 0..rows.len() {
        for j in 0..rows.len() {
            let dot: f32 = rows[i].iter().zip(rows[j]).map(|(a, b)| a * b).sum();
            let expected = if i == j { 1.0 } else { 0.0 };
            assert!((dot - expected).abs() < 1e-4, "dot({i}, {j}) = {dot}");
        }
    }
    let eigenvalues = pca.eigenvalues();
    assert!(
        eigenvalues.windows(2).all(|w| w[0] >= w[1]),
        "{eigenvalues:?}"
    );
}

#[test]
fn pca_clamps_output_dim() {
    let points = random_points(3, 6, 10);
    let pca = Pca::fit(&points, 6, &PcaConfig::default()).unwrap();
    assert_eq!(pca.output_dim(), 3);
    assert_eq!(pca.transform(&points).len(), 9);
    let wide = random_points(50, 4, 11);
    let pca = Pca::fit(&wide, 4, &PcaConfig::default()).unwrap();
    assert_eq!(pca.output_dim(), 4);
}

#[test]
fn pca_rejects_invalid_settings() {
    let points = random_points(10, 2, 12);
    let zero = PcaConfig {
        output_dim: 0,
        ..PcaConfig::default()
    };
    assert_eq!(
        Pca::fit(&points, 2, &zero).unwrap_err(),
        ClusterError::ZeroOutputDim
    );
    let zero_fit = PcaConfig {
        max_fit_points: Some(0),
        ..PcaConfig::default()
    };
    assert_eq!(
        Pca::fit(&points, 2, &zero_fit).unwrap_err(),
        ClusterError::ZeroMaxFitPoints
    );
    assert_eq!(
        Pca::fit(&[], 2, &PcaConfig::default()).unwrap_err(),
        ClusterError::EmptyInput
    );
    let mut bad = points.clone();
    bad[5] = f32::NAN;
    assert!(matches!(
        Pca::fit(&bad, 2, &PcaConfig::default()).unwrap_err(),
        ClusterError::NonFinite {
            row: 2,
            column: 1,
            ..
        }
    ));
}

#[test]
fn pca_fits_on_sample() {
    let case = fixture().pca;
    let config = PcaConfig {
        max_fit_points: Some(200),
        seed: 3,
        ..PcaConfig::default()
    };
    let first = Pca::fit(&case.points, case.dim, &config).unwrap();
    let second = Pca::fit(&case.points, case.dim, &config).unwrap();
    assert_eq!(first, second);
    assert_eq!(first.output_dim(), case.dim);
    let full = Pca::fit(&case.points, case.dim, &PcaConfig::default()).unwrap();
    let (sample_top, full_top) = (first.eigenvalues()[0], full.eigenvalues()[0]);
    assert!(
        relative_error(sample_top, full_top) < 0.3,
        "{sample_top} vs {full_top}"
    );
}

#[test]
fn l2_normalize_rows_gives_unit_norms() {
    let mut points = vec![3.0, 4.0, 0.0, 0.0, -1.0, 0.0, 1e-3, 0.0];
    l2_normalize_rows(&mut points, 2);
    assert!((points[0] - 0.6).abs() < 1e-6 && (points[1] - 0.8).abs() < 1e-6);
    assert_eq!(&points[2..4], &[0.0, 0.0], "a zero row stays zero");
    assert!((points[4] + 1.0).abs() < 1e-6);
    assert!((points[6] - 1.0).abs() < 1e-5);
}

// ---------------------------------------------------------------- metrics

#[test]
fn metrics_match_sklearn() {
    for case in fixture().metrics {
        let name = &case.name;
        let nmi = normalized_mutual_info(&case.a, &case.b).unwrap();
        assert!(
            (nmi - case.nmi_arithmetic).abs() < 1e-10,
            "{name}: NMI {nmi} vs {}",
            case.nmi_arithmetic
        );
        let geometric =
            normalized_mutual_info_with(&case.a, &case.b, NmiNormalization::Geometric).unwrap();
        assert!(
            (geometric - case.nmi_geometric).abs() < 1e-10,
            "{name}: geometric NMI {geometric}"
        );
        let ari = adjusted_rand_index(&case.a, &case.b).unwrap();
        assert!(
            (ari - case.ari).abs() < 1e-10,
            "{name}: ARI {ari} vs {}",
            case.ari
        );
        let accuracy = clustering_accuracy(&case.a, &case.b).unwrap().accuracy;
        assert!(
            (accuracy - case.accuracy).abs() < 1e-12,
            "{name}: accuracy {accuracy} vs {}",
            case.accuracy
        );
    }
}

#[test]
fn nmi_and_ari_hand_computed() {
    let a = [0, 0, 1, 1];
    assert_eq!(normalized_mutual_info(&a, &[5, 5, 9, 9]).unwrap(), 1.0);
    assert_eq!(adjusted_rand_index(&a, &[5, 5, 9, 9]).unwrap(), 1.0);
    assert!(normalized_mutual_info(&a, &[0, 1, 0, 1]).unwrap().abs() < 1e-12);
    // Pairs: 0 together in both, 2 only in a, 2 only in b, 2 in neither.
    // ARI = 2 (0·2 − 2·2) / ((0+2)(2+2) + (0+2)(2+2)) = −0.5.
    assert!((adjusted_rand_index(&a, &[0, 1, 0, 1]).unwrap() + 0.5).abs() < 1e-12);

    // a = [0,0,0,1], b = [0,0,1,1]: counts (0,0)=2, (0,1)=1, (1,1)=1.
    let mutual_info = 0.5 * (4.0f64 / 3.0).ln() + 0.25 * (2.0f64 / 3.0).ln() + 0.25 * 2.0f64.ln();
    let entropy_a = -(0.75 * 0.75f64.ln() + 0.25 * 0.25f64.ln());
    let entropy_b = 2.0f64.ln();
    let expected = mutual_info / ((entropy_a + entropy_b) / 2.0);
    let nmi = normalized_mutual_info(&[0, 0, 0, 1], &[0, 0, 1, 1]).unwrap();
    assert!((nmi - expected).abs() < 1e-12, "{nmi} vs {expected}");
}

#[test]
fn metrics_single_cluster_conventions() {
    assert_eq!(normalized_mutual_info(&[3, 3, 3], &[1, 1, 1]).unwrap(), 1.0);
    assert_eq!(adjusted_rand_index(&[3, 3, 3], &[1, 1, 1]).unwrap(), 1.0);
    assert_eq!(normalized_mutual_info(&[3, 3, 3], &[0, 1, 2]).unwrap(), 0.0);
    assert_eq!(normalized_mutual_info(&[7], &[2]).unwrap(), 1.0);
    assert_eq!(adjusted_rand_index(&[7], &[2]).unwrap(), 1.0);
}

#[test]
fn metrics_reject_bad_input() {
    let mismatch = ClusterError::LabelLengthMismatch { left: 2, right: 3 };
    assert_eq!(
        normalized_mutual_info(&[0, 1], &[0, 1, 2]).unwrap_err(),
        mismatch
    );
    assert_eq!(
        adjusted_rand_index(&[0, 1], &[0, 1, 2]).unwrap_err(),
        mismatch
    );
    assert_eq!(
        clustering_accuracy(&[0, 1], &[0, 1, 2]).unwrap_err(),
        mismatch
    );
    assert_eq!(
        normalized_mutual_info(&[], &[]).unwrap_err(),
        ClusterError::EmptyLabels
    );
    assert_eq!(
        adjusted_rand_index(&[], &[]).unwrap_err(),
        ClusterError::EmptyLabels
    );
    assert_eq!(
        clustering_accuracy(&[], &[]).unwrap_err(),
        ClusterError::EmptyLabels
    );
}

#[test]
fn contingency_table_counts() {
    let table = contingency_table(&[10, 10, 3, 3, 3], &[1, 2, 2, 2, 1]).unwrap();
    assert_eq!(table.row_labels, vec![3, 10]);
    assert_eq!(table.column_labels, vec![1, 2]);
    assert_eq!(table.counts, vec![1, 2, 1, 1]);
    assert_eq!(table.row_sums(), vec![3, 2]);
    assert_eq!(table.column_sums(), vec![2, 3]);
    assert_eq!(table.n_points, 5);
}

/// Expands a `[predicted, truth]` count table into two label vectors.
fn labels_from_table(table: &[[u32; 3]; 3]) -> (Vec<u32>, Vec<u32>) {
    let (mut predicted, mut truth) = (Vec::new(), Vec::new());
    for (p, row) in table.iter().enumerate() {
        for (t, &count) in row.iter().enumerate() {
            for _ in 0..count {
                predicted.push(p as u32);
                truth.push(t as u32);
            }
        }
    }
    (predicted, truth)
}

#[test]
fn accuracy_permuted_perfect_clustering() {
    let truth = [0, 0, 1, 1, 2, 2, 2];
    let predicted = [7, 7, 4, 4, 0, 0, 0];
    let result = clustering_accuracy(&predicted, &truth).unwrap();
    assert_eq!(result.accuracy, 1.0);
    assert_eq!(result.n_correct, 7);
    assert_eq!(
        result.mapping.into_iter().collect::<Vec<_>>(),
        vec![(0, 2), (4, 1), (7, 0)]
    );
}

#[test]
fn accuracy_hand_computed_3x3() {
    // Best matching 0→1 (3), 1→0 (2), 2→2 (4): 9 of 12 points. The identity matching
    // scores only 1 + 0 + 4 = 5.
    let (predicted, truth) = labels_from_table(&[[1, 3, 0], [2, 0, 2], [0, 0, 4]]);
    let result = clustering_accuracy(&predicted, &truth).unwrap();
    assert_eq!(result.n_correct, 9);
    assert_eq!(result.accuracy, 0.75);
    assert_eq!(
        result.mapping.into_iter().collect::<Vec<_>>(),
        vec![(0, 1), (1, 0), (2, 2)]
    );
}

#[test]
fn accuracy_non_square() {
    // Four clusters, two classes: clusters 2 and 3 stay unmatched.
    let predicted = [0, 0, 1, 1, 2, 3];
    let truth = [0, 0, 1, 1, 1, 0];
    let result = clustering_accuracy(&predicted, &truth).unwrap();
    assert_eq!(result.n_correct, 4);
    assert_eq!(
        result.mapping.into_iter().collect::<Vec<_>>(),
        vec![(0, 0), (1, 1)]
    );

    // Two clusters, three classes: one class stays unmatched.
    let result = clustering_accuracy(&[0, 0, 0, 1, 1, 1], &[0, 0, 2, 1, 1, 2]).unwrap();
    assert_eq!(result.n_correct, 4);
    assert_eq!(result.mapping.len(), 2);
}
