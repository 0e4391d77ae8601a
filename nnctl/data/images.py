"""Image files in a folder of class folders, as Keras's image_dataset_from_directory and torchvision's ImageFolder
read them: each subfolder is a class, named by the folder, and holds that class's images."""

import math
from pathlib import Path
from typing import Annotated, Literal

import numpy as np

from nnctl.data.inputs import IMAGE_SUFFIXES, files_under, image_size, read_image
from nnctl.data.source import DATASETS, Arrays, FileSource
from nnctl.errors import DataError
from nnctl.limits import too_big
from nnctl.schema import AtLeast, AtMost

Side = Annotated[int, AtLeast(1), AtMost(65535)]
"""A side of an image in pixels (PNG's and JPEG's largest is 65,535, 2**31 - 1 and 65,500)."""


@DATASETS.register("images")
class Images(FileSource):
    """One subfolder of images per class in `path` (and `test_path`), classes sorted by folder name; every image
    read as grey or RGB (C, H, W), all of one size or resized to `size` [height, width]."""

    def __init__(self, path: str, test_path: str | None = None, size: tuple[Side, Side] | None = None,
                 color: Literal["grey", "rgb"] = "rgb", scale: float = 1 / 255, flatten: bool = False,
                 validation_from: Literal["end", "random"] = "random", **kwargs):
        if kwargs.get("classes") is not None:
            raise ValueError("classes picks classes by label, but the classes of images are its class folders: "
                             "point data.path at a folder holding only the ones to learn")
        # random: the held-out images a draw with the seed, as torchvision's random_split makes them
        super().__init__(scale=scale, flatten=flatten, validation_from=validation_from, **kwargs)
        self.file, self.test_file, self.size, self.color = path, test_path, size, color

    def read(self) -> Arrays:
        folder = self.path(self.file)
        classes = _class_folders(folder)
        self.class_names = [name for name, _ in classes]
        self.num_classes = len(classes)
        labels = {name: i for i, name in enumerate(self.class_names)}
        shape = self._shape(classes)
        rng = np.random.default_rng([self.run_seed, 4])  # a stream of its own: the other draws stay as they were
        other_size = None if self.size else (f"but {classes[0][1][0]} is {shape[2]}×{shape[1]}: set data.size: "
                                             "[height, width] to resize every image to one size")
        x, y = self._read(_spread(classes, labels, rng)[: self.subset], shape, other_size, folder)
        if not self.test_file:
            return x, y, None, None
        test_folder = self.path(self.test_file)
        test = _class_folders(test_folder)
        unknown = [name for name, _ in test if name not in labels]
        if unknown:
            raise DataError(f"{test_folder}: holds the class folder {unknown[0]!r}, which {folder} has not: no "
                            "training sample has that class, so no output of the model could learn it")
        x_test, y_test = self._read(_spread(test, labels, rng)[: self.test_subset], shape, other_size,
                                    test_folder)
        return x, y, x_test, y_test

    def peek(self) -> tuple[int, ...]:
        """From the class folders' names and the first image's header; no image is decoded."""
        return self._shape(_class_folders(self.path(self.file)))

    def _shape(self, classes: list[tuple[str, list[Path]]]) -> tuple[int, int, int]:
        """One sample's (channels, height, width): data.size, else the first training image's."""
        height, width = self.size or image_size(classes[0][1][0])
        return 1 if self.color == "grey" else 3, height, width

    def _read(self, files: list[tuple[int, Path]], shape: tuple[int, int, int], other_size: str | None,
              folder: Path) -> tuple[np.ndarray, np.ndarray]:
        """The images `files` names (uint8, N×C×H×W), in its order, and their labels; `other_size` is the advice
        for an image not of `shape`, None where each is resized to it."""
        if problem := too_big(len(files) * math.prod(shape), f"{folder}: {len(files):,} images of "
                              f"{'×'.join(map(str, shape))}"):
            raise DataError(problem)
        x = np.empty((len(files), *shape), np.uint8)
        for i, (_, path) in enumerate(files):
            x[i] = read_image(path, shape, other_size)
        return x, np.array([label for label, _ in files], np.int64)


def _spread(classes: list[tuple[str, list[Path]]], labels: dict[str, int],
           rng: np.random.Generator) -> list[tuple[int, Path]]:
    """Every file with its label (by class folder name), in an order whose first N hold each class in proportion to
    its size: each class's files shuffled, then all merged by their place in their class (rank + 1/2) / size."""
    keyed = []
    for name, paths in classes:
        keyed += [((rank + 0.5) / len(paths), labels[name], paths[i])
                  for rank, i in enumerate(rng.permutation(len(paths)))]
    keyed.sort(key=lambda item: item[:2])
    return [(label, path) for _, label, path in keyed]


def _class_folders(folder: Path) -> list[tuple[str, list[Path]]]:
    """The class folders in `folder`, sorted by name, each with its image files (in it and its subfolders); a
    DataError where there are none, or a class folder holds no image."""
    try:
        found = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir())
    except FileNotFoundError:
        raise DataError(f"{folder}: no such folder") from None
    except NotADirectoryError:
        raise DataError(f"{folder}: a file, but an images dataset reads a folder holding one subfolder of images "
                        "per class") from None
    except OSError as exc:
        raise DataError(f"{folder}: cannot read the folder: {exc.strerror or exc}") from None
    if not found:
        raise DataError(f"{folder}: no class folders in it; an images dataset reads one subfolder of images per "
                        "class (such as cats/ and dogs/), named by its class")
    classes = [(path.name, files_under(path, IMAGE_SUFFIXES)) for path in found]
    for path, (_, images) in zip(found, classes, strict=True):
        if not images:
            raise DataError(f"{path}: a class folder without images ({', '.join(IMAGE_SUFFIXES)}) in it or its "
                            "subfolders; remove it, or add that class's images")
    return classes
