"""A synthetic tree task learnable only by composing children: boolean expressions labelled with their value.

`A op B` is the tree (v A (2 (2 op) B)): the operator is a leaf word beside its right operand, and the parent
of both holds the value v (0 false, 1 true); label 2 marks the two nodes that are not a value. The same words
in another bracketing can have another value, so no bag of words solves it. The test expressions are longer than
any training one: only a model that composes, rather than memorises shapes, gets them right.

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


def generate(rng: np.random.Generator, count: int, ops: tuple[int, int]) -> list[str]:
    """`count` different expressions of ops[0] to ops[1] operators (uniformly many), as bracketed lines."""
    lines: dict[str, None] = {}
    for _ in range(100 * count):
        lines.setdefault(format_tree(*expression(rng, int(rng.integers(ops[0], ops[1] + 1)))))
        if len(lines) == count:
            return list(lines)
    raise ValueError(f"fewer than {count} different expressions of {ops[0]} to {ops[1]} operators turned up")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the boolean-expression tree task: bool_trees_train.txt "
                                                 "and bool_trees_test.txt, whose expressions are longer.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=2000, help="training expressions")
    parser.add_argument("--test", type=int, default=500, help="test expressions")
    parser.add_argument("--ops", type=int, nargs=2, default=(1, 4), help="operators per training expression")
    parser.add_argument("--test-ops", type=int, nargs=2, default=(5, 8), help="operators per test expression")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    args.folder.mkdir(parents=True, exist_ok=True)
    for name, count, ops in (("train", args.train, args.ops), ("test", args.test, args.test_ops)):
        (args.folder / f"bool_trees_{name}.txt").write_text("\n".join(generate(rng, count, ops)) + "\n")


if __name__ == "__main__":
    main()
