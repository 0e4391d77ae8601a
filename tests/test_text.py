"""Text data, the character language model through the real CLI, its vocabulary in checkpoints, and sampling."""

import json
import pickle
import re
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hostile import clean_error

from helpers import CONFIGS, nnctl
from nnctl import checkpoint
from nnctl.builder import build_model
from nnctl.config import from_dict
from nnctl.course import HASH_FREE, course_hash
from nnctl.data import DATASETS
from nnctl.errors import ConfigError, DataError
from nnctl.layers.activations import softmax
from nnctl.limits import ENV
from nnctl.metrics import predict
from nnctl.sample import LanguageModel, restrict
from nnctl.trained import Trained
from nnctl.unpickle import safe_unpickle

TEXT = CONFIGS / "data" / "genesis_asv.txt"
TINY = ["data.subset=64", "data.seq_len=20", "model.layers.1.units=16", "train.epochs=1", "train.batch_size=16"]


def text_source(path: Path, **options):
    config = from_dict({"data": {"type": "text", "path": str(path), **options}})
    return DATASETS.build(config.data["data"], config, ("data",), base_dir=".")


def test_windows_are_shifted_by_one_and_the_vocabulary_comes_from_the_training_text(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcabcabcabcabcabcabcXYZ")  # 24 characters; the last 3 windows hold the validation part
    data = text_source(path, seq_len=3, validation=2).load(np.float32)
    assert data.vocab == ["a", "b", "c"]  # X, Y, Z only occur in the validation part, and are left out
    assert data.num_classes == 3 and data.input_shape == (3,)
    np.testing.assert_array_equal(data.train.x[0], [0, 1, 2])
    np.testing.assert_array_equal(data.train.y[0], [1, 2, 0])
    assert data.train.y.dtype == np.int64 and (len(data.train), len(data.val)) == (4, 2)  # 21 ids left


def test_a_text_keeps_its_end_for_validation(tmp_path):
    (tmp_path / "t.txt").write_text("abcabcabc")
    with pytest.raises(ConfigError, match="validation_from: expected 'end', got str 'random'"):
        text_source(tmp_path / "t.txt", validation_from="random")


def test_word_level_tokens(tmp_path):
    path = tmp_path / "w.txt"
    path.write_text("the cat sat on the mat and the cat sat on the hat")
    data = text_source(path, seq_len=2, level="word", validation=None).load(np.float64)
    assert data.vocab == ["and", "cat", "hat", "mat", "on", "sat", "the"]
    words = [data.vocab[int(i)] for i in data.train.x[0]] + [data.vocab[data.train.y[0, -1]]]
    assert words == ["the", "cat", "sat"]


@pytest.mark.parametrize("level, vocab, message", [
    ("char", ["a", "bc"], "vocab lists 'bc', which is no char token of a text (one character each)"),
    ("word", ["the", "a cat"], "vocab lists 'a cat', which is no word token of a text (a word: no spaces, not empty)"),
    ("word", [""], "vocab lists '', which is no word token"),
    ("char", [], "vocab is empty; leave it out to take the text's"),
])
def test_a_vocabulary_of_tokens_the_text_cannot_hold_is_refused(tmp_path, level, vocab, message):
    path = tmp_path / "t.txt"
    path.write_text("the cat sat on the mat " * 10)
    with pytest.raises(ConfigError, match=re.escape(message)):
        text_source(path, level=level, vocab=vocab)


def test_a_vocabulary_that_leaves_too_little_of_the_text_says_so(tmp_path):
    """It was 'the training split is empty', which named neither the vocabulary nor the text."""
    path = tmp_path / "t.txt"
    path.write_text("the cat sat on the mat " * 10)
    with pytest.raises(DataError, match=re.escape(f"{path}: 10 of its 230 char tokens are in the vocabulary "
                                                  "(data.vocab, or a checkpoint's), and they make fewer than 2 windows "
                                                  "of data.seq_len 5 (plus one); use a text of that vocabulary")):
        text_source(path, seq_len=5, vocab=["c", "X"]).load(np.float32)  # the text has 10 c, no X


def test_a_text_too_short_for_two_windows_is_refused(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("abc")
    with pytest.raises(DataError, match="fewer than 2 windows"):
        text_source(path, seq_len=5).load(np.float32)


def test_a_byte_order_mark_is_not_a_token(tmp_path):
    """A text saved by Notepad or Excel starts with a UTF-8 BOM, which became a token of the vocabulary."""
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + b"abc" * 20)
    data = text_source(path, seq_len=5).load(np.float32)
    assert data.vocab == ["a", "b", "c"] and data.num_classes == 3


def test_windows_line_ends_read_as_the_same_text(tmp_path):
    """A text saved on Windows made '\\r' a character of the vocabulary, and its model learnt to write it."""
    text = "In the beginning.\nAnd the earth.\n" * 4
    (tmp_path / "unix.txt").write_text(text, newline="\n")
    (tmp_path / "windows.txt").write_text(text, newline="\r\n")
    unix, windows = (text_source(tmp_path / name, seq_len=8).load(np.float32) for name in ("unix.txt", "windows.txt"))
    assert "\r" not in windows.vocab and windows.vocab == unix.vocab
    np.testing.assert_array_equal(windows.train.x, unix.train.x)


def test_a_text_whose_token_ids_pass_the_memory_limit_is_refused_before_tokenizing(tmp_path, monkeypatch):
    """A 300 MB text took 7 GB as Python lists of tokens and ids before any check."""
    path = tmp_path / "big.txt"
    path.write_text("abcdefghij" * 100_000)  # 1 MB: about 40 MB as tokens, ids and windows
    monkeypatch.setenv(ENV, "16M")
    with pytest.raises(DataError, match=r"big.txt: 1,000,000 bytes of text as token ids would need 38.1 MiB"):
        text_source(path, seq_len=20).load(np.float32)
    monkeypatch.setenv(ENV, "64M")
    assert len(text_source(path, seq_len=20).load(np.float32).train) > 0


def train_char_model(tmp_path: Path, *overrides: str) -> Path:
    runs = tmp_path / "runs"
    result = nnctl("train", str(CONFIGS / "char_lstm.yaml"), *TINY, *overrides, "--runs-dir", str(runs), "-q")
    assert result.returncode == 0, result.stderr
    (run,) = runs.iterdir()
    return run


@pytest.mark.slow
def test_char_model_checkpoint_keeps_its_vocabulary(tmp_path):
    text = tmp_path / "text.txt"
    shutil.copy(TEXT, text)
    run = train_char_model(tmp_path, f"data.path={text}")
    vocab = sorted(set(TEXT.read_text(encoding="utf-8")))
    saved = checkpoint.load(run / "checkpoints" / "last.pkl")
    assert saved.inputs.vocab == vocab and len(vocab) == 65
    text.write_text("#@ " + TEXT.read_text(encoding="utf-8"), encoding="utf-8")  # new characters in front
    exp = Trained.load(run / "checkpoints" / "last.pkl").experiment()
    assert exp.data.vocab == vocab  # pinned: ids mean what they meant in training
    result = nnctl("eval", str(run / "checkpoints" / "last.pkl"), "--split", "val", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["loss"] < np.log(65)  # one epoch already beats uniform guessing
    assert len(json.loads(result.stdout)["confusion_matrix"]) == 65
    shown = nnctl("eval", str(run / "checkpoints" / "last.pkl"), "--split", "val")
    assert "confusion matrix: 65 classes, too many columns to read here; --json holds it" in shown.stdout
    assert "per class" in shown.stdout, shown.stdout
    no_test = nnctl("eval", str(run / "checkpoints" / "last.pkl"))
    assert no_test.returncode == 1 and "has no test split; --split val or train" in no_test.stderr


@pytest.mark.slow
def test_sample_through_the_cli(tmp_path):
    run = train_char_model(tmp_path)
    best = str(run / "checkpoints" / "best.pkl")
    first = nnctl("sample", best, "--prime", "And God", "--length", "40", "--temperature", "0.8", "--seed", "3")
    again = nnctl("sample", best, "--prime", "And God", "--length", "40", "--temperature", "0.8", "--seed", "3")
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout
    generated = first.stdout[:-1]
    assert generated.startswith("And God") and len(generated) == len("And God") + 40
    assert set(generated) <= set(TEXT.read_text(encoding="utf-8"))
    for temperature in ("1e-310", "1e308"):  # greedy, and uniform: never inf − inf in the softmax
        extreme = nnctl("sample", best, "--prime", "And", "--length", "5", "--temperature", temperature)
        assert extreme.returncode == 0 and len(extreme.stdout) == len("And") + 5 + 1, extreme.stderr
    unknown = nnctl("sample", best, "--prime", "#hash")
    assert unknown.returncode == 2 and "error: --prime holds tokens the model never saw: '#'" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    raw = safe_unpickle((run / "checkpoints" / "best.pkl").read_bytes())  # weights whose logits overflow
    for layer in raw["model"].values():  # saturated gates: every hidden output > 0.7, so the sum below is +inf
        for key in [key for key in layer["params"] if key.startswith("b") and "W" not in layer["params"]]:
            layer["params"][key][...] = 1000
    last = [layer for layer in raw["model"].values() if "W" in layer["params"]][-1]["params"]
    last["W"][...], last["b"][...] = np.finfo(last["W"].dtype).max, np.finfo(last["W"].dtype).max
    (tmp_path / "huge.pkl").write_bytes(pickle.dumps(raw, protocol=pickle.HIGHEST_PROTOCOL))
    huge = nnctl("sample", str(tmp_path / "huge.pkl"), "--prime", "And", "--length", "5")
    assert huge.returncode == 1 and "the model's outputs for these inputs are NaN or infinite" in huge.stderr, \
        huge.stderr
    assert "Traceback" not in huge.stderr and "internal error" not in huge.stderr


@pytest.mark.slow
def test_sample_refuses_a_checkpoint_without_a_vocabulary(tmp_path, mnist_root):
    runs = tmp_path / "runs"
    assert nnctl("train", str(CONFIGS / "mnist_gru.yaml"), "data.subset=300", "data.validation=100",
                 "data.test_subset=100", "train.epochs=1", "--runs-dir", str(runs), "-q").returncode == 0
    (run,) = runs.iterdir()
    result = nnctl("sample", str(run / "checkpoints" / "last.pkl"))
    assert result.returncode == 1 and "not a language model" in result.stderr


@pytest.mark.parametrize("values, shown", [
    ([1.5, 0.0], "1.5"), ([np.nan], "nan"), ([-np.inf], "-inf"), ([1e30], "1e+30"),
    (np.array([2**64 - 1], np.uint64), "18446744073709551615"),
])
def test_token_ids_that_are_no_whole_numbers_are_refused_not_cut(values, shown):
    model = build_model(from_dict({"model": {"layers": [{"type": "embedding", "vocab_size": 5, "dim": 2}]}}), (1,),
                        np.float64, np.random.default_rng(0))
    x = np.asarray(values).reshape(-1, 1)
    held = f"are indices, whole numbers, but hold {re.escape(shown)} "
    with pytest.raises(DataError, match=f"^embedding_1: the token ids {held}"):
        model.forward(x)
    with pytest.raises(DataError, match=f"^the inputs of a text model {held}"):
        text_source(TEXT).inputs(x, np.float32)
    whole = np.array([[4.0], [0.0]])
    np.testing.assert_array_equal(model.forward(whole), model.forward(whole.astype(np.int32)))



@pytest.mark.parametrize("bad", [3, -1])
def test_token_ids_outside_the_vocabulary_are_refused_as_inputs_not_blamed_on_vocab_size(bad):
    """predict's ids went to the embedding, whose message asked to change the config's vocab_size."""
    source = text_source(TEXT, vocab=["a", "b", "c"])
    np.testing.assert_array_equal(source.inputs(np.array([[0.0, 2.0]]), np.float32), [[0, 2]])
    with pytest.raises(DataError, match=re.escape(f"the inputs of a text model are token ids from 0 to 2 (its "
                                                  f"vocabulary of 3), but hold {bad}")):
        source.inputs(np.array([[0, bad, 1]]), np.float32)

@pytest.mark.slow
def test_predict_refuses_token_ids_that_are_no_whole_numbers(tmp_path):
    run = train_char_model(tmp_path)
    ids = np.arange(20, dtype=np.float64)[None]
    np.save(tmp_path / "whole.npy", ids)
    assert nnctl("predict", str(run), str(tmp_path / "whole.npy")).returncode == 0
    ids[0, 3] = 2.5
    np.save(tmp_path / "cut.npy", ids)
    result = nnctl("predict", str(run), str(tmp_path / "cut.npy"))
    assert result.returncode == 1
    assert result.stderr == ("error: the inputs of a text model are indices, whole numbers, but hold 2.5 (1 of its "
                             "20 values are no whole number)\n")


@pytest.mark.slow
@pytest.mark.parametrize("level, vocab", [
    ("word", ["cat", "mat", "on", "sat", "the"]), ("char", sorted(set("the cat sat on the mat"))),
])
def test_sample_without_a_prime_starts_from_a_token_of_the_vocabulary(tmp_path, level, vocab):
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat " * 300)  # no newline: the default start is not in the vocabulary
    run = train_char_model(tmp_path, f"data.path={text}", f"data.level={level}",
                           f"model.layers.0.vocab_size={len(vocab)}", f"model.layers.2.units={len(vocab)}")
    first = nnctl("sample", str(run), "--length", "6", "--seed", "4")
    assert first.returncode == 0, first.stderr
    assert nnctl("sample", str(run), "--length", "6", "--seed", "4").stdout == first.stdout
    tokens = first.stdout[:-1].split(" ") if level == "word" else list(first.stdout[:-1])
    assert len(tokens) == 1 + 6 and set(tokens) <= set(vocab)


@pytest.mark.slow
def test_sample_from_a_model_tied_to_its_window_length_needs_a_prime_that_long(tmp_path):
    """A flatten between the LSTM and the logits ties the weights to seq_len: a shorter prime was an internal error."""
    config = tmp_path / "tied.yaml"
    config.write_text(f"""
        name: tied
        data: {{type: text, path: {TEXT}, seq_len: 10, subset: 64}}
        model:
          layers:
            - {{type: embedding, vocab_size: 65, dim: 4}}
            - {{type: lstm, units: 8, return_sequences: true}}
            - {{type: flatten}}
            - {{type: dense, units: 650}}
            - {{type: reshape, shape: [10, 65]}}
        loss: softmax_cross_entropy
        optimizer: {{type: adam, lr: 0.01}}
        train: {{epochs: 1, batch_size: 16}}
    """.replace("\n        ", "\n"))
    runs = tmp_path / "runs"
    assert nnctl("train", str(config), "--runs-dir", str(runs), "-q").returncode == 0
    (run,) = runs.iterdir()
    for prime in (["--prime", "And God"], []):
        short = nnctl("sample", str(run), *prime, "--length", "5")
        assert short.returncode == 2, short.stderr
        assert short.stderr.startswith(f"error: --prime holds {len(prime[1]) if prime else 1} tokens, but this "
                                       "model reads exactly 10 at a time"), short.stderr
    long = nnctl("sample", str(run), "--prime", "And God said", "--length", "5", "--seed", "0")
    assert long.returncode == 0 and long.stdout.startswith("And God said") and len(long.stdout) == 12 + 5 + 1
    (tmp_path / "short.txt").write_text("And God", encoding="utf-8")
    short_text = nnctl("predict", str(run), str(tmp_path / "short.txt"))
    assert short_text.returncode == 1
    assert "short.txt: 7 tokens, but this model reads exactly 10 at a time" in short_text.stderr, short_text.stderr


@pytest.mark.slow
def test_sample_to_a_stdout_that_cannot_encode_the_text_prints_escapes(tmp_path):
    """A cp1252 console or PYTHONIOENCODING=ascii made printing 'café' an internal error (UnicodeEncodeError)."""
    text = tmp_path / "text.txt"
    text.write_text("café naïve über " * 100, encoding="utf-8")
    run = train_char_model(tmp_path, f"data.path={text}", "model.layers.0.vocab_size=12", "model.layers.2.units=12")
    result = nnctl("sample", str(run), "--prime", "café", "--length", "20", "--seed", "1",
                   env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr
    utf8 = nnctl("sample", str(run), "--prime", "café", "--length", "20", "--seed", "1")
    assert result.stdout == utf8.stdout.encode("ascii", "backslashreplace").decode("ascii")
    assert result.stdout.startswith("caf\\xe9")


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sampling_from_a_model_that_ends_in_softmax_draws_its_probabilities(temperature):
    """A model trained with mse through a final softmax gives probabilities, which were taken for logits: drawn
    from softmax(p / T), 0.9 / 0.05 / 0.05 came out as about 0.54 / 0.23 / 0.23."""
    p = np.array([0.9, 0.05, 0.05])
    model = build_model(from_dict({"model": {"layers": [
        {"type": "embedding", "vocab_size": 3, "dim": 1, "weight_init": "zeros"},
        {"type": "dense", "units": 3, "activation": "softmax", "weight_init": "zeros", "bias_init": np.log(p).tolist()},
    ]}}), (4,), np.float64, np.random.default_rng(0))
    lm = LanguageModel(model, ["a", "b", "c"], "char")
    drawn = [lm.generate("a", 1, temperature, seed=seed)[-1] for seed in range(3000)]
    want = p ** (1 / temperature) / (p ** (1 / temperature)).sum()
    assert drawn.count("a") / len(drawn) == pytest.approx(want[0], abs=0.02)


def language_model(layers: list[dict], window: int = 8) -> LanguageModel:
    """A float64 model of 5 tokens: embedding → `layers` → dense logits per step, with random weights."""
    model = build_model(from_dict({"model": {"layers": [
        {"type": "embedding", "vocab_size": 5, "dim": 3}, *layers, {"type": "dense", "units": 5},
    ]}}), (window,), np.float64, np.random.default_rng(0))
    return LanguageModel(model, list("abcde"), "char")


LEARNED = {"initial_state": "learned", "state_init": {"type": "normal", "std": 0.5}}


@pytest.mark.parametrize("layers, stepped", [
    ([{"type": "lstm", "units": 4, "return_sequences": True}], True),
    ([{"type": "gru", "units": 4, "return_sequences": True, "bias_init": {"type": "normal", "std": 0.3}}], True),
    ([{"type": "gru", "units": 4, "return_sequences": True, "reset_after": False}], True),
    ([{"type": "rnn", "units": 4, "return_sequences": True}], True),
    ([{"type": "lstm", "units": 4, "return_sequences": True, **LEARNED},
      {"type": "gru", "units": 3, "return_sequences": True, **LEARNED}, {"type": "dropout", "rate": 0.5},
      {"type": "rnn", "units": 4, "return_sequences": True, "activation": "relu", **LEARNED}], True),
    ([{"type": "lstm", "units": 4, "return_sequences": True, "bidirectional": True}], False),
])
def test_stepped_sampling_draws_from_the_distribution_of_the_recomputed_window(layers, stepped):
    """sample recomputed the whole window for every token (quadratic in --length); a model that can carry its
    recurrent state now feeds each token once, and must give the same next-token probabilities."""
    lm = language_model(layers)
    assert lm.stepped is stepped  # a bidirectional layer reads the window from both ends: it cannot step
    ids = [int(i) for i in np.random.default_rng(1).integers(5, size=8)]
    following, window = lm.following(2), lm.windows(2, np.dtype(np.float64))
    for t in range(2, len(ids) + 1):
        np.testing.assert_allclose(softmax(following(ids[:t])), softmax(window(ids[:t])), rtol=0, atol=1e-10)
    text = lm.generate("ab", 6, 0.7, seed=5)
    lm.stepped = False
    assert lm.generate("ab", 6, 0.7, seed=5) == text


@pytest.mark.slow
def test_sample_gives_the_windowed_text_while_it_fits_the_window(tmp_path):
    """Stepping changes nothing while prime and text fit in data.seq_len: the same --seed gives the same text."""
    run = train_char_model(tmp_path)
    result = nnctl("sample", str(run), "--prime", "And God", "--length", "13", "--temperature", "0.8", "--seed", "3")
    assert result.returncode == 0, result.stderr
    windowed = LanguageModel.load(run / "checkpoints" / "best.pkl")
    windowed.stepped = False
    assert result.stdout == windowed.generate("And God", 13, 0.8, seed=3) + "\n"


@pytest.mark.slow
def test_eval_and_predict_name_a_text_models_classes_by_their_tokens(tmp_path):
    """eval's per-class table, its --json and predict's table, CSV and JSON named the classes 0 … 64, token ids,
    and predict's steps did not say which token each prediction follows."""
    run = train_char_model(tmp_path)
    vocab = sorted(set(TEXT.read_text(encoding="utf-8")))
    shown = nnctl("eval", str(run), "--split", "val")
    assert shown.returncode == 0, shown.stderr
    rows = {line.split("│")[1].strip() for line in shown.stdout.splitlines() if line.count("│") == 6}
    assert {"'\\n'", "' '", "e", "—", "’"} <= rows and "64" not in rows, shown.stdout
    assert json.loads(nnctl("eval", str(run), "--split", "val", "--json").stdout)["classes"] == vocab
    np.save(tmp_path / "ids.npy", np.array([[vocab.index(c) for c in "And God said unto th"]]))
    table = nnctl("predict", str(run), str(tmp_path / "ids.npy"))
    assert table.returncode == 0, table.stderr
    cells = [line.split("│")[3:5] for line in table.stdout.splitlines() if line.count("│") == 7]
    tokens, classes = [cell[0].strip() for cell in cells if cell[0].strip()], [cell[1].strip() for cell in cells]
    assert tokens == ["A", "n", "d", "' '", "G", "t", "o", "' '", "t", "h"], table.stdout  # the first and last 5
    assert classes and set(classes) - {""} <= {vocab[i] if vocab[i].strip() else repr(vocab[i])
                                               for i in range(65)}, table.stdout
    assert nnctl("predict", str(run), str(tmp_path / "ids.npy"), "-o", str(tmp_path / "p.csv")).returncode == 0
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0].startswith("input,step,token,class,p'\\n',p' ',p!,p(,p),\"p,\",")
    assert lines[4].startswith(f"{tmp_path / 'ids.npy'},3,' ',")
    assert nnctl("predict", str(run), str(tmp_path / "ids.npy"), "-o", str(tmp_path / "p.json")).returncode == 0
    steps = json.loads((tmp_path / "p.json").read_text())[0]["steps"]
    assert "".join(step["token"] for step in steps) == "And God said unto th"
    assert {step["class"] for step in steps} <= set(vocab)


@pytest.mark.slow
def test_predict_reads_a_text_file_with_the_checkpoints_vocabulary(tmp_path):
    """A language model's predict took token ids only: a .txt was 'unknown kind of input'."""
    run = train_char_model(tmp_path)
    vocab = sorted(set(TEXT.read_text(encoding="utf-8")))
    (tmp_path / "window.txt").write_text("And God said,\nLet th", encoding="utf-8")  # data.seq_len: 20 characters
    np.save(tmp_path / "window.npy", np.array([[vocab.index(c) for c in "And God said,\nLet th"]]))
    for name in ("window.txt", "window.npy"):
        written = nnctl("predict", str(run), str(tmp_path / name), "-o", str(tmp_path / f"{name}.csv"))
        assert written.returncode == 0, written.stderr
    rows = [(tmp_path / f"{name}.csv").read_text().splitlines() for name in ("window.txt", "window.npy")]
    assert [row.partition(",")[2] for row in rows[0]] == [row.partition(",")[2] for row in rows[1]]
    (tmp_path / "long.txt").write_text("And God said,\nLet there be light", encoding="utf-8")  # longer than a window
    long = nnctl("predict", str(run), str(tmp_path / "long.txt"), "-o", str(tmp_path / "long.json"))
    assert long.returncode == 0, long.stderr
    steps = json.loads((tmp_path / "long.json").read_text())[0]["steps"]
    assert len(steps) == 32 and {step["class"] for step in steps} <= set(vocab)
    (tmp_path / "unknown.txt").write_text("And God said,\nLet there be #light", encoding="utf-8")
    unknown = nnctl("predict", str(run), str(tmp_path / "unknown.txt"))
    assert unknown.returncode == 1
    assert unknown.stderr.startswith(f"error: {tmp_path / 'unknown.txt'}:2: '#' is not in the model's vocabulary of "
                                     "65 char tokens"), unknown.stderr
    mixed = nnctl("predict", str(run), str(tmp_path / "long.txt"), str(tmp_path / "window.txt"))
    assert mixed.returncode == 1 and "a sequence of 20 tokens, but the inputs before it hold 32" in mixed.stderr
    assert "Traceback" not in unknown.stderr + mixed.stderr


@pytest.mark.slow
def test_predict_charges_a_long_texts_outputs_at_every_step_before_running_the_model(tmp_path):
    """A 200,000-character text under a 64 MiB limit ran the model and ranked 65 classes at every step (202 MiB),
    past the limit, as only the token ids were charged."""
    run = train_char_model(tmp_path)
    (tmp_path / "long.txt").write_text("And God said " * 15_385, encoding="utf-8")
    result = nnctl("predict", str(run), str(tmp_path / "long.txt"), env={"NNCTL_MAX_MEMORY": "64M"})
    clean_error(result, 1, "long.txt: 1 inputs (read, joined, prepared as the training samples were, and their "
                           "outputs) would need 202.2 MiB, more than the 64.0 MiB")


def test_sampling_at_temperature_0_takes_the_likeliest_token_each_time():
    """--temperature 0 was refused ('must be a finite number above 0'); it is greedy decoding, the limit of T → 0."""
    lm = language_model([{"type": "gru", "units": 4, "return_sequences": True}])
    text = lm.generate("ab", 6, 0.0, seed=1)
    ids = [lm.index[c] for c in "ab"]
    for _ in range(6):
        ids.append(int(np.argmax(lm.model.forward(np.array([ids], dtype=np.float64))[0, -1])))
    assert text == "".join(lm.vocab[i] for i in ids)
    assert lm.generate("ab", 6, 0.0, seed=2) == lm.generate("ab", 6, 0.0) == lm.generate("ab", 6, 1e-300, seed=3)


@pytest.mark.slow
def test_sample_at_temperature_0_through_the_cli(tmp_path):
    run = train_char_model(tmp_path)
    greedy = [nnctl("sample", str(run), "--prime", "And", "--length", "30", "--temperature", "0", *seed)
              for seed in ([], ["--seed", "7"])]
    assert greedy[0].returncode == 0, greedy[0].stderr
    assert greedy[0].stdout == greedy[1].stdout and len(greedy[0].stdout) == 3 + 30 + 1
    negative = nnctl("sample", str(run), "--temperature", "-1")
    assert negative.returncode == 2 and "--temperature must be a finite number of at least 0" in negative.stderr


@pytest.mark.parametrize("stacked", [False, True])
def test_predict_on_a_text_longer_than_the_window_carries_the_state_in_bounded_memory(stacked):
    """predict ran a long text through the model as one sequence, whose per-step caches grew with it: 150 KB of
    Genesis took 1.5 GB through char_lstm's LSTM 256. It now goes a window at a time, carrying the state."""
    layers = [{"type": "lstm", "units": 32, "return_sequences": True, **LEARNED}]
    if stacked:
        layers.append({"type": "gru", "units": 16, "return_sequences": True})
    lm = language_model(layers, window=10)
    ids = np.random.default_rng(2).integers(5, size=(1, 10_000))
    whole = lm.model.forward(ids[:, :1000].astype(np.float64))
    np.testing.assert_allclose(predict(lm.model, ids[:, :1000].astype(np.float64)), whole, rtol=0, atol=1e-12)
    tracemalloc.start()
    try:
        outputs = predict(lm.model, ids.astype(np.float64))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outputs.shape == (1, 10_000, 5)
    assert peak < 8 * outputs.nbytes  # the whole sequence's caches: 10,000 steps × 7 × 32 × 8 bytes, 18 MB


def test_the_outputs_of_a_layer_on_a_long_text_are_windowed_too():
    """predict --layer ran a long text through the layers as one sequence, though plain predict went a window at a
    time: 10,000 steps kept 18 MB of the LSTM's caches to give 160 KB of the rnn's outputs."""
    lm = language_model([{"type": "lstm", "units": 32, "return_sequences": True, **LEARNED},
                         {"type": "rnn", "units": 2, "return_sequences": True}], window=10)
    ids = np.random.default_rng(3).integers(5, size=(2, 1000)).astype(np.float64)
    for depth in (2, 3, 4):  # through the lstm, the rnn, the logits
        np.testing.assert_allclose(predict(lm.model, ids, depth=depth), lm.model.forward(ids, depth=depth),
                                   rtol=0, atol=1e-12)
    long = np.random.default_rng(4).integers(5, size=(1, 10_000)).astype(np.float64)
    tracemalloc.start()
    try:
        outputs = predict(lm.model, long, depth=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outputs.shape == (1, 10_000, 2) and peak < 8 * outputs.nbytes


def test_a_long_text_that_a_bidirectional_model_reads_whole_is_refused_past_the_memory_limit(monkeypatch):
    """A bidirectional layer cannot go a window at a time, so it kept every step's caches of a long text, with no
    estimate: a text long enough took all the machine's memory rather than being refused under NNCTL_MAX_MEMORY."""
    ids = np.random.default_rng(5).integers(5, size=(3, 20_000)).astype(np.float64)
    lm = language_model([{"type": "lstm", "units": 32, "return_sequences": True, "bidirectional": True}], window=10)
    monkeypatch.setenv(ENV, "64M")
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as refused:
            predict(lm.model, ids, batch_size=2)
        assert tracemalloc.get_traced_memory()[1] < 1 << 20  # refused before the caches were made
    finally:
        tracemalloc.stop()
    message = str(refused.value)
    assert message.startswith("3 sequences of 20,000 steps (2 at a time), read whole as layer 'lstm_1' must "
                              "(bidirectional lstm layers cannot carry their state from one window of 10 steps to "
                              "the next) would need "), message
    need = float(re.search(r"would need ([\d.]+) MiB", message).group(1)) * (1 << 20)
    monkeypatch.delenv(ENV)
    tracemalloc.start()
    try:
        predict(lm.model, ids, batch_size=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < need  # the estimate errs on the side of refusing
    monkeypatch.setenv(ENV, "64M")
    one_way = language_model([{"type": "lstm", "units": 64, "return_sequences": True}], window=10)
    assert predict(one_way.model, ids, batch_size=2).shape == (3, 20_000, 5)  # a window at a time: no refusal


@pytest.mark.slow
def test_predict_layer_on_a_long_text_through_the_cli_gives_the_whole_sequences_outputs(tmp_path):
    run = train_char_model(tmp_path)
    text = TEXT.read_text(encoding="utf-8")[:3000]  # 150 windows of data.seq_len
    (tmp_path / "long.txt").write_text(text, encoding="utf-8")
    result = nnctl("predict", str(run), str(tmp_path / "long.txt"), "--layer", "lstm_1", "-o",
                   str(tmp_path / "lstm.npy"), env={ENV: "64M"})
    assert result.returncode == 0, result.stderr
    lm = LanguageModel.load(run / "checkpoints" / "best.pkl")
    whole = lm.model.forward(np.array([[lm.index[c] for c in text]], dtype=np.float32), depth=2)
    np.testing.assert_allclose(np.load(tmp_path / "lstm.npy"), whole, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_predict_reads_token_ids_of_any_length_where_the_model_does(tmp_path):
    """Token ids of another length than data.seq_len were refused ('does not fit this model'), though an LSTM reads
    any length, and a .txt of that length is read."""
    run = train_char_model(tmp_path)
    vocab = sorted(set(TEXT.read_text(encoding="utf-8")))
    (tmp_path / "short.txt").write_text("And God", encoding="utf-8")
    np.save(tmp_path / "short.npy", np.array([vocab.index(c) for c in "And God"]))
    np.save(tmp_path / "rows.npy", np.array([[vocab.index(c) for c in "And God"]] * 2))
    written = {}
    for name in ("short.txt", "short.npy", "rows.npy"):
        result = nnctl("predict", str(run), str(tmp_path / name), "-o", str(tmp_path / f"{name}.npy"))
        assert result.returncode == 0, result.stderr
        written[name] = np.load(tmp_path / f"{name}.npy")
    assert written["short.txt"].shape == (1, 7, 65)
    np.testing.assert_array_equal(written["short.npy"], written["short.txt"])
    # a batch of two rows may take other BLAS kernels than one row (OPENBLAS_CORETYPE=Haswell on AMD does)
    np.testing.assert_allclose(written["rows.npy"], np.concatenate([written["short.txt"]] * 2), rtol=1e-6)


def test_a_prime_with_windows_line_ends_reads_as_the_training_text_did():
    """Training reads '\\r\\n' as '\\n', but a --prime pasted from such a file was refused for holding '\\r'."""
    model = language_model([{"type": "lstm", "units": 4, "return_sequences": True}]).model
    lm = LanguageModel(model, ["\n", "a", "b", "c", "d"], "char")
    assert lm.prime_ids("ab\r\ncd\r") == lm.prime_ids("ab\ncd\n") == [1, 2, 0, 3, 4, 0]
    assert lm.generate("ab\r\nc", 0) == "ab\nc"


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_sampling_from_the_top_1_token_is_greedy(temperature):
    lm = language_model([{"type": "lstm", "units": 4, "return_sequences": True}])
    greedy = lm.generate("ab", 12, 0.0)
    assert all(lm.generate("ab", 12, temperature, seed=seed, top_k=1) == greedy for seed in range(5))
    assert all(lm.generate("ab", 12, temperature, seed=seed, top_p=1e-9) == greedy for seed in range(5))
    assert lm.generate("ab", 12, 0.0, top_k=3, top_p=0.5) == greedy  # temperature 0 stays greedy


def test_top_k_and_top_p_draw_only_from_the_likeliest_tokens():
    """Every token outside the top K (or the nucleus) has probability 0, so no number of draws shows one."""
    lm = language_model([{"type": "gru", "units": 4, "return_sequences": True}])
    logits = np.log([0.05, 0.4, 0.1, 0.3, 0.15])  # ranked: b d e c a
    rng = np.random.default_rng(0)
    for top_k, top_p, kept in [(2, 1.0, {1, 3}), (3, 1.0, {1, 3, 4}), (None, 0.69, {1, 3}), (None, 0.71, {1, 3, 4}),
                               (3, 0.8, {1, 3}), (3, 0.85, {1, 3, 4}), (99, 1.0, set(range(5)))]:
        drawn = {lm.draw(logits, 1.0, rng, top_k, top_p) for _ in range(2000)}
        assert drawn == kept, (top_k, top_p)
    with pytest.raises(ConfigError, match="--top-k must be at least 1 and --top-p above 0 and at most 1"):
        lm.generate("ab", 3, 1.0, top_k=0)


def test_top_k_keeps_the_first_of_equal_tokens_and_rescales_the_rest():
    p = np.array([0.1, 0.3, 0.3, 0.3])
    np.testing.assert_allclose(restrict(p, 2, 1.0), [0, 0.5, 0.5, 0])
    np.testing.assert_allclose(restrict(p, None, 0.5), [0, 0.5, 0.5, 0])  # 0.3 of 1 is short of 0.5: two
    assert restrict(p, 4, 1.0) is p and restrict(p, None, 1.0) is p  # nothing cut: the very same draws


@pytest.mark.slow
def test_sample_top_k_through_the_cli(tmp_path):
    """sample drew from every token of the vocabulary; --top-k and --top-p restrict it as Hugging Face's do."""
    run = train_char_model(tmp_path)
    args = ["sample", str(run), "--prime", "And God", "--length", "40", "--seed", "3"]
    greedy = nnctl(*args, "--temperature", "0")
    assert nnctl(*args, "--temperature", "2", "--top-k", "1").stdout == greedy.stdout != ""
    assert nnctl(*args, "--top-k", "65").stdout == nnctl(*args, "--top-k", "1000").stdout == nnctl(*args).stdout
    lm = LanguageModel.load(run / "checkpoints" / "best.pkl")
    likeliest = set(np.argsort(-lm.model.forward(np.array([lm.prime_ids("And God")], dtype=np.float32))[0, -1])[:3])
    drawn = {lm.generate("And God", 1, 1.5, seed=seed, top_k=3)[-1] for seed in range(300)}
    assert drawn <= {lm.vocab[i] for i in likeliest} and len(drawn) > 1
    for option, value, message in [("--top-k", "0", "--top-k must be a finite number of at least 1, got 0"),
                                   ("--top-p", "0", "--top-p must be a finite number above 0, got 0.0"),
                                   ("--top-p", "1.5", "--top-p may be at most 1, got 1.5"),
                                   ("--top-p", "nan", "--top-p must be a finite number above 0, got nan")]:
        refused = nnctl(*args, option, value)
        assert refused.returncode == 2 and refused.stderr == f"error: {message}\n", refused.stderr


@pytest.mark.slow
def test_a_bidirectional_language_model_is_refused_before_its_run_is_made(tmp_path):
    """A bidirectional layer reads each step's target, the next token, from the steps ahead: it trained to a loss
    near 0 and generated nonsense."""
    runs = tmp_path / "runs"
    bidirectional = [*TINY, "model.layers.1.bidirectional=true"]
    for command in (["train", "--runs-dir", str(runs)], ["check"]):
        result = nnctl(command[0], str(CONFIGS / "char_lstm.yaml"), *bidirectional, *command[1:])
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: override 'model.layers.1.bidirectional=true': model.layers.1."
                                        "bidirectional: data.type text trains every step to predict the next token, "
                                        "which this layer's reversed pass reads from the steps ahead"), result.stderr
        assert result.stderr.endswith("use a one-way layer (bidirectional: false)\n") and "Traceback" not in \
            result.stderr
    (tmp_path / "s.yaml").write_text(f"base: {CONFIGS / 'char_lstm.yaml'}\ngrid:\n"
                                     "  model.layers.1.bidirectional: [false, true]\n")
    sweep = nnctl("sweep", str(tmp_path / "s.yaml"), "--runs-dir", str(runs))
    assert sweep.returncode == 2 and sweep.stderr.startswith("error: member model.layers.1.bidirectional=True: "), (
        sweep.stderr)  # before any run
    assert "s.yaml:3 (grid.model.layers.1.bidirectional): model.layers.1.bidirectional: data.type text trains every " \
           "step to predict the next token" in sweep.stderr
    assert not runs.exists()


def bidirectional_checkpoint(run: Path, path: Path) -> Path:
    """The run's last.pkl made into a bidirectional model's (as one trained before train refused them): the lstm's
    reversed pass given the forward one's arrays, the logits' weights doubled to read both, the optimizer's slots
    zeros of the new shapes."""
    raw = safe_unpickle((run / "checkpoints" / "last.pkl").read_bytes())
    lstm, dense = raw["model"]["lstm_1"]["params"], raw["model"]["dense_1"]["params"]
    lstm.update({f"{key}_r": lstm[key].copy() for key in ("Wx", "Wh", "b")})
    dense["W"] = np.concatenate([dense["W"], dense["W"]])
    params = [array for layer in raw["model"].values() for array in layer["params"].values()]
    slots = raw["optimizer"]["slots"]
    slots.update({name: [np.zeros_like(array) for array in params] for name in slots})
    raw["config"]["model"]["layers"][1]["bidirectional"] = True
    raw["course"] = course_hash(raw["config"], HASH_FREE)
    path.write_bytes(pickle.dumps(raw, protocol=pickle.HIGHEST_PROTOCOL))
    return path


@pytest.mark.slow
def test_a_bidirectional_language_model_of_an_old_run_is_refused_at_resume_as_at_train(tmp_path):
    """A run made before train refused bidirectional text models went on training under --resume, learning to copy
    its targets; --resume now refuses it as `train CONFIG` does, before any run folder is made. Its checkpoint
    still evaluates."""
    checkpoint = bidirectional_checkpoint(train_char_model(tmp_path), tmp_path / "bi.pkl")
    runs = tmp_path / "resumed"
    resumed = nnctl("train", "--resume", str(checkpoint), "train.epochs=2", "--runs-dir", str(runs))
    assert resumed.returncode == 2 and "model.layers.1.bidirectional: data.type text trains every step to predict " \
        "the next token, which this layer's reversed pass reads from the steps ahead" in resumed.stderr, resumed.stderr
    assert resumed.stderr.endswith("use a one-way layer (bidirectional: false)\n") and resumed.stderr.count("\n") == 1
    assert not runs.exists()
    evaluated = nnctl("eval", str(checkpoint), "--split", "val", "--json")
    assert evaluated.returncode == 0 and json.loads(evaluated.stdout)["samples"] > 0, evaluated.stderr


@pytest.mark.slow
def test_a_bidirectional_checkpoint_samples_by_windows_and_predicts_a_long_text_within_the_limit(tmp_path):
    checkpoint = bidirectional_checkpoint(train_char_model(tmp_path), tmp_path / "bi.pkl")
    sampled = nnctl("sample", str(checkpoint), "--prime", "And God", "--length", "30", "--seed", "1")
    assert sampled.returncode == 0 and len(sampled.stdout) == 7 + 30 + 1, sampled.stderr  # the window, read again
    (tmp_path / "long.txt").write_text(TEXT.read_text(encoding="utf-8")[:30_000], encoding="utf-8")
    args = ["predict", str(checkpoint), str(tmp_path / "long.txt"), "-o", str(tmp_path / "p.npy")]
    refused = nnctl(*args, env={ENV: "32M"})
    assert refused.returncode == 1 and refused.stderr.startswith(
        "error: 1 sequence of 30,000 steps, read whole as layer 'lstm_1' must (bidirectional lstm layers cannot "
        "carry their state from one window of 20 steps to the next) would need "), refused.stderr
    assert not (tmp_path / "p.npy").exists()
    assert nnctl(*args).returncode == 0 and np.load(tmp_path / "p.npy").shape == (1, 30_000, 65)
