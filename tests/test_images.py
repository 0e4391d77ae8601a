"""Image data: augmentation, per-channel normalization, CIFAR-10 batches, and a conv net trained through the CLI."""

import csv
import hashlib
import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import Server, cifar_archive, cifar_batches, nnctl
from nnctl import checkpoint
from nnctl.config import from_dict, load_config
from nnctl.data import DATASETS, cifar10
from nnctl.data.augment import Augment
from nnctl.data.idx import read_idx
from nnctl.errors import ConfigError, DataError
from nnctl.sections import resolved


def load(spec: dict, base_dir: Path = Path("."), dtype=np.float32):
    return DATASETS.build(spec, from_dict({"data": spec}), ("data",), base_dir=str(base_dir)).load(dtype)


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The image moved down dy and right dx pixels, zeros filling in."""
    out = np.zeros_like(image)
    h, w = image.shape[1:]
    out[:, max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)] = \
        image[:, max(-dy, 0): h - max(dy, 0), max(-dx, 0): w - max(dx, 0)]
    return out


def test_shift_moves_each_image_by_at_most_the_shift():
    x = np.random.default_rng(0).random((40, 2, 5, 6)).astype(np.float32)
    out = Augment.of({"shift": 2})(x, np.random.default_rng(1))
    moves = set()
    for image, moved in zip(x, out, strict=True):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(moved, shifted(image, dy, dx))]
        assert len(found) == 1
        moves.add(found[0])
    assert len(moves) > 10  # the shifts are drawn per sample
    assert out.shape == x.shape and out.dtype == x.dtype


def test_flip_mirrors_about_half_and_leaves_the_batch_alone():
    x = np.random.default_rng(0).random((200, 3, 4, 4))
    before = x.copy()
    out = Augment.of({"flip": True})(x, np.random.default_rng(1))
    mirrored = [np.array_equal(o, i[:, :, ::-1]) for o, i in zip(out, x, strict=True)]
    kept = [np.array_equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 70 < sum(mirrored) < 130
    np.testing.assert_array_equal(x, before)


def test_augmentation_is_reproducible_from_the_seed():
    x = np.random.default_rng(0).random((10, 1, 8, 8))
    augment = Augment.of({"shift": 3, "flip": True})
    np.testing.assert_array_equal(augment(x, np.random.default_rng(5)), augment(x, np.random.default_rng(5)))


@pytest.mark.parametrize("augment, message", [
    ({"fip": True}, "data.augment.fip: unknown key (did you mean 'flip'?)"),
    ({"shift": -1}, "data.augment.shift: expected an integer ≥ 0, got -1"),
    ({"flip": "yes"}, "data.augment.flip: expected true or false, got str 'yes'"),
])
def test_bad_augment_options(augment, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        load({"type": "inline", "x": [[[[0.0]]]], "y": [0], "flatten": False, "augment": augment})


def test_a_bad_augment_option_is_named_at_its_own_line(tmp_path):
    """It was named at the data section's line (`c.yaml:1: data: augment.shift must be ...`)."""
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  type: mnist\n  flatten: false\n  augment:\n    flip: true\n    shift: -1\nmodel:\n"
                    "  layers: [{type: flatten}, {type: dense, units: 10}]\nloss: softmax_cross_entropy\n"
                    "optimizer: sgd\n")
    with pytest.raises(ConfigError) as info:
        resolved(load_config(path))
    assert str(info.value) == f"{path}:6: data.augment.shift: expected an integer ≥ 0, got -1"


@pytest.mark.parametrize("x, flatten, advice", [
    ([[[[0.0, 1.0]]]], True, "set data.flatten: false"),  # images, flattened
    ([[0.0, 1.0]], True, "leave data.augment out for such data"),  # flat samples: flatten: false would not help
    ([[[0.0, 1.0], [1.0, 0.0]]], False, "leave data.augment out for such data"),  # a sequence, flatten already false
])
def test_augment_needs_images(x, flatten, advice):
    with pytest.raises(DataError, match=f"data.augment shifts and flips images .*; {advice}$"):
        load({"type": "inline", "x": x, "y": [0], "flatten": flatten, "augment": {"flip": True}})


def test_normalize_per_channel_with_the_training_statistics():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(3, 2, (50, 1, 2, 2)), rng.normal(-1, 5, (50, 1, 2, 2))], axis=1)
    spec = {"type": "inline", "x": x.tolist(), "y": [0] * 50, "test_x": (x[:5] + 1).tolist(), "test_y": [0] * 5,
            "flatten": False, "normalize": True}
    data = load(spec, dtype=np.float64)
    np.testing.assert_allclose(data.train.x.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(data.train.x.std(axis=(0, 2, 3)), 1, atol=1e-12)
    np.testing.assert_allclose(data.test.x, data.train.x[:5] + 1 / x.std(axis=(0, 2, 3))[:, None, None])


def test_normalize_scales_a_feature_of_small_values_and_only_centres_a_constant_one(tmp_path):
    """Any std below 1e-8 counted as a constant feature: one measured in metres (about 1e-9) was left at that scale,
    silently. A constant feature of any size is still only centred, the rounding of its mean notwithstanding."""
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(0, 1e-9, 40), rng.normal(5e-7, 3e-12, 40), np.full(40, 0.1), np.full(40, 1e6)], 1)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(40, np.int64))
    data = load({"type": "npz", "path": "d.npz", "normalize": True}, tmp_path, dtype=np.float64)
    np.testing.assert_allclose(data.train.x.std(axis=0), [1, 1, 0, 0], atol=1e-9)
    np.testing.assert_allclose(data.train.x.mean(axis=0), 0, atol=1e-9)


@pytest.mark.parametrize("shape, flatten", [((40, 3, 2), False), ((40, 3, 2), True), ((40, 5), False),
                                            ((40, 2, 3, 2, 2), False)])
def test_normalize_keeps_statistics_per_feature_of_sequences_and_flat_samples_and_refuses_other_shapes(shape,
                                                                                                       flatten):
    x = np.random.default_rng(0).normal(np.arange(shape[-1]) * 10, np.arange(1, shape[-1] + 1), shape)
    spec = {"type": "inline", "x": x.tolist(), "y": [0] * len(x), "flatten": flatten, "normalize": True}
    if len(shape) > 3:
        with pytest.raises(DataError, match=r"each channel's statistics of images .* but the samples have shape"):
            load(spec, dtype=np.float64)
        return
    data = load(spec, dtype=np.float64)
    features = data.train.x.reshape(len(x), -1, shape[-1])  # (N, steps, features); one step for flat samples
    np.testing.assert_allclose(features.mean(axis=(0, 1)), 0, atol=1e-12)
    np.testing.assert_allclose(features.std(axis=(0, 1)), 1, atol=1e-12)
    if len(shape) == 3:
        assert not np.allclose(features.std(axis=0), 1)  # the steps share their feature's statistics


def test_npz_image_arrays_keep_their_layout(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "images.npz", x=rng.integers(0, 256, (30, 3, 8, 6), dtype=np.uint8), y=np.arange(30) % 4)
    data = load({"type": "npz", "path": "images.npz", "flatten": False, "scale": 1 / 255, "validation": 6}, tmp_path)
    assert data.input_shape == (3, 8, 6) and data.train.x.shape == (24, 3, 8, 6) and data.num_classes == 4


# CIFAR-10, in the format of the real archive: pickled dicts with bytes keys, inside cifar-10-batches-py/


def test_cifar10_from_the_archive_and_from_the_extracted_folder(tmp_path):
    batches = cifar_batches()
    (tmp_path / "a" / "cifar10").mkdir(parents=True)
    cifar_archive(tmp_path / "a" / "cifar10" / cifar10.ARCHIVE, batches)
    extracted = tmp_path / "b" / "cifar10" / cifar10.FOLDER
    extracted.mkdir(parents=True)
    for name, raw in batches.items():
        (extracted / name).write_bytes(raw)
    first = pickle.loads(batches["data_batch_1"], encoding="bytes")
    for root in ("a", "b"):
        data = load({"type": "cifar10", "root": str(tmp_path / root)})
        assert data.input_shape == (3, 32, 32) and (len(data.train), len(data.test)) == (20, 4)
        assert data.train.y[:4].tolist() == first[b"labels"]
        red = first[b"data"][0, :1024].reshape(32, 32)  # each row: 1024 red, then green, then blue pixels
        np.testing.assert_allclose(data.train.x[0, 0], red / np.float32(255), rtol=1e-6)


@pytest.mark.parametrize("labels, dtype", [([1.7, 2.9, 0.5, 9.99], "float64"), ([True, False, True, True], "bool"),
                                           ([[1], [2], [3], [4]], "int64")])
def test_cifar10_labels_that_are_not_integers_are_refused_not_cast(tmp_path, labels, dtype):
    """A batch's labels were cast to int64 as they came: 1.7 trained as 1, and '3' or True as 3 or 1."""
    batches = cifar_batches()
    batches["data_batch_2"] = pickle.dumps({b"labels": labels, b"data": np.zeros((4, 3072), np.uint8)}, protocol=2)
    folder = tmp_path / "cifar10" / cifar10.FOLDER
    folder.mkdir(parents=True)
    for name, raw in batches.items():
        (folder / name).write_bytes(raw)
    with pytest.raises(DataError, match=rf"data_batch_2: expected uint8 rows of 3072 pixels and one integer label "
                                        rf"each, found data uint8 \(4, 3072\) and labels {dtype} \("):
        load({"type": "cifar10", "root": str(tmp_path)})


def test_cifar10_download_checks_the_archive(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    raw = cifar_archive(served / cifar10.ARCHIVE, cifar_batches())
    with Server(served) as server:
        with pytest.raises(DataError) as info:
            load({"type": "cifar10", "root": "cache", "mirror": server.url}, tmp_path)
        assert f"checksum mismatch (MD5 of the file {hashlib.md5(raw).hexdigest()}" in str(info.value)
        assert not (tmp_path / "cache" / "cifar10" / cifar10.ARCHIVE).exists()
        monkeypatch.setattr(cifar10, "MD5", hashlib.md5(raw).hexdigest())  # our archive stands in for the real one
        data = load({"type": "cifar10", "root": "cache", "mirror": server.url}, tmp_path)
    assert len(data.train) == 20 and (tmp_path / "cache" / "cifar10" / cifar10.ARCHIVE).read_bytes() == raw


class _RunsCode:
    def __reduce__(self):
        return (print, ("this ran",))


@pytest.mark.parametrize("batch, message", [
    (pickle.dumps({b"data": _RunsCode(), b"labels": []}), "refused to read the batch: it references builtins.print"),
    (pickle.dumps({b"labels": [1]}), "not a CIFAR-10 batch"),
    (pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [1, 2]}), "expected uint8 rows of 3072"),
    (b"\x80\x02garbage", "not a CIFAR-10 batch"),
])
def test_bad_cifar_batches(tmp_path, batch, message):
    batches = {**cifar_batches(), "data_batch_3": batch}
    (tmp_path / "cifar10").mkdir()
    cifar_archive(tmp_path / "cifar10" / cifar10.ARCHIVE, batches)
    with pytest.raises(DataError, match=message):
        load({"type": "cifar10", "root": str(tmp_path)})


def test_corrupt_cifar_archive(tmp_path):
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / cifar10.ARCHIVE).write_bytes(b"\x1f\x8b broken")
    with pytest.raises(DataError, match="not a readable tar.gz archive"):
        load({"type": "cifar10", "root": str(tmp_path)})


# A small conv net with batch norm and augmentation, trained and resumed through the CLI on an MNIST slice

CNN = """\
name: cnn
seed: 3
data: {type: mnist, flatten: false, subset: 1200, test_subset: 500, validation: 200, augment: {shift: 1}}
model:
  layers:
    - {type: conv2d, filters: 6, kernel_size: 3, padding: same, weight_init: he_normal}
    - {type: batchnorm}
    - {type: relu}
    - {type: maxpool2d, pool_size: 2}
    - {type: conv2d, filters: 8, kernel_size: 2, stride: 2, activation: relu}
    - {type: flatten}
    - {type: dense, units: 10}
loss: softmax_cross_entropy
optimizer: {type: adam, lr: 0.01}
train: {epochs: 3, batch_size: 50, metrics: [accuracy]}
"""


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(f)]


def train_cnn(tmp_path: Path, *overrides: str) -> Path:
    tmp_path.mkdir()
    config = tmp_path / "cnn.yaml"
    config.write_text(CNN)
    result = nnctl("train", str(config), *overrides, "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


@pytest.mark.slow
def test_a_conv_net_with_batch_norm_learns_and_resumes_bit_for_bit(tmp_path):
    straight = train_cnn(tmp_path / "a")
    summary = json.loads((straight / "summary.json").read_text())
    first = train_cnn(tmp_path / "b", "train.epochs=1")
    result = nnctl("train", "--resume", str(first / "checkpoints" / "last.pkl"), "train.epochs=3")
    assert result.returncode == 0, result.stderr
    a = checkpoint.load(straight / "checkpoints" / "last.pkl").model
    b = checkpoint.load(first / "checkpoints" / "last.pkl").model
    assert set(a["batchnorm_1"]["state"]) == {"running_mean", "running_var"}
    for layer, entry in a.items():
        for kind in ("params", "state"):
            for key, value in entry[kind].items():
                np.testing.assert_array_equal(value, b[layer][kind][key], err_msg=f"{layer}.{key}")
    assert rows(first) == rows(straight)
    accuracy = summary["test"]["test_accuracy"]
    assert accuracy > 0.6, summary  # three epochs on 1,000 images: far above the 10 % of guessing
    result = nnctl("eval", str(straight / "checkpoints" / "last.pkl"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accuracy"] == accuracy  # eval uses the saved running statistics


DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def digit_folders(root: Path, mnist_root: Path, first: int, count: int) -> Path:
    """`count` MNIST training digits from the `first` as PNGs in one class folder per digit (zero/, one/, ...)."""
    folder = mnist_root / "mnist"
    images = read_idx(folder / "train-images-idx3-ubyte.gz")[first: first + count]
    labels = read_idx(folder / "train-labels-idx1-ubyte.gz")[first: first + count]
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        (root / DIGITS[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / DIGITS[label] / f"{first + i}.png")
    return root


def test_an_images_folder_reads_one_class_per_subfolder_sorted_by_name(tmp_path, mnist_root):
    digit_folders(tmp_path / "train", mnist_root, 0, 60)
    (tmp_path / "train" / "three" / "notes.txt").write_text("not an image")  # other files are left out,
    (tmp_path / "train" / "three" / ".hidden.png").write_bytes(b"")  # as are hidden files
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()  # and hidden folders, which are no class
    Image.new("L", (28, 28)).save(tmp_path / "train" / ".ipynb_checkpoints" / "x.png")
    (tmp_path / "train" / "two" / "loop").symlink_to(tmp_path / "train")  # a linked folder is not followed
    (tmp_path / "train" / "ten").symlink_to(tmp_path / "train" / "ten")  # nor a link to itself taken for a class
    source = DATASETS.build({"type": "images", "path": "train", "color": "grey", "validation": 10},
                            from_dict({}), ("data",), base_dir=str(tmp_path))
    data = source.load(np.float32)
    assert source.class_names == sorted(DIGITS) and data.num_classes == 10
    assert data.input_shape == (1, 28, 28) and len(data.train) == 50 and len(data.val) == 10
    raw = read_idx(mnist_root / "mnist" / "train-images-idx3-ubyte.gz")[:60]
    labels = read_idx(mnist_root / "mnist" / "train-labels-idx1-ubyte.gz")[:60]
    both = np.concatenate([data.train.x, data.val.x]) * 255
    names = [sorted(DIGITS)[i] for i in np.concatenate([data.train.y, data.val.y])]
    expected = {(DIGITS[label], image.tobytes()) for label, image in zip(labels, raw, strict=True)}
    assert {(n, x.round().astype(np.uint8).tobytes()) for n, x in zip(names, both, strict=True)} == expected
    assert len(set(data.val.y.tolist())) > 1  # drawn at random: the files come sorted by class


def test_an_images_subset_holds_every_class_in_proportion_drawn_with_the_run_seed(tmp_path, mnist_root):
    """data.subset took the first files, which come class by class: 20 of 200 digits were two classes."""
    digit_folders(tmp_path / "train", mnist_root, 0, 200)
    digit_folders(tmp_path / "test", mnist_root, 200, 100)
    spec = {"type": "images", "path": "train", "test_path": "test", "color": "grey", "subset": 20, "test_subset": 10}

    def drawn(seed: int):
        return DATASETS.build(spec, from_dict({"data": spec}), ("data",), base_dir=str(tmp_path),
                              run_seed=seed).load(np.float32)

    whole = np.bincount(load({**spec, "subset": None}, tmp_path).train.y, minlength=10)
    data = drawn(0)
    assert np.abs(np.bincount(data.train.y, minlength=10) - 20 * whole / whole.sum()).max() < 1
    assert sorted(data.test.y.tolist()) == list(range(10))
    np.testing.assert_array_equal(drawn(0).train.x, data.train.x)
    assert not np.array_equal(drawn(1).train.x, data.train.x)


def test_an_images_folder_resized_to_size_in_rgb(tmp_path, mnist_root):
    digit_folders(tmp_path / "train", mnist_root, 0, 20)
    Image.new("RGB", (50, 40), (255, 0, 0)).save(tmp_path / "train" / "one" / "red.jpg")  # another size, resized
    data = load({"type": "images", "path": "train", "size": [14, 12]}, tmp_path)
    assert data.input_shape == (3, 14, 12) and data.train.x.dtype == np.float32 and data.train.x.max() <= 1
    red = [x for x in data.train.x if x[0].min() > 0.9 and x[1].max() < 0.1]
    assert len(red) == 1


def write_bad_folders(tmp_path: Path, case: str) -> None:
    """train/ (and test/) made as `case` says, each otherwise a folder of two small grey classes."""
    for name in ("a", "b"):
        (tmp_path / "train" / name).mkdir(parents=True)
        Image.new("L", (8, 8), 50).save(tmp_path / "train" / name / "1.png")
    if case == "empty":
        shutil.rmtree(tmp_path / "train")
        (tmp_path / "train").mkdir()
    elif case == "no images":
        (tmp_path / "train" / "b" / "1.png").rename(tmp_path / "train" / "b" / "1.txt")
    elif case == "cut":
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8), np.uint8)).save(tmp_path / "cut.png")
        (tmp_path / "train" / "b" / "1.png").write_bytes((tmp_path / "cut.png").read_bytes()[:70])  # of 150
    elif case == "sizes":
        Image.new("L", (9, 8), 50).save(tmp_path / "train" / "b" / "2.png")
    elif case == "link loop":
        (tmp_path / "train" / "b" / "2.png").symlink_to(tmp_path / "train" / "b" / "2.png")
    elif case == "test class":
        (tmp_path / "test" / "c").mkdir(parents=True)
        Image.new("L", (8, 8), 50).save(tmp_path / "test" / "c" / "1.png")
    elif case == "file":
        shutil.rmtree(tmp_path / "train")
        (tmp_path / "train").write_text("")


@pytest.mark.parametrize("case, message", [
    ("empty", "train: no class folders in it; an images dataset reads one subfolder of images per class"),
    ("no images", "train/b: a class folder without images (.png, .jpg, .jpeg, .bmp, .gif, .tif, .tiff, .webp) in it "
                  "or its subfolders; remove it, or add that class's images"),
    ("cut", "train/b/1.png: not a readable image"),
    ("sizes", "train/b/2.png: an image of 9×8, but {tmp}/train/a/1.png is 8×8: set data.size: [height, width] to "
              "resize every image to one size"),
    ("link loop", "train/b/2.png: cannot read image file: Too many levels of symbolic links"),
    ("test class", "test: holds the class folder 'c', which {tmp}/train has not: no training sample has that class"),
    ("file", "train: a file, but an images dataset reads a folder holding one subfolder of images per class"),
    ("missing", "nowhere: no such folder"),
])
def test_bad_images_folders_are_named(tmp_path, case, message):
    write_bad_folders(tmp_path, case)
    spec = {"type": "images", "path": "nowhere" if case == "missing" else "train",
            **({"test_path": "test"} if case == "test class" else {})}
    with pytest.raises(DataError) as info:
        load(spec, tmp_path)
    assert message.format(tmp=tmp_path) in str(info.value)


def test_images_past_the_memory_limit_are_refused_before_they_are_read(tmp_path, monkeypatch):
    write_bad_folders(tmp_path, "none")
    monkeypatch.setenv("NNCTL_MAX_MEMORY", "64K")  # all of them fit, not what reading one takes at its peak
    with pytest.raises(DataError, match=r"/train/a/1.png: an image of 8×8 \(L\) resized to 100×100 would need"):
        load({"type": "images", "path": "train", "size": [100, 100]}, tmp_path)
    monkeypatch.setenv("NNCTL_MAX_MEMORY", "40K")  # each image fits, not all of them together
    with pytest.raises(DataError, match=r"/train: 2 images of 3×100×100 would need 58.6 KiB, more than the 40.0 KiB"):
        load({"type": "images", "path": "train", "size": [100, 100]}, tmp_path)


def test_an_images_folder_as_floats_past_the_limit_is_refused_before_converting_it(tmp_path, mnist_root,
                                                                                   monkeypatch):
    """The decoded bytes were checked, not the float32 copy of them, 4 times larger."""
    digit_folders(tmp_path / "train", mnist_root, 0, 20)
    monkeypatch.setenv("NNCTL_MAX_MEMORY", "40K")  # the 15.3 KiB of bytes fit
    with pytest.raises(DataError, match=r"/train: 20 samples of 1×28×28 as float32 would need 61.4 KiB, more than "
                                        r"the 40.0 KiB"):
        load({"type": "images", "path": "train", "color": "grey"}, tmp_path)


@pytest.mark.parametrize("key, value, message", [
    ("size", [28], "data.size: expected a list of 2 integers in [1, 65535] or null, got list [28]"),
    ("color", "gray", "data.color: expected 'grey' or 'rgb', got str 'gray'"),
    ("classes", [0, 1], "the classes of images are its class folders"),
])
def test_bad_images_options(tmp_path, key, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load({"type": "images", "path": "train", key: value}, tmp_path)


@pytest.mark.slow
def test_an_images_folder_trains_evaluates_and_predicts_by_class_name(tmp_path, mnist_root):
    digit_folders(tmp_path / "train", mnist_root, 0, 300)
    digit_folders(tmp_path / "test", mnist_root, 300, 60)
    (tmp_path / "c.yaml").write_text(
        "data: {type: images, path: train, test_path: test, color: grey, flatten: true, validation: 0.1}\n"
        "model: {layers: [{type: dense, units: 32, activation: relu}, {type: dense, units: 10}]}\n"
        "loss: softmax_cross_entropy\noptimizer: {type: adam, lr: 0.003}\ntrain: {epochs: 2, batch_size: 32}\n")
    result = nnctl("train", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path / "runs"), "-q")
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert checkpoint.load(run / "checkpoints" / "best.pkl").inputs.class_names == sorted(DIGITS)
    report = json.loads(nnctl("eval", str(run), "--json").stdout)
    assert report["samples"] == 60 and report["classes"] == sorted(DIGITS)
    predicted = nnctl("predict", str(run), str(tmp_path / "test" / "seven"), "-o", str(tmp_path / "p.json"))
    assert predicted.returncode == 0, predicted.stderr
    records = json.loads((tmp_path / "p.json").read_text())
    assert {r["class"] for r in records} <= set(DIGITS) and sum(r["class"] == "seven" for r in records) > 1
    Image.new("L", (8, 8)).save(tmp_path / "train" / "one" / "small.png")
    broken = nnctl("train", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path / "runs"), "-q")
    assert broken.returncode == 1 and broken.stderr.count("\n") == 1, broken.stderr
    assert "small.png: an image of 8×8, but" in broken.stderr and "set data.size" in broken.stderr
