"""Item-kNN recommender by co-reading: fitting, recommending, saving and loading.

Owns the model format (``FORMAT``): a dict saved with joblib holding

- ``books``: the sorted book ids seen in training (int64);
- ``neighbors`` / ``scores``: for each book (row i is ``books[i]``), its ``top_k`` most similar
  books as row indices into ``books`` (-1 pads a shorter list) and their cosine similarities,
  most similar first, ties broken by the smaller book id;
- ``params``: the hyperparameters and split it was trained with (``seed``, ``top_k``,
  ``min_cooccurrence``, ``test_fraction``) and ``dataset_uri``;
- ``stats``: users, books and events it saw.

Similarity of books a and b is the cosine of their reader vectors; a pair read together by
fewer than ``min_cooccurrence`` users gets none. A model is a pure function of its inputs
(no clock, no randomness): the same data and parameters give the same bytes.
"""

from __future__ import annotations

import io

import joblib
import numpy as np
from scipy import sparse
from sklearn.metrics.pairwise import cosine_similarity

FORMAT = "bookstore-itemknn/1"


class ModelError(Exception):
    """A model that cannot be built or read; the message names the field or file."""


def fit(events: np.ndarray, top_k: int, min_cooccurrence: int) -> dict:
    """Fits the neighbour lists from ``(user, book)`` events (see the module docs)."""
    if top_k < 1:
        raise ModelError(f"top_k: expected an integer >= 1, got {top_k}")
    if min_cooccurrence < 1:
        raise ModelError(f"min_cooccurrence: expected an integer >= 1, got {min_cooccurrence}")
    if len(events) == 0:
        raise ModelError("events: expected at least one reading event, got none")
    users, user_idx = np.unique(events[:, 0], return_inverse=True)
    books, book_idx = np.unique(events[:, 1], return_inverse=True)
    x = sparse.csr_matrix(
        (np.ones(len(events), dtype=np.float64), (user_idx, book_idx)),
        shape=(len(users), len(books)),
    )
    x.data[:] = 1.0  # duplicate events count once
    co = (x.T @ x).toarray()
    sim = cosine_similarity(x.T, dense_output=True)
    sim[co < min_cooccurrence] = 0.0
    np.fill_diagonal(sim, 0.0)
    k = min(top_k, len(books) - 1) if len(books) > 1 else 0
    neighbors = np.full((len(books), top_k), -1, dtype=np.int32)
    scores = np.zeros((len(books), top_k), dtype=np.float32)
    order_ids = np.arange(len(books))
    for i in range(len(books)):
        # Highest similarity first; equal similarities by the smaller book id.
        order = np.lexsort((order_ids, -sim[i]))[:k]
        order = order[sim[i, order] > 0.0]
        neighbors[i, : len(order)] = order
        scores[i, : len(order)] = sim[i, order]
    return {
        "format": FORMAT,
        "books": books.astype(np.int64),
        "neighbors": neighbors,
        "scores": scores,
        "params": {"top_k": int(top_k), "min_cooccurrence": int(min_cooccurrence)},
        "stats": {"users": int(len(users)), "books": int(len(books)), "events": int(len(events))},
    }


def similar(model: dict, book: int, n: int) -> list[tuple[int, float]]:
    """The at most ``n`` books most similar to ``book`` (empty when it is unknown)."""
    books = model["books"]
    i = int(np.searchsorted(books, book))
    if i >= len(books) or books[i] != book:
        return []
    out = []
    for j, s in zip(model["neighbors"][i], model["scores"][i]):
        if j < 0 or len(out) >= n:
            break
        out.append((int(books[j]), float(s)))
    return out


def knows(model: dict, book: int) -> bool:
    """Whether ``book`` was in the training data."""
    books = model["books"]
    i = int(np.searchsorted(books, book))
    return i < len(books) and books[i] == book


def recommend(model: dict, read: list[int], n: int) -> list[tuple[int, float]]:
    """Top ``n`` unread books for a reader of ``read``: neighbour similarities summed."""
    books = model["books"]
    total = np.zeros(len(books), dtype=np.float64)
    read_idx = []
    for b in read:
        i = int(np.searchsorted(books, b))
        if i < len(books) and books[i] == b:
            read_idx.append(i)
            nb = model["neighbors"][i]
            ok = nb >= 0
            np.add.at(total, nb[ok], model["scores"][i][ok])
    total[read_idx] = 0.0
    order = np.lexsort((np.arange(len(books)), -total))
    return [(int(books[j]), float(total[j])) for j in order[:n] if total[j] > 0.0]


def save(model: dict, path: str) -> None:
    """Writes ``model`` to ``path`` with joblib (compressed)."""
    joblib.dump(model, path, compress=3)


def loads(blob: bytes, source: str) -> dict:
    """A model from joblib bytes; ``source`` names it in errors."""
    try:
        model = joblib.load(io.BytesIO(blob))
    except Exception as e:  # joblib raises many kinds for a bad file
        raise ModelError(f"{source}: not a joblib model: {type(e).__name__}: {e}") from None
    if not isinstance(model, dict) or model.get("format") != FORMAT:
        found = model.get("format") if isinstance(model, dict) else type(model).__name__
        raise ModelError(f"{source}: format: expected {FORMAT!r}, got {found!r}")
    return model


def load(path: str) -> dict:
    """A model from a file written by ``save``."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise ModelError(f"{path}: cannot read: {e.strerror}") from None
    return loads(blob, path)
