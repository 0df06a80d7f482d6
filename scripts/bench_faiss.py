#!/usr/bin/env python3
"""Time faiss k-means iterations on the data used by `benches/kmeans.rs`.

N = 50,000 points uniform in [0, 1) from NumPy's default_rng(1234), D = 256, k = 1,000,
starting from the first k points, 5 iterations. Writes the points as raw little-endian f32
to the given path (default target/kmeans_bench_points.f32) so that the Rust benchmark can
time identical data:

    python scripts/bench_faiss.py --threads 2
    KMEANS_BENCH_DATA=target/kmeans_bench_points.f32 RAYON_NUM_THREADS=2 \
        cargo bench --bench kmeans
"""

import argparse
import time
from pathlib import Path

import faiss
import numpy as np

N_POINTS, DIM, N_CLUSTERS, N_ITERATIONS = 50_000, 256, 1_000, 5


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="OpenMP threads for faiss")
    parser.add_argument("--output", default="target/kmeans_bench_points.f32",
                        help="file that receives the points (raw little-endian f32)")
    args = parser.parse_args()

    faiss.omp_set_num_threads(args.threads)
    points = np.random.default_rng(1234).random((N_POINTS, DIM), dtype=np.float32)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    points.astype("<f4").tofile(args.output)

    km = faiss.Kmeans(DIM, N_CLUSTERS, niter=N_ITERATIONS, max_points_per_centroid=N_POINTS,
                      verbose=False)
    start = time.perf_counter()
    km.train(points, init_centroids=points[:N_CLUSTERS].copy())
    total = time.perf_counter() - start
    # faiss records the time since training started at the end of each iteration.
    cumulative = [s["time"] for s in km.iteration_stats]
    per_iteration = np.diff([0.0] + cumulative)
    print(f"N={N_POINTS} D={DIM} k={N_CLUSTERS} threads={args.threads} faiss {faiss.__version__}")
    print("iteration seconds:", [round(float(s), 3) for s in per_iteration])
    print(f"mean seconds/iteration: {total / N_ITERATIONS:.4f}")
    print(f"final objective: {km.obj[-1]:.6e}")


if __name__ == "__main__":
    main()
