#!/usr/bin/env python3
"""Compare the clustering stage of deepcluster-rs with faiss-cpu and scikit-learn.

For every N and k: D-dimensional points (Gaussian, with variances 1/(1+i) per coordinate,
from NumPy's default_rng(seed)) go through PCA to 256 dimensions with whitening and L2
normalisation, then k-means runs a fixed number of Lloyd iterations starting from the first
k reduced points. Each library runs in its own process, so that the peak memory (resident
high-water mark) is its own. faiss runs twice: with OpenMP's default wait policy and with
OMP_WAIT_POLICY=PASSIVE. Prints a Markdown table with seconds for PCA, seconds per k-means
iteration, the final objective (faiss's obj[-1]), peak memory, the ratios of each library to
faiss, and the 1-minute load average before and after each run.

faiss runs every iteration (early_stop_threshold = -1). scikit-learn runs fewer iterations
when the full count would take longer than --sklearn-budget seconds, estimated as 3 times
faiss's time, and stops by itself once no assignment changes; its row then names the count.
Its time per iteration divides by the assignment passes it made, and it reports the
objective of its final centroids, one update after faiss's obj[-1].

    python scripts/bench_faiss.py --threads 2                   # the full table
    python scripts/bench_faiss.py --sizes 5000 --ks 10,100 --dim 128 --iterations 3
    python scripts/bench_faiss.py --sizes 200000 --ks 10000 --only faiss,rust   # repeat a row

The Rust side is `cargo bench --bench kmeans`, built first with `cargo bench --no-run`.
"""

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def peak_memory_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load(path, n_points, dim):
    return np.fromfile(path, dtype="<f4").reshape(n_points, dim)


def run_faiss(args):
    import faiss

    faiss.omp_set_num_threads(args.threads)
    points = load(args.data, args.n, args.dim)
    start = time.perf_counter()
    pca = faiss.PCAMatrix(args.dim, args.pca_dim, -0.5)
    pca.train(points)
    reduced = pca.apply_py(points)
    faiss.normalize_L2(reduced)
    pca_seconds = time.perf_counter() - start

    kmeans = faiss.Clustering(args.pca_dim, args.k)
    kmeans.niter = args.iterations
    kmeans.max_points_per_centroid = 10_000_000
    # faiss 1.15 stops once the objective no longer changes; a negative threshold runs every
    # iteration, as deepcluster-rs does.
    if hasattr(kmeans, "early_stop_threshold"):
        kmeans.early_stop_threshold = -1.0
    kmeans.centroids.resize(args.k * args.pca_dim)
    faiss.copy_array_to_vector(reduced[: args.k].ravel(), kmeans.centroids)
    index = faiss.IndexFlatL2(args.pca_dim)
    start = time.perf_counter()
    kmeans.train(reduced, index)
    seconds = time.perf_counter() - start
    stats = kmeans.iteration_stats
    objective = stats.at(stats.size() - 1).obj
    return pca_seconds, seconds / stats.size(), objective, stats.size()


def run_sklearn(args):
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.threads):
        points = load(args.data, args.n, args.dim)
        start = time.perf_counter()
        reduced = PCA(args.pca_dim, whiten=True, svd_solver="covariance_eigh").fit_transform(points)
        reduced = reduced.astype(np.float32)
        reduced /= np.linalg.norm(reduced, axis=1, keepdims=True) + 1e-10
        pca_seconds = time.perf_counter() - start

        kmeans = KMeans(args.k, init=reduced[: args.k], n_init=1, max_iter=args.iterations,
                        tol=0.0, algorithm="lloyd")
        start = time.perf_counter()
        kmeans.fit(reduced)
        seconds = time.perf_counter() - start
    # scikit-learn stops early once no assignment changes; otherwise it assigns the points
    # once more after the last update. It reports the objective of its final centroids.
    passes = kmeans.n_iter_ + (1 if kmeans.n_iter_ == args.iterations else 0)
    return pca_seconds, seconds / passes, float(kmeans.inertia_), kmeans.n_iter_


def run_worker(args):
    runner = {"faiss": run_faiss, "sklearn": run_sklearn}[args.worker]
    pca_seconds, per_iteration, objective, iterations = runner(args)
    print(json.dumps({"pca_seconds": pca_seconds, "seconds_per_iteration": per_iteration,
                      "objective": objective, "iterations": iterations,
                      "peak_memory_mib": peak_memory_mib()}))


def run_rust(args, data, n_points, kernel="auto"):
    env = dict(os.environ, KMEANS_BENCH_DATA=str(data), KMEANS_BENCH_N=str(n_points),
               KMEANS_BENCH_DIM=str(args.dim), KMEANS_BENCH_PCA_DIM=str(args.pca_dim),
               KMEANS_BENCH_ITERATIONS=str(args.iterations), KMEANS_BENCH_K=str(args.k),
               KMEANS_BENCH_KERNEL=kernel, RAYON_NUM_THREADS=str(args.threads),
               MATMUL_NUM_THREADS="1")
    output = subprocess.run(["cargo", "bench", "-q", "--bench", "kmeans"], cwd=REPO, env=env,
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def run_python(args, worker, data, n_points, extra_env=None, iterations=None):
    command = [sys.executable, __file__, "--worker", worker, "--data", str(data),
               "--n", str(n_points), "--dim", str(args.dim), "--pca-dim", str(args.pca_dim),
               "--k", str(args.k), "--iterations", str(iterations or args.iterations),
               "--threads", str(args.threads)]
    env = dict(os.environ, **(extra_env or {}))
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def write_points(n_points, dim, seed):
    path = REPO / "target" / f"bench_points_{n_points}x{dim}_seed{seed}.f32"
    if not path.exists():
        rng = np.random.default_rng(seed)
        scales = (1.0 / np.sqrt(1.0 + np.arange(dim))).astype(np.float32)
        points = rng.standard_normal((n_points, dim), dtype=np.float32) * scales
        path.parent.mkdir(parents=True, exist_ok=True)
        points.astype("<f4").tofile(path)
    return path


def load_average():
    return os.getloadavg()[0]


def with_load(run):
    """Runs `run()` and adds the 1-minute load average before and after it to its result."""
    before = load_average()
    row = run()
    row["load"] = (before, load_average())
    return row


def cpu_name():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def sklearn_iterations(args, faiss_row):
    """Iterations for scikit-learn: all of them unless 3x faiss's time exceeds the budget."""
    estimate = 3.0 * faiss_row["seconds_per_iteration"]
    return max(1, min(args.iterations, math.floor(args.sklearn_budget / estimate)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50000,200000", help="comma-separated N values")
    parser.add_argument("--ks", default="100,1000,10000", help="comma-separated k values")
    parser.add_argument("--dim", type=int, default=1024, help="input dimension D")
    parser.add_argument("--pca-dim", type=int, default=256, help="PCA output dimension")
    parser.add_argument("--iterations", type=int, default=10, help="Lloyd iterations")
    parser.add_argument("--threads", type=int, default=2, help="threads for every library")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the generated points")
    parser.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn")
    parser.add_argument("--sklearn-budget", type=float, default=600.0,
                        help="seconds scikit-learn may take per row, estimated as 3x faiss")
    parser.add_argument("--only", default="faiss,faiss-passive,rust,sklearn",
                        help="comma-separated libraries to run: faiss, faiss-passive, rust, "
                             "rust-f32 (the f32 kernel), sklearn (ratios need faiss)")
    parser.add_argument("--worker", choices=["faiss", "sklearn"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
        return

    libraries = set(args.only.split(","))
    if args.no_sklearn:
        libraries.discard("sklearn")
    subprocess.run(["cargo", "bench", "--no-run", "-q", "--bench", "kmeans"], cwd=REPO,
                   check=True)
    import faiss
    import sklearn

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    print(f"D={args.dim} -> PCA {args.pca_dim} whitened, {args.iterations} iterations, "
          f"{args.threads} threads, {cpu_name()}, faiss {faiss.__version__}, "
          f"scikit-learn {sklearn.__version__}, commit {commit}")
    print("| N | k | library | PCA s | s / iteration | objective | peak MiB | "
          "time / faiss | objective / faiss | load before, after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n_points in [int(n) for n in args.sizes.split(",")]:
        data = write_points(n_points, args.dim, args.seed)
        for k in [int(k) for k in args.ks.split(",")]:
            args.k = k
            rows = []
            if "faiss" in libraries:
                rows.append(("faiss", with_load(lambda: run_python(args, "faiss", data,
                                                                     n_points))))
            if "faiss-passive" in libraries:
                passive = {"OMP_WAIT_POLICY": "PASSIVE"}
                rows.append(("faiss, `OMP_WAIT_POLICY=PASSIVE`",
                             with_load(lambda: run_python(args, "faiss", data, n_points,
                                                          passive))))
            if "rust" in libraries:
                rows.append(("deepcluster-rs", with_load(lambda: run_rust(args, data,
                                                                          n_points))))
            if "rust-f32" in libraries:
                rows.append(("deepcluster-rs, f32 kernel",
                             with_load(lambda: run_rust(args, data, n_points, "f32"))))
            faiss_row = rows[0][1] if rows and rows[0][0] == "faiss" else None
            if "sklearn" in libraries:
                iterations = (sklearn_iterations(args, faiss_row) if faiss_row
                              else args.iterations)
                row = with_load(lambda: run_python(args, "sklearn", data, n_points,
                                                   iterations=iterations))
                name = "scikit-learn"
                if iterations < args.iterations:
                    name += f" ({iterations} iterations to fit the time budget)"
                elif row["iterations"] < iterations:
                    name += f" (converged after {row['iterations']} iterations)"
                rows.append((name, row))
            for name, row in rows:
                if faiss_row:
                    ratio = row["seconds_per_iteration"] / faiss_row["seconds_per_iteration"]
                    time_ratio = f"{ratio:.2f}"
                    objective_ratio = f"{row['objective'] / faiss_row['objective']:.5f}"
                else:
                    time_ratio = objective_ratio = "-"
                load_before, load_after = row["load"]
                print(f"| {n_points:,} | {k:,} | {name} | {row['pca_seconds']:.2f} | "
                      f"{row['seconds_per_iteration']:.4f} | {row['objective']:.6g} | "
                      f"{row['peak_memory_mib']:.0f} | {time_ratio} | {objective_ratio} | "
                      f"{load_before:.2f}, {load_after:.2f} |", flush=True)


if __name__ == "__main__":
    main()
