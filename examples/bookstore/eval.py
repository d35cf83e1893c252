"""``eval``: hit-rate@k of a trained model on its held-out users, and the release gate.

    python3 eval.py --model model.joblib --dataset-uri URI [--k 10] [--min-score 0.2]
                    [--score-file /tmp/out/score] [--report /tmp/out/eval.json]

For each held-out user (the split recorded in the model) with at least two books, one book
chosen with the model's seed is hidden and the others are the query; a hit is the hidden book
among the top ``k`` recommendations. ``score`` = hits / users evaluated, written with four
decimals to ``--score-file`` (the pipeline's output parameter) and, with the details, to
``--report``. Exit status: 0 when ``score >= min_score``; 1 with a message naming both
numbers when it is below (the gate); 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

import data
import model as knn


class GateError(Exception):
    """The score is below ``min_score``."""


def score(m: dict, events: np.ndarray, k: int) -> dict:
    """Hit-rate@k of ``m`` on the held-out users of ``events`` (see the module docs)."""
    if k < 1:
        raise knn.ModelError(f"k: expected an integer >= 1, got {k}")
    params = m["params"]
    test_users = data.split_users(events[:, 0], params["seed"], params["test_fraction"])
    held = events[np.isin(events[:, 0], test_users)]
    rng = np.random.default_rng(params["seed"] + 2)
    hits = evaluated = 0
    for u in test_users:
        read = held[held[:, 0] == u, 1]
        if len(read) < 2:
            continue
        hidden = int(read[rng.integers(len(read))])
        query = [int(b) for b in read if b != hidden]
        top = [b for b, _ in knn.recommend(m, query, k)]
        hits += hidden in top
        evaluated += 1
    if evaluated == 0:
        raise data.DataError("held-out users: none has two or more books to evaluate")
    return {"metric": f"hit_rate@{k}", "score": round(hits / evaluated, 4),
            "hits": hits, "users": evaluated}


def gate(result: dict, min_score: float) -> None:
    """Raises ``GateError`` when the score is below ``min_score``."""
    if result["score"] < min_score:
        raise GateError(
            f"{result['metric']} = {result['score']:.4f} is below min_score {min_score}: "
            f"the model must not be registered"
        )


def _write(path: str, text: str) -> None:
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="eval", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--dataset-uri", required=True)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--min-score", type=float, default=0.2)
    p.add_argument("--score-file", default="/tmp/out/score")
    p.add_argument("--report", default="/tmp/out/eval.json")
    a = p.parse_args(argv)
    try:
        m = knn.load(a.model)
        result = score(m, data.load(a.dataset_uri), a.k)
    except (data.DataError, knn.ModelError) as e:
        print(f"eval: {e}", file=sys.stderr)
        return 2
    result["min_score"] = a.min_score
    _write(a.score_file, f"{result['score']:.4f}")
    _write(a.report, json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, sort_keys=True))
    try:
        gate(result, a.min_score)
    except GateError as e:
        print(f"eval: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
