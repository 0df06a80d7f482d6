//! Comparison of two labelings: contingency table, normalised mutual information, adjusted
//! Rand index and clustering accuracy under the best one-to-one label matching.

use std::collections::BTreeMap;

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;
use serde::{Deserialize, Serialize};

use super::error::ClusterError;

/// Counts of points per pair of labels from two labelings of the same points.
///
/// Labels may be any `u32` values; each labeling's distinct labels are sorted and numbered
/// from 0, so row `i` stands for `row_labels[i]` and column `j` for `column_labels[j]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContingencyTable {
    /// Distinct labels of the first labeling, ascending.
    pub row_labels: Vec<u32>,
    /// Distinct labels of the second labeling, ascending.
    pub column_labels: Vec<u32>,
    /// Row-major counts, shape `[row_labels.len(), column_labels.len()]`.
    pub counts: Vec<u64>,
    /// Number of points.
    pub n_points: u64,
}

impl ContingencyTable {
    /// Count for row index `row` and column index `column` (indices, not labels).
    pub fn count(&self, row: usize, column: usize) -> u64 {
        self.counts[row * self.column_labels.len() + column]
    }

    /// Number of points per row, shape `[row_labels.len()]`.
    pub fn row_sums(&self) -> Vec<u64> {
        self.counts
            .chunks(self.column_labels.len())
            .map(|row| row.iter().sum())
            .collect()
    }

    /// Number of points per column, shape `[column_labels.len()]`.
    pub fn column_sums(&self) -> Vec<u64> {
        let mut sums = vec![0u64; self.column_labels.len()];
        for row in self.counts.chunks(self.column_labels.len()) {
            sums.iter_mut().zip(row).for_each(|(s, &c)| *s += c);
        }
        sums
    }
}

/// Builds the contingency table of labelings `a` (rows) and `b` (columns).
///
/// # Errors
/// [`ClusterError::LabelLengthMismatch`] if the lengths differ and
/// [`ClusterError::EmptyLabels`] if both are empty.
pub fn contingency_table(a: &[u32], b: &[u32]) -> Result<ContingencyTable, ClusterError> {
    if a.len() != b.len() {
        return Err(ClusterError::LabelLengthMismatch {
            left: a.len(),
            right: b.len(),
        });
    }
    if a.is_empty() {
        return Err(ClusterError::EmptyLabels);
    }
    let (row_labels, row_index) = dense_labels(a);
    let (column_labels, column_index) = dense_labels(b);
    let width = column_labels.len();
    let mut counts = vec![0u64; row_labels.len() * width];
    for (&x, &y) in a.iter().zip(b) {
        counts[row_index[&x] * width + column_index[&y]] += 1;
    }
    Ok(ContingencyTable {
        row_labels,
        column_labels,
        counts,
        n_points: a.len() as u64,
    })
}

/// Distinct labels in ascending order and the map from label to its position.
fn dense_labels(labels: &[u32]) -> (Vec<u32>, BTreeMap<u32, usize>) {
    let mut index: BTreeMap<u32, usize> = labels.iter().map(|&l| (l, 0)).collect();
    for (position, value) in index.values_mut().enumerate() {
        *value = position;
    }
    (index.keys().copied().collect(), index)
}

/// How mutual information is divided by the two entropies in
/// [`normalized_mutual_info_with`]; the names follow scikit-learn's `average_method`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NmiNormalization {
    /// `(H(a) + H(b)) / 2`, scikit-learn's default since version 0.22.
    #[default]
    Arithmetic,
    /// `sqrt(H(a) · H(b))`, scikit-learn's default before version 0.22.
    Geometric,
    /// `min(H(a), H(b))`.
    Min,
    /// `max(H(a), H(b))`.
    Max,
}

/// Normalised mutual information of two labelings with arithmetic-mean normalisation,
/// matching scikit-learn's `normalized_mutual_info_score` defaults (version 0.22 or later).
///
/// The value is in `[0, 1]`, symmetric, and unchanged by renaming labels. When both
/// labelings have a single label the result is 1.0; when only one of them does, it is 0.0
/// (scikit-learn's conventions).
///
/// # Errors
/// [`ClusterError::LabelLengthMismatch`] or [`ClusterError::EmptyLabels`].
pub fn normalized_mutual_info(a: &[u32], b: &[u32]) -> Result<f64, ClusterError> {
    normalized_mutual_info_with(a, b, NmiNormalization::Arithmetic)
}

/// Normalised mutual information with the given normalisation; see
/// [`normalized_mutual_info`] for the conventions and errors.
pub fn normalized_mutual_info_with(
    a: &[u32],
    b: &[u32],
    normalization: NmiNormalization,
) -> Result<f64, ClusterError> {
    let table = contingency_table(a, b)?;
    let (n_rows, n_columns) = (table.row_labels.len(), table.column_labels.len());
    if n_rows == 1 && n_columns == 1 {
        return Ok(1.0);
    }
    let n = table.n_points as f64;
    let row_sums = table.row_sums();
    let column_sums = table.column_sums();
    let mut mutual_info = 0.0f64;
    for (i, &row_sum) in row_sums.iter().enumerate() {
        for (j, &column_sum) in column_sums.iter().enumerate() {
            let count = table.count(i, j) as f64;
            if count > 0.0 {
                mutual_info += count / n * (count * n / (row_sum as f64 * column_sum as f64)).ln();
            }
        }
    }
    // Rounding can leave a tiny negative value for independent labelings.
    let mutual_info = mutual_info.max(0.0);
    if mutual_info == 0.0 {
        return Ok(0.0);
    }
    let (entropy_a, entropy_b) = (entropy(&row_sums, n), entropy(&column_sums, n));
    let normalizer = match normalization {
        NmiNormalization::Arithmetic => (entropy_a + entropy_b) / 2.0,
        NmiNormalization::Geometric => (entropy_a * entropy_b).sqrt(),
        NmiNormalization::Min => entropy_a.min(entropy_b),
        NmiNormalization::Max => entropy_a.max(entropy_b),
    };
    Ok((mutual_info / normalizer.max(f64::EPSILON)).min(1.0))
}

fn entropy(counts: &[u64], n: f64) -> f64 {
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum()
}

/// Adjusted Rand index of two labelings (Hubert and Arabie, 1985), symmetric and at most 1.
///
/// Computed from pair counts in exact integer arithmetic. When no pair of points is
/// grouped differently by the two labelings (including a single point) the result is 1.0,
/// as in scikit-learn's `adjusted_rand_score`.
///
/// # Errors
/// [`ClusterError::LabelLengthMismatch`] or [`ClusterError::EmptyLabels`].
pub fn adjusted_rand_index(a: &[u32], b: &[u32]) -> Result<f64, ClusterError> {
    let table = contingency_table(a, b)?;
    let pairs = |c: u64| i128::from(c) * (i128::from(c) - 1) / 2;
    let same_in_both: i128 = table.counts.iter().map(|&c| pairs(c)).sum();
    let same_in_a: i128 = table.row_sums().into_iter().map(pairs).sum();
    let same_in_b: i128 = table.column_sums().into_iter().map(pairs).sum();
    let total = pairs(table.n_points);

    let only_in_a = same_in_a - same_in_both;
    let only_in_b = same_in_b - same_in_both;
    let in_neither = total - same_in_both - only_in_a - only_in_b;
    if only_in_a == 0 && only_in_b == 0 {
        return Ok(1.0);
    }
    let numerator = 2 * (same_in_both * in_neither - only_in_a * only_in_b);
    let denominator = (same_in_both + only_in_a) * (only_in_a + in_neither)
        + (same_in_both + only_in_b) * (only_in_b + in_neither);
    Ok(numerator as f64 / denominator as f64)
}

/// Result of [`clustering_accuracy`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusteringAccuracy {
    /// Fraction of points whose predicted cluster is matched to their true class, in
    /// `[0, 1]`.
    pub accuracy: f64,
    /// Number of points counted as correct.
    pub n_correct: u64,
    /// Matching from predicted cluster label to true class label. With more clusters than
    /// classes the extra clusters are absent (their points count as wrong), and with more
    /// classes than clusters some classes are unmatched.
    pub mapping: BTreeMap<u32, u32>,
}

/// Clustering accuracy: the fraction of points correctly labelled under the one-to-one
/// matching of predicted clusters to true classes that maximises the number of matches
/// (Hungarian algorithm, `pathfinding::kuhn_munkres`).
///
/// The matching runs on the integer contingency table, transposed when there are more
/// clusters than classes, because the solver needs no more rows than columns. This costs
/// `O(r² c)` time for `r ≤ c` distinct labels.
///
/// # Errors
/// [`ClusterError::LabelLengthMismatch`] or [`ClusterError::EmptyLabels`].
pub fn clustering_accuracy(
    predicted: &[u32],
    truth: &[u32],
) -> Result<ClusteringAccuracy, ClusterError> {
    let table = contingency_table(predicted, truth)?;
    let (n_predicted, n_truth) = (table.row_labels.len(), table.column_labels.len());
    let transpose = n_predicted > n_truth;
    let (rows, columns) = if transpose {
        (n_truth, n_predicted)
    } else {
        (n_predicted, n_truth)
    };
    let weights = Matrix::from_fn(rows, columns, |(row, column)| {
        let count = if transpose {
            table.count(column, row)
        } else {
            table.count(row, column)
        };
        i64::try_from(count).expect("a count fits in i64")
    });
    let (n_correct, row_to_column) = kuhn_munkres(&weights);

    let mut mapping = BTreeMap::new();
    for (row, &column) in row_to_column.iter().enumerate() {
        let (p, t) = if transpose {
            (column, row)
        } else {
            (row, column)
        };
        mapping.insert(table.row_labels[p], table.column_labels[t]);
    }
    let n_correct = n_correct as u64;
    Ok(ClusteringAccuracy {
        accuracy: n_correct as f64 / table.n_points as f64,
        n_correct,
        mapping,
    })
}
