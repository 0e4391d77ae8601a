"""Labelled binary trees, one per line, in the Stanford Sentiment Treebank form: `(3 (2 it) (3 works))`.

A tree travels as a node table of shape (nodes, 3) in post-order: each row is (word id, left row, right row), with
-1 for what a node lacks (an inner node's word, a leaf's children); padding rows are all -1. Post-order puts every
child before its parent, so the root is the last real row and a layer can walk the table bottom-up.
"""

import re
from pathlib import Path

import numpy as np

from nnctl.data.source import DATASETS, MAX_LABEL, Arrays, FileSource
from nnctl.errors import DataError
from nnctl.files import read_text
from nnctl.limits import too_big

Node = tuple[str | None, int, int]
"""(word, left, right): a leaf's word with -1, -1; an inner node's None with the rows of its children."""
TREE_COST = 40
"""What reading trees costs in memory per byte of the file at most: each token of a few bytes becomes a node of several
Python objects (about 27 bytes a byte for `(1 (0 a) (1 b))`)."""
UNKNOWN = "<unk>"
"""Word id 0: every word the training file does not hold."""
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_SHAPE = "a node is (label word) or (label (left) (right))"


def parse_tree(text: str) -> tuple[list[Node], list[int]]:
    """The nodes of one bracketed binary tree in post-order, and their labels; ValueError says what is wrong.

    A message names a column, never the text itself: a file a stranger's checkpoint points at stays unquoted."""
    nodes: list[Node] = []
    labels: list[int] = []
    stack: list[dict] = []
    for match in _TOKEN.finditer(text):
        token, column = match.group(), match.start() + 1
        top = stack[-1] if stack else None
        if token == "(":
            if top is None and nodes:
                raise ValueError("a second tree on the same line; write one tree per line")
            if top is not None and (top["label"] is None or top["word"] is not None):
                raise ValueError("missing label: every node starts with its class, as in (2 (1 a) (0 b))"
                                 if top["label"] is None else _SHAPE)
            stack.append({"label": None, "word": None, "children": []})
        elif top is None:
            raise ValueError("unbalanced brackets: a ')' closes nothing" if token == ")"
                             else f"column {column}: a word outside any tree")
        elif token == ")":
            stack.pop()
            nodes.append(_node(top))
            labels.append(top["label"])
            if stack:
                stack[-1]["children"].append(len(nodes) - 1)
        elif top["label"] is None:
            if not re.fullmatch(r"[0-9]{1,10}", token) or int(token) > MAX_LABEL:
                raise ValueError(f"column {column}: a bad label: a node starts with its class, an integer from 0 to "
                                 f"{MAX_LABEL:,}")
            top["label"] = int(token)
        elif top["word"] is None and not top["children"]:
            top["word"] = token
        else:
            raise ValueError(f"column {column}: an unexpected word: {_SHAPE}")
    if stack:
        raise ValueError(f"unbalanced brackets: {len(stack)} '(' left open at the end of the line")
    if not nodes:
        raise ValueError("no tree")
    return nodes, labels


def _node(frame: dict) -> Node:
    """A finished node; ValueError for one without a label, or with other than a word or two children."""
    children, word = frame["children"], frame["word"]
    if frame["label"] is None:
        raise ValueError("missing label: '()' has no class")
    if word is not None:
        return word, -1, -1
    if not children:
        raise ValueError(f"'({frame['label']})' has no word and no subtrees: {_SHAPE}")
    if len(children) != 2:
        raise ValueError(f"a node with {len(children)} subtree{'s' if len(children) > 1 else ''}: trees must be "
                         "binary (a node holds a word or exactly two subtrees)")
    return None, children[0], children[1]


def format_tree(nodes: list[Node], labels: list[int]) -> str:
    """The bracketed text of a post-order tree: the inverse of parse_tree."""

    def text(i: int) -> str:
        word, left, right = nodes[i]
        return f"({labels[i]} {word})" if word is not None else f"({labels[i]} {text(left)} {text(right)})"

    return text(len(nodes) - 1)


def read_trees(path: Path) -> list[tuple[list[Node], list[int]]]:
    """Every tree of a file (blank lines skipped); DataError naming file:line for the first bad one."""
    lines = read_text(path, DataError, "tree file", TREE_COST, "trees as nodes").splitlines()
    trees = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                trees.append(parse_tree(line))
            except ValueError as exc:
                raise DataError(f"{path}:{number}: {exc}") from None
    if not trees:
        raise DataError(f"{path}: no trees; expected one bracketed tree per line, such as (1 (0 a) (1 b))")
    return trees


def vocabulary(trees: list[tuple[list[Node], list[int]]]) -> list[str]:
    """The words of `trees`, sorted, after UNKNOWN: a word's id is its index, the same on every load."""
    return [UNKNOWN, *sorted({word for nodes, _ in trees for word, _, _ in nodes if word is not None} - {UNKNOWN})]


def encode(trees: list[tuple[list[Node], list[int]]], words: list[str], size: int,
           origin: str = "the trees") -> tuple[np.ndarray, np.ndarray]:
    """Node tables (trees, size, 3) padded with -1, and the root labels (trees,); `origin` names the file."""
    ids = {word: i for i, word in enumerate(words)}
    if problem := too_big(len(trees) * size * 3 * 8, f"{origin}: {len(trees):,} trees padded to the longest, of "
                                                     f"{size:,} nodes"):
        raise DataError(problem)
    x = np.full((len(trees), size, 3), -1, dtype=np.int64)
    for t, (nodes, _) in enumerate(trees):
        x[t, :len(nodes)] = [(-1 if word is None else ids.get(word, 0), left, right) for word, left, right in nodes]
    return x, np.array([labels[-1] for _, labels in trees], dtype=np.int64)


@DATASETS.register("trees")
class Trees(FileSource):
    """Bracketed binary trees from `path` (and `test_path`), classified at the root; see the module docstring.

    Word ids follow the sorted words of the training file, after `<unk>` (id 0) for words it lacks."""

    indices = True

    def __init__(self, path: str, test_path: str | None = None, flatten: bool = False, **kwargs):
        super().__init__(flatten=flatten, **kwargs)
        self.file, self.test_file = path, test_path

    def read(self) -> Arrays:
        train = read_trees(self.path(self.file))
        test = read_trees(self.path(self.test_file)) if self.test_file else []
        words = vocabulary(train)
        size = max(len(nodes) for nodes, _ in train + test)
        x, y = encode(train, words, size, self.origin("training"))
        return (x, y, *encode(test, words, size, self.origin("test"))) if test else (x, y, None, None)
