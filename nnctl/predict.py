"""A trained model on new inputs: classes and probabilities (or outputs), shown or written to a file."""

import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnctl.backend import to_host
from nnctl.console import shown_label
from nnctl.data.inputs import read_inputs
from nnctl.data.text import Text, class_labels
from nnctl.errors import ConfigError, DataError
from nnctl.experiment import class_count
from nnctl.limits import too_big
from nnctl.metrics import check_finite, predict
from nnctl.outputs import replacing
from nnctl.trained import Trained

OUTPUT_SUFFIXES = (".csv", ".npy", ".json")


@dataclass
class Predictions:
    """Each input sample's name, the model's probabilities (or outputs) and, for classifiers, its class: per
    sample, or per time step for a model that predicts one at every step."""

    names: list[str]
    values: np.ndarray
    """(N, C) per sample or (N, T, C) per step for classifiers; (N, outputs) for a regression."""
    classes: np.ndarray | None
    """Each sample's (N) or step's (N, T) class, an index into the last axis of `values`."""
    probabilities: bool
    """Whether `values` are probabilities (the loss applies softmax/sigmoid), not raw outputs."""
    labels: list[int | str] | None = None
    """The label of each class index: data.classes' (5, 6, 7 for indices 0, 1, 2), a language model's tokens;
    None: the index is it."""
    tokens: list[list[str]] | None = None
    """A language model's input tokens (N, T): the text each step's prediction follows."""

    @property
    def per_step(self) -> bool:
        return self.classes is not None and self.classes.ndim > 1

    def label(self, index: int) -> int | str:
        """The dataset's label of the class at `index` in the last axis of `values`."""
        return self.labels[index] if self.labels is not None else int(index)

    def steps(self) -> tuple[np.ndarray, np.ndarray]:
        """Values (N, T, C) and classes (N, T) of a classifier; T is 1 where it predicts per sample."""
        assert self.classes is not None, "a classifier's"
        n = len(self.names)
        return self.values.reshape(n, -1, self.values.shape[-1]), self.classes.reshape(n, -1)


def top(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k most likely classes of each row of `values` (along its last axis), and their values, best first."""
    order = np.argsort(-values, axis=-1, kind="stable")[..., :k]
    return order, np.take_along_axis(values, order, axis=-1)


def read_files(trained: Trained, paths: list[Path]) -> tuple[list[str], np.ndarray]:
    """Every input file's samples, prepared as the training data was, and a name for each sample."""
    names: list[str] = []
    batches: list[np.ndarray] = []
    source = trained.source
    assert source.sample_shape is not None, "Trained.load sets it"
    any_length = isinstance(source, Text) and trained.model.reads_other_lengths()
    for path in paths:
        x = (read_text_input(trained, path) if is_text(trained, path)
             else read_inputs(Path(path), source.sample_shape, source.input_keys, source.input_delimiter, any_length))
        if batches and x.shape[1:] != batches[0].shape[1:]:
            raise DataError(f"{path}: a sequence of {x.shape[1]} tokens, but the inputs before it hold "
                            f"{batches[0].shape[1]}; the inputs of one call must be of one length (give others in "
                            "calls of their own)")
        batches.append(x)
        names += [str(path)] if len(x) == 1 else [f"{path}[{i}]" for i in range(len(x))]
    raw = sum(x.nbytes for x in batches)
    itemsize = np.dtype(trained.dtype).itemsize
    prepared = sum(x.size for x in batches) * itemsize
    # a model that reads any length outputs per step: a text of 2 million characters makes that many rows of classes,
    # each as outputs, probabilities and the int64 ranks of its top K
    windows = batches[0].shape[1] / trained.model.input_shape[0] if any_length else 1
    outputs = len(names) * math.prod(trained.model.output_shape) * windows * (2 * itemsize + 8)
    files = f"{paths[0]}" + (f" and {len(paths) - 1} more files" if len(paths) > 1 else "")
    if problem := too_big(2 * raw + prepared + outputs, f"{files}: {len(names):,} inputs (read, joined, prepared as "
                                                        "the training samples were, and their outputs)"):
        raise DataError(problem)
    return names, trained.inputs(np.concatenate(batches))


def is_text(trained: Trained, path: Path) -> bool:
    """Whether `path` is a text file for a language model (a checkpoint of text data keeps its vocabulary)."""
    return Path(path).suffix.lower() == ".txt" and isinstance(trained.source, Text)


def read_text_input(trained: Trained, path: Path) -> np.ndarray:
    """A text file's token ids (1, T) as one sequence, of data.seq_len tokens unless the model reads other
    lengths."""
    assert isinstance(trained.source, Text), "is_text"
    x = trained.source.encode(path)
    tokens = x.shape[1]
    window = trained.model.input_shape[0]
    if tokens != window and not trained.model.reads_other_lengths():
        raise DataError(f"{path}: {tokens} tokens, but this model reads exactly {window} at a time (data.seq_len; a "
                        "layer such as flatten ties its weights to the steps)")
    return x


def predict_files(trained: Trained, paths: list[Path]) -> Predictions:
    """Reads every input file, prepares it as the training data was, and runs the model on all of it."""
    names, x = read_files(trained, paths)
    outputs = predict(trained.model, x, trained.batch_size)
    if not class_count(trained.num_classes, trained.loss, trained.model):
        return Predictions(names, to_host(outputs).reshape(len(outputs), -1), None, False)
    values = to_host(trained.loss.probabilities(outputs))
    if values.shape[-1] == 1:  # one sigmoid output: P(class 1)
        values = np.concatenate([1 - values, values], axis=-1)
    vocab = trained.vocab if values.ndim == 3 else None
    return Predictions(names, values, to_host(trained.loss.labels(outputs)), bool(trained.loss.applies),
                       class_labels(trained.source.classes, trained.vocab or trained.recipe.class_names,
                                    values.shape[-1]),
                       [[vocab[i] for i in row] for row in to_host(x).tolist()] if vocab else None)


def features(trained: Trained, paths: list[Path], layer: str) -> np.ndarray:
    """The outputs of the layer called `layer` for every sample of the input files (eval mode, in batches), on
    the host."""
    depth = trained.model.layer_index(layer) + 1
    x = read_files(trained, paths)[1]
    outputs = predict(trained.model, x, trained.batch_size, finite=False, depth=depth)
    return to_host(check_finite(outputs, f"the outputs of layer '{layer}'"))


def save_array(path: Path, values: np.ndarray) -> None:
    """Writes one array to a .npy file of exactly that name (np.save given a name would add '.npy' to 'X.NPY')."""
    with replacing(path, "the array") as f:
        np.save(f, values, allow_pickle=False)


def check_output(path: Path) -> None:
    """Refuses an output file whose kind `write` does not know, before any work is done."""
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError(f"{path}: cannot write predictions as '{path.suffix or path.name}'; "
                         f"name the file *.csv, *.npy or *.json")


def write(result: Predictions, path: Path, k: int) -> None:
    """.npy: the values array; .csv: input, class and every value; .json: the same plus the top k."""
    check_output(path)
    suffix = path.suffix.lower()
    with replacing(path, "the predictions") as f:
        if suffix == ".npy":
            np.save(f, result.values, allow_pickle=False)
        else:
            text = _csv(result) if suffix == ".csv" else json.dumps(records(result, k), indent=1) + "\n"
            f.write(text.encode("utf-8", "surrogateescape"))  # input names as the file system gave them


def _csv(result: Predictions) -> str:
    prefix = "p" if result.probabilities else "y"
    columns = [f"{prefix}{shown_label(result.label(j))}" for j in range(result.values.shape[-1])]
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["input", *(["step"] if result.per_step else []), *(["token"] if result.tokens else []),
                     *(["class"] if result.classes is not None else []), *columns])
    for row in _rows(result):
        writer.writerow([*row[:-1], *map(str, row[-1])])  # the shortest text that reads back as the same value
    return text.getvalue()


def _rows(result: Predictions) -> Iterator[tuple]:
    """The csv's rows: input, step (per-step models), class (classifiers) and the values of each."""
    if result.classes is None:
        yield from zip(result.names, result.values, strict=True)
        return
    values, classes = result.steps()
    for i, name in enumerate(result.names):
        for t in range(values.shape[1]):
            step = [t] if result.per_step else []
            token = [shown_label(result.tokens[i][t])] if result.tokens else []
            yield name, *step, *token, shown_label(result.label(classes[i, t])), values[i, t]


def records(result: Predictions, k: int) -> list[dict]:
    """Per input its class, the top k and every value (per step for a per-step model), or a regression's outputs:
    what -o FILE.json and --json hold."""
    if result.classes is None:
        return [{"input": name, "outputs": row.tolist()} for name, row in zip(result.names, result.values, strict=True)]
    values, classes = result.steps()
    order, best = top(values, k)
    one, every = ("probability", "probabilities") if result.probabilities else ("output", "outputs")
    records = []
    for i, name in enumerate(result.names):
        steps = [{**({"token": result.tokens[i][t]} if result.tokens else {}), "class": result.label(classes[i, t]),
                  "top": [{"class": result.label(c), one: float(v)}
                          for c, v in zip(order[i, t], best[i, t], strict=True)],
                  every: values[i, t].tolist()} for t in range(values.shape[1])]
        records.append({"input": name, "steps": steps} if result.per_step else {"input": name, **steps[0]})
    return records
