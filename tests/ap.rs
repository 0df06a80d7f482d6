//! Average precision pinned to scikit-learn's `average_precision_score` and to a NumPy version
//! of the VOC 2007 devkit's 11-point definition (`scripts/ap_reference.py` wrote the fixture).

use deepcluster::eval::ap::{average_precision, voc07_average_precision};

#[derive(serde::Deserialize)]
struct ApCase {
    name: String,
    scores: Vec<f64>,
    labels: Vec<u8>,
    average_precision: f64,
    voc07_ap: f64,
}

#[derive(serde::Deserialize)]
struct ApReference {
    cases: Vec<ApCase>,
}

#[test]
fn ap_matches_scikit_learn() {
    let text = include_str!("fixtures/ap_reference.json");
    let reference: ApReference = serde_json::from_str(text).unwrap();
    assert!(reference.cases.len() >= 8);
    for case in &reference.cases {
        let positives: Vec<bool> = case.labels.iter().map(|&label| label == 1).collect();
        let auc = average_precision(&case.scores, &positives);
        assert!(
            (auc - case.average_precision).abs() < 1e-9,
            "{}: average precision {auc} != {}",
            case.name,
            case.average_precision
        );
        let eleven = voc07_average_precision(&case.scores, &positives);
        assert!(
            (eleven - case.voc07_ap).abs() < 1e-9,
            "{}: 11-point AP {eleven} != {}",
            case.name,
            case.voc07_ap
        );
    }
}

#[test]
fn voc07_ap_hand_checked() {
    // Ranked: positive, negative, positive. Points (recall, precision): (0.5, 1), (0.5, 0.5),
    // (1, 2/3). For t = 0 … 0.5 (six values) the best precision is 1, for t = 0.6 … 1 (five
    // values) it is 2/3: (6 + 5 · 2/3) / 11. The area is 0.5 · 1 + 0.5 · 2/3.
    let scores = [0.9, 0.8, 0.7];
    let positives = [true, false, true];
    let expected = (6.0 + 5.0 * 2.0 / 3.0) / 11.0;
    assert!((voc07_average_precision(&scores, &positives) - expected).abs() < 1e-12);
    let area = 0.5 + 0.5 * 2.0 / 3.0;
    assert!((average_precision(&scores, &positives) - area).abs() < 1e-12);
}
