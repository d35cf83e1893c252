"""Book co-reading data for the bookstore example.

Owns the dataset format and its sources, and the held-out split every step agrees on:

- A dataset is a list of reading events ``(user, book)``, both non-negative integers, each pair
  at most once. As a file it is CSV with the header ``user,book``.
- ``load(uri)`` reads one from ``gen://bookstore?users=..&books=..&clusters=..&seed=..`` (the
  deterministic generator: same parameters, same events), ``file:///path.csv`` or a plain path,
  or ``http(s)://...csv`` (bounded in time and size).
- ``split_users(users, seed, test_fraction)`` picks the held-out users; train and eval call it
  with the parameters stored in the model, so they never disagree.

Errors are ``DataError`` with a message naming the URI and the field or line at fault.
"""

from __future__ import annotations

import csv
import io
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

#: Defaults of the generator (2,000 users, 300 books, 6 co-reading clusters).
GEN_DEFAULTS = {"users": 2000, "books": 300, "clusters": 6, "seed": 7}
#: Downloads are bounded: at most this many bytes, this many seconds.
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 30


class DataError(Exception):
    """A dataset that cannot be read or makes no sense; the message names URI and field."""


def generate(users: int = 2000, books: int = 300, clusters: int = 6, seed: int = 7) -> np.ndarray:
    """Reading events of ``users`` readers over ``books`` books in ``clusters`` genres.

    Each reader has one favourite genre and reads 8 to 24 books, 85 % of them from that genre
    (popular books more often: Zipf-like weights within a genre), the rest from anywhere.
    Returns an ``(n, 2)`` int64 array of unique ``(user, book)`` pairs sorted by user, then book.
    """
    if users < 1 or books < 2 or clusters < 1 or clusters > books:
        raise DataError(
            f"gen: expected users >= 1, books >= 2 and 1 <= clusters <= books, "
            f"got users={users} books={books} clusters={clusters}"
        )
    rng = np.random.default_rng(seed)
    genre = (np.arange(books) * clusters) // books
    members = [np.flatnonzero(genre == g) for g in range(clusters)]
    weights = []
    for m in members:
        w = 1.0 / np.power(np.arange(1, len(m) + 1), 0.8)
        weights.append(w / w.sum())
    events = []
    for u in range(users):
        g = int(rng.integers(clusters))
        n = int(rng.integers(8, 25))
        n_fav = int(round(n * 0.85))
        fav = rng.choice(members[g], size=min(n_fav, len(members[g])), replace=False, p=weights[g])
        other = rng.integers(0, books, size=n - len(fav))
        for b in np.unique(np.concatenate([fav, other])):
            events.append((u, int(b)))
    return np.asarray(events, dtype=np.int64)


def _gen_from_uri(uri: str, parsed: urllib.parse.ParseResult) -> np.ndarray:
    if parsed.netloc != "bookstore":
        raise DataError(f"{uri}: expected gen://bookstore?..., got host {parsed.netloc!r}")
    params = dict(GEN_DEFAULTS)
    for key, values in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items():
        if key not in params:
            raise DataError(f"{uri}: unknown parameter {key!r} (expected one of {sorted(params)})")
        try:
            params[key] = int(values[-1])
        except ValueError:
            raise DataError(f"{uri}: parameter {key!r} expects an integer, got {values[-1]!r}") from None
    try:
        return generate(**params)
    except DataError as e:
        raise DataError(f"{uri}: {e}") from None


def parse_csv(text: str, source: str) -> np.ndarray:
    """Events from CSV text with the header ``user,book``; ``source`` names it in errors."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != ["user", "book"]:
        raise DataError(f"{source}: line 1: expected the header 'user,book', got {header!r}")
    events = set()
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise DataError(f"{source}: line {lineno}: expected 2 fields (user,book), got {len(row)}")
        try:
            user, book = int(row[0]), int(row[1])
        except ValueError:
            raise DataError(f"{source}: line {lineno}: user and book must be integers, got {row!r}") from None
        if user < 0 or book < 0:
            raise DataError(f"{source}: line {lineno}: user and book must be >= 0, got {row!r}")
        events.add((user, book))
    if not events:
        raise DataError(f"{source}: no reading events")
    return np.asarray(sorted(events), dtype=np.int64)


def to_csv(events: np.ndarray) -> str:
    """The CSV form of ``events`` (what ``parse_csv`` reads back)."""
    lines = ["user,book"] + [f"{int(u)},{int(b)}" for u, b in events]
    return "\n".join(lines) + "\n"


def _download(uri: str) -> str:
    try:
        with urllib.request.urlopen(uri, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            body = resp.read(MAX_DOWNLOAD_BYTES + 1)
    except (urllib.error.URLError, OSError) as e:
        raise DataError(f"{uri}: download failed: {e}") from None
    if len(body) > MAX_DOWNLOAD_BYTES:
        raise DataError(f"{uri}: larger than {MAX_DOWNLOAD_BYTES} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{uri}: not UTF-8 text") from None


def load(uri: str) -> np.ndarray:
    """The events the dataset URI names (see the module docs for the schemes)."""
    if not uri:
        raise DataError("dataset-uri: expected a URI (gen://, file://, http(s):// or a path), got ''")
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "gen":
        return _gen_from_uri(uri, parsed)
    if parsed.scheme in ("http", "https"):
        return parse_csv(_download(uri), uri)
    if parsed.scheme in ("file", ""):
        path = urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else uri
        try:
            with open(path, encoding="utf-8") as f:
                return parse_csv(f.read(), uri)
        except OSError as e:
            raise DataError(f"{uri}: cannot read: {e.strerror}") from None
    raise DataError(f"{uri}: unsupported scheme {parsed.scheme!r} (expected gen, file, http or https)")


def split_users(users: np.ndarray, seed: int, test_fraction: float) -> np.ndarray:
    """The sorted held-out users among ``users`` (a deterministic function of its arguments)."""
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction: expected a number in (0, 1), got {test_fraction}")
    unique = np.unique(users)
    rng = np.random.default_rng(seed + 1)
    n_test = int(round(len(unique) * test_fraction))
    return np.sort(rng.permutation(unique)[:n_test])
