#!/usr/bin/env python3
"""Write tests/fixtures/ap_reference.json: reference average precision values.

For each case (scores and binary labels, with ties in most of them), the file stores:
  average_precision  scikit-learn's average_precision_score
  voc07_ap           the 11-point interpolated AP of the VOC 2007 devkit, computed below with
                     NumPy: the mean over t = 0, 0.1, ..., 1 of the highest precision at a
                     recall >= t (0 where no recall reaches t)

The devkit reads a precision-recall point after every ranked image, which makes tied images
count in input order. Here, as in scikit-learn, each distinct score is one threshold and
gives one point; both agree when no scores tie. Each t is k/10 rounded to the nearest double.
Scores are rounded to two decimals or drawn from a small set of values so that many tie.

Usage: python scripts/ap_reference.py [OUTPUT]  (needs numpy and scikit-learn; the committed
fixture was written with the versions recorded in it)
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.metrics import average_precision_score


def voc07_ap(scores, labels):
    """11-point interpolated AP over the precision-recall points of the distinct scores."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    true_positives = np.cumsum(labels[order])
    false_positives = np.cumsum(~labels[order])
    # The last index of each group of equal scores.
    ends = np.r_[np.flatnonzero(np.diff(sorted_scores) != 0), len(scores) - 1]
    n_positives = max(labels.sum(), 1)
    recall = true_positives[ends] / n_positives
    precision = true_positives[ends] / (true_positives[ends] + false_positives[ends])
    total = 0.0
    for t in np.arange(11) / 10.0:
        reached = precision[recall >= t]
        total += reached.max() if reached.size else 0.0
    return total / 11.0


def sklearn_ap(scores, labels):
    with warnings.catch_warnings():
        # scikit-learn warns that a case without positives has no recall; it returns 0.
        warnings.simplefilter("ignore")
        return float(average_precision_score(labels, scores))


def cases():
    rng = np.random.default_rng(2007)
    yield "no_ties", [0.91, 0.35, 0.78, 0.12, 0.66, 0.5, 0.05, 0.82, 0.27, 0.44], \
        [1, 0, 1, 0, 0, 1, 0, 1, 0, 0]
    yield "ties_across_labels", [0.9, 0.7, 0.7, 0.7, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1], \
        [1, 0, 1, 1, 0, 1, 0, 0, 1, 0]
    yield "all_tied", [0.5] * 7, [0, 1, 0, 0, 1, 0, 0]
    yield "all_negative", [0.3, 0.8, 0.8, 0.1, 0.5], [0, 0, 0, 0, 0]
    yield "all_positive", [0.3, 0.8, 0.8, 0.1], [1, 1, 1, 1]
    yield "reversed_ranking", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [1, 1, 0, 0, 0, 0]
    yield "one_positive_last", [0.9, 0.8, 0.7, 0.6, 0.5], [0, 0, 0, 0, 1]
    # Ten positives ranked so that the recall is exactly 3/10 at a threshold.
    yield "recall_three_tenths", list(np.linspace(1.0, 0.05, 20)), \
        [1, 1, 1, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0]
    scores = np.round(rng.random(200), 2)
    labels = (rng.random(200) < 0.3 + 0.4 * scores).astype(int)
    yield "random_two_decimals", list(scores), list(labels)
    scores = rng.integers(0, 6, 150) / 5.0
    labels = (rng.random(150) < 0.15).astype(int)
    yield "random_six_levels", list(scores), list(labels)


def main():
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "ap_reference.json"
    records = []
    for name, scores, labels in cases():
        scores = [float(s) for s in scores]
        labels = [int(l) for l in labels]
        records.append({
            "name": name,
            "scores": scores,
            "labels": labels,
            "average_precision": sklearn_ap(scores, labels),
            "voc07_ap": float(voc07_ap(scores, labels)),
        })
    header = {
        "generator": "scripts/ap_reference.py",
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
    }
    # One case per line keeps the file short and its diffs readable.
    lines = [f" {json.dumps(key)}: {json.dumps(value)}," for key, value in header.items()]
    case_lines = ",\n".join(f"  {json.dumps(record)}" for record in records)
    output.write_text("{\n" + "\n".join(lines) + '\n "cases": [\n' + case_lines + "\n ]\n}\n")
    print(f"wrote {len(records)} cases to {output}")


if __name__ == "__main__":
    main()
