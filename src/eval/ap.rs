//! Average precision of a ranking, the score of the Pascal VOC classification benchmark.
//!
//! Both functions take one score per image and whether the image is a positive, rank the
//! images by decreasing score and read precision and recall at each distinct score. Images with
//! equal scores enter the ranking together, as one threshold, as in scikit-learn's
//! `precision_recall_curve`, so the result does not depend on the order of tied images.
//!
//! - [`average_precision`]: the area under the precision-recall curve as scikit-learn's
//!   `average_precision_score` computes it: Σₙ (Rₙ − Rₙ₋₁) Pₙ over the thresholds, without
//!   interpolation.
//! - [`voc07_average_precision`]: the 11-point interpolated average precision of the VOC 2007
//!   development kit: the mean over t = 0, 0.1, …, 1 of the highest precision reached at a
//!   recall of at least t.
//!
//! A ranking without positives has an average precision of 0 by both definitions: scikit-learn
//! 1.x returns 0 for it (with a warning), and the devkit finds no recall of at least t.
//! `tests/fixtures/ap_reference.json` (written by `scripts/ap_reference.py`) pins both
//! functions to scikit-learn and to a NumPy version of the devkit's definition.

/// Returns the points `(recall, precision)` of the precision-recall curve, one per distinct
/// score, from the highest score down. Without positives every recall is 0.
fn precision_recall_points(scores: &[f64], positives: &[bool]) -> Vec<(f64, f64)> {
    assert_eq!(
        scores.len(),
        positives.len(),
        "one score per image and one flag per image"
    );
    let n_positives = positives.iter().filter(|&&positive| positive).count();
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));

    let mut points = Vec::new();
    let (mut true_positives, mut false_positives) = (0usize, 0usize);
    for (rank, &image) in order.iter().enumerate() {
        if positives[image] {
            true_positives += 1;
        } else {
            false_positives += 1;
        }
        // A threshold ends at the last image of a group of equal scores.
        let ends_threshold = order
            .get(rank + 1)
            .is_none_or(|&next| scores[next] != scores[image]);
        if ends_threshold {
            let recall = true_positives as f64 / n_positives.max(1) as f64;
            let precision = true_positives as f64 / (true_positives + false_positives) as f64;
            points.push((recall, precision));
        }
    }
    points
}

/// Returns the average precision of `scores` against `positives`, as scikit-learn's
/// `average_precision_score`: Σₙ (Rₙ − Rₙ₋₁) Pₙ over the distinct scores taken as thresholds
/// from the highest down, with R₀ = 0. Returns 0 when no image is a positive or there are no
/// images.
///
/// Scores are ranked with [`f64::total_cmp`], so a NaN score ranks above every number.
///
/// # Panics
///
/// Panics if `scores` and `positives` have different lengths.
pub fn average_precision(scores: &[f64], positives: &[bool]) -> f64 {
    let mut previous_recall = 0.0;
    let mut sum = 0.0;
    for (recall, precision) in precision_recall_points(scores, positives) {
        sum += (recall - previous_recall) * precision;
        previous_recall = recall;
    }
    sum
}

/// Returns the 11-point interpolated average precision of the VOC 2007 development kit: the
/// mean over t = 0, 0.1, …, 1 of the highest precision at a recall ≥ t, or 0 where no recall
/// reaches t. Each t is k/10 rounded to the nearest `f64`, so a recall of exactly 3/10 counts
/// for t = 0.3. Returns 0 when no image is a positive or there are no images.
///
/// The devkit ranks tied images in input order and reads a point after every image. Here a
/// group of tied images is one point, which gives the devkit's value when no scores tie.
///
/// # Panics
///
/// Panics if `scores` and `positives` have different lengths.
pub fn voc07_average_precision(scores: &[f64], positives: &[bool]) -> f64 {
    let points = precision_recall_points(scores, positives);
    let mut sum = 0.0;
    for step in 0..=10 {
        let threshold = f64::from(step) / 10.0;
        let best = points
            .iter()
            .filter(|(recall, _)| *recall >= threshold)
            .map(|&(_, precision)| precision)
            .fold(0.0, f64::max);
        sum += best;
    }
    sum / 11.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_ranking_scores_one() {
        let scores = [0.9, 0.8, 0.2, 0.1];
        let positives = [true, true, false, false];
        assert_eq!(average_precision(&scores, &positives), 1.0);
        assert_eq!(voc07_average_precision(&scores, &positives), 1.0);
    }

    #[test]
    fn no_positives_scores_zero() {
        let scores = [0.3, 0.2];
        assert_eq!(average_precision(&scores, &[false, false]), 0.0);
        assert_eq!(voc07_average_precision(&scores, &[false, false]), 0.0);
        assert_eq!(average_precision(&[], &[]), 0.0);
    }

    #[test]
    fn tied_scores_form_one_threshold() {
        // One threshold holding every image: precision 1/2 at recall 1.
        let positives = [true, false, true, false];
        assert_eq!(average_precision(&[0.5; 4], &positives), 0.5);
        let reversed = [false, true, false, true];
        assert_eq!(average_precision(&[0.5; 4], &reversed), 0.5);
    }
}
