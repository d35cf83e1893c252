"""data.py: the generator is deterministic and clustered; loading by URI; the split."""

import os
import tempfile
import unittest

import numpy as np

import data


class GeneratorTest(unittest.TestCase):
    def test_same_seed_same_events_other_seed_other_events(self):
        a = data.generate(users=200, books=60, clusters=3, seed=1)
        b = data.generate(users=200, books=60, clusters=3, seed=1)
        c = data.generate(users=200, books=60, clusters=3, seed=2)
        np.testing.assert_array_equal(a, b)
        self.assertFalse(np.array_equal(a, c))

    def test_events_are_unique_and_in_range(self):
        ev = data.generate(users=100, books=30, clusters=3, seed=3)
        self.assertEqual(len({(int(u), int(b)) for u, b in ev}), len(ev))
        self.assertTrue(((ev[:, 1] >= 0) & (ev[:, 1] < 30)).all())
        self.assertEqual(set(np.unique(ev[:, 0])), set(range(100)))

    def test_readers_mostly_read_one_genre(self):
        ev = data.generate(users=300, books=60, clusters=3, seed=4)
        genre = (ev[:, 1] * 3) // 60
        shares = []
        for u in range(300):
            g = genre[ev[:, 0] == u]
            shares.append(np.bincount(g, minlength=3).max() / len(g))
        self.assertGreater(float(np.mean(shares)), 0.75)

    def test_bad_sizes_are_refused(self):
        with self.assertRaisesRegex(data.DataError, "clusters=9"):
            data.generate(users=10, books=5, clusters=9)


class LoadTest(unittest.TestCase):
    def test_gen_uri_parameters(self):
        ev = data.load("gen://bookstore?users=50&books=20&clusters=2&seed=5")
        np.testing.assert_array_equal(ev, data.generate(50, 20, 2, 5))

    def test_gen_uri_errors_name_the_parameter(self):
        with self.assertRaisesRegex(data.DataError, "unknown parameter 'colour'"):
            data.load("gen://bookstore?colour=red")
        with self.assertRaisesRegex(data.DataError, "'users' expects an integer"):
            data.load("gen://bookstore?users=many")
        with self.assertRaisesRegex(data.DataError, "expected gen://bookstore"):
            data.load("gen://library")

    def test_csv_round_trip_by_path_and_file_uri(self):
        ev = data.generate(users=30, books=12, clusters=2, seed=6)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "reads.csv")
            with open(path, "w", encoding="utf-8") as f:
                f.write(data.to_csv(ev))
            np.testing.assert_array_equal(data.load(path), ev)
            np.testing.assert_array_equal(data.load("file://" + path), ev)

    def test_csv_errors_name_the_line(self):
        with self.assertRaisesRegex(data.DataError, "line 1: expected the header"):
            data.parse_csv("a,b\n1,2\n", "x.csv")
        with self.assertRaisesRegex(data.DataError, "line 3: user and book must be integers"):
            data.parse_csv("user,book\n1,2\n1,two\n", "x.csv")
        with self.assertRaisesRegex(data.DataError, "no reading events"):
            data.parse_csv("user,book\n", "x.csv")

    def test_unknown_scheme_and_missing_file(self):
        with self.assertRaisesRegex(data.DataError, "unsupported scheme 's3'"):
            data.load("s3://bucket/reads.csv")
        with self.assertRaisesRegex(data.DataError, "cannot read"):
            data.load("/nonexistent/reads.csv")


class SplitTest(unittest.TestCase):
    def test_split_is_deterministic_and_sized(self):
        users = np.arange(100).repeat(3)
        a = data.split_users(users, 7, 0.2)
        np.testing.assert_array_equal(a, data.split_users(users, 7, 0.2))
        self.assertEqual(len(a), 20)
        self.assertFalse(np.array_equal(a, data.split_users(users, 8, 0.2)))

    def test_fraction_out_of_range(self):
        with self.assertRaisesRegex(data.DataError, "test_fraction"):
            data.split_users(np.arange(10), 1, 1.0)


if __name__ == "__main__":
    unittest.main()
