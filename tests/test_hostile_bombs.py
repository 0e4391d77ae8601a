"""Bombs and endless inputs: each is refused with a message before it can take the memory, the disk or forever."""

import gzip
import hashlib
import http.server
import io
import os
import pickle
import re
import resource
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hostile import XOR, clean_error, listing

from helpers import CONFIGS, Server, cifar_batches, nnctl
from nnctl.config import load_config, parse_yaml
from nnctl.data import DATASETS, cifar10, download
from nnctl.data.idx import read_idx
from nnctl.data.inputs import read_image
from nnctl.data.npyfile import npz_shapes, read_npy, read_npz
from nnctl.errors import ConfigError, DataError
from nnctl.experiment import build
from nnctl.limits import ENV, gunzip
from nnctl.runs import load_run

LAUGHS = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def load(spec: dict, base: Path):
    config = load_config_text(base, {"data": spec})
    return DATASETS.build(config.data["data"], config, ("data",), base_dir=str(base)).load(np.float32)


def load_config_text(base: Path, data: dict):
    import yaml
    path = base / "c.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(XOR), **data}))
    return load_config(path)


# -- YAML -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, phrase", [
    (LAUGHS, "aliases repeat more than 100,000 values"),
    ("a: &a [1, *a]\n", "a recursive alias"),
    ("a: &a {b: *a}\n", "a recursive alias"),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 100 levels"),
    ("".join("  " * i + f"k{i}:\n" for i in range(3000)), "nested deeper than 100 levels"),
    ("x: " + "{a: " * 400 + "1" + "}" * 400 + "\n", "nested deeper than 100 levels"),
])
def test_yaml_bombs_are_refused_quickly(text, phrase):
    with pytest.raises(ConfigError, match=phrase):
        parse_yaml(text, "bomb.yaml")


def test_a_config_of_many_keys_reads_and_a_large_one_is_refused_unread(tmp_path):
    data, origins = parse_yaml("extra:\n" + "".join(f"  k{i}: {i}\n" for i in range(20_000)), "many.yaml")
    assert len(data["extra"]) == 20_000 and origins[("extra", "k19999")] == "many.yaml:20001"
    (tmp_path / "big.yaml").write_text(XOR + "extra: [" + "1, " * 600_000 + "1]\n")
    with pytest.raises(ConfigError, match=r"big.yaml: 1.7 MiB, more than a config file may hold \(1.0 MiB\)"):
        load_config(tmp_path / "big.yaml")


@pytest.mark.parametrize("value, phrase", [
    ("9" * 5000, "optimizer.lr: a number of 5,000 characters is too long to read"),
    ("1" + "0" * 400, "optimizer.lr: must be a finite number within float's range (±1.8e308), got int 1000"),
])
def test_numbers_too_long_or_too_large_for_a_float_are_config_errors(tmp_path, value, phrase):
    (tmp_path / "c.yaml").write_text(XOR.replace("lr: 0.05", f"lr: {value}"))
    with pytest.raises(ConfigError, match=re.escape(phrase)):
        build(load_config(tmp_path / "c.yaml"))
    with pytest.raises(ConfigError, match="is too long to read"):
        load_config(tmp_path / "c.yaml", [f"train.epochs={'9' * 5000}"])


def test_merge_keys_work_and_keys_written_win():
    data, origins = parse_yaml("base: &b {type: adam, lr: 0.1, clip_norm: 1.0}\n"
                               "other: &o {lr: 0.5, eps: 1.0e-7}\n"
                               "opt:\n  <<: [*b, *o]\n  lr: 0.01\n", "m.yaml")
    assert data["opt"] == {"type": "adam", "lr": 0.01, "clip_norm": 1.0, "eps": 1e-7}
    assert origins[("opt", "lr")] == "m.yaml:5" and origins[("opt", "type")] == "m.yaml:1"
    with pytest.raises(ConfigError, match="m.yaml:1: a: '<<' merges mappings, not int values"):
        parse_yaml("x: &x [1]\na: {<<: *x}\n", "m.yaml")


@pytest.mark.slow
def test_a_billion_laughs_config_and_a_run_that_holds_one_end_cleanly(tmp_path):
    (tmp_path / "c.yaml").write_text(LAUGHS + XOR)
    clean_error(nnctl("train", "c.yaml", cwd=tmp_path, timeout=60), 2, "c.yaml:", "aliases repeat")
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(LAUGHS)
    (run / "summary.json").write_text('{"status": "finished"}')
    other = tmp_path / "runs" / "s"
    other.mkdir()
    (other / "config.yaml").write_text(XOR)
    (other / "summary.json").write_text('{"status": "finished"}')
    result = nnctl("runs", "diff", str(run), str(other), cwd=tmp_path, timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "is damaged, shown without: config.yaml:" in result.stdout and "aliases repeat" in result.stdout


def test_a_run_folders_config_larger_than_a_config_may_be_is_not_parsed(tmp_path):
    run = tmp_path / "r"  # 10 MB of `0,` in a list took 155 s and 3.8 GB to parse under NNCTL_MAX_MEMORY=100M
    run.mkdir()
    (run / "config.yaml").write_text("name: r\n# " + "x" * (2 << 20) + "\n")  # a comment: quick to parse if read
    (run / "summary.json").write_text('{"status": "finished"}')
    loaded = load_run(run)
    assert loaded.config == {}
    assert loaded.damage == [f"config.yaml: {run / 'config.yaml'}: 2.0 MiB, more than a run file may hold (1.0 MiB)"]


@pytest.mark.parametrize("name", ["metrics.jsonl", "summary.json"])
def test_a_run_file_of_json_whose_values_would_pass_the_limit_is_not_parsed(tmp_path, monkeypatch, name):
    run = tmp_path / "r"  # `{},` is 3 bytes and 72 in memory: 30 MB of them took 850 MB under NNCTL_MAX_MEMORY=100M
    run.mkdir()
    (run / "config.yaml").write_text("name: r\n")
    (run / "summary.json").write_text('{"status": "finished"}')
    (run / name).write_text('{"kind": "epoch", "epoch": 1, "x": [' + "{}," * (1 << 20) + '{}]}\n')
    monkeypatch.setenv(ENV, "64M")
    loaded = load_run(run)
    assert any(f"{run / name}: 3,145,769 bytes of JSON as Python values would need 96.0 MiB, more than the 64.0 MiB"
               in line for line in loaded.damage), loaded.damage


# -- .npy / .npz ----------------------------------------------------------------------------------------------

def test_an_npy_header_declaring_a_terabyte_is_refused_before_allocating(tmp_path):
    (tmp_path / "tb.npy").write_bytes(npy_header((1 << 40,)) + b"\0" * 400)
    with pytest.raises(DataError, match=r"declares shape \[1099511627776\] .* but the file holds 400"):
        read_npy(tmp_path / "tb.npy")


def test_an_npy_file_with_bytes_after_its_array_is_refused(tmp_path):
    """np.save never writes them: something else was appended, or the header understates the array."""
    np.save(tmp_path / "x.npy", np.arange(6.0))
    with open(tmp_path / "x.npy", "ab") as f:
        f.write(b"\0" * 1000)
    with pytest.raises(DataError, match=r"\(48 bytes of data\), but the file holds 1,048: .* bytes after its array"):
        read_npy(tmp_path / "x.npy")
    np.save(tmp_path / "ok.npy", np.arange(6.0))
    assert read_npy(tmp_path / "ok.npy").tolist() == list(range(6))


@pytest.mark.parametrize("shape", [(-1, 2), (2, -3), (1,) * 40])
def test_an_npy_header_declaring_a_shape_no_array_has_is_refused(tmp_path, shape):
    (tmp_path / "x.npy").write_bytes(npy_header(shape) + b"\0" * 64)
    with pytest.raises(DataError, match="which no array has"):
        read_npy(tmp_path / "x.npy")


def raw_npy(header: str, data: bytes = b"\0" * 48) -> bytes:
    """An .npy file of `header` as written, unchecked (np.lib.format checks what it writes)."""
    text = header.encode("latin1")
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


UNPARSED = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)} (("


@pytest.mark.parametrize("header, phrase", [
    (UNPARSED, "no readable .npy header: EOF in multi-line statement"),
    ("{'descr': '<T', 'fortran_order': False, 'shape': (3,), }", "NumPy's StringDType"),
    ("{'descr': '<U0', 'fortran_order': False, 'shape': (3,), }", "values of no bytes (dtype <U0)"),
    ("{'descr': '|S0', 'fortran_order': False, 'shape': (3,), }", "values of no bytes (dtype |S0)")])
def test_an_npy_header_numpy_cannot_parse_or_read_from_bytes_is_refused(tmp_path, header, phrase):
    """NumPy tokenizes a header Python cannot parse (raising its TokenError), and frombuffer refuses dtypes of
    pointers or of no bytes: each is the file's fault, named, in an .npy and in an .npz."""
    (tmp_path / "x.npy").write_bytes(raw_npy(header))
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as archive:
        archive.writestr("x.npy", raw_npy(header))
    for read, name in ((read_npy, "x.npy"), (read_npz, "x.npz")):
        with pytest.raises(DataError, match=re.escape(phrase)):
            read(tmp_path / name)


def test_an_npz_header_numpy_cannot_parse_is_named_when_only_shapes_are_read(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as archive:
        archive.writestr("x.npy", raw_npy(UNPARSED))
    with pytest.raises(DataError, match="array 'x.npy' has no readable .npy header: EOF in multi-line"):
        npz_shapes(tmp_path / "x.npz")


def test_an_encrypted_npz_member_is_refused_by_name(tmp_path):
    with zipfile.ZipFile(tmp_path / "e.npz", "w") as archive:
        archive.writestr("x.npy", npy_header((2,)) + b"\0" * 16)
    raw = bytearray((tmp_path / "e.npz").read_bytes())
    for signature, flags in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # marked encrypted, in both headers
        raw[raw.index(signature) + flags] |= 0x1
    (tmp_path / "e.npz").write_bytes(raw)
    with pytest.raises(DataError, match="its array 'x' is encrypted"):
        read_npz(tmp_path / "e.npz")


def test_samples_of_no_values_and_values_past_float32_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"the training samples have shape \[0\], which holds no values"):
        load({"type": "inline", "x": [[], []], "y": [0, 1]}, tmp_path)
    with pytest.raises(DataError, match="values beyond float32's range once scaled and shifted"):
        load({"type": "inline", "x": [[1e308], [0.0]], "y": [0, 1]}, tmp_path)


def test_an_npz_member_declaring_more_than_it_holds_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as archive:
        archive.writestr("x.npy", npy_header((10**12, 10)) + b"\0" * 64)
        archive.writestr("y.npy", npy_header((2,)) + b"\0" * 16)
    with pytest.raises(DataError, match="array 'x' declares shape"):
        read_npz(tmp_path / "z.npz")
    with pytest.raises(DataError, match="array 'x' declares shape"):
        load({"type": "npz", "path": "z.npz"}, tmp_path)


def test_a_zip_bomb_in_an_npz_is_refused_at_the_memory_limit(tmp_path, monkeypatch):
    shape = (64 << 20,)  # 512 MiB of zeros, a few hundred KiB compressed
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("x.npy", "w", force_zip64=True) as f:
        f.write(npy_header(shape))
        for _ in range(512):
            f.write(bytes(1 << 20))
    assert (tmp_path / "bomb.npz").stat().st_size < 2 << 20
    monkeypatch.setenv(ENV, "64M")
    with pytest.raises(DataError, match=f"would need 512.0 MiB, more than the 64.0 MiB .* raise it with {ENV}"):
        read_npz(tmp_path / "bomb.npz")


def test_npz_members_each_within_the_limit_are_counted_together(tmp_path, monkeypatch):
    with zipfile.ZipFile(tmp_path / "many.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(8):  # 8 × 40 MiB of zeros, 300 KiB on disk: each array fits 64M, all of them do not
            archive.writestr(f"x{i}.npy", npy_header((5 << 20,)) + bytes(40 << 20))
    monkeypatch.setenv(ENV, "64M")
    with pytest.raises(DataError, match=r"array 'x1' .*, with the 40.0 MiB of the arrays before it in the archive, "
                                        r"would need 80.0 MiB, more than the 64.0 MiB"):
        read_npz(tmp_path / "many.npz")


def test_npz_arrays_of_objects_records_or_dates_are_refused_by_name(tmp_path):
    np.savez(tmp_path / "r.npz", x=np.zeros(2, dtype=[("a", "f4")]), y=np.zeros(2))
    with pytest.raises(DataError, match="array 'x' holds records"):
        read_npz(tmp_path / "r.npz")
    np.save(tmp_path / "d.npy", np.array(["2020-01-01"], dtype="M8[D]"))
    with pytest.raises(DataError, match="holds dates"):
        read_npy(tmp_path / "d.npy")


# -- gzip and tar ---------------------------------------------------------------------------------------------

def idx_header(dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def test_a_gzip_bomb_in_an_idx_file_stops_at_what_its_header_declares(tmp_path):
    with gzip.open(tmp_path / "x-idx1-ubyte.gz", "wb") as f:
        f.write(idx_header((10,)))
        f.write(bytes(64 << 20))
    with pytest.raises(DataError, match="decompresses to more than the 18 bytes its IDX header declares"):
        read_idx(tmp_path / "x-idx1-ubyte.gz")


def test_a_gzip_file_of_many_small_members_decompresses_in_linear_time():
    member = gzip.compress(bytes(range(64)), mtime=0)
    start = time.monotonic()
    contents, whole = gunzip(member * 60_000, 1 << 30)
    assert time.monotonic() - start < 3  # 0.1 s; a quadratic gunzip copies 150 GB
    assert whole and contents == bytes(range(64)) * 60_000
    assert gunzip(member * 60_000, 100) == (bytes(range(64)) + bytes(range(36)), False)


def test_an_idx_header_declaring_more_dimensions_than_an_array_has_is_refused(tmp_path):
    (tmp_path / "x.idx").write_bytes(bytes([0, 0, 8, 255]) + b"\0\0\0\1" * 255)
    with pytest.raises(DataError, match="it declares 255 dimensions, more than 32"):
        read_idx(tmp_path / "x.idx")


def test_an_idx_header_declaring_a_huge_array_is_refused_before_decompressing(tmp_path):
    (tmp_path / "x-idx3-ubyte.gz").write_bytes(gzip.compress(idx_header((1 << 20, 1 << 20, 1 << 10)) + b"\0" * 64))
    with pytest.raises(DataError, match="the array its header declares would need 1.0 PiB"):
        read_idx(tmp_path / "x-idx3-ubyte.gz")


def test_a_gzip_bomb_in_a_cifar_archive_is_cut_off(tmp_path, monkeypatch):
    folder = tmp_path / "cifar10"
    folder.mkdir()
    with gzip.open(folder / cifar10.ARCHIVE, "wb") as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        info = tarfile.TarInfo(f"{cifar10.FOLDER}/padding")
        info.size = 256 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert (folder / cifar10.ARCHIVE).stat().st_size < 1 << 20
    monkeypatch.setenv(ENV, "32M")
    with pytest.raises(DataError, match="unpacking it would need .* a decompression bomb"):
        load({"type": "cifar10", "root": "."}, tmp_path)


# -- endless and non-regular files ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "folder"])
@pytest.mark.slow
def test_devices_fifos_and_folders_are_refused_before_opening(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    elif kind == "folder":
        path = tmp_path / "folder"
        path.mkdir()
    else:
        path = Path(kind)
    phrase = "a folder, not a" if kind == "folder" else "not a regular file"
    for spec in ({"type": "text", "path": str(path), "seq_len": 4}, {"type": "npz", "path": str(path)},
                 {"type": "csv", "path": str(path)}):
        with pytest.raises(DataError, match=phrase):
            load(spec, tmp_path)
    with pytest.raises(ConfigError, match=phrase):
        load_config(path)
    (tmp_path / "s.yaml").write_text(f"base: {path}\ngrid: {{optimizer.lr: [0.1]}}\n")
    result = nnctl("sweep", "s.yaml", cwd=tmp_path, timeout=60)
    clean_error(result, 2, phrase)


def test_a_cifar_batch_that_is_a_folder(tmp_path):
    folder = tmp_path / "cifar10" / cifar10.FOLDER
    folder.mkdir(parents=True)
    for name, raw in cifar_batches().items():
        (folder / name).write_bytes(raw)
    os.remove(folder / "data_batch_2")
    (folder / "data_batch_2").mkdir()
    with pytest.raises(DataError, match="data_batch_2: a folder, not a CIFAR-10 batch file"):
        load({"type": "cifar10", "root": "."}, tmp_path)


@pytest.mark.slow
def test_a_cifar_batch_of_labels_and_one_long_string_is_refused_before_numpy_pads_every_label(tmp_path):
    """A 140 KB pickle: 20,000 labels and a string of 100,000 characters asked NumPy for 8 GB of strings."""
    folder = tmp_path / "cifar10" / cifar10.FOLDER
    folder.mkdir(parents=True)
    for name, raw in cifar_batches().items():
        (folder / name).write_bytes(raw)
    labels = [1] * 20_000 + ["3" * 100_000]
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"labels": labels, b"data": np.zeros((4, 3072), np.uint8)}))
    (tmp_path / "c.yaml").write_text(XOR.replace("{type: logic, op: xor}", f"{{type: cifar10, root: {tmp_path}}}"))
    trained = capped("train", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path / "runs"))
    clean_error(trained, 1, "data_batch_1: labels.20000: str, not a number")


# -- downloads ------------------------------------------------------------------------------------------------

class Answer(http.server.BaseHTTPRequestHandler):
    """Answers every GET with 200, `length` as its Content-Length (if any), and `chunks`, `pause` seconds apart."""

    length: int | None = None
    chunks: list[bytes] = []
    pause = 0.0

    def do_GET(self):
        self.send_response(200)
        if self.length is not None:
            self.send_header("Content-Length", str(self.length))
        self.end_headers()
        try:
            for chunk in self.chunks:
                self.wfile.write(chunk)
                self.wfile.flush()
                time.sleep(self.pause)
        except OSError:
            pass  # the client gave up

    def log_message(self, format, *args):
        pass


def answer(**how) -> type:
    return type("Answering", (Answer,), how)


@pytest.mark.parametrize("how, phrase", [
    ({"chunks": [bytes(1 << 16)] * 160}, "the server sent more than the 1000 B this file can be"),
    ({"length": 10**10, "chunks": [bytes(100)]}, "the server declares 9.3 GiB, more than the 1000 B"),
    ({"length": 100, "chunks": [b"x"] * 100, "pause": 0.05}, "the download took more than 0.3 s"),
    # a body cut off before its Content-Length was a 'checksum mismatch', as if the mirror served another file
    ({"length": 900, "chunks": [bytes(100)]}, "the server closed the connection after 100 of the 900 bytes"),
    # a Content-Length that is no number was 'download failed (invalid literal for int() ...)'
    ({"length": "abc", "chunks": [bytes(100)]}, r"checksum mismatch \(MD5 of the file 6d0bb009"),
])
def test_a_download_stops_at_its_known_size_and_deadline_leaving_nothing(tmp_path, monkeypatch, how, phrase):
    monkeypatch.setattr(download, "DEADLINE", 0.3)
    with Server(handler=answer(**how)) as server, pytest.raises(DataError, match=phrase):
        download.fetch(server.url + "x.gz", tmp_path / "cache" / "x.gz", "0" * 32, 1000, of_contents=False)
    assert not (tmp_path / "cache").exists()


def test_a_downloaded_gzip_bomb_stops_at_the_size_its_contents_should_have(tmp_path):
    (tmp_path / "x.gz").write_bytes(gzip.compress(bytes(64 << 20)))
    with Server(tmp_path) as server, pytest.raises(DataError, match="of more than the 100,000 bytes expected"):
        download.fetch(server.url + "x.gz", tmp_path / "cache" / "x.gz", "0" * 32, 100_000)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("mirror", ["file:///etc/hostname#", "ftp://127.0.0.1:9/", "data:,x#"])
def test_a_mirror_that_is_not_http_is_refused(tmp_path, mirror):
    with pytest.raises(ConfigError, match="mirror must be a base URL over http:// or https://"):
        load({"type": "mnist", "root": "cache", "mirror": mirror}, tmp_path)
    with pytest.raises(DataError, match="not an http:// or https:// URL"):
        download.fetch(mirror + "x.gz", tmp_path / "cache" / "x.gz", "0" * 32, 100)
    assert not (tmp_path / "cache").exists()


class Redirect(http.server.BaseHTTPRequestHandler):
    """Sends /x.gz to `target`, and serves `body` at /y.gz."""

    target = ""
    body = b""

    def do_GET(self):
        if self.path == "/y.gz":
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
        else:
            self.send_response(302)
            self.send_header("Location", self.target)
            self.end_headers()

    def log_message(self, format, *args):
        pass


@pytest.mark.parametrize("target", ["ftp://127.0.0.1:9/x.gz", "file:///etc/hostname"])
def test_a_redirect_away_from_http_is_refused(tmp_path, target):
    with Server(handler=type("Redirecting", (Redirect,), {"target": target})) as server, \
            pytest.raises(DataError, match=f"redirects to {target}, not an http:// or https:// URL"):
        download.fetch(server.url + "x.gz", tmp_path / "cache" / "x.gz", "0" * 32, 100, of_contents=False)
    assert not (tmp_path / "cache").exists()


def test_a_redirect_loop_is_one_line(tmp_path):
    with Server(handler=type("Redirecting", (Redirect,), {"target": "/x.gz"})) as server, \
            pytest.raises(DataError, match="HTTP 302 The HTTP server returned a redirect error that would lead to an "
                                           "infinite loop. The last 30x error message was: Found$"):
        download.fetch(server.url + "x.gz", tmp_path / "cache" / "x.gz", "0" * 32, 100, of_contents=False)
    assert not (tmp_path / "cache").exists()


def test_a_redirect_to_http_is_followed(tmp_path):
    body = gzip.compress(b"digits")
    with Server(handler=type("Redirecting", (Redirect,), {"target": "/y.gz", "body": body})) as server:
        download.fetch(server.url + "x.gz", tmp_path / "x.gz", hashlib.md5(b"digits").hexdigest(), 6)
    assert (tmp_path / "x.gz").read_bytes() == body


# -- memory estimates -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_layer_of_a_billion_units_says_how_much_memory_it_needs(tmp_path):
    (tmp_path / "c.yaml").write_text(XOR.replace("units: 4,", "units: 1000000000,"))
    before = listing(tmp_path)
    clean_error(nnctl("train", "c.yaml", cwd=tmp_path), 2, "c.yaml:6", "model.layers.0",
                "a parameter of shape [2, 1000000000] (its float64 draw, then itself, its gradient and two optimizer "
                "slots) would need 44.7 GiB", ENV)
    assert listing(tmp_path) == before


@pytest.mark.slow
def test_a_wide_model_is_refused_from_its_whole_training_estimate(tmp_path):
    (tmp_path / "c.yaml").write_text(XOR.replace("units: 4,", "units: 100000,"))
    before = listing(tmp_path)
    clean_error(nnctl("train", "c.yaml", cwd=tmp_path, env={ENV: "8M"}), 2, "model.layers",
                "training this model", "would need", "more than the 8.0 MiB")
    assert listing(tmp_path) == before
    assert nnctl("train", "c.yaml", "-q", cwd=tmp_path).returncode == 0


@pytest.mark.slow
def test_a_one_hot_of_a_label_of_three_billion_says_how_much_memory(tmp_path):
    (tmp_path / "c.yaml").write_text(textwrap.dedent("""\
        data: {type: inline, x: [[0], [1]], y: [0, 3000000000], one_hot: true}
        model: {layers: [{type: dense, units: 2}]}
        loss: softmax_cross_entropy
        optimizer: {type: sgd, lr: 0.1}
    """))
    clean_error(nnctl("train", "c.yaml", cwd=tmp_path, env={ENV: "1G"}), 1,
                "one-hot targets for 3,000,000,001 classes would need 22.4 GiB", "the largest is 3,000,000,000")


@pytest.mark.slow
def test_mnist_as_floats_past_the_limit_is_refused_before_converting_it(tmp_path, mnist_root):
    """Each IDX file was checked as bytes, but not the float copy training makes of them, 8 times larger as float64:
    a limit of 100M let 10,000 + 10,000 digits take 120 MiB."""
    result = nnctl("train", str(CONFIGS / "mnist_mlp.yaml"), "dtype=float64", "data.subset=10000",
                   "data.validation=100", "--runs-dir", str(tmp_path / "runs"), env={ENV: "100M"})
    clean_error(result, 1, "/mnist: 20,000 samples of 1×28×28 as float64 would need 119.8 MiB, more than the "
                "100.0 MiB", "or keep fewer samples (data.subset, data.test_subset)")
    assert listing(tmp_path) == set()


def capped(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`nnctl ARGS...` under a 4 GiB address-space cap (a container's): an allocation past it fails at once."""
    cap = 4 << 30
    return subprocess.run([sys.executable, "-m", "nnctl", *args], capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)), env=env)


@pytest.mark.slow
def test_a_memory_cap_below_the_read_limit_still_trains_and_evaluates(tmp_path):
    """Files are read to their size, not to the limit reserved up front: under a 4 GiB address-space cap (a
    container's), a 2 KB checkpoint must not ask for 3/4 of the machine's memory."""
    unlimited = {k: v for k, v in os.environ.items() if k != ENV}
    trained = capped("train", str(CONFIGS / "xor_mlp.yaml"), "--runs-dir", str(tmp_path), "-q", env=unlimited)
    assert trained.returncode == 0, trained.stderr
    evaluated = capped("eval", str(next(tmp_path.glob("*/checkpoints/last.pkl"))), env=unlimited)
    assert evaluated.returncode == 0, evaluated.stderr


@pytest.mark.slow
def test_a_csv_cell_of_100000_characters_costs_its_own_bytes_not_every_cells(tmp_path):
    """Read as a NumPy array of strings, every one of 60,000 cells was padded to the longest: a 220 KB file asked for
    24 GB. Cell by cell into floats it trains, here under a 4 GiB address-space cap."""
    rows = [f"{i % 7 / 7},{i % 3 / 3},{i % 2}" for i in range(20_000)]
    rows[0] = "0." + "0" * 100_000 + "1,0.5,1"
    (tmp_path / "t.csv").write_text("\n".join(rows))
    (tmp_path / "c.yaml").write_text(XOR.replace("{type: logic, op: xor}", "{type: csv, path: t.csv}")
                                     .replace("batch_size: 4", "batch_size: 1000").replace("epochs: 2", "epochs: 1"))
    trained = capped("train", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path / "runs"), "-q")
    assert trained.returncode == 0, trained.stderr


@pytest.mark.slow
def test_inline_data_holding_a_long_string_is_refused_before_numpy_pads_every_cell_to_it(tmp_path):
    """A 170 KB config of 20,000 pairs and one string of 50,000 characters asked NumPy for 8 GB of strings."""
    pairs = ", ".join(["[1, 2]"] * 20_000)
    (tmp_path / "c.yaml").write_text(XOR.replace("{type: logic, op: xor}", f"{{type: inline, x: [[\"{'a' * 50_000}\", "
                                                 f"1], {pairs}], y: [{', '.join(['0'] * 20_001)}]}}"))
    clean_error(capped("summary", str(tmp_path / "c.yaml")), 1, "data.x.0.0: str, not a number")


def test_an_image_larger_than_the_memory_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    from PIL import Image

    Image.new("L", (4000, 4000)).save(tmp_path / "big.png")  # a few KB of zeros, 16 MB decoded and 16 MB converted
    assert (tmp_path / "big.png").stat().st_size < 100_000
    monkeypatch.setenv(ENV, "20M")
    with pytest.raises(DataError, match=r"big.png: an image of 4000×4000 \(L\) resized to 28×28 would need 30.5 MiB, "
                                        r"more than the 20"):
        read_image(tmp_path / "big.png", (28, 28))
    monkeypatch.setenv(ENV, "200M")
    assert read_image(tmp_path / "big.png", (28, 28)).shape == (28, 28)


@pytest.mark.parametrize("mode, channels, dtype", [("I;16", 1, np.uint16), ("RGBA", 3, np.uint8)])
def test_an_image_is_charged_what_decoding_converting_and_scaling_it_takes(tmp_path, monkeypatch, mode, channels,
                                                                          dtype):
    from PIL import Image

    pixels = np.zeros((2000, 2000, 4) if mode == "RGBA" else (2000, 2000), dtype)
    pixels[..., 3:] = 255  # opaque (transparent pixels are refused)
    Image.fromarray(pixels).save(tmp_path / "i.png")  # 4 million pixels of 8 bytes at the peak: 30.5 MiB
    monkeypatch.setenv(ENV, "20M")
    with pytest.raises(DataError, match=rf"an image of 2000×2000 \({mode}\) resized to 28×28 would need 30.5 MiB, "
                                        r"more than the 20.0"):
        read_image(tmp_path / "i.png", (channels, 28, 28))
    monkeypatch.setenv(ENV, "31M")
    assert read_image(tmp_path / "i.png", (channels, 28, 28)).shape == (channels, 28, 28)


def test_an_image_resized_to_a_size_past_the_limit_is_refused_before_resizing(tmp_path, monkeypatch):
    from PIL import Image

    Image.new("L", (28, 28)).save(tmp_path / "tiny.png")  # a forged checkpoint's sample shape of 40000×40000: 3 GB
    monkeypatch.setenv(ENV, "20M")
    with pytest.raises(DataError, match=r"tiny.png: an image of 28×28 \(L\) resized to 6000×5000 would need 57.2 MiB"):
        read_image(tmp_path / "tiny.png", (1, 5000, 6000))
    assert read_image(tmp_path / "tiny.png", (1, 2000, 2000)).shape == (1, 2000, 2000)


@pytest.mark.parametrize("sizes", [{"samples": 10**12}, {"test_samples": 10**12}, {"seq_len": 10**12}])
def test_a_generated_dataset_past_the_memory_limit_is_refused_before_drawing_it(tmp_path, sizes):
    """pattern_ends draws its letters one by one: 10^12 of them would run for days before memory ran out."""
    with pytest.raises(DataError, match=r"data: [\d,]+ \+ [\d,]+ sequences of [\d,]+ letters would need .* more than"):
        load({"type": "pattern_ends", **sizes}, tmp_path)


def test_a_generated_dataset_within_the_limit_is_drawn(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "1M")  # 500 + 200 sequences of 20 letters, about 13 · 8 bytes a letter: 1.5 MB
    with pytest.raises(DataError, match="1.0 MiB"):
        load({"type": "pattern_ends", "samples": 500}, tmp_path)
    monkeypatch.setenv(ENV, "2M")
    assert load({"type": "pattern_ends", "samples": 500}, tmp_path).train.x.shape[1:] == (20, 4)


@pytest.mark.parametrize("kind, name, line", [("csv", "big.csv", "1,0,1,0,1,0,1,0,1,0\n"),
                                              ("trees", "big.txt", "(1 (0 a) (1 (1 b) (0 c)))\n")])
def test_a_csv_or_tree_file_whose_reading_would_pass_the_limit_is_refused_before_parsing(tmp_path, monkeypatch,
                                                                                         kind, name, line):
    (tmp_path / name).write_text(line * 4000)  # about 100 KB, some 30 times that once parsed
    monkeypatch.setenv(ENV, "1M")
    with pytest.raises(DataError, match=rf"{name}: [\d,]+ bytes of .* would need .* more than the 1.0 MiB .*{ENV}"):
        load({"type": kind, "path": name}, tmp_path)
    if kind == "csv":  # a peek at the shape (summary, a checkpoint's model) reads two rows, whatever the file's size
        config = load_config_text(tmp_path, {"data": {"type": kind, "path": name}})
        assert DATASETS.build(config.data["data"], config, ("data",), base_dir=str(tmp_path)).peek() == (9,)
    monkeypatch.setenv(ENV, "8M")
    assert len(load({"type": kind, "path": name}, tmp_path).train) > 0
