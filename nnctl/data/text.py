"""A plain-text file for next-token prediction, read as characters or whitespace-separated words."""

from pathlib import Path
from typing import Literal

import numpy as np

from nnctl.data.dataset import Dataset
from nnctl.data.source import DATASETS, Arrays, FileSource, HeldOut
from nnctl.errors import DataError
from nnctl.files import read_text
from nnctl.schema import Count

LEVELS = {"char": "", "word": " "}
"""Token level -> the separator that joins tokens back into text."""
BYTES_PER_TOKEN = 40
"""What reading costs per byte of text at most (a character is a token): the list of tokens and that of their ids
(8 bytes a pointer each), the id array, its windows as inputs and as targets (8 each)."""


def class_labels(classes: list[int] | None, names: list[str] | None, count: int) -> list[int | str]:
    """The label of each of `count` class indices: data.classes' labels, the names the data gives its classes (a
    language model's tokens, its classes being the next token; an images folder's class folders), else the index
    itself."""
    if classes is not None:
        return [*classes]
    if names is not None and len(names) == count:
        return [*names]
    return [*range(count)]


def tokenize(text: str, level: str) -> list[str]:
    """The text's tokens: its characters, or its whitespace-separated words."""
    return list(text) if level == "char" else text.split()


@DATASETS.register("text")
class Text(FileSource):
    """Windows of `seq_len` token ids as inputs, the same windows one token later as targets (N, seq_len).

    The validation split is the end of the text; the vocabulary is built from the rest (sorted), unless
    `vocab` gives it; tokens outside the vocabulary are left out. A checkpoint pins the vocabulary it
    was trained with, so eval and sample read the ids exactly as training did."""

    indices = True

    def __init__(self, path: str, seq_len: Count = 100, level: Literal["char", "word"] = "char",
                 vocab: list[str] | None = None, validation: HeldOut | None = 0.1,
                 validation_from: Literal["end"] = "end", **kwargs):
        """validation_from is only "end": the validation split is the end of the text, which the vocabulary is
        built without."""
        super().__init__(validation=validation, validation_from=validation_from, **kwargs)
        if vocab is not None and not vocab:
            raise ValueError("vocab is empty; leave it out to take the text's")
        if vocab is not None and len(set(vocab)) != len(vocab):
            raise ValueError("vocab lists a token twice")
        if vocab is not None and (odd := [t for t in vocab if tokenize(t, level) != [t]]):
            raise ValueError(f"vocab lists {odd[0]!r}, which is no {level} token of a text ("
                             + ("one character each)" if level == "char" else "a word: no spaces, not empty)"))
        self.file, self.seq_len, self.level, self.vocab = path, seq_len, level, vocab

    def peek(self) -> tuple[int, ...]:
        return (self.seq_len,)

    def read(self) -> Arrays:
        path = self.path(self.file)
        tokens = tokenize(read_text(path, DataError, "text file", BYTES_PER_TOKEN, "text as token ids"), self.level)
        windows = self._windows(len(tokens), f"{path}: {len(tokens)} {self.level} tokens",
                                "use a longer text or a smaller seq_len")
        if self.vocab is None:
            self.vocab = sorted(set(tokens[: (windows - self.validation_count(windows)) * self.seq_len + 1]))
        self.num_classes = len(self.vocab)
        index = {token: i for i, token in enumerate(self.vocab)}
        ids = np.array([index[t] for t in tokens if t in index], dtype=np.int64)
        windows = self._windows(len(ids), f"{path}: {len(ids)} of its {len(tokens)} {self.level} tokens are in the "
                                          "vocabulary (data.vocab, or a checkpoint's), and they",
                                "use a text of that vocabulary, or leave data.vocab out to take the text's")
        span = windows * self.seq_len
        return (ids[:span].reshape(windows, self.seq_len), ids[1:span + 1].reshape(windows, self.seq_len),
                None, None)

    def inputs(self, x: np.ndarray, dtype: type) -> np.ndarray:
        ids = super().inputs(x, dtype)
        size = len(self.vocab or ())
        if size and ids.size and not 0 <= ids.min() <= ids.max() < size:
            raise DataError(f"the inputs of a text model are token ids from 0 to {size - 1} (its vocabulary of "
                            f"{size}), but hold {ids[(ids < 0) | (ids >= size)].ravel()[0]}")
        return ids

    def encode(self, path: Path) -> np.ndarray:
        """A text file's token ids (1, T), one sequence, read as the training text was; DataError naming the first
        token outside the vocabulary and its line (a text model has no unknown-token id)."""
        assert self.vocab is not None, "a trained model's vocabulary"
        text = read_text(path, DataError, "text file", BYTES_PER_TOKEN, "text as token ids")
        index = {token: i for i, token in enumerate(self.vocab)}
        tokens = tokenize(text, self.level)
        if (unknown := next((t for t in tokens if t not in index), None)) is not None:
            line = 1 if unknown == "\n" else next(n for n, words in enumerate(text.split("\n"), 1)
                                                   if unknown in tokenize(words, self.level))
            raise DataError(f"{path}:{line}: {unknown!r} is not in the model's vocabulary of {len(index)} "
                            f"{self.level} tokens (those of its training text); a text model has no id for unknown "
                            "tokens, so its inputs may hold only those")
        if not tokens:
            raise DataError(f"{path}: holds no {self.level} tokens")
        return np.array([[index[t] for t in tokens]], dtype=np.int64)

    def _windows(self, count: int, tokens: str, advice: str) -> int:
        """How many windows of seq_len tokens (plus the next one) `count` tokens make; below 2, DataError saying
        what `tokens` are and the `advice`."""
        windows = (count - 1) // self.seq_len
        if windows < 2:
            raise DataError(f"{tokens} make fewer than 2 windows of data.seq_len {self.seq_len} (plus one); {advice}")
        return windows

    def load(self, dtype: type) -> Dataset:
        data = super().load(dtype)
        assert self.vocab is not None, "read() sets it"
        data.vocab = list(self.vocab)
        return data
