"""``train``: fits the item-kNN model on the training users of a dataset.

    python3 train.py --dataset-uri URI [--seed 7] [--top-k 20] [--min-cooccurrence 2]
                     [--test-fraction 0.2] [--out-dir /tmp/out]

Writes ``<out-dir>/model.joblib`` and ``<out-dir>/summary.json`` (parameters, data sizes, the
model's sha256), prints the summary, and exits 2 with a message naming the field on bad input.
The held-out users (``data.split_users`` with ``seed`` and ``test_fraction``) are left out;
the model records both so ``eval`` holds out the same users.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np

import data
import model as knn


def run(dataset_uri: str, seed: int, top_k: int, min_cooccurrence: int,
        test_fraction: float, out_dir: str) -> dict:
    """Trains and writes the model and summary; returns the summary."""
    events = data.load(dataset_uri)
    test_users = data.split_users(events[:, 0], seed, test_fraction)
    train_events = events[~np.isin(events[:, 0], test_users)]
    m = knn.fit(train_events, top_k, min_cooccurrence)
    m["params"].update({"seed": int(seed), "test_fraction": float(test_fraction),
                        "dataset_uri": dataset_uri})
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "model.joblib")
    knn.save(m, path)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    summary = {
        "model": "model.joblib",
        "sha256": digest,
        "format": knn.FORMAT,
        "params": m["params"],
        "train": m["stats"],
        "held_out_users": int(len(test_users)),
    }
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="train", description=__doc__.splitlines()[0])
    p.add_argument("--dataset-uri", required=True)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--min-cooccurrence", type=int, default=2)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--out-dir", default="/tmp/out")
    a = p.parse_args(argv)
    try:
        summary = run(a.dataset_uri, a.seed, a.top_k, a.min_cooccurrence, a.test_fraction, a.out_dir)
    except (data.DataError, knn.ModelError) as e:
        print(f"train: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
