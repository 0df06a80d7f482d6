#!/usr/bin/env python3
"""Prints one Markdown table row per run folder scored by scripts/results_row.sh.

Columns, as in the lever tables of docs/results.md: run, the arguments given, training minutes,
k = 10 NMI / accuracy on the test split for fc7 and for the best layer, and the best layer's
linear probe. A line on stderr gives the baselines measured beside it: the random network's best
layer and probe, and the probe on raw pixels.

With --per-epoch, prints instead one row per epoch of each run from its metrics.jsonl: learning
rate, loss, NMI of the assignment against the labels and against the previous epoch's, cluster
sizes and seconds.
"""
import argparse
import json
import pathlib
import sys


def load(path):
    with open(path) as file:
        return json.load(file)


def cluster_scores(run):
    """Returns {layer: (nmi, accuracy)} of the trained network, and the random network's."""
    trained, random = {}, {}
    for path in sorted((run / "eval").glob("test-cluster-*.json")):
        record = load(path)
        for row in record["rows"]:
            scores = (row["nmi"], row["accuracy"])
            if row["name"].startswith("trained"):
                trained[record["layer"]] = scores
            elif row["name"].startswith("random"):
                random[record["layer"]] = scores
    return trained, random


def linear_scores(run):
    """Returns the best top-1 of the linear probe, with its layer, for the trained network, the
    random network and the pixels."""
    path = run / "eval" / "test-linear.json"
    if not path.exists():
        return None, None, None
    best = {}
    for row in load(path)["rows"]:
        current = best.get(row["model"])
        if current is None or row["top1"] > current[0]:
            best[row["model"]] = (row["top1"], row["layer"])
    return best.get("trained"), best.get("random"), best.get("pixels")


def print_epochs(run):
    print("| epoch | learning rate | loss | NMI vs labels | NMI vs previous | cluster sizes | seconds |")
    print("|---|---|---|---|---|---|---|")
    with open(run / "metrics.jsonl") as file:
        for line in file:
            record = json.loads(line)
            labels = record.get("labels") or {}
            nmi = f"{labels['nmi']:.3f}" if "nmi" in labels else "–"
            previous = record.get("nmi_previous")
            previous = f"{previous:.3f}" if previous is not None else "–"
            sizes = record["cluster_sizes"]
            print(
                f"| {record['epoch']} | {record['learning_rate']:.4f} | {record['loss']:.3f} | {nmi} "
                f"| {previous} | {sizes['min']}–{sizes['max']} | {record['seconds']['total']:.0f} |"
            )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, epilog="Arguments after `--` are printed as the row's command."
    )
    parser.add_argument("--minutes", type=float, help="training time in seconds, printed in minutes")
    parser.add_argument("--per-epoch", action="store_true", help="print each run's epochs instead")
    parser.add_argument("runs", nargs="+", type=pathlib.Path)
    argv = sys.argv[1:]
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.per_epoch:
        for run in args.runs:
            print_epochs(run)
        return
    for run in args.runs:
        epochs = sum(1 for _ in open(run / "metrics.jsonl"))
        trained, random = cluster_scores(run)
        fc7 = trained.get("fc7", (float("nan"), float("nan")))
        layer, (nmi, accuracy) = max(trained.items(), key=lambda item: item[1][0])
        random_best = max(random.values(), key=lambda scores: scores[0], default=(0.0, 0.0))
        linear, linear_random, linear_pixels = linear_scores(run)
        minutes = f"{args.minutes / 60:.0f}" if args.minutes else "–"
        linear_text = f"{linear[0]:.3f} ({linear[1]})" if linear else "–"
        random_text = f"{linear_random[0]:.3f}" if linear_random else "–"
        pixels_text = f"{linear_pixels[0]:.3f}" if linear_pixels else "–"
        options = f"`{' '.join(rest)}`" if rest else "(none)"
        print(
            f"| {run.name} | {options} | {minutes} | {fc7[0]:.3f} / {fc7[1]:.3f} "
            f"| {nmi:.3f} / {accuracy:.3f} ({layer}) | {linear_text} |"
        )
        print(
            f"{run.name}, {epochs} epochs: random network {random_best[0]:.3f} / "
            f"{random_best[1]:.3f}, probe {random_text}; pixels probe {pixels_text}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
