"""Data: the bundled 8x8 digits and loaders for user-supplied MNIST files.

The default data set is scikit-learn's copy of the UCI optical digits (1,797 real 8x8 images,
16 grey levels), which ships inside the scikit-learn wheel, so nothing is downloaded.
For MNIST, bring the files yourself: :func:`load_idx` reads the original IDX format (plain or
gzip), :func:`load_npz` reads a NumPy archive such as Keras' ``mnist.npz``.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch

from pyrogen._validation import check_probability
from pyrogen.seeding import check_seed, resolve_seed

__all__ = ["load_digits", "load_idx", "load_npz", "DIGITS_SHAPE"]

#: Height and width of one digits image.
DIGITS_SHAPE = (8, 8)

# IDX type codes (LeCun's format description): code -> (numpy dtype, bytes per entry).
_IDX_TYPES = {
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


def _read_maybe_gzip(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"path {str(path)!r} is a corrupt or truncated gzip file") from err
    return raw


def load_idx(path: str | os.PathLike[str], normalize: bool = True) -> torch.Tensor:
    """Read an IDX file (the original MNIST format), optionally gzip-compressed.

    Image files (``uint8``, 3 dimensions) come back as ``float32`` of shape ``(n, rows*cols)``,
    scaled to [0, 1] when ``normalize``; label files (1 dimension) as ``int64`` of shape
    ``(n,)``. Other type codes keep their values and are returned as float32/int64.

    Raises:
        ValueError: the file is missing, not IDX (bad magic number), or shorter than its
            header says (truncated).
    """
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
        return torch.as_tensor(array.astype(np.int64))
    flat = array.reshape(dims[0], -1).astype(np.float32)
    if normalize and type_code == 0x08:
        flat = flat / 255.0
    return torch.as_tensor(flat)


def load_npz(path: str | os.PathLike[str], key: str, normalize: bool = True) -> torch.Tensor:
    """Read array ``key`` from a ``.npz`` archive (e.g. ``mnist.npz`` with ``"x_train"``).

    Arrays of 3 or more dimensions are flattened to ``(n, features)`` as ``float32``
    (``uint8`` scaled to [0, 1] when ``normalize``); 1-D integer arrays are returned as
    ``int64`` labels. Pickled object arrays are refused (``allow_pickle=False``).
    """
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
    if array.ndim == 0:
        raise ValueError(f"array {key!r} in {str(path)!r} is a scalar; expected data")
    if array.ndim == 1 and np.issubdtype(array.dtype, np.integer):
        return torch.as_tensor(array.astype(np.int64))
    if array.dtype == object:
        raise ValueError(f"array {key!r} in {str(path)!r} holds Python objects; refused")
    scaled = array.astype(np.float32)
    if normalize and array.dtype == np.uint8:
        scaled = scaled / 255.0
    return torch.as_tensor(scaled.reshape(array.shape[0], -1))
