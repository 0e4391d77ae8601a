"""What the CLI prints and how it ends, as a user sees it: paths printed as they are, piped tables whole, a
closed pipe and a Ctrl-C anywhere ending in one line and a run that can be resumed."""

import contextlib
import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml
from rich.console import Console

from helpers import CONFIGS, REPO, checkout_env, nnctl
from nnctl import tables
from nnctl.console import format_value

pytestmark = pytest.mark.slow  # runs the CLI in subprocesses and trains


def start(*args: str, **kwargs) -> subprocess.Popen:
    """`nnctl ARGS...` started with Ctrl-C's default handling (a test runner may have it ignored)."""
    return subprocess.Popen([sys.executable, "-m", "nnctl", *args], cwd=REPO, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            **kwargs)


def test_a_closed_pipe_stops_training_as_ctrl_c_does_and_the_run_resumes(tmp_path):
    """`nnctl train ... | head -1`: the run stops after its step, says so on stderr, and can be resumed."""
    process = start("train", str(CONFIGS / "xor_mlp.yaml"), "train.epochs=400", "--runs-dir", str(tmp_path))
    assert process.stdout.readline().startswith("run directory: ")
    process.stdout.close()  # the reader has what it wanted
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 141, stderr
    (run,) = tmp_path.iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["epochs"] < 400
    assert "stdout was closed (the pipe's reader ended): stopped at epoch" in stderr and "Traceback" not in stderr
    assert "stdout was closed" in (run / "train.log").read_text()
    resumed = nnctl("train", "--resume", str(run), "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "summary.json").read_text())["epochs"] == 400


@pytest.mark.parametrize("folder", ["runs [v2]", "runs[/z]", "[bold]x"])
def test_paths_that_look_like_markup_print_as_they_are(tmp_path, folder):
    runs = tmp_path / folder
    result = nnctl("train", str(CONFIGS / "xor_mlp.yaml"), "train.epochs=2", "--runs-dir", str(runs))
    assert result.returncode == 0, result.stderr
    (run,) = runs.iterdir()
    assert f"run directory: {run}\n" in result.stdout
    listed = nnctl("runs", "list", str(runs))
    assert listed.returncode == 0 and f"runs under {runs}" in listed.stdout, listed.stderr


def test_control_characters_in_a_run_folder_name_print_as_escapes(tmp_path):
    """A run folder renamed (or unpacked) with terminal escape sequences in its name: tables, titles and errors show
    them as \\x1b text, so listing it cannot retitle, clear or recolour the terminal."""
    result = nnctl("train", str(CONFIGS / "xor_mlp.yaml"), "train.epochs=1", "--runs-dir", str(tmp_path), "-q")
    assert result.returncode == 0, result.stderr
    (run,) = tmp_path.iterdir()
    run = run.rename(tmp_path / "x\x1b]0;owned\x07\x1b[2J\x9b31m")
    listed, shown = nnctl("runs", "list", str(tmp_path)), nnctl("runs", "show", str(run))
    missing = nnctl("runs", "show", str(tmp_path / "gone\x1b[2J"))
    for printed, text in ((listed.stdout, "x\\x1b]0;owned\\x1b[2J\\x9b31m"), (shown.stdout, "x\\x1b]0;owned"),
                          (missing.stderr, "gone\\x1b[2J: not a run directory")):
        assert text in printed and not set(printed) & {"\x1b", "\x9b", "\x07"}, printed


def test_piped_tables_keep_long_cells_whole(tmp_path):
    name = "a" * 150
    result = nnctl("train", str(CONFIGS / "xor_mlp.yaml"), "train.epochs=1", f"name={name}", "--runs-dir",
                   str(tmp_path))
    assert result.returncode == 0, result.stderr
    listed = nnctl("runs", "list", str(tmp_path))
    assert listed.returncode == 0 and f"{name}-" in listed.stdout and "…" not in listed.stdout, listed.stdout


def test_a_closed_stdout_is_no_error(tmp_path):
    result = subprocess.run(["sh", "-c", 'exec "$0" -m nnctl train "$1" train.epochs=1 --runs-dir "$2" >&-',
                             sys.executable, str(CONFIGS / "xor_mlp.yaml"), str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("after", [0.2, 2.5])
def test_ctrl_c_outside_a_training_says_interrupted_and_exits_130(after):
    """While the libraries load (0.2 s) and while a gradient check runs: one line, no traceback."""
    process = start("gradcheck", str(CONFIGS / "mnist_mlp.yaml"), "--per-tensor", "1000000")  # minutes
    time.sleep(after)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and stderr == "interrupted\n", stderr


def test_ctrl_c_at_any_moment_of_the_start_says_interrupted():
    """A Ctrl-C between __main__'s loading handler and cli's own (or before cli's try) ended with exit 130 and not
    a word, or (in an exec() of a string, see below) with 'interrupted' and a death by SIGINT; Ctrl-C every 50 ms
    of the start must each say 'interrupted' and end with 130."""
    for after in [0.2 + 0.05 * i for i in range(8)]:
        process = start("gradcheck", str(CONFIGS / "mnist_mlp.yaml"), "--per-tensor", "1000000")
        time.sleep(after)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 130 and stderr == "interrupted\n", (after, process.returncode)


INTERRUPTED_WHILE_IMPORTING = """
import importlib.abc, os, signal, sys, weakref
interrupted_module, how, sys.argv = sys.argv[1], sys.argv[2], ["nnctl", *sys.argv[3:]]

def interrupt():
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(10**6): pass

class Interrupting(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == interrupted_module:
            sys.meta_path.remove(self)
            if how == "dropped":  # Ctrl-C inside a weakref callback, as a module lock's can be
                doomed = type("Doomed", (), {})()
                ref = weakref.ref(doomed, lambda _: interrupt())
                del doomed
            else:  # Ctrl-C inside a library that swallows every exception
                try:
                    interrupt()
                except BaseException:
                    pass

sys.meta_path.insert(0, Interrupting())
from nnctl.__main__ import main
main()
"""


@pytest.mark.parametrize("module", ["nnctl.cli", "nnctl.gradcheck"])
@pytest.mark.parametrize("how", ["dropped", "swallowed"])
def test_ctrl_c_that_python_drops_while_loading_still_stops_the_command(tmp_path, module, how):
    """A SIGINT handled inside a callback of the import machinery raises a KeyboardInterrupt that Python prints as
    ignored and drops, and a library may swallow one: the command went on for minutes as if no Ctrl-C had come (a
    busy machine's 0.2 or 2.5 s cases above, now and then). It ends as any Ctrl-C does, while nnctl loads
    (nnctl.cli) and while a command imports what it needs (nnctl.gradcheck)."""
    script = tmp_path / "interrupt.py"
    script.write_text(INTERRUPTED_WHILE_IMPORTING)
    result = subprocess.run([sys.executable, str(script), module, how, "gradcheck", str(CONFIGS / "mnist_mlp.yaml"),
                             "--per-tensor", "1000000"], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env=checkout_env(None), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert result.returncode == 130 and result.stderr == "interrupted\n", result.stderr


INTERRUPTED_IN_AN_EXEC = """
import importlib.abc, os, signal, sys
sys.argv = ["nnctl", *sys.argv[1:]]

class Interrupting(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):  # Ctrl-C inside an exec() of a string, as dataclasses make
        if name == "nnctl.cli":
            sys.meta_path.remove(self)
            exec("os.kill(os.getpid(), signal.SIGINT)\\nfor _ in range(10**6): pass")

sys.meta_path.insert(0, Interrupting())
from nnctl.__main__ import main
main()
"""


def test_ctrl_c_inside_an_exec_of_a_string_while_loading_ends_with_130_under_python_m(tmp_path):
    """Python remembers a Ctrl-C that interrupted an exec() of a string as unhandled, even once nnctl has handled it,
    and `python -m` then ended killed by SIGINT (exit -2) after 'interrupted': 1 in 40 Ctrl-Cs early in the start."""
    (tmp_path / "interrupt_exec.py").write_text(INTERRUPTED_IN_AN_EXEC)
    result = subprocess.run([sys.executable, "-m", "interrupt_exec", "gradcheck", str(CONFIGS / "xor_mlp.yaml")],
                            cwd=REPO, capture_output=True, text=True, timeout=120,
                            env=checkout_env({"PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"}),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert result.returncode == 130 and result.stderr == "interrupted\n", (result.returncode, result.stderr)


INTERRUPTED_WHILE_LEAVING = """
import sys, threading, time
sys.argv = ["nnctl", *sys.argv[1:]]
threading.Thread(target=time.sleep, args=(60,)).start()  # Python's shutdown waits for it, as for a worker's
from nnctl.__main__ import main
main()
"""


def test_ctrl_c_while_python_shuts_down_after_the_command_exits_130_without_a_traceback(tmp_path):
    """A Ctrl-C after the command's end, while Python joined threads, printed a KeyboardInterrupt in
    threading._shutdown as an ignored exception, and left the exit status to chance."""
    (tmp_path / "leaving.py").write_text(INTERRUPTED_WHILE_LEAVING)
    process = subprocess.Popen([sys.executable, str(tmp_path / "leaving.py"), "--version"], cwd=REPO, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=checkout_env(None),
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stdout.readline().startswith("nnctl")  # the command has printed: it ends, then waits
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130 and stderr == "", (process.returncode, stderr)


def _command_paths(group, prefix=()):
    """Every command of a click group, as the words that call it (sub-commands' too)."""
    for name, command in group.commands.items():
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from _command_paths(command, (*prefix, name))


def test_help_names_values_by_words_and_defaults_alike_on_every_command():
    """Every command's help named types as Python does ('INPUT <list[Path]>', '--runs-dir <path>', '--samples <int
    range>'), and a default told in words read four ways ('[default: (runs)]', 'Default: the config's device.',
    '(default: ...)', '; default: ...') and --eps's as Python writes it (1e-06); now an argument is its name, an
    option's value a word, and every default '[default: ...]'."""
    from typer.main import get_command
    from typer.testing import CliRunner

    from nnctl.cli import app

    group = get_command(app)
    for path in [(), *_command_paths(group)]:
        text = CliRunner().invoke(app, [*path, "-h"], terminal_width=2000, max_content_width=2000).output  # unwrapped
        assert not re.search(r" <(path|str|int|float|list\[\w+\])( range)?>|[{}]|\(default:|; default:|Default:|"
                             r"\[default: \(", text), (path, text)
        if "--device" in text:
            assert re.search(r"^  --device DEVICE .*  \[default: [^]]+\]$", text, re.MULTILINE), (path, text)
        if "--runs-dir" in text:
            assert re.search(r"^  --runs-dir DIR .*  \[default: runs\]$", text, re.MULTILINE), (path, text)
        assert "e-0" not in text, (path, text)  # 1e-6 as written, not Python's 1e-06


def test_h_is_help_on_every_command():
    from typer.main import get_command
    from typer.testing import CliRunner

    from nnctl.cli import app

    group = get_command(app)
    paths = [(), *_command_paths(group)]
    assert len(paths) > 10
    for path in paths:
        result = CliRunner().invoke(app, [*path, "-h"])
        assert result.exit_code == 0 and "Usage:" in result.output and "-h, --help" in result.output, (path,
                                                                                                        result.output)


@pytest.mark.parametrize("words, expected", [("nnctl runs ", ["list", "show", "diff"]), ("nnctl runs s", ["show"]),
                                             ("nnctl runs list --j", ["--json"])])
def test_tab_completes_the_sub_commands_of_runs(words, expected):
    """`nnctl runs <TAB>` offered nothing: the empty word list became `runs list` before completion saw it."""
    assert complete(words) == expected


@pytest.mark.parametrize("words, expected", [
    ("nnctl eval r --split ", ["test", "val", "train"]), ("nnctl plot r --split t", ["test", "train"]),
    ("nnctl export r --format ", ["npz", "onnx"]), ("nnctl sweep s --engine ", ["local", "ray"]),
    ("nnctl convert w --flatten ", ["chw", "hwc"]), ("nnctl train c --device ", ["cpu", "cuda"])])
def test_tab_completes_the_values_of_options_that_take_a_few(words, expected):
    """Options whose value is one of a few words complete them, as the sub-commands do (they completed nothing)."""
    assert complete(words) == expected


def test_the_completion_script_of_the_nnctl_command_completes_it(tmp_path):
    """The script `nnctl --show-completion bash` prints, sourced in bash, completes `nnctl tr<TAB>`."""
    run_nnctl = "import sys; sys.argv[0] = 'nnctl'; from nnctl.__main__ import main; main()"
    (tmp_path / "nnctl").write_text(f"#!/bin/sh\nexec {sys.executable} -c \"{run_nnctl}\" \"$@\"\n")
    (tmp_path / "nnctl").chmod(0o755)
    env = checkout_env({"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    shown = subprocess.run([tmp_path / "nnctl", "--show-completion", "bash"], capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stderr
    script = shown.stdout
    complete_tr = f"{script}\nCOMP_WORDS=(nnctl tr); COMP_CWORD=1; _nnctl_completion nnctl; echo \"${{COMPREPLY[*]}}\""
    result = subprocess.run(["bash", "-c", complete_tr], capture_output=True, text=True, env=env)
    assert result.stdout.split() == ["train"], (script, result.stderr)


@pytest.mark.parametrize("option", ["--show-completion", "--install-completion"])
def test_python_m_nnctl_refuses_to_print_a_completion_script_that_cannot_work(option, tmp_path):
    """`python -m nnctl --show-completion` printed a script for a command named `python -m nnctl`, whose variable
    (`_PYTHON _M NNCTL_COMPLETE`) no shell can set; it says to use the nnctl command instead, installing nothing."""
    result = nnctl(option, "bash", env={"HOME": str(tmp_path)})
    assert result.returncode == 2 and result.stdout == "" and list(tmp_path.iterdir()) == []
    assert result.stderr == (f"error: {option}: tab completion completes the nnctl command, not python -m nnctl (a "
                             f"shell completes that as python); run: nnctl {option}\n")


def complete(words: str) -> list[str]:
    """What bash's tab completion offers after `words` (the variable is the one of `python -m nnctl`, whose name
    typer takes from the words that ran it)."""
    env = {"_PYTHON _M NNCTL_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (not words.endswith(" ")))}
    result = nnctl(env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout.split()


@pytest.mark.parametrize("command, usage", [
    (["train"], "[OPTIONS] [CONFIG] [KEY=VALUE]..."), (["check"], "[OPTIONS] CONFIG [KEY=VALUE]..."),
    (["runs", "list"], "[OPTIONS] [DIR]"), (["runs", "diff"], "[OPTIONS] RUN..."), (["plot"], "[OPTIONS] RUN..."),
    (["predict"], "[OPTIONS] CHECKPOINT INPUT...")])
def test_usage_lines_name_arguments_as_the_readme_does(command, usage):
    """CONFIG and KEY=VALUE as in the README's table, not 'config' and 'overrides'; no '[[DIR]]' or
    '{RUN...}...' where typer adds its own brackets and dots to a name that already had them, and no braces
    around a required one ('{CHECKPOINT} {INPUT}...')."""
    result = nnctl(*command, "-h")
    assert result.returncode == 0 and result.stdout.splitlines()[0].endswith(f"{' '.join(command)} {usage}"), (
        result.stdout)


def test_a_narrow_terminal_folds_long_cells_instead_of_cutting_them():
    name = "mnist_mlp-lr0.001-20261207-101500"
    table = tables.Folding(title="runs")
    for column in ("run", "status", "best"):
        table.add_column(column)
    table.add_row("a run with a name of many words", "finished", "val_accuracy 0.9832")
    shown = io.StringIO()
    Console(file=shown, width=40).print(table)
    text = shown.getvalue()
    assert "…" not in text and max(map(len, text.splitlines())) <= 40
    cells = [" ".join(filter(None, (line.split("│")[i].strip() for line in text.splitlines() if line.count("│") == 4)))
             for i in (1, 2, 3)]
    assert cells == ["a run with a name of many words", "finished", "val_accuracy 0.9832"]
    table.add_row(name, "finished", "val_accuracy 0.9832")
    shown = io.StringIO()
    Console(file=shown, width=44).print(table)  # words too long for columns side by side: a record per row
    assert f"run:    {name}" in shown.getvalue().splitlines()


def on_a_terminal(*args: str, columns: int = 80, styles: bool = False) -> str:
    """What `nnctl ARGS...` shows on a terminal `columns` wide (a pseudo-terminal), its escape sequences (bold)
    left out unless `styles`."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "nnctl", *args], cwd=REPO, stdout=follower, stderr=follower,
                               env=checkout_env({"COLUMNS": str(columns), "NO_COLOR": "1"}))
    os.close(follower)
    chunks = []
    with contextlib.suppress(OSError):  # EIO once the command has ended
        while chunk := os.read(leader, 1 << 16):
            chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    return text if styles else re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_tables_on_a_narrow_terminal_keep_every_word_whole(tmp_path):
    """`COLUMNS=40 nnctl runs list` broke the run's name, its date and 'val_accuracy' over lines, a few letters each;
    too narrow for the columns' words side by side, each row now reads as `column: value` lines."""
    assert nnctl("train", str(CONFIGS / "xor_mlp.yaml"), "train.epochs=2", "--runs-dir", str(tmp_path),
                 "-q").returncode == 0
    run = next(tmp_path.iterdir())
    listed = on_a_terminal("runs", "list", str(tmp_path), columns=40)
    shown = on_a_terminal("runs", "show", str(run), columns=40)
    evaluated = on_a_terminal("eval", str(run), columns=30)
    titles = (str(tmp_path), "runs under", "run ", "confusion matrix")  # soft-wrapped by the terminal, as paths are
    for text in (listed, shown, evaluated):
        assert max(len(line) for line in text.splitlines() if not line.startswith(titles)) <= 40, text
    assert re.search(rf"run: +{run.name}\n", listed) and re.search(r"started: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", listed)
    assert re.search(r"^ +2 +0\.05 +0\.\d+ +0\.5 ", shown, re.MULTILINE), shown  # per epoch: its borders dropped
    assert re.search(r"precision: +\d", evaluated), evaluated


@pytest.mark.parametrize("value, shown", [(0.99996, "0.99996"), (0.9999999403953552, "0.9999999"), (1.0, "1"),
                                           (0.98765, "0.9877"), (999.96, "999.96"), (12345.6, "1.235e+04")])
def test_a_number_short_of_whole_never_prints_as_whole(value, shown):
    assert format_value(value) == shown


def test_runs_list_and_show_never_round_a_score_up_to_perfect(tmp_path):
    """An accuracy of 0.99996 (one miss in 25,000) reads so in every table, not as a perfect 1."""
    assert nnctl("train", str(CONFIGS / "xor_mlp.yaml"), "train.epochs=2", "--runs-dir", str(tmp_path),
                 "-q").returncode == 0
    summary_file = next(tmp_path.iterdir()) / "summary.json"
    summary = json.loads(summary_file.read_text())
    summary["best"] = {"monitor": "accuracy", "mode": "max", "value": 0.99996}
    summary["test"]["test_accuracy"] = 0.99996
    summary_file.write_text(json.dumps(summary))
    assert "accuracy 0.99996" in nnctl("runs", "list", str(tmp_path)).stdout
    shown = nnctl("runs", "show", str(summary_file.parent)).stdout
    assert "accuracy 0.99996" in shown and re.search(r"test_accuracy +│ 0\.99996 ", shown), shown


def test_summary_gradcheck_and_check_print_json_that_says_what_their_tables_say():
    summary = json.loads(nnctl("summary", str(CONFIGS / "mnist_cnn.yaml"), "model.layers.0.trainable=false",
                               "--json").stdout)
    assert [(r["name"], r["output_shape"], r["trainable"], r["weights"]) for r in summary["layers"][:2]] == [
        ("conv2d_1", [30, 24, 24], False, "init"), ("maxpool2d_1", [30, 12, 12], None, None)]
    assert summary["frozen_parameters"] == summary["layers"][0]["parameters"] == 780
    assert summary["trainable_parameters"] == sum(r["parameters"] for r in summary["layers"][1:])

    xor = str(CONFIGS / "xor_mlp.yaml")
    passed = json.loads(nnctl("gradcheck", xor, "--json").stdout)
    assert passed["passed"] and len(passed["checks"]) == 5 and all(c["error"] < 1e-6 for c in passed["checks"])
    failed = nnctl("gradcheck", xor, "--json", "--eps", "0.5")  # a step far too large for tanh
    assert failed.returncode == 1 and "3 of 5 checks failed" in failed.stderr
    assert not json.loads(failed.stdout)["passed"]

    checked = json.loads(nnctl("check", xor, "--json", "--seconds", "5").stdout)
    assert checked["passed"] and checked["batch_size"] == 4
    assert [f["check"] for f in checked["findings"]][:3] == ["data", "forward and backward", "initial loss"]
    assert {t["layer"] for t in checked["timings"]} >= {"dense_1"}


def _strict_json(text: str):
    """`text` read as JSON proper: NaN and Infinity, which Python's reader takes, are refused as JavaScript's are."""
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_on_a_terminal_is_json_alone():
    """--json on a terminal printed JSON coloured by rich (escape sequences around every key and value, which a
    copy or a `script` log keeps), and `nnctl schema` took seconds highlighting its 800 kB."""
    assert json.loads(on_a_terminal("schema", styles=True))["title"]
    assert json.loads(on_a_terminal("gradcheck", "--layer", "dense", "--json", styles=True))["passed"]


@pytest.mark.parametrize("command", [["--help"], ["train", "-h"], ["runs", "list"], ["--version"]])
def test_commands_that_need_no_model_load_no_layers_data_or_kernels(command, tmp_path):
    """cli imported every module up front: `nnctl --help` loaded the layers, the data sets and the training loop
    (half of its start-up time), as did `nnctl runs list`."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "nnctl", *command], cwd=tmp_path,
                            capture_output=True, text=True, env=checkout_env(None))
    loaded = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines()}
    assert loaded and not loaded & {"nnctl.layers", "nnctl.data", "nnctl.experiment", "nnctl.runner"}


def test_json_output_writes_null_for_nan():
    """Weights so large that the loss overflows: each check's error is NaN, printed as null, not as invalid JSON."""
    result = nnctl("gradcheck", str(CONFIGS / "xor_mlp.yaml"), "model.layers.1.weight_init={type: normal, std: 1e300}",
                   "--json")
    assert result.returncode == 1 and "5 of 5 checks failed" in result.stderr, result.stderr
    checks = _strict_json(result.stdout)["checks"]
    assert [(c["error"], c["passed"]) for c in checks] == [(None, False)] * 5


def test_json_output_on_a_stdout_that_is_not_utf_is_still_json():
    """The schema's descriptions hold characters beyond ASCII; on a stdout that cannot encode them (an ascii one,
    as a cp1252 console for a CJK run name) they are \\u escapes, not the \\x ones JSON has none of."""
    utf8 = nnctl("schema")
    narrow = nnctl("schema", env={"PYTHONIOENCODING": "ascii"})
    assert narrow.returncode == 0 and narrow.stdout.isascii(), narrow.stderr
    assert _strict_json(narrow.stdout) == _strict_json(utf8.stdout)
    assert not utf8.stdout.isascii()  # where stdout takes them, they print as they are


def test_config_on_a_stdout_that_is_not_utf_writes_its_paths_as_they_are(tmp_path):
    """A data file in a folder named in Unicode: on an ascii stdout its absolute path is escaped as YAML escapes,
    so the resolved config still names the file (Python's \\x escape made it another path)."""
    folder = tmp_path / "josé"
    folder.mkdir()
    (folder / "d.csv").write_text("x,y\n0,0\n1,1\n")
    (folder / "c.yaml").write_text("name: t\ndata: {type: csv, path: d.csv}\nloss: softmax_cross_entropy\n"
                                   "model: {layers: [{type: dense, units: 2}]}\noptimizer: {type: sgd, lr: 0.1}\n")
    result = nnctl("config", "c.yaml", cwd=folder, env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0 and result.stdout.isascii(), result.stderr
    assert yaml.safe_load(result.stdout)["data"]["path"] == str(folder / "d.csv")


def _until_rows(folder, pattern: str, rows: int) -> None:
    """Waits until a metrics.csv under `folder` matching `pattern` holds more than `rows` lines."""
    deadline = time.time() + 120
    while time.time() < deadline:
        metrics = list(folder.glob(pattern))
        if metrics and len(metrics[0].read_text().splitlines()) > rows:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {pattern} of {rows} rows in 120 s")


def test_sigterm_stops_a_training_after_its_step_and_the_run_resumes(tmp_path):
    """A cluster scheduler's (or `kill`'s) SIGTERM: as a Ctrl-C, but said so and exit 143."""
    process = start("train", str(CONFIGS / "xor_mlp.yaml"), "train.epochs=4000", "train.log_every_steps=1",
                    "--runs-dir", str(tmp_path))
    _until_rows(tmp_path, "*/metrics.csv", 50)
    process.terminate()
    process.terminate()  # a second SIGTERM (a scheduler's, after the first) does not cut the step short
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "terminated (SIGTERM): stopped at epoch" in stdout and "Resume with" in stdout and stderr == ""
    (run,) = tmp_path.iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "stopped"
    resumed = nnctl("train", "--resume", str(run), "-q", f"train.epochs={summary['epochs'] + 2}")
    assert resumed.returncode == 0, resumed.stderr


def test_sigterm_outside_a_training_says_terminated_and_exits_143():
    process = start("gradcheck", str(CONFIGS / "mnist_mlp.yaml"), "--per-tensor", "1000000")  # minutes
    time.sleep(2.5)
    process.terminate()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143 and stderr == "terminated\n", stderr


def test_sigterm_to_a_sweep_alone_stops_its_running_member_after_its_step(tmp_path):
    """`kill PID` of the sweep (not its process group): it passes the SIGTERM on to its workers."""
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(f"base: {CONFIGS / 'xor_mlp.yaml'}\noverrides:\n  train.epochs: 4000\n"
                          "  train.log_every_steps: 1\nmembers:\n  - {name: only}\n  - {name: later, seed: 1}\n")
    process = start("sweep", str(sweep_file), "--runs-dir", str(tmp_path / "runs"))
    _until_rows(tmp_path / "runs", "s/only-*/metrics.csv", 50)
    process.terminate()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "Run the sweep again to resume" in stderr and "Traceback" not in stderr
    (run,) = (tmp_path / "runs" / "s").glob("only-*")
    assert json.loads((run / "summary.json").read_text())["status"] == "stopped"
    assert (run / "checkpoints" / "last.pkl").exists()
    assert not list((tmp_path / "runs" / "s").glob("later-*"))
