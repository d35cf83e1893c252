"""model.py, train.py and eval.py on a small generated dataset."""

import io
import json
import os
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

import numpy as np

import data
import eval as eval_step
import model as knn
import train

def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


SMALL = "gen://bookstore?users=400&books=60&clusters=3&seed=11"


class ModelTest(unittest.TestCase):
    def test_neighbours_by_cosine_with_the_cooccurrence_floor(self):
        # Books 0 and 1 are read together by three users, 0 and 2 by one.
        ev = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1], [3, 0], [3, 2]])
        m = knn.fit(ev, top_k=2, min_cooccurrence=2)
        self.assertEqual(knn.similar(m, 0, 5), [(1, m["scores"][0][0])])
        self.assertAlmostEqual(knn.similar(m, 0, 5)[0][1], 3 / np.sqrt(4 * 3), places=6)
        self.assertEqual(knn.similar(m, 2, 5), [])  # only one co-reader: below the floor
        loose = knn.fit(ev, top_k=2, min_cooccurrence=1)
        self.assertEqual([b for b, _ in knn.similar(loose, 0, 5)], [1, 2])

    def test_recommend_skips_read_books_and_unknown_ones(self):
        m = knn.fit(data.load(SMALL), top_k=10, min_cooccurrence=1)
        recs = knn.recommend(m, [0, 1, 999], 5)
        self.assertEqual(len(recs), 5)
        self.assertFalse({0, 1} & {b for b, _ in recs})
        self.assertEqual(recs, sorted(recs, key=lambda r: (-r[1], r[0])))

    def test_bad_hyperparameters(self):
        ev = np.array([[0, 0], [0, 1]])
        with self.assertRaisesRegex(knn.ModelError, "top_k: expected an integer >= 1, got 0"):
            knn.fit(ev, 0, 1)
        with self.assertRaisesRegex(knn.ModelError, "min_cooccurrence"):
            knn.fit(ev, 3, 0)

    def test_a_file_that_is_not_a_model(self):
        with self.assertRaisesRegex(knn.ModelError, "not a joblib model"):
            knn.loads(b"hello", "x")
        buf = io.BytesIO()
        knn.joblib.dump({"format": "other"}, buf)
        with self.assertRaisesRegex(knn.ModelError, "format: expected 'bookstore-itemknn/1'"):
            knn.loads(buf.getvalue(), "x")


class TrainEvalTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.out = self.dir.name

    def tearDown(self):
        self.dir.cleanup()

    def _train(self, *extra):
        with redirect_stdout(io.StringIO()):
            rc = train.main(["--dataset-uri", SMALL, "--top-k", "15", "--out-dir", self.out, *extra])
        self.assertEqual(rc, 0)
        return os.path.join(self.out, "model.joblib")

    def _eval(self, path, min_score):
        err = io.StringIO()
        with redirect_stdout(io.StringIO()), redirect_stderr(err):
            rc = eval_step.main(["--model", path, "--dataset-uri", SMALL, "--k", "10",
                                 "--min-score", str(min_score),
                                 "--score-file", os.path.join(self.out, "score"),
                                 "--report", os.path.join(self.out, "eval.json")])
        return rc, err.getvalue()

    def test_train_is_reproducible_and_leaves_the_held_out_users_out(self):
        path = self._train()
        with open(path, "rb") as f:
            first = f.read()
        summary = json.loads(read(os.path.join(self.out, "summary.json")))
        self.assertEqual(summary["params"]["seed"], 7)
        self.assertEqual(summary["params"]["top_k"], 15)
        self.assertEqual(summary["held_out_users"], 80)
        self.assertEqual(summary["train"]["users"], 320)
        self._train()
        with open(path, "rb") as f:
            self.assertEqual(f.read(), first)

    def test_eval_scores_well_above_chance_and_passes_the_gate(self):
        rc, err = self._eval(self._train(), 0.2)
        self.assertEqual(rc, 0, err)
        score = float(read(os.path.join(self.out, "score")))
        # Chance is 10 of ~59 unread books weighted by nothing: about 0.17.
        self.assertGreater(score, 0.4)
        report = json.loads(read(os.path.join(self.out, "eval.json")))
        self.assertEqual(report["metric"], "hit_rate@10")
        self.assertEqual(report["users"], 80)

    def test_eval_gate_fails_with_both_numbers(self):
        rc, err = self._eval(self._train(), 1.1)
        self.assertEqual(rc, 1)
        self.assertRegex(err, r"hit_rate@10 = 0\.\d{4} is below min_score 1\.1")
        self.assertTrue(os.path.exists(os.path.join(self.out, "score")))

    def test_bad_dataset_exits_2_naming_it(self):
        err = io.StringIO()
        with redirect_stderr(err):
            rc = train.main(["--dataset-uri", "s3://b/k", "--out-dir", self.out])
        self.assertEqual(rc, 2)
        self.assertIn("s3://b/k: unsupported scheme", err.getvalue())


if __name__ == "__main__":
    unittest.main()
