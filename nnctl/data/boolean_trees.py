"""A synthetic tree task learnable only by composing children: boolean expressions labelled with their value.

`A op B` is the tree (v A (2 (2 op) B)): the operator is a leaf word beside its right operand, and the parent
of both holds the value v (0 false, 1 true); label 2 marks the two nodes that are not a value. The same words
in another bracketing can have another value, so no bag of words solves it.

    python -m nnctl.data.boolean_trees configs/data --seed 0   # writes bool_trees_train.txt and _test.txt
"""

import argparse
from pathlib import Path

import numpy as np

from nnctl.data.trees import Node, format_tree

OPS = {"and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b}
LITERALS = ("false", "true")
NOT_A_VALUE = 2


def expression(rng: np.random.Generator, ops: int) -> tuple[list[Node], list[int]]:
    """A random expression with `ops` operators, as post-order nodes and labels."""
    nodes: list[Node] = []
    labels: list[int] = []

    def add(node: Node, label: int) -> int:
        nodes.append(node)
        labels.append(label)
        return len(nodes) - 1

    def build(ops: int) -> tuple[int, int]:
        """Appends an expression with `ops` operators; its row and value."""
        if ops == 0:
            value = int(rng.integers(2))
            return add((LITERALS[value], -1, -1), value), value
        left_ops = int(rng.integers(ops))
        left, a = build(left_ops)
        op = str(rng.choice(list(OPS)))
        op_row = add((op, -1, -1), NOT_A_VALUE)
        right, b = build(ops - 1 - left_ops)
        partial = add((None, op_row, right), NOT_A_VALUE)
        value = OPS[op](a, b)
        return add((None, left, partial), value), value

    build(ops)
    return nodes, labels


def generate(count: int, seed: int, max_ops: int) -> list[str]:
    """`count` different expressions of 1 to `max_ops` operators (uniformly many), as bracketed lines."""
    rng = np.random.default_rng(seed)
    lines: dict[str, None] = {}
    for _ in range(100 * count):
        lines.setdefault(format_tree(*expression(rng, int(rng.integers(1, max_ops + 1)))))
        if len(lines) == count:
            return list(lines)
    raise ValueError(f"fewer than {count} different expressions of at most {max_ops} operators turned up")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the boolean-expression tree task (train and test files).")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--max-ops", type=int, default=4)
    args = parser.parse_args(argv)
    lines = generate(args.train + args.test, args.seed, args.max_ops)
    args.folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", lines[:args.train]), ("test", lines[args.train:])):
        (args.folder / f"bool_trees_{name}.txt").write_text("\n".join(part) + "\n")


if __name__ == "__main__":
    main()
