"""New inputs for a trained model: .npy/.npz/.csv arrays and image files, shaped like the raw training samples."""

import io
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnctl.data.npyfile import read_npy, read_npz
from nnctl.data.tabular import read_table
from nnctl.errors import DataError, NnctlError
from nnctl.files import read_bytes
from nnctl.limits import too_big

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
"""Image files Pillow reads (of a GIF or TIFF of several frames, the first)."""
SUFFIXES = (".npy", ".npz", ".csv", *IMAGE_SUFFIXES)
NPZ_KEYS = ("x", "x_test")
"""The arrays an .npz input is read from, the first it holds, when it holds more than one (after the dataset's own)."""


def input_files(paths: list[Path]) -> list[Path]:
    """`paths` with each folder replaced by the input files in it and its subfolders."""
    files = []
    for path in paths:
        found = files_under(path) if path.is_dir() else [path]
        if not found:
            raise DataError(f"{path}: a folder without input files ({', '.join(SUFFIXES)}) in it or its subfolders")
        files += found
    return files


def files_under(folder: Path, suffixes: tuple[str, ...] = SUFFIXES) -> list[Path]:
    """The files in `folder` and its subfolders whose names end in one of `suffixes` (in any case), sorted; hidden
    files and folders (macOS's ._x.png) left out, and linked folders not followed (a link loop)."""
    found = []
    for top, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        found += [Path(top, name) for name in names
                  if not name.startswith(".") and Path(name).suffix.lower() in suffixes]
    return sorted(found)


def read_inputs(path: Path, sample_shape: tuple[int, ...], npz_keys: tuple[str, ...] = (),
                delimiter: str = ",", any_length: bool = False) -> np.ndarray:
    """The samples a file holds, shaped (N, *sample_shape), in the raw units the dataset reads (before scaling);
    an .npz of several arrays holds them in the first of `npz_keys` (the dataset's own), x and x_test it has, a
    .csv's cells are separated by `delimiter`; with `any_length`, sequences of token ids of any length, (T) or
    (N, T)."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return read_image(path, sample_shape)[None]
    if suffix == ".npy":
        x = read_npy(path)
    elif suffix == ".npz":
        x = _pick(read_npz(path), path, tuple(dict.fromkeys([*npz_keys, *NPZ_KEYS])))
    elif suffix == ".csv":
        x = read_table(path, delimiter=delimiter)
        if x.shape[1] == math.prod(sample_shape) + 1:
            raise DataError(f"{path}: {x.shape[1]} columns, one more than the model's {x.shape[1] - 1} inputs: a "
                            "target column? predict takes a table of inputs only; leave the target out")
    else:
        raise DataError(f"{path}: unknown kind of input '{suffix or path.name}'; "
                        f"expected one of: {', '.join(SUFFIXES)}")
    return fit(x, sample_shape, str(path), any_length)


def fit(x: np.ndarray, sample_shape: tuple[int, ...], origin: str, any_length: bool = False) -> np.ndarray:
    """`x` as N samples of `sample_shape`: an array of N rows of that many values, or one sample's values; with
    `any_length` (token ids for a model that reads sequences of any length), one row or N rows of any length."""
    size = math.prod(sample_shape)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{origin}: the inputs are not numbers (dtype {x.dtype})")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError(f"{origin}: the inputs hold NaN or infinite values")
    if x.size == 0:
        raise DataError(f"{origin}: holds no samples (an array of shape {list(x.shape)})")
    if x.ndim >= 1 and math.prod(x.shape[1:]) == size:
        return x.reshape(len(x), *sample_shape)
    if x.size == size:
        return x.reshape(1, *sample_shape)
    if any_length and x.ndim in (1, 2):
        return x.reshape(1, -1) if x.ndim == 1 else x
    dims = ", ".join(map(str, sample_shape))
    raise DataError(f"{origin}: an array of shape {list(x.shape)} does not fit this model, which was trained on "
                    f"samples of shape [{dims}] ({size} values): give one sample of {size} values, or N samples "
                    f"as an array of shape [N, {dims}]" + (f" or [N, {size}]" if len(sample_shape) > 1 else ""))


def read_image(path: Path, sample_shape: tuple[int, ...], other_size: str | None = None) -> np.ndarray:
    """An image file as one raw sample: converted to grey or RGB, resized to the training images' size; with
    `other_size`, an image of another size is refused, the message going on with it, instead of resized."""
    channels, height, width, channels_first = _image_layout(sample_shape, path)
    with _opened(path) as image:
        from PIL import ImageOps

        resized = width * height * ((1 if channels == 1 else 4) + channels)  # Pillow's image, then NumPy's
        keyed = "transparency" in image.info
        turned = _orientation(image) != 1
        if problem := too_big(image.width * image.height * _pixel_bytes(image.mode, channels, keyed, turned)
                              + resized, f"{path}: an image of {image.width}×{image.height} ({image.mode}) "
                              f"resized to {width}×{height}"):
            raise DataError(problem)
        _check_opaque(image.convert("RGBA") if keyed else image, path)
        upright = ImageOps.exif_transpose(image) if turned else image  # as viewers show a phone's photo
        if other_size is not None and upright.size != (width, height):
            raise DataError(f"{path}: an image of {upright.width}×{upright.height}, {other_size}")
        grey_or_rgb = _eight_bit(upright, path).convert("L" if channels == 1 else "RGB")
        pixels = np.asarray(grey_or_rgb.resize((width, height)))
    if len(sample_shape) == 2:
        return pixels
    pixels = pixels.reshape(height, width, channels)
    return pixels.transpose(2, 0, 1) if channels_first else pixels


def image_size(path: Path) -> tuple[int, int]:
    """The height and width of an image file as viewers show it (turned upright), from its header."""
    with _opened(path) as image:
        width, height = image.size
        return (width, height) if _orientation(image) in _QUARTER_TURNS else (height, width)


@contextmanager
def _opened(path: Path) -> Iterator["Image.Image"]:
    """The image file at `path` opened by Pillow (its header read, its pixels not yet decoded); what Pillow
    raises reading it, there or later, becomes a DataError naming the file."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise NnctlError(f"{path}: reading images needs Pillow; install it with pip install 'nnctl[images]'") from None
    raw = read_bytes(path, DataError, "image file")
    try:
        Image.MAX_IMAGE_PIXELS = None  # no warning or refusal of Pillow's own: nnctl's limit (NNCTL_MAX_MEMORY) applies
        with Image.open(io.BytesIO(raw)) as image:
            yield image
    except UnidentifiedImageError:
        raise DataError(f"{path}: not a readable image (not in a format Pillow knows, such as PNG or JPEG)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None


def _orientation(image: "Image.Image") -> int:
    """The EXIF orientation the file's header records (1, upright, where it records none), read without decoding
    the pixels (Image.getexif would, for a PNG, before the memory limit is checked)."""
    from PIL import Image

    if "exif" not in image.info:
        return 1
    exif = Image.Exif()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's warnings of a damaged block, which is ignored as viewers do
        try:
            exif.load(image.info["exif"])
        except Exception:  # whatever Pillow's TIFF parser raises on a damaged block (SyntaxError, struct.error, ...)
            return 1
    orientation = exif.get(_ORIENTATION, 1)
    return orientation if orientation in range(1, 9) else 1


def _check_opaque(image: "Image.Image", path: Path) -> None:
    """DataError for an image with transparent pixels: converting it would drop its alpha and keep whatever colour
    lies under them (often black, or white), not what a viewer shows."""
    if "A" in image.getbands() and image.getchannel("A").getextrema() != (255, 255):  # its lowest and highest alpha
        raise DataError(f"{path}: has transparent pixels, whose colour nnctl cannot know; flatten the image onto the "
                        "background the training images had (black, under MNIST's white digits) or save it without "
                        "transparency")


def _eight_bit(image: "Image.Image", path: Path) -> "Image.Image":
    """`image` with 8-bit pixels: 16-bit grey scaled from 0–65535 to 0–255 (Pillow's convert would clip it at 255)."""
    from PIL import Image

    if image.mode.startswith("I;16") or (image.mode == "I" and image.format == "PNG"):  # PNG grey tops at 16 bits
        pixels = np.asarray(image, dtype=np.uint32)  # rint(x / 257) in integers: 4 bytes a pixel, not float64's 8
        pixels += 128
        pixels //= 257
        return Image.fromarray(pixels.astype(np.uint8))
    if image.mode in ("I", "F"):
        raise DataError(f"{path}: an image of 32-bit {'integer' if image.mode == 'I' else 'float'} pixels, whose "
                        "range nnctl cannot know; give its pixels in 0–255 as .npy")
    return image


_ORIENTATION = 0x0112
"""The EXIF tag saying how a camera's image is turned (1: upright; 6: to be turned 90° clockwise, ...)."""
_QUARTER_TURNS = (5, 6, 7, 8)
"""The EXIF orientations that turn an image by a quarter, swapping its width and height."""
_TO_GREY = ("1", "L", "P", "LA", "PA", "RGB", "RGBA", "I", "F")
"""Modes Pillow converts to grey in one step; others (CMYK, YCbCr, LAB, HSV) go through RGB."""


def _pixel_bytes(mode: str, channels: int, keyed: bool, turned: bool) -> int:
    """The bytes a pixel of an image in `mode` takes at the peak of reading it as `channels` channels: decoded
    (Pillow keeps every multi-band pixel in 4) and, `turned` upright, decoded again, the 16-bit scaling or a step
    through RGB, converted; a `keyed` image (one colour transparent) is looked at as RGBA and its alpha first."""
    decoded = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    if mode.startswith("I;16") or mode == "I":
        converting = decoded + 4  # its pixels copied into an array, then as uint32
    else:
        converting = (4 if channels == 1 and mode not in _TO_GREY else 0) + (1 if channels == 1 else 4)
    return decoded * (1 + turned) + max(converting, 4 + 1 if keyed else 0)


def _image_layout(shape: tuple[int, ...], path: Path) -> tuple[int, int, int, bool]:
    """Channels, height, width and whether channels come first, for samples of `shape`: (H, W), (C, H, W), (H, W, C)."""
    if len(shape) == 2:
        return 1, shape[0], shape[1], False
    if len(shape) == 3 and shape[0] in (1, 3):
        return shape[0], shape[1], shape[2], True
    if len(shape) == 3 and shape[2] in (1, 3):
        return shape[2], shape[0], shape[1], False
    raise DataError(f"{path}: this model was trained on samples of shape {list(shape)}, which are not images "
                    "(H×W, or C×H×W / H×W×C with 1 or 3 channels); give its inputs as .npy, .npz or .csv")


def _pick(arrays: dict[str, np.ndarray], path: Path, keys: tuple[str, ...]) -> np.ndarray:
    """The inputs of an .npz: its only array, else the first of `keys` it holds."""
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    for key in keys:
        if key in arrays:
            return arrays[key]
    raise DataError(f"{path}: holds the arrays {', '.join(arrays) or 'none'}; expected one array, or one named "
                    f"{', '.join(keys[:-1])} or {keys[-1]}")
