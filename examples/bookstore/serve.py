"""``serve``: answers recommendations from the model version it was deployed with.

    MODEL_URI=file:///models/model.joblib MODEL_VERSION=3 MODEL_NAME=recommender python3 serve.py

The model is loaded once at start from ``MODEL_URI`` (a path, ``file://`` or ``http(s)://``;
an HTTP fetch sends ``Authorization: Bearer`` with the contents of ``MODEL_TOKEN_FILE`` when
set, and is bounded in time and size); a model that cannot be loaded ends the process with a
message naming the URI, so the Deployment never turns Ready on a bad promotion.

Routes (JSON):

- ``GET /healthz``: ``{"status": "ok", "model": NAME, "version": VERSION, "sha256": ...}``;
- ``GET /recommendations?book=<id>[&n=<1..100>]``: the books most read together with ``book``,
  with the model name, version and sha256 that produced them (also in ``X-Model-Version``);
  400 names the bad parameter, 404 an unknown book or path.

``PORT`` (8080) and ``HOST`` (0.0.0.0) set the listener. Nothing is written to disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import model as knn

MAX_MODEL_BYTES = 512 * 1024 * 1024
FETCH_TIMEOUT_S = 60
MAX_N = 100


def fetch(uri: str, token_file: str | None = None) -> bytes:
    """The bytes at ``uri`` (see the module docs); raises ``knn.ModelError`` naming it."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else uri
        try:
            with open(path, "rb") as f:
                return f.read(MAX_MODEL_BYTES + 1)
        except OSError as e:
            raise knn.ModelError(f"MODEL_URI {uri}: cannot read: {e.strerror}") from None
    if parsed.scheme in ("http", "https"):
        req = urllib.request.Request(uri)
        if token_file:
            try:
                with open(token_file, encoding="utf-8") as f:
                    req.add_header("Authorization", "Bearer " + f.read().strip())
            except OSError as e:
                raise knn.ModelError(f"MODEL_TOKEN_FILE {token_file}: cannot read: {e.strerror}") from None
        try:
            with urllib.request.urlopen(req, timeout=FETCH_TIMEOUT_S) as resp:
                blob = resp.read(MAX_MODEL_BYTES + 1)
        except (urllib.error.URLError, OSError) as e:
            raise knn.ModelError(f"MODEL_URI {uri}: fetch failed: {e}") from None
        if len(blob) > MAX_MODEL_BYTES:
            raise knn.ModelError(f"MODEL_URI {uri}: larger than {MAX_MODEL_BYTES} bytes")
        return blob
    raise knn.ModelError(f"MODEL_URI {uri}: unsupported scheme {parsed.scheme!r} "
                         "(expected a path, file, http or https)")


class Served:
    """The loaded model and what identifies it."""

    def __init__(self, blob: bytes, uri: str, name: str, version: str):
        self.model = knn.loads(blob, f"MODEL_URI {uri}")
        self.sha256 = hashlib.sha256(blob).hexdigest()
        self.uri, self.name, self.version = uri, name, version

    def identity(self) -> dict:
        return {"model": self.name, "version": self.version, "sha256": self.sha256}


def handler_for(served: Served) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``served``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "bookstore-serve"

        def _json(self, status: int, body: dict) -> None:
            raw = (json.dumps(body, sort_keys=True) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("X-Model-Version", served.version)
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            if url.path == "/healthz":
                return self._json(200, {"status": "ok", **served.identity()})
            if url.path != "/recommendations":
                return self._json(404, {"error": f"no route {url.path}"})
            try:
                book = int(query.get("book", [""])[-1])
            except ValueError:
                return self._json(400, {"error": "book: expected an integer book id"})
            try:
                n = int(query.get("n", ["10"])[-1])
            except ValueError:
                n = 0
            if not 1 <= n <= MAX_N:
                return self._json(400, {"error": f"n: expected an integer in 1..{MAX_N}"})
            if not knn.knows(served.model, book):
                return self._json(404, {"error": f"book {book} is not in model "
                                                 f"{served.name} version {served.version}"})
            recs = [{"book": b, "score": round(s, 6)} for b, s in knn.similar(served.model, book, n)]
            return self._json(200, {"book": book, "recommendations": recs, **served.identity()})

        def log_message(self, fmt: str, *args) -> None:
            sys.stderr.write("serve: %s %s\n" % (self.address_string(), fmt % args))

    return Handler


def main() -> int:
    uri = os.environ.get("MODEL_URI", "")
    if not uri:
        print("serve: MODEL_URI is not set (expected the model's path or URL)", file=sys.stderr)
        return 2
    try:
        port = int(os.environ.get("PORT", "8080"))
        served = Served(fetch(uri, os.environ.get("MODEL_TOKEN_FILE")), uri,
                        os.environ.get("MODEL_NAME", "recommender"),
                        os.environ.get("MODEL_VERSION", "unknown"))
    except ValueError:
        print(f"serve: PORT: expected a port number, got {os.environ.get('PORT')!r}", file=sys.stderr)
        return 2
    except knn.ModelError as e:
        print(f"serve: {e}", file=sys.stderr)
        return 1
    httpd = ThreadingHTTPServer((os.environ.get("HOST", "0.0.0.0"), port), handler_for(served))
    print(f"serve: {served.name} version {served.version} (sha256 {served.sha256[:12]}) "
          f"from {uri} on port {port}", file=sys.stderr, flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
