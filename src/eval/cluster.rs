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
    /// Cluster id of every image; not written to JSON.
    #[serde(skip)]
    pub assignments: Vec<u32>,
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
        assignments: result.assignments,
    })
}

/// Draws the confusion matrix of `assignments` against `labels`: one row per cluster, one
/// column per class. Clusters matched to a class by the Hungarian matching come first, in the
/// order of their class, so a perfect clustering shows a diagonal.
pub fn draw_confusion_matrix(
    title: &str,
    assignments: &[u32],
    labels: &[u32],
    class_names: Option<&[String]>,
) -> Result<image::RgbImage, ConfusionError> {
    let table = cluster::contingency_table(assignments, labels)?;
    let matching = clustering_accuracy(assignments, labels)?.mapping;
    let mut rows: Vec<usize> = (0..table.row_labels.len()).collect();
    let class_rank = |row: &usize| {
        matching
            .get(&table.row_labels[*row])
            .map_or(u32::MAX, |&class| class)
    };
    rows.sort_by_key(|row| (class_rank(row), table.row_labels[*row]));
    let row_labels: Vec<String> = rows
        .iter()
        .map(|&row| format!("cluster {}", table.row_labels[row]))
        .collect();
    let column_labels: Vec<String> = table
        .column_labels
        .iter()
        .map(|&class| {
            class_names
                .and_then(|names| names.get(class as usize))
                .cloned()
                .unwrap_or_else(|| class.to_string())
        })
        .collect();
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|&row| (0..column_labels.len()).map(move |column| (row, column)))
        .map(|(row, column)| table.count(row, column) as f64)
        .collect();
    Ok(crate::plot::draw_heat_map(
        title,
        ("true class", "cluster"),
        &row_labels,
        &column_labels,
        &values,
        &|count| format!("{count:.0}"),
    )?)
}

/// Why a confusion matrix could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ConfusionError {
    /// The assignments and labels do not match.
    #[error(transparent)]
    Labels(#[from] ClusterError),
    /// Drawing failed.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
}
