"""Text generation from a trained language model: the checkpoint's model and vocabulary, one token at a time."""

from collections.abc import Callable
from pathlib import Path

import numpy as np

from nnctl.backend import to_device, to_host
from nnctl.data.text import LEVELS, tokenize
from nnctl.errors import CheckpointError, ConfigError
from nnctl.experiment import output_activation
from nnctl.files import newlines
from nnctl.layers.activations import softmax
from nnctl.metrics import check_finite
from nnctl.model import Model
from nnctl.trained import Trained


class LanguageModel:
    """A model that maps token ids (N, T) to next-token logits (N, T, V), with the vocabulary it was trained on."""

    def __init__(self, model: Model, vocab: list[str], level: str):
        self.model, self.vocab, self.level = model, vocab, level
        self.index = {token: i for i, token in enumerate(vocab)}
        self.probabilities = output_activation(model) == "softmax"
        """Whether the model ends in a softmax (as one trained with mse may): its outputs are then not logits."""
        self.stepped = model.carries_state()
        """Whether generate feeds each token once, carrying the recurrent state (embedding, one-way recurrent
        layers, dense layers: each step's output depends on the steps so far alone), rather than the window."""

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "LanguageModel":
        """The checkpoint's model on `device` and its vocabulary (the text file is not read again)."""
        trained = Trained.load(path, device)
        vocab, model = trained.vocab, trained.model
        if not vocab:
            raise CheckpointError(f"{path}: not a language model (its dataset has no vocabulary); "
                                  "sample needs a checkpoint of a config with data.type text")
        if model.output_shape != (model.input_shape[0], len(vocab)):
            raise CheckpointError(f"{path}: the model outputs {list(model.output_shape)} per sequence; sampling "
                                  f"needs next-token logits [steps, {len(vocab)}] (return_sequences: true)")
        return cls(model, vocab, trained.config.data["data"].get("level", "char"))

    def generate(self, prime: str | None, length: int, temperature: float = 1.0, seed: int | None = None,
                 top_k: int | None = None, top_p: float = 1.0) -> str:
        """The prime (None: see `start`) followed by `length` tokens drawn from softmax(logits / temperature),
        restricted to the `top_k` likeliest tokens and then to the nucleus of `top_p` (see `restrict`), or at
        temperature 0 the likeliest each time."""
        if length < 0 or temperature < 0:
            raise ConfigError(f"--length and --temperature must be at least 0, got {length} and {temperature}")
        if (top_k is not None and top_k < 1) or not 0 < top_p <= 1:
            raise ConfigError(f"--top-k must be at least 1 and --top-p above 0 and at most 1, got {top_k} and {top_p}")
        rng = np.random.default_rng(seed)
        ids = self.start(rng) if prime is None else self.prime_ids(prime)
        following = self.following(len(ids))
        for _ in range(length):
            logits = self.logits(check_finite(following(ids)).astype(np.float64))
            ids.append(self.draw(logits, temperature, rng, top_k, top_p))
        return LEVELS[self.level].join(self.vocab[i] for i in ids)

    def draw(self, logits: np.ndarray, temperature: float, rng: np.random.Generator, top_k: int | None = None,
             top_p: float = 1.0) -> int:
        """A token id drawn from softmax(logits / temperature), restricted by `top_k` and `top_p`; at temperature
        0, the likeliest (the first of equals), as the limit of ever smaller temperatures, without a draw."""
        if temperature == 0:
            return int(logits.argmax())
        p = to_host(softmax((logits - logits.max()) / temperature))  # the best at 0: no inf - inf at a tiny T
        return int(rng.choice(len(self.vocab), p=restrict(p, top_k, top_p)))

    def following(self, primed: int) -> Callable[[list[int]], np.ndarray]:
        """A function from the ids so far (the first call's: `primed` of them) to the model's outputs for the next
        token: carrying the recurrent state from call to call where the model can (`stepped`; each call adds ids
        to the last), else reading the last data.seq_len ids again."""
        dtype = self.model.params()[0].dtype
        return Steps(self.model, dtype) if self.stepped else self.windows(primed, dtype)

    def windows(self, primed: int, dtype: np.dtype) -> Callable[[list[int]], np.ndarray]:
        """The next token's outputs from the last data.seq_len ids (fewer at the start where the model can read
        fewer); ConfigError where a prime of `primed` tokens is too short for it."""
        window = self.model.input_shape[0]
        if primed < window and not self.model.reads_other_lengths():
            raise ConfigError(f"--prime holds {primed} tokens, but this model reads exactly {window} at a time "
                              f"(data.seq_len; a layer such as flatten ties its weights to the steps); give a "
                              f"--prime of at least {window} tokens")
        return lambda ids: self.model.forward(to_device(np.array([ids[-window:]], dtype=dtype)))[0, -1]

    def logits(self, outputs: np.ndarray) -> np.ndarray:
        """The model's outputs for the next token as logits: as they are, or the log of a final softmax's
        probabilities (-inf for a probability of 0, never drawn), so that softmax(logits / T) is p^(1/T) rescaled."""
        if not self.probabilities:
            return outputs
        with np.errstate(divide="ignore"):
            return np.log(outputs)

    def start(self, rng: np.random.Generator) -> list[int]:
        """The ids a sample starts from without a prime: a newline where the vocabulary has one (a char model's),
        else one token drawn at random (a word model's vocabulary never has one)."""
        return [self.index["\n"]] if "\n" in self.index else [int(rng.integers(len(self.vocab)))]

    def prime_ids(self, prime: str) -> list[int]:
        """The ids of the prime's tokens; ConfigError if it has none, or tokens outside the vocabulary."""
        tokens = tokenize(newlines(prime), self.level)
        unknown = sorted({t for t in tokens if t not in self.index})
        if unknown:
            raise ConfigError(f"--prime holds tokens the model never saw: {', '.join(map(repr, unknown[:10]))}; "
                             f"its vocabulary has {len(self.vocab)} tokens")
        if not tokens:
            raise ConfigError("--prime must hold at least one token")
        return [self.index[t] for t in tokens]


def restrict(p: np.ndarray, top_k: int | None, top_p: float) -> np.ndarray:
    """The probabilities p kept on the `top_k` likeliest tokens (the first of equals; all where None or more than
    there are), then on the fewest of those, likeliest first, whose share of them reaches `top_p` (the nucleus),
    rescaled to sum to 1: Hugging Face generate's top_k and top_p, in its order. p itself where nothing is cut."""
    if (top_k is None or top_k >= len(p)) and top_p >= 1:
        return p  # the very same draws as without the options
    order = np.argsort(-p, kind="stable")[:top_k]
    shares = np.cumsum(p[order]) / p[order].sum()
    kept = order[:int(np.searchsorted(shares, top_p)) + 1]
    restricted = np.zeros_like(p)
    restricted[kept] = p[kept]
    return restricted / restricted.sum()


class Steps:
    """A model of per-step and one-way recurrent layers run on a growing sequence of ids: each call feeds only the
    ids added since the last, carrying every recurrent layer's state, and gives the last one's outputs."""

    def __init__(self, model: Model, dtype: np.dtype):
        self.model, self.dtype, self.fed = model, dtype, 0
        self.states: list = [None] * len(model.layers)

    def __call__(self, ids: list[int]) -> np.ndarray:
        x = to_device(np.array([ids[self.fed:]], dtype=self.dtype))
        self.fed = len(ids)
        y, self.states = self.model.forward_from(x, self.states)
        return y[0, -1]
