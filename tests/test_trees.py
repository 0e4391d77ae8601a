"""Trees: the bracketed reader and its node tables, the recursive layer, and the shipped task through the CLI."""

import json
import re
from collections import defaultdict

import numpy as np
import pytest

from helpers import CONFIGS, nnctl
from nnctl.builder import build_model
from nnctl.config import from_dict
from nnctl.data import DATASETS
from nnctl.data.boolean_trees import main as generate_files
from nnctl.data.trees import encode, format_tree, parse_tree, read_trees, vocabulary
from nnctl.errors import ConfigError, DataError
from nnctl.limits import ENV

TRAIN, TEST = CONFIGS / "data" / "bool_trees_train.txt", CONFIGS / "data" / "bool_trees_test.txt"
SST = "(3 (2 it) (4 (3 works) (2 well)))"


def recursive(dim=4, vocab_size=6, dtype=np.float64, **config):
    """A model of one recursive layer for node tables of 40 rows."""
    spec = {"type": "recursive", "vocab_size": vocab_size, "dim": dim, **config}
    return build_model(from_dict({"model": {"layers": [spec]}}), (40, 3), dtype, np.random.default_rng(0))


@pytest.mark.parametrize("line, message", [
    ("(1 (0 a) (1 b)", "unbalanced brackets: 1 '(' left open"),
    ("(1 (0 a) (1 b)))", "unbalanced brackets: a ')' closes nothing"),
    ("(x (0 a) (1 b))", "column 2: a bad label"),
    ("(-1 (0 a) (1 b))", "column 2: a bad label"),
    ("(2147483648 (0 a) (1 b))", "column 2: a bad label: a node starts with its class, an integer from 0 to 2,147"),
    (f"({'9' * 5000} (0 a) (1 b))", "column 2: a bad label"),
    ("((0 a) (1 b))", "missing label"),
    ("(1 (0 a) (1 b) (0 c))", "a node with 3 subtrees: trees must be binary"),
    ("(1 (0 a))", "a node with 1 subtree: trees must be binary"),
    ("(1)", "'(1)' has no word and no subtrees"),
    ("(1 a b)", "column 6: an unexpected word"),
    ("(1 a) b", "column 7: a word outside any tree"),
    ("(1 a (0 b))", "a node is (label word) or (label (left) (right))"),
    ("(1 a) (0 b)", "a second tree on the same line"),
])
def test_reader_names_the_line_and_the_mistake(tmp_path, line, message):
    path = tmp_path / "trees.txt"
    path.write_text(f"{SST}\n\n{line}\n(0 c)\n")
    with pytest.raises(DataError) as caught:
        read_trees(path)
    assert str(caught.value).startswith(f"{path}:3: ")
    assert message in str(caught.value)


def test_a_tree_file_with_a_byte_order_mark_is_read(tmp_path):
    """A UTF-8 BOM (Notepad's) at the start of the file was 'a word outside any tree' on line 1."""
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf(1 (0 a) (1 b))\r\n(0 c)\r\n")
    trees = read_trees(path)
    assert [labels[-1] for _, labels in trees] == [1, 0] and vocabulary(trees) == ["<unk>", "a", "b", "c"]


@pytest.mark.slow
def test_a_bad_tree_file_ends_train_with_one_error_line(tmp_path):
    path = tmp_path / "trees.txt"
    path.write_text(f"{SST}\n(2 (1 a) (0 b)\n")
    result = nnctl("train", str(CONFIGS / "tree_rnn.yaml"), f"data.path={path}", "--runs-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {path}:2: unbalanced brackets: 1 '(' left open at the end of the line"


def test_tree_tables_padded_past_the_memory_limit_are_refused_before_allocating(tmp_path, monkeypatch):
    deep = "(0 a)"
    for _ in range(2000):
        deep = f"(0 {deep} (0 a))"
    trees = [parse_tree(deep)] + [parse_tree("(1 (0 a) (1 b))")] * 5000  # each padded to 4,001 nodes: 458 MiB
    monkeypatch.setenv(ENV, "100M")
    with pytest.raises(DataError, match="t.txt: 5,001 trees padded to the longest, of 4,001 nodes would need 458"):
        encode(trees, vocabulary(trees), 4001, "t.txt")


def test_node_table_of_a_treebank_line_by_hand():
    trees = [parse_tree(SST), parse_tree("(1 (0 it) (1 rocks))")]
    words = vocabulary(trees[:1])
    assert words == ["<unk>", "it", "well", "works"]
    x, y = encode(trees, words, 6)
    np.testing.assert_array_equal(x[0], [[1, -1, -1], [3, -1, -1], [2, -1, -1], [-1, 1, 2], [-1, 0, 3],
                                         [-1, -1, -1]])
    np.testing.assert_array_equal(x[1, :3], [[1, -1, -1], [0, -1, -1], [-1, 0, 1]])  # 'rocks' is unknown: id 0
    assert y.tolist() == [3, 1]


def test_shipped_files_round_trip_through_node_tables():
    trees = read_trees(TRAIN)
    words = vocabulary(trees)
    x, _ = encode(trees, words, max(len(nodes) for nodes, _ in trees))
    for table, (nodes, labels), line in zip(x, trees, TRAIN.read_text().splitlines(), strict=True):
        rows = [(words[w] if w >= 0 else None, int(left), int(right)) for w, left, right in table[:len(nodes)]]
        assert format_tree(rows, labels) == line
        assert (table[len(nodes):] == -1).all()


def test_generator_writes_the_shipped_files_from_its_seed(tmp_path):
    generate_files([str(tmp_path), "--seed", "0"])
    assert (tmp_path / "bool_trees_train.txt").read_text() == TRAIN.read_text()
    assert (tmp_path / "bool_trees_test.txt").read_text() == TEST.read_text()


def test_the_task_needs_the_structure_not_just_the_words():
    values_by_words = defaultdict(set)
    for nodes, labels in read_trees(TRAIN):
        values_by_words[tuple(sorted(word for word, _, _ in nodes if word))].add(labels[-1])
    assert sum(len(values) == 2 for values in values_by_words.values()) > 50


def test_dataset_keeps_node_tables_integer_and_refuses_scaling():
    data = DATASETS.get("trees")(path=str(TRAIN), test_path=str(TEST)).load(np.float32)
    longest = max(len(nodes) for nodes, _ in read_trees(TEST))
    assert data.train.x.dtype == np.int64 and data.train.x.shape == (2000, longest, 3)
    assert data.test.x.shape == (500, longest, 3)
    assert data.num_classes == 2 and data.input_shape == (longest, 3)
    config = from_dict({"data": {"type": "trees", "path": str(TRAIN), "scale": 0.5}})
    with pytest.raises(ConfigError, match="scale and shift do not apply to trees: its inputs are indices"):
        DATASETS.build(config.data["data"], config, ("data",), base_dir=".")
    config = from_dict({"data": {"type": "trees", "path": str(TRAIN), "normalize": True}})
    with pytest.raises(ConfigError, match="normalize does not apply to trees: its inputs are indices"):
        DATASETS.build(config.data["data"], config, ("data",), base_dir=".")
    config = from_dict({"data": {"type": "trees", "path": str(TRAIN), "augment": {"shift": 1}}})
    with pytest.raises(ConfigError, match="augment does not apply to trees: its inputs are indices"):
        DATASETS.build(config.data["data"], config, ("data",), base_dir=".")


def test_forward_values_by_hand():
    model = build_model(from_dict({"model": {"layers": [
        {"type": "recursive", "vocab_size": 3, "dim": 1, "embedding_init": [[0.0], [1.0], [2.0]],
         "weight_init": [[0.5], [0.25]], "bias_init": [0.1]}]}}), (5, 3), np.float64, np.random.default_rng(0))
    x = np.array([[[1, -1, -1], [2, -1, -1], [-1, 0, 1], [1, -1, -1], [-1, 2, 3]],  # ((a b) a)
                  [[2, -1, -1]] + [[-1, -1, -1]] * 4])  # b alone
    inner = np.tanh(0.5 * 1 + 0.25 * 2 + 0.1)
    np.testing.assert_allclose(model.forward(x)[:, 0], [np.tanh(0.5 * inner + 0.25 * 1 + 0.1), 2.0], rtol=1e-14)


def height(nodes, i=-1):
    _, left, right = nodes[i]
    return 0 if left < 0 else 1 + max(height(nodes, left), height(nodes, right))


def test_batched_forward_equals_tree_by_tree_with_one_product_per_height():
    trees = read_trees(TEST)[:60]
    x, _ = encode(trees, vocabulary(read_trees(TRAIN)), 40)
    layer = recursive(activation="relu").layers[0]
    batched = layer.forward(x, training=False)
    assert len(layer.levels) == max(height(nodes) for nodes, _ in trees)
    assert sum(len(level) for level in layer.levels) == sum(word is None for nodes, _ in trees for word, _, _ in nodes)
    for i, (nodes, _) in enumerate(trees):
        alone = layer.forward(x[i:i + 1, :len(nodes)], training=False)
        np.testing.assert_allclose(batched[i], alone[0], rtol=1e-12, atol=1e-15)


@pytest.mark.slow
def test_whole_model_gradients_on_real_trees_through_the_cli():
    result = nnctl("gradcheck", str(CONFIGS / "tree_rnn.yaml"), "--samples", "6", "--per-tensor", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 5 checks passed" in result.stdout  # E, W, b of recursive; W, b of dense (inputs are indices)


@pytest.mark.slow
def test_a_vocab_size_smaller_than_the_vocabulary_is_a_clear_error(tmp_path):
    result = nnctl("train", str(CONFIGS / "tree_rnn.yaml"), "model.layers.0.vocab_size=4", "--runs-dir",
                   str(tmp_path))
    assert result.returncode == 1
    assert "error: layer recursive_1: word id 5 is beyond its vocab_size 4" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_tree_rnn_learns_and_its_checkpoint_evaluates_the_same(tmp_path):
    result = nnctl("train", str(CONFIGS / "tree_rnn.yaml"), "train.epochs=8", "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (run,) = tmp_path.iterdir()
    summary = json.loads((run / "summary.json").read_text())
    majority = max(np.bincount([labels[-1] for _, labels in read_trees(TEST)])) / 500
    assert summary["test"]["test_accuracy"] > majority + 0.3
    evaluated = nnctl("eval", str(run / "checkpoints" / f"{summary['test_on']['weights']}.pkl"), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["samples"] == 500
    assert report["accuracy"] == summary["test"]["test_accuracy"]
    assert report["loss"] == pytest.approx(summary["test"]["test_loss"], rel=1e-6)


def table(*rows, length=6):
    """One node table of `length` rows: `rows`, then -1 padding."""
    return np.array([*rows] + [[-1, -1, -1]] * (length - len(rows)))


MALFORMED = {  # node tables that are no binary tree in post-order, and what the layer says of each
    "a child out of range": (table([1, -1, -1], [-1, 0, 500]), "row 1 [-1, 0, 500] of the batch's node table 0 is "
                             "neither a leaf"),
    "a negative child": (table([1, -1, -1], [-1, 0, -7]), "row 1 [-1, 0, -7]"),
    "its own child": (table([1, -1, -1], [-1, 1, 1]), "row 1 [-1, 1, 1]"),
    "a later child": (table([1, -1, -1], [-1, 0, 2], [2, -1, -1]), "row 1 [-1, 0, 2]"),
    "a child twice": (table([1, -1, -1], [-1, 0, 0]), "row 0 [1, -1, -1] of the batch's node table 0 is a child "
                      "of 2 nodes"),
    "two roots": (table([1, -1, -1], [2, -1, -1]), "row 0 [1, -1, -1] of the batch's node table 0 is a child of "
                  "0 nodes"),
    "a gap": (table([1, -1, -1], [-1, -1, -1], [2, -1, -1]), "row 2 [2, -1, -1] of the batch's node table 0 comes "
              "after padding"),
    "no tree": (table(), "the batch's node table 0 is all padding"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_node_table_that_is_no_tree_is_refused_with_its_row(name):
    x, message = MALFORMED[name]
    good = table([1, -1, -1], [2, -1, -1], [-1, 0, 1])
    model = recursive()
    with pytest.raises(DataError, match=re.escape(message.replace("table 0", "table 1"))):
        model.forward(np.stack([good, x]).astype(np.int64))
    model.forward(good[None])


@pytest.mark.slow
def test_predict_on_node_tables_that_are_no_trees_ends_with_one_error_line(tmp_path):
    result = nnctl("train", str(CONFIGS / "tree_rnn.yaml"), "train.epochs=1", "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (run,) = tmp_path.iterdir()
    length = max(len(nodes) for path in (TRAIN, TEST) for nodes, _ in read_trees(path))
    for name, (x, message) in MALFORMED.items():
        path = tmp_path / "tree.npy"
        np.save(path, np.concatenate([x, table(length=length - len(x))]))
        result = nnctl("predict", str(run), str(path))
        assert result.returncode == 1, f"{name}: {result.stdout}{result.stderr}"
        assert result.stderr.startswith(f"error: layer recursive_1: {message}"), f"{name}: {result.stderr}"
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_predict_on_a_word_id_beyond_the_vocabulary_blames_the_input_not_the_config(tmp_path):
    """predict's message said 'set vocab_size', a config key of training, for a trained model's input."""
    result = nnctl("train", str(CONFIGS / "tree_rnn.yaml"), "train.epochs=1", "data.subset=64", "data.validation=16",
                   "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (run,) = tmp_path.iterdir()
    length = max(len(nodes) for path in (TRAIN, TEST) for nodes, _ in read_trees(path))
    np.save(tmp_path / "tree.npy", table([500, -1, -1], length=length))
    result = nnctl("predict", str(run), str(tmp_path / "tree.npy"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: layer recursive_1: word id 500 is beyond its vocab_size"), result.stderr
    assert "a trained model reads only the ids of the vocabulary it was trained on" in result.stderr
    assert "set vocab_size" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
