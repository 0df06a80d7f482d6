//! k-means with k = number of classes on a layer's features, scored against the labels.

use serde::{Deserialize, Serialize};

use crate::cluster::{
    self, ClusterError, KMeansConfig, PcaConfig, adjusted_rand_index, clustering_accuracy,
    l2_normalize_rows, normalized_mutual_info,
};

/// Scores of one clustering against the labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterScores {
    /// What was clustered, e.g. `trained fc7`, `random fc7`, `pixels`.
    pub name: String,
    /// Feature dimension before any PCA.
    pub feature_dim: usize,
    /// Normalised mutual information with the labels.
    pub nmi: f64,
    /// Adjusted Rand index.
    pub ari: f64,
    /// Accuracy under the best one-to-one matching of clusters to labels.
    pub accuracy: f64,
    /// Seconds spent (PCA and k-means).
    pub seconds: f64,
}

/// How features are clustered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterSettings {
    /// Number of clusters.
    pub k: usize,
    /// PCA to this dimension, whitened and L2-normalised, as in training; `None` clusters the
    /// features as they are.
    pub pca_dim: Option<usize>,
    /// Lloyd iterations.
    pub iterations: usize,
    /// k-means restarts; the lowest objective is kept.
    pub n_redo: usize,
    /// Seed of the initialisation.
    pub seed: u64,
}

/// Clusters `features` (`[n, dim]`) and scores the clusters against `labels`.
pub fn score_features(
    name: &str,
    features: &[f32],
    dim: usize,
    labels: &[u32],
    settings: &ClusterSettings,
) -> Result<ClusterScores, ClusterError> {
    let started = std::time::Instant::now();
    let (points, points_dim) = match settings.pca_dim {
        Some(pca_dim) => {
            let config = PcaConfig {
                output_dim: pca_dim,
                whiten: true,
                max_fit_points: None,
                seed: settings.seed,
            };
            let pca = cluster::Pca::fit(features, dim, &config)?;
            let mut reduced = pca.transform(features);
            l2_normalize_rows(&mut reduced, pca.output_dim());
            (reduced, pca.output_dim())
        }
        None => (features.to_vec(), dim),
    };
    let config = KMeansConfig {
        max_n_iterations: settings.iterations,
        n_redo: settings.n_redo,
        seed: settings.seed,
        ..KMeansConfig::new(settings.k)
    };
    let result = cluster::kmeans(&points, points_dim, &config)?;
    Ok(ClusterScores {
        name: name.to_owned(),
        feature_dim: dim,
        nmi: normalized_mutual_info(&result.assignments, labels)?,
        ari: adjusted_rand_index(&result.assignments, labels)?,
        accuracy: clustering_accuracy(&result.assignments, labels)?.accuracy,
        seconds: started.elapsed().as_secs_f64(),
    })
}
