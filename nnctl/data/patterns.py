"""Elman's per-step task: flag, at every character of a stream, whether a pattern has just ended there."""

import numpy as np

from nnctl.data.source import DATASETS, Arrays, DatasetSource
from nnctl.errors import DataError
from nnctl.limits import too_big
from nnctl.schema import Count, Fraction, Natural


@DATASETS.register("pattern_ends")
class PatternEnds(DatasetSource):
    """Random letters of `alphabet`, with `pattern` dropped in at a `rate` of the positions, cut into sequences of
    `seq_len` one-hot letters; the target of each step is 1 where the pattern ends there, else 0. Drawn from
    `seed` alone, so the same config always gives the same data."""

    def __init__(self, pattern: str = "abc", alphabet: str = "abcd", seq_len: Count = 20, samples: Count = 1000,
                 test_samples: Natural = 200, rate: Fraction = 0.1, seed: Natural = 0, flatten: bool = False, **kwargs):
        super().__init__(flatten=flatten, **kwargs)
        if not alphabet or len(set(alphabet)) != len(alphabet):
            raise ValueError(f"alphabet must be distinct letters, got '{alphabet}'")
        if not pattern or not set(pattern) <= set(alphabet):
            raise ValueError(f"pattern '{pattern}' must be letters of the alphabet '{alphabet}'")
        if seq_len < len(pattern):
            raise ValueError(f"seq_len must be at least the pattern's length, {len(pattern)}, got {seq_len}")
        self.pattern, self.alphabet, self.seq_len = pattern, alphabet, seq_len
        self.samples, self.test_samples, self.rate, self.seed = samples, test_samples, rate, seed

    def read(self) -> Arrays:
        letters = (self.samples + self.test_samples) * self.seq_len
        # per letter: the one-hot x and the target (float64), and the stream's list of parts before it is joined
        if problem := too_big(letters * 8 * (len(self.alphabet) + 1 + 8), f"data: {self.samples:,} + "
                              f"{self.test_samples:,} sequences of {self.seq_len:,} letters"):
            raise DataError(problem)
        rng = np.random.default_rng(self.seed)
        x, y = self.sequences(self.stream(rng, self.samples), self.samples)
        if not self.test_samples:
            return x, y, None, None
        return x, y, *self.sequences(self.stream(rng, self.test_samples), self.test_samples)

    def stream(self, rng: np.random.Generator, samples: int) -> str:
        """At least samples·seq_len letters: each position starts the pattern with probability `rate`."""
        parts, length = [], 0
        while length < samples * self.seq_len:
            part = self.pattern if rng.random() < self.rate else self.alphabet[rng.integers(len(self.alphabet))]
            parts.append(part)
            length += len(part)
        return "".join(parts)[: samples * self.seq_len]

    def sequences(self, stream: str, samples: int) -> tuple[np.ndarray, np.ndarray]:
        """One-hot letters (N, T, A) and 0/1 targets (N, T); a pattern split by a cut counts in neither part,
        since each sequence starts from a fresh state."""
        ids = np.array([self.alphabet.index(c) for c in stream]).reshape(samples, self.seq_len)
        x = np.eye(len(self.alphabet))[ids]
        y = np.zeros((samples, self.seq_len))
        for n in range(samples):
            row = stream[n * self.seq_len:(n + 1) * self.seq_len]
            start = row.find(self.pattern)
            while start >= 0:
                y[n, start + len(self.pattern) - 1] = 1.0
                start = row.find(self.pattern, start + 1)
        return x, y
