"""serve.py: loads the model from MODEL_URI and answers over real HTTP on loopback."""

import json
import os
import tempfile
import threading
import unittest
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer

import data
import model as knn
import serve


class ServeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.path = os.path.join(cls.dir.name, "model.joblib")
        m = knn.fit(data.load("gen://bookstore?users=200&books=40&clusters=2&seed=3"), 5, 1)
        knn.save(m, cls.path)
        cls.model = m
        served = serve.Served(serve.fetch("file://" + cls.path), "file://" + cls.path,
                              "recommender", "4")
        cls.httpd = ThreadingHTTPServer(("127.0.0.1", 0), serve.handler_for(served))
        cls.thread = threading.Thread(target=cls.httpd.serve_forever, daemon=True)
        cls.thread.start()
        cls.base = f"http://127.0.0.1:{cls.httpd.server_address[1]}"

    @classmethod
    def tearDownClass(cls):
        cls.httpd.shutdown()
        cls.httpd.server_close()
        cls.thread.join(timeout=5)
        cls.dir.cleanup()

    def get(self, path):
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as r:
                return r.status, r.headers, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, e.headers, json.load(e)

    def test_healthz_reports_the_version(self):
        status, headers, body = self.get("/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(body["version"], "4")
        self.assertEqual(body["model"], "recommender")
        self.assertEqual(len(body["sha256"]), 64)
        self.assertEqual(headers["X-Model-Version"], "4")

    def test_recommendations_are_the_models_neighbours(self):
        status, _, body = self.get("/recommendations?book=3&n=4")
        self.assertEqual(status, 200)
        want = [b for b, _ in knn.similar(self.model, 3, 4)]
        self.assertEqual([r["book"] for r in body["recommendations"]], want)
        self.assertEqual(len(want), 4)
        self.assertEqual(body["version"], "4")

    def test_errors_name_the_parameter(self):
        self.assertEqual(self.get("/recommendations?book=x")[0], 400)
        status, _, body = self.get("/recommendations?book=1&n=0")
        self.assertEqual(status, 400)
        self.assertIn("n: expected", body["error"])
        status, _, body = self.get("/recommendations?book=4000")
        self.assertEqual(status, 404)
        self.assertIn("book 4000 is not in model recommender version 4", body["error"])
        self.assertEqual(self.get("/nope")[0], 404)

    def test_bad_model_uri(self):
        with self.assertRaisesRegex(knn.ModelError, "unsupported scheme 's3'"):
            serve.fetch("s3://models/recommender/1")
        with self.assertRaisesRegex(knn.ModelError, "cannot read"):
            serve.fetch("/nonexistent/model.joblib")


if __name__ == "__main__":
    unittest.main()
