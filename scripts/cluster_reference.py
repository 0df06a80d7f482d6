#!/usr/bin/env python3
"""Write tests/fixtures/cluster_reference.json: reference k-means, PCA and metric values.

k-means comes from faiss and scikit-learn started from the same fixed initial centroids,
PCA from NumPy's symmetric eigendecomposition of the population covariance, and the
metrics from scikit-learn and SciPy. Inputs are drawn from seeded NumPy generators and
stored in the fixture, so the Rust tests never need Python.

Usage: python scripts/cluster_reference.py [OUTPUT]  (needs numpy, scipy, scikit-learn,
faiss-cpu; the committed fixture was written with the versions recorded in it)
"""

import json
import sys
from pathlib import Path

import faiss
import numpy as np
import scipy
import sklearn
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def floats(array):
    """Flatten a float32 array into a list of Python floats that round-trip exactly."""
    return [float(v) for v in np.asarray(array, dtype=np.float32).ravel()]


def kmeans_case(name, points, init, n_iterations):
    """Run faiss and scikit-learn Lloyd k-means from `init` for `n_iterations`."""
    n_points, dim = points.shape
    k = init.shape[0]
    km = faiss.Kmeans(
        dim,
        k,
        niter=n_iterations,
        seed=1,
        max_points_per_centroid=n_points,
        min_points_per_centroid=1,
        spherical=False,
        update_index=False,
    )
    km.train(points, init_centroids=init.copy())
    index = faiss.IndexFlatL2(dim)
    index.add(km.centroids)
    distances, labels = index.search(points, 1)

    skl = KMeans(
        n_clusters=k, init=init.copy(), n_init=1, max_iter=n_iterations, tol=0.0,
        algorithm="lloyd",
    ).fit(points)
    return {
        "name": name,
        "dim": dim,
        "n_clusters": k,
        "n_iterations": n_iterations,
        "points": floats(points),
        "initial_centroids": floats(init),
        "faiss_iteration_objectives": [float(v) for v in km.obj],
        "faiss_centroids": floats(km.centroids),
        "faiss_assignments": [int(v) for v in labels.ravel()],
        "faiss_objective": float(np.sum(distances.astype(np.float64))),
        "sklearn_assignments": [int(v) for v in skl.labels_],
        "sklearn_objective": float(skl.inertia_),
        "sklearn_centroids": floats(skl.cluster_centers_),
    }


def kmeans_cases():
    rng = np.random.default_rng(20180101)
    dim, k = 8, 5
    centres = rng.normal(0.0, 4.0, size=(k, dim))
    labels = rng.integers(0, k, size=300)
    blobs = (centres[labels] + rng.normal(0.0, 1.0, size=(300, dim))).astype(np.float32)
    # One initial centroid per blob, so that no cluster empties (scikit-learn and faiss
    # handle empty clusters differently).
    first_of_each = [int(np.flatnonzero(labels == c)[0]) for c in range(k)]
    blob_init = blobs[first_of_each]

    uniform = rng.random(size=(1000, 12), dtype=np.float32)
    uniform_init = uniform[rng.choice(1000, size=15, replace=False)]
    return [
        kmeans_case("blobs", blobs, blob_init, 10),
        kmeans_case("uniform", uniform, uniform_init, 20),
    ]


def pca_case():
    rng = np.random.default_rng(7)
    n_points, dim = 500, 6
    mixing = rng.normal(size=(dim, dim)) * np.array([3.0, 2.0, 1.5, 1.0, 0.5, 0.1])[:, None]
    points = (rng.normal(size=(n_points, dim)) @ mixing + rng.normal(size=dim) * 5.0)
    points = points.astype(np.float32)
    data = points.astype(np.float64)
    centred = data - data.mean(axis=0)
    covariance = centred.T @ centred / n_points
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = eigenvalues[order]
    components = eigenvectors[:, order].T
    # Sign convention shared with the Rust code: the largest-magnitude coordinate is positive.
    for row in components:
        if row[np.argmax(np.abs(row))] < 0:
            row *= -1.0
    return {
        "dim": dim,
        "points": floats(points),
        "mean": [float(v) for v in data.mean(axis=0)],
        "eigenvalues": [float(v) for v in eigenvalues],
        "components": [float(v) for v in components.ravel()],
    }


def accuracy(predicted, truth):
    table = np.zeros((predicted.max() + 1, truth.max() + 1), dtype=np.int64)
    np.add.at(table, (predicted, truth), 1)
    rows, columns = linear_sum_assignment(table, maximize=True)
    return float(table[rows, columns].sum() / len(predicted))


def metric_cases():
    rng = np.random.default_rng(11)
    truth = rng.integers(0, 5, size=200)
    noisy = np.where(rng.random(200) < 0.7, truth, rng.integers(0, 7, size=200))
    pairs = {
        "independent": (rng.integers(0, 5, size=200), rng.integers(0, 7, size=200)),
        "noisy_copy": (truth, noisy),
        "permuted_copy": (truth, (truth * 3 + 1) % 5),
        "many_clusters": (rng.integers(0, 20, size=200), truth),
    }
    cases = []
    for name, (a, b) in pairs.items():
        cases.append({
            "name": name,
            "a": [int(v) for v in a],
            "b": [int(v) for v in b],
            "nmi_arithmetic": float(normalized_mutual_info_score(a, b)),
            "nmi_geometric": float(
                normalized_mutual_info_score(a, b, average_method="geometric")),
            "ari": float(adjusted_rand_score(a, b)),
            "accuracy": accuracy(a, b),
        })
    return cases


def main():
    output = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/cluster_reference.json")
    fixture = {
        "versions": {
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "sklearn": sklearn.__version__,
            "faiss": faiss.__version__,
        },
        "kmeans": kmeans_cases(),
        "pca": pca_case(),
        "metrics": metric_cases(),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(fixture) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
