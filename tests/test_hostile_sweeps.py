"""Sweep files that ask for too much: the member count is computed from the grid's sizes and refused above
MAX_MEMBERS before anything is built; seeds, samples and range ends are checked at their line. Whatever the
grid's values, members get distinct run names."""

import itertools
import json
import time

import numpy as np
import pytest
from hostile import XOR, clean_error

from helpers import CONFIGS, nnctl
from nnctl.config import is_path_name
from nnctl.errors import ConfigError
from nnctl.sweep import MAX_MEMBERS, Sweep

BASE = f"base: {CONFIGS / 'xor_mlp.yaml'}\n"


def numbers(count: int, start: int = 0) -> str:
    """A YAML flow list of `count` integers."""
    return "[" + ", ".join(str(i) for i in range(start, start + count)) + "]"


TOO_MANY = {
    "an integer range of 10**12 values": (
        "grid:\n  seed: {integer: [0, 1000000000000]}\n",
        ["s.yaml:3: grid: the grid has 1,000,000,000,001 combinations, more than the 10,000 members",
         "narrow the grid", "samples: N"]),
    "two ranges past 10**18 combinations": (
        "grid:\n  seed: {integer: [0, 1000000000000]}\n  model.layers.0.units: {integer: [1, 1000000000000]}\n",
        ["the grid has more than 10**18 combinations"]),
    "a grid of 3000 x 3000 lists": (
        f"grid:\n  seed: {numbers(3000)}\n  model.layers.0.units: {numbers(3000, 1)}\n",
        ["s.yaml:3: grid: the grid has 9,000,000 combinations, more than the 10,000 members"]),
    "200 keys of two values": (
        "grid:\n" + "".join(f"  data.k{i}: [1, 2]\n" for i in range(200)),
        ["the grid has more than 10**18 combinations"]),
    "a grid times many members": (
        "members:\n" + "".join(f"  - {{name: m{i}}}\n" for i in range(101)) + f"grid:\n  seed: {numbers(100)}\n",
        ["grid: the grid has 100 combinations, times 101 entries of members, more than the 10,000 members"]),
    "members alone": (
        "members:\n" + "".join(f"  - {{name: m{i}}}\n" for i in range(MAX_MEMBERS + 1)),
        ["members: members lists 10,001 entries, more than the 10,000 members", "list fewer or split them"]),
    "samples times members": (
        "members: [{name: a}, {name: b}, {name: c}]\ngrid:\n  optimizer.lr: {uniform: [0.01, 0.1]}\nsamples: 5000\n",
        ["members: 5,000 samples times 3 members make 15,000 members", "lower samples or list fewer members"]),
    "samples of 10**12": (
        "grid:\n  optimizer.lr: {uniform: [0.01, 0.1]}\nsamples: 1000000000000\n",
        ["s.yaml:4: samples: samples must be at most 10,000", "got 1000000000000"]),
    "samples of 10**12 in search": (
        "grid:\n  optimizer.lr: {uniform: [0.01, 0.1]}\nsearch: {type: random, samples: 1000000000000}\n",
        ["search.samples: samples must be at most 10,000"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("text, phrases", TOO_MANY.values(), ids=TOO_MANY.keys())
def test_a_sweep_of_too_many_members_is_refused_before_anything_is_built(tmp_path, text, phrases):
    (tmp_path / "s.yaml").write_text(BASE + text)
    started = time.perf_counter()
    result = nnctl("sweep", "s.yaml", "--runs-dir", "runs", cwd=tmp_path, timeout=60)
    clean_error(result, 2, *phrases)
    assert time.perf_counter() - started < 30, "the size must be counted, not enumerated"
    assert not (tmp_path / "runs").exists()


BAD_VALUES = {
    "a negative seed": ("grid:\n  optimizer.lr: {uniform: [0.01, 0.1]}\nsamples: 2\nseed: -1\n",
                        ["s.yaml:5: seed: seed must be at least 0, got -1"]),
    "a seed past 2**31": ("grid:\n  optimizer.lr: [0.1]\nseed: 100000000000000000000000000000000000000000\n",
                          ["s.yaml:4: seed: seed must be at most 2,147,483,647", "(42 digits)"]),
    "an integer range past int64": ("grid:\n  seed: {integer: [0, 1000000000000000000000000]}\nsamples: 2\n",
                                    ["s.yaml:3: grid.seed: integer: [0, 1000", "64-bit integers"]),
    "a uniform range wider than a float": ("grid:\n  optimizer.lr: {uniform: [-1.0e+308, 1.0e+308]}\nsamples: 2\n",
                                           ["grid.optimizer.lr: uniform:", "high - low within float's range"]),
    "a range end past float's range": ("grid:\n  optimizer.lr: {loguniform: [1, " + "9" * 400 + "]}\nsamples: 2\n",
                                       ["loguniform: [1, 99999", "(400 digits)]: expected finite numbers"]),
    "an infinite range end": ("grid:\n  optimizer.lr: {uniform: [0, .inf]}\nsamples: 2\n",
                              ["uniform: [0, inf]: expected finite numbers"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("text, phrases", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_seeds_and_range_ends_are_checked_at_their_line(tmp_path, text, phrases):
    (tmp_path / "s.yaml").write_text(BASE + text)
    clean_error(nnctl("sweep", "s.yaml", "--runs-dir", "runs", cwd=tmp_path, timeout=60), 2, *phrases)
    assert not (tmp_path / "runs").exists()


def write(tmp_path, text: str):
    """A sweep file over xor_mlp.yaml."""
    path = tmp_path / "s.yaml"
    path.write_text(BASE + text)
    return path


def test_a_sweep_of_exactly_the_cap_is_built_and_one_more_is_not(tmp_path):
    members = Sweep(write(tmp_path, f"grid:\n  seed: {{integer: [0, {MAX_MEMBERS - 1}]}}\n"), tmp_path).members
    assert len(members) == MAX_MEMBERS and members[-1].config.data["seed"] == MAX_MEMBERS - 1
    with pytest.raises(ConfigError, match="10,001 combinations"):
        Sweep(write(tmp_path, f"grid:\n  seed: {{integer: [0, {MAX_MEMBERS}]}}\n"), tmp_path)


def test_integer_ranges_draw_up_to_the_ends_of_int64(tmp_path):
    sweep = Sweep(write(tmp_path, "grid:\n  seed: {integer: [0, 9223372036854775807]}\nsamples: 20\nseed: 7\n"),
                  tmp_path)
    seeds = [m.config.data["seed"] for m in sweep.members]
    assert len(set(seeds)) == 20 and all(0 <= s <= 2**63 - 1 for s in seeds)


def test_a_random_search_of_a_huge_grid_draws_without_listing_it(tmp_path):
    text = f"grid:\n  seed: {numbers(3000)}\n  model.layers.0.units: {numbers(3000, 1)}\nsamples: 5\nseed: 3\n"
    started = time.perf_counter()
    members = Sweep(write(tmp_path, text), tmp_path).members
    assert time.perf_counter() - started < 10 and len({m.label for m in members}) == 5
    many = "grid:\n" + "".join(f"  data.k{i}: [1, 2, 3]\n" for i in range(60)) + "samples: 4\n"  # 3**60 > 2**63
    assert len({m.label for m in Sweep(write(tmp_path, many), tmp_path).members}) == 4


def test_a_random_search_draws_the_same_members_as_listing_every_combination(tmp_path):
    # counting the combinations instead of listing them must not change which are drawn: sweeps run again
    # skip their finished members by comparing configs
    lists = [[0.1, 0.01, 0.001], [1, 2, 3, 4], [5, 6, 7]]
    text = (f"grid:\n  optimizer.lr: {lists[0]}\n  train.batch_size: {lists[1]}\n  seed: {lists[2]}\n"
            "samples: 7\nseed: 3\n")
    combinations = list(itertools.product(*lists))
    chosen = sorted(np.random.default_rng(3).choice(len(combinations), 7, replace=False))
    values = [list(m.values.values()) for m in Sweep(write(tmp_path, text), tmp_path).members]
    assert values == [list(combinations[i]) for i in chosen]


def test_an_inline_base_with_a_capped_grid_still_runs(tmp_path):
    inline = "base:\n" + "".join(f"  {line}\n" for line in XOR.splitlines())
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(inline + "grid:\n  seed: {integer: [0, 2]}\n")
    assert [m.label for m in Sweep(sweep_file, tmp_path).members] == ["0", "1", "2"]


LONG = "x" * 300
AWKWARD = {  # a grid key's values, and the members' names they must give
    "negative numbers": ([-42, -0.5, -1.0e-05, 0.5], ["k_-42", "k_-0.5", "k_-1e-05", "0.5"]),
    "floats and their signs": ([1.0e-05, 0.0, -0.0, 1, 1.0], ["1e-05", "0.0", "k_-0.0", "1", "1.0"]),
    "booleans, None and their spellings": ([True, False, None, "True", "None"],
                                           ["True", "False", "None", "True-2", "None-2"]),
    "characters a run name refuses": (["a/b", "ab", "../up", ".hidden", "a b", "é", "日本", "", "_x"],
                                      ["ab", "ab-2", "k_.up", "k_.hidden", "ab-3", "k", "k-2", "k-3", "k__x"]),
    "values cut to the longest name": ([LONG, LONG + "y", LONG[:199]], [LONG[:200], LONG[:198] + "-2", LONG[:199]]),
    "mappings by their type": ([{"type": "adam"}, {"type": "adam", "lr": 0.1}, {"lr": 0.1}], ["adam", "adam-2", "k"]),
    "lists": ([[64, 32], [643, 2], 6432], ["6432", "6432-2", "6432-3"]),
}


@pytest.mark.parametrize("values, names", AWKWARD.values(), ids=AWKWARD.keys())
def test_every_grid_value_gives_a_run_name_of_its_own(tmp_path, values, names):
    text = f"grid:\n  data.k: {json.dumps(values)}\n"
    labels = [m.label for m in Sweep(write(tmp_path, text), tmp_path).members]
    assert labels == names and all(is_path_name(label) for label in labels)
    assert [m.config.data["name"] for m in Sweep(write(tmp_path, text), tmp_path).members] == labels
    shuffled = Sweep(write(tmp_path, f"grid:\n  data.j: [1, 2]\n  data.k: {json.dumps(values)}\n"), tmp_path)
    assert len({m.label for m in shuffled.members}) == 2 * len(values)  # after another key too
    assert all(is_path_name(m.label) for m in shuffled.members)


def test_a_random_search_names_values_that_round_alike_apart(tmp_path):
    text = "grid:\n  optimizer.lr: {uniform: [0.1, 0.1000001]}\n  seed: {integer: [0, 1]}\nsamples: 6\nseed: 1\n"
    members = Sweep(write(tmp_path, text), tmp_path).members
    labels = [m.label for m in members]
    assert len(set(labels)) == 6 and all(is_path_name(label) for label in labels)
    assert all(label.startswith("0.1_") for label in labels)  # 4 significant digits, then -2, -3...
    assert labels == [m.label for m in Sweep(write(tmp_path, text), tmp_path).members]
    negative = "grid:\n  optimizer.lr: {uniform: [-2.0, -1.0]}\nsamples: 3\n"
    assert all(m.label.startswith("lr_-1.") for m in Sweep(write(tmp_path, negative), tmp_path).members)


def test_an_integer_range_of_negative_numbers_gives_run_names(tmp_path):
    members = Sweep(write(tmp_path, "grid:\n  data.k: {integer: [-2, 1]}\n"), tmp_path).members
    assert [m.label for m in members] == ["k_-2", "k_-1", "0", "1"]


def test_members_names_are_checked_at_their_line(tmp_path):
    with pytest.raises(ConfigError, match=r"s.yaml:3: members.0.name: '-x' cannot name a run directory"):
        Sweep(write(tmp_path, "members:\n  - {name: -x}\ngrid:\n  data.k: [1]\n"), tmp_path)
    with pytest.raises(ConfigError, match="s.yaml:4: members.1: another entry of members is named 'a' too"):
        Sweep(write(tmp_path, "members:\n  - {name: a}\n  - {name: a, seed: 1}\n"), tmp_path)
    with pytest.raises(ConfigError, match="members.1: another entry of members is unnamed too"):
        Sweep(write(tmp_path, "members:\n  - {seed: 1}\n  - {seed: 2}\n"), tmp_path)
    members = Sweep(write(tmp_path, "members:\n  - {name: a}\n  - {name: a_b}\ngrid:\n  data.k: [b_c, c]\n"),
                    tmp_path).members
    assert [m.label for m in members] == ["a_b_c", "a_c", "a_b_b_c", "a_b_c-2"]


@pytest.mark.slow
def test_a_sweep_over_negative_values_trains_every_member(tmp_path):
    text = ("overrides:\n  train.epochs: 2\n  model.layers.0.weight_init: {type: normal, std: 0.5}\n"
            "grid:\n  model.layers.0.weight_init.mean: [-42, -0.5, 0.5]\n")
    write(tmp_path, text)
    result = nnctl("sweep", "s.yaml", "--runs-dir", "runs", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "cannot name" not in result.stderr
    runs = {p.parent.name.rsplit("-", 2)[0]: json.loads(p.read_text())["status"]
            for p in (tmp_path / "runs" / "s").glob("*/summary.json")}
    assert runs == {"mean_-42": "finished", "mean_-0.5": "finished", "0.5": "finished"}
    again = nnctl("sweep", "s.yaml", "--runs-dir", "runs", cwd=tmp_path, timeout=300)
    assert again.returncode == 0 and "3 members, 3 already done, 0 to run" in again.stdout, again.stdout


@pytest.mark.slow
def test_a_negative_seed_in_a_grid_is_refused_at_the_grid_line(tmp_path):
    write(tmp_path, "grid:\n  seed: [-42, 1]\n")
    clean_error(nnctl("sweep", "s.yaml", "--runs-dir", "runs", cwd=tmp_path, timeout=60), 2,
                "s.yaml:3 (grid.seed): seed: expected an integer ≥ 0, got -42")


@pytest.mark.slow
@pytest.mark.parametrize("member", ["{name: only}", "{name: only, train.epochs: 10, train.steps: 3}"])
def test_a_finished_member_whose_summary_is_damaged_is_finished_again_in_its_folder(tmp_path, member):
    """Its metrics hold every epoch (or step: 3 epochs of one step, fewer than train.epochs); resuming it was
    refused as already trained, on every run of the sweep. Now the resume trains nothing and writes its summary."""
    (tmp_path / "c.yaml").write_text(XOR)
    (tmp_path / "s.yaml").write_text(f"base: c.yaml\nmembers:\n  - {member}\n")
    first = nnctl("sweep", "s.yaml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run,) = (tmp_path / "runs" / "s").glob("only-*")
    epochs = (run / "metrics.jsonl").read_text()
    (run / "summary.json").write_text('{"status": "fini')
    again = nnctl("sweep", "s.yaml", cwd=tmp_path)
    assert again.returncode == 0 and "1 to run" in again.stdout, again.stdout + again.stderr
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    assert (run / "metrics.jsonl").read_text() == epochs
    assert [p.name for p in (tmp_path / "runs" / "s").glob("only-*")] == [run.name]
    assert "0 to run" in nnctl("sweep", "s.yaml", cwd=tmp_path).stdout


def test_a_value_listed_twice_is_refused_at_its_key(tmp_path):
    """Each value makes a member: two alike would train the same config twice (sgd and sgd-2)."""
    write(tmp_path, "grid:\n  optimizer.type: [sgd, adam, sgd]\n")
    clean_error(nnctl("sweep", "s.yaml", "--runs-dir", "runs", cwd=tmp_path, timeout=60), 2,
                's.yaml:3: grid.optimizer.type: "sgd" is listed twice')
    assert not (tmp_path / "runs").exists()
    assert len(Sweep(write(tmp_path, "grid:\n  data.k: [1, 1.0, true, 0.0, -0.0]\n"), tmp_path).members) == 5


def test_a_random_search_draws_no_member_twice(tmp_path):
    """With an integer range every key was drawn on its own, so the same values could come twice (1_sgd-2)."""
    grid = "grid:\n  train.epochs: {integer: [1, 2]}\n  optimizer.type: [sgd, adam]\n"
    members = Sweep(write(tmp_path, grid + "samples: 4\n"), tmp_path).members
    assert sorted(m.label for m in members) == ["1_adam", "1_sgd", "2_adam", "2_sgd"]
    assert len(Sweep(write(tmp_path, grid + "samples: 9\n"), tmp_path).members) == 4  # all there are
