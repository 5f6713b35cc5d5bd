r"""Sample-quality metrics: the Fréchet distance, feature maps to compute it in, mode coverage.

The Fréchet (2-Wasserstein) distance between :math:`\mathcal N(\mu_1, \Sigma_1)` and
:math:`\mathcal N(\mu_2, \Sigma_2)` is

.. math:: d^2 = \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{tr}\Sigma_1
          + \operatorname{tr}\Sigma_2 - 2 \operatorname{tr}\big(\Sigma_1^{1/2} \Sigma_2
          \Sigma_1^{1/2}\big)^{1/2}

(Dowson and Landau, 1982). :func:`frechet_distance` fits Gaussians to features of two sample
sets and returns :math:`d^2`, as the FID does with Inception features (Heusel et al., 2017).
Here the features come from small classifiers trained in seconds on the CPU, so the metric
needs no download: :func:`digits_features` for the bundled 8x8 digits (64 pixels),
:func:`mnist_features` for 28x28 MNIST (784 pixels, trained on the caller's labelled
images); :func:`frechet_features` picks one by width. The same classifiers give
:func:`class_coverage`, the share of generated samples in each predicted class.

The matrix square root is taken on the *symmetric* positive semi-definite matrix
:math:`\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2}`, whose trace root equals that of
:math:`(\Sigma_1 \Sigma_2)^{1/2}` (the two are similar), with ``torch.linalg.eigh`` and
negative rounding eigenvalues clipped to zero. This stays real and finite for singular
covariances (fewer samples than features), where ``scipy.linalg.sqrtm`` of the non-symmetric
product can return complex values.

References:
    D. C. Dowson and B. V. Landau, "The Fréchet distance between multivariate normal
    distributions", J. Multivariate Anal. 12 (1982). M. Heusel et al., "GANs trained by a
    two time-scale update rule converge to a local Nash equilibrium", NeurIPS 2017.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from pyrogen._validation import check_finite, check_positive_int, check_probability, check_tensor
from pyrogen.io import load_state, save_module
from pyrogen.seeding import check_seed, forked_global_rng

__all__ = [
    "frechet_distance",
    "gaussian_frechet_distance",
    "DigitsFeatures",
    "digits_features",
    "default_cache_dir",
    "MnistFeatures",
    "mnist_features",
    "frechet_features",
    "ClassCoverage",
    "class_coverage",
]

# Bump when the architecture or the training recipe changes, so that stale cache files are
# retrained instead of loaded.
_FEATURES_VERSION = 1
_KIND = "DigitsFeatures"
_IN_PROCESS: dict[tuple[int, str], DigitsFeatures] = {}


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix (rounding negatives clipped to 0)."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def gaussian_frechet_distance(
    mean1: torch.Tensor, cov1: torch.Tensor, mean2: torch.Tensor, cov2: torch.Tensor
) -> float:
    r"""Squared Fréchet distance between two Gaussians, in float64 (see the module docstring).

    Args:
        mean1, mean2: means ``(k,)``. cov1, cov2: symmetric PSD covariances ``(k, k)``.
    """
    for name, tensor, ndim in (
        ("mean1", mean1, 1),
        ("cov1", cov1, 2),
        ("mean2", mean2, 1),
        ("cov2", cov2, 2),
    ):
        check_tensor(tensor, name, ndim=ndim)
        check_finite(tensor, name)
    k = mean1.shape[0]
    for name, tensor, shape in (
        ("mean2", mean2, (k,)),
        ("cov1", cov1, (k, k)),
        ("cov2", cov2, (k, k)),
    ):
        if tensor.shape != shape:
            raise ValueError(f"{name} must have shape {shape} to match mean1, got {tensor.shape}")
    mean1, mean2 = mean1.double(), mean2.double()
    cov1, cov2 = cov1.double(), cov2.double()
    root1 = _sqrt_psd((cov1 + cov1.T) / 2)
    middle = root1 @ cov2 @ root1
    cross = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    distance = (mean1 - mean2).square().sum() + cov1.trace() + cov2.trace() - 2 * cross
    # The exact value is >= 0; rounding can leave about -1e-15 for identical inputs.
    return max(float(distance), 0.0)


def _feature_moments(
    samples: torch.Tensor, name: str, features: Callable[[torch.Tensor], torch.Tensor] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    check_tensor(samples, name)
    check_finite(samples, name)
    if samples.shape[0] < 2:
        raise ValueError(
            f"{name} needs at least 2 samples for a covariance, got {samples.shape[0]}"
        )
    with torch.no_grad():
        mapped = samples if features is None else features(samples)
    if not isinstance(mapped, torch.Tensor) or mapped.dim() != 2:
        raise ValueError(
            f"features({name}) must return a tensor of shape (n, k), got "
            f"{tuple(mapped.shape) if isinstance(mapped, torch.Tensor) else type(mapped)}"
        )
    mapped = mapped.double()
    check_finite(mapped, f"features({name})")
    return mapped.mean(0), torch.cov(mapped.T, correction=1).reshape(mapped.shape[1], -1)


def frechet_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    features: Callable[[torch.Tensor], torch.Tensor] | None,
) -> float:
    r"""Squared Fréchet distance between Gaussians fitted to ``features(x)`` and ``features(y)``.

    Means and unbiased covariances of the two feature sets go into
    :func:`gaussian_frechet_distance`. Like the FID, the estimate is biased upwards by
    :math:`O(k / n)` for ``k`` features and ``n`` samples: compare values computed with the
    same sample sizes.

    Args:
        x: samples ``(n1, ...)``; y: samples ``(n2, ...)``; each needs at least 2 rows.
        features: a map from a batch to ``(n, k)`` features, e.g. :func:`digits_features`
            ``()``; None uses the samples themselves (which must then be ``(n, k)``).

    Returns:
        :math:`d^2 \ge 0` as a Python float.

    Example:
        >>> from pyrogen.data import load_digits
        >>> train, test = load_digits(binarize=False)
        >>> frechet_distance(train, test, digits_features()) < 5.0
        True
    """
    if features is not None and not callable(features):
        raise TypeError(f"features must be callable or None, got {type(features).__name__}")
    mean1, cov1 = _feature_moments(x, "x", features)
    mean2, cov2 = _feature_moments(y, "y", features)
    if mean1.shape != mean2.shape:
        raise ValueError(
            f"features of x and y differ in width: {mean1.shape[0]} and {mean2.shape[0]}"
        )
    return gaussian_frechet_distance(mean1, cov1, mean2, cov2)


class DigitsFeatures(nn.Module):
    """The digits feature map: the penultimate layer of a small MLP classifier.

    ``64 -> 128 -> ReLU -> 64 -> ReLU`` gives the features (``forward``, shape ``(n, 64)``);
    a linear head gives the 10 class logits (``logits``). Inputs are 8x8 digits flattened
    to ``(n, 64)`` with pixels in [0, 1], grey or binary.
    """

    #: Width of the feature vector.
    num_features = 64

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)
        #: Grey-level test-split accuracy measured when the classifier was trained.
        self.test_accuracy = float("nan")

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", ndim=2, last_dim=64)
        return x.to(self.head.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(n, 64)`` of digits ``x`` ``(n, 64)``."""
        return self.body(self._check(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(n, 10)``."""
        return self.head(self.body(self._check(x)))


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pyrogen``, else ``~/.cache/pyrogen`` (created on first write)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pyrogen"


def _config(seed: int) -> dict[str, int]:
    return {"version": _FEATURES_VERSION, "seed": seed}


def _train_features(seed: int) -> DigitsFeatures:
    """Train the classifier on the grey AND the binarized train split (both kinds of sample
    the suite's models produce), with a fixed seed, on the CPU (a few seconds)."""
    from pyrogen.adversarial import accuracy, fit_classifier
    from pyrogen.data import load_digits

    grey, grey_test, labels, test_labels = load_digits(binarize=False, return_labels=True)
    binary = (grey > 0.5).to(grey.dtype)
    x = torch.cat([grey, binary])
    y = torch.cat([labels, labels])
    # The weights are initialised from the global RNG: seed a fork of it, so that training
    # here never shifts the caller's random stream.
    with forked_global_rng(seed):
        net = DigitsFeatures()
        fit_classifier(
            _Logits(net), x, y, epochs=30, lr=3e-3, weight_decay=1e-4, batch_size=128, seed=seed
        )
    net.test_accuracy = accuracy(_Logits(net), grey_test, test_labels)
    return net


class _Logits(nn.Module):
    """Adapter exposing a feature map's ``logits`` as ``forward`` for the classifier trainer."""

    def __init__(self, net: DigitsFeatures | MnistFeatures) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.logits(x)


def _load_cached(path: Path, seed: int) -> DigitsFeatures | None:
    try:
        config, state = load_state(path, _KIND)
        net = DigitsFeatures()
        if {k: config.get(k) for k in ("version", "seed")} != _config(seed):
            return None
        net.load_state_dict(state)
        net.test_accuracy = float(config.get("test_accuracy", float("nan")))
        return net
    except (ValueError, RuntimeError) as err:
        warnings.warn(
            f"ignoring unreadable feature cache {str(path)!r} ({err}); retraining", stacklevel=3
        )
        return None


def digits_features(
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    device: torch.device | str | None = None,
) -> DigitsFeatures:
    """The digits feature map for :func:`frechet_distance`, trained once and cached.

    The classifier (:class:`DigitsFeatures`) is trained with ``seed`` on the train split of
    :func:`pyrogen.data.load_digits` (``seed=0`` split), grey and binarized images together,
    and reaches about 97% grey test accuracy. It is kept in this process, so later calls are
    free; with ``cache_dir`` (e.g. :func:`default_cache_dir`) it is also written there as
    safetensors through an atomic rename and loaded from there next time (never unpickled).
    A cache file from another version or seed, or an unreadable one, is retrained and
    replaced.

    The returned module is frozen (no parameter requires grad), in eval mode, and shared by
    every caller asking for the same ``seed`` and ``device``: do not train it.

    Args:
        seed: seed of the weight initialisation and mini-batch order.
        cache_dir: directory of the on-disk cache, or None for the in-process cache only.
        device: where the module lives (trained on the CPU, then moved).
    """
    checked = check_seed(seed)
    if checked is None:
        raise TypeError("seed must be an int, got None (the features are cached per seed)")
    seed = checked
    device = torch.device("cpu" if device is None else device)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"digits_features_v{_FEATURES_VERSION}_seed{seed}.safetensors"
    net = _IN_PROCESS.get((seed, "cpu"))
    loaded = None
    if path is not None and path.is_file():
        loaded = _load_cached(path, seed)
        net = net if net is not None else loaded
    if net is None:
        net = _train_features(seed)
    if path is not None and loaded is None:
        save_module(net, path, _KIND, {**_config(seed), "test_accuracy": net.test_accuracy})
    net.requires_grad_(False).eval()
    _IN_PROCESS[(seed, "cpu")] = net
    if device == torch.device("cpu"):
        return net
    key = (seed, str(device))
    if key not in _IN_PROCESS:
        moved = DigitsFeatures().to(device)
        moved.load_state_dict(net.state_dict())
        moved.test_accuracy = net.test_accuracy
        _IN_PROCESS[key] = moved.requires_grad_(False).eval()
    return _IN_PROCESS[key]


# ---------------------------------------------------------------------- 28x28 MNIST
class MnistFeatures(nn.Module):
    """The MNIST feature map: the penultimate layer of a small MLP classifier.

    ``784 -> 256 -> ReLU -> 64 -> ReLU`` gives the features (``forward``, shape ``(n, 64)``);
    a linear head gives the class logits (``logits``, ``(n, num_classes)``). Inputs are 28x28
    images flattened row-major to ``(n, 784)`` with pixels in [0, 1], grey or binary. Train
    one with :func:`mnist_features`.

    64 features, not 256: the Fréchet distance fits a ``k x k`` covariance, and its upward
    bias grows like ``k / n``; with 1,000 test images 64 keeps it small.
    """

    #: Width of the feature vector.
    num_features = 64
    #: Pixels of one input image (28 x 28).
    in_dim = 784

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.num_classes = check_positive_int(num_classes, "num_classes", minimum=2)
        self.body = nn.Sequential(
            nn.Linear(self.in_dim, 256), nn.ReLU(), nn.Linear(256, self.num_features), nn.ReLU()
        )
        self.head = nn.Linear(self.num_features, self.num_classes)
        #: Accuracy on ``held_out`` measured when the classifier was trained (NaN if none).
        self.test_accuracy = float("nan")

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", ndim=2, last_dim=self.in_dim)
        return x.to(self.head.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(n, 64)`` of images ``x`` ``(n, 784)``."""
        return self.body(self._check(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(n, num_classes)``."""
        return self.head(self.body(self._check(x)))


def _check_labelled(images: object, labels: object, name: str, width: int) -> torch.Tensor:
    images = check_tensor(images, name, ndim=2, last_dim=width)
    check_finite(images, name)
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
        raise TypeError(
            f"labels of {name} must be an int64 tensor, got "
            f"{labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__}"
        )
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"labels of {name} must have shape ({images.shape[0]},) to match {name}, got "
            f"{tuple(labels.shape)}"
        )
    if bool((images < 0).any() | (images > 1).any()):
        raise ValueError(f"{name} must hold pixels in [0, 1]")
    return images


def mnist_features(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    held_out: tuple[torch.Tensor, torch.Tensor] | None = None,
    num_classes: int = 10,
    epochs: int = 15,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> MnistFeatures:
    """Train the 28x28 feature map (:class:`MnistFeatures`) on labelled images, in seconds.

    Adam (lr 1e-3, weight decay 1e-4, batches of 128) on cross-entropy for ``epochs`` passes
    over ``images``; grey images are joined by their binarised copies (pixel > 1/2), so that
    the features know both kinds of sample the suite's models produce (binary images are used
    once). On the 4,000 training images of :func:`pyrogen.data.load_mnist5k` this takes about
    5 s on one CPU thread and reaches about 93% accuracy on its 1,000 test images. Nothing is
    downloaded and nothing is cached: keep the returned module.

    Args:
        images: training images ``(n, 784)``, pixels in [0, 1].
        labels: their classes ``(n,)``, int64 in ``[0, num_classes)``.
        held_out: optional ``(images, labels)`` whose accuracy is stored as ``test_accuracy``.
        num_classes: width of the classifier's head.
        epochs: passes over the data.
        seed: seeds the weight initialisation (a fork of the global RNG, which is left
            untouched) and the mini-batch order.
        device: where to train and keep the module; default the device of ``images``.

    Returns:
        The trained :class:`MnistFeatures`, frozen (no parameter requires grad), in eval mode.

    Example:
        >>> from pyrogen.data import load_mnist5k  # doctest: +SKIP
        >>> train, test, y, y_test = load_mnist5k(return_labels=True)  # doctest: +SKIP
        >>> features = mnist_features(train, y, held_out=(test, y_test))  # doctest: +SKIP
        >>> frechet_distance(train, test, features) < 5.0  # doctest: +SKIP
        True
    """
    from pyrogen.adversarial import accuracy, fit_classifier

    _check_labelled(images, labels, "images", MnistFeatures.in_dim)
    num_classes = check_positive_int(num_classes, "num_classes", minimum=2)
    if bool((labels < 0).any() | (labels >= num_classes).any()):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}"
        )
    if held_out is not None:
        if not isinstance(held_out, (tuple, list)) or len(held_out) != 2:
            raise TypeError("held_out must be a pair (images, labels) or None")
        _check_labelled(held_out[0], held_out[1], "held_out[0]", MnistFeatures.in_dim)
    check_positive_int(epochs, "epochs")
    checked = check_seed(seed)
    if checked is None:
        raise TypeError("seed must be an int, got None (the feature map must be reproducible)")
    seed = checked
    device = images.device if device is None else torch.device(device)
    x, y = images.to(device, torch.float32), labels.to(device)
    binary = (x > 0.5).to(x.dtype)
    if not torch.equal(binary, x):
        x, y = torch.cat([x, binary]), torch.cat([y, y])
    with forked_global_rng(seed):  # CPU weights, so that a seed means the same net anywhere
        net = MnistFeatures(num_classes)
    net = net.to(device)
    fit_classifier(
        _Logits(net), x, y, epochs=epochs, lr=1e-3, weight_decay=1e-4, batch_size=128, seed=seed
    )
    if held_out is not None:
        test = held_out[0].to(device, torch.float32)
        net.test_accuracy = accuracy(_Logits(net), test, held_out[1].to(device))
    return net.requires_grad_(False).eval()


def frechet_features(
    width: int,
    images: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> DigitsFeatures | MnistFeatures:
    """The built-in feature map for images of ``width`` pixels.

    * 64 (8x8 digits): :func:`digits_features` ``(seed, device=device)``, trained on the
      bundled digits; ``images`` and ``labels`` are not used.
    * 784 (28x28 MNIST): :func:`mnist_features` ``(images, labels, seed=seed)``, trained on
      the caller's labelled training images (e.g. ``load_mnist5k(return_labels=True)``).

    For other widths pass your own ``features`` callable to :func:`frechet_distance`.

    Raises:
        ValueError: ``width`` is neither 64 nor 784, or 784 without ``images`` and ``labels``.
    """
    check_positive_int(width, "width")
    if width == 64:
        return digits_features(seed, device=device)
    if width == MnistFeatures.in_dim:
        if images is None or labels is None:
            raise ValueError(
                "width 784 needs images and labels: the 28x28 feature map is a classifier "
                "trained on your labelled training images (e.g. "
                "pyrogen.data.load_mnist5k(return_labels=True))"
            )
        return mnist_features(images, labels, seed=seed, device=device)
    raise ValueError(
        f"width must be 64 (8x8 digits) or 784 (28x28 MNIST) for a built-in feature map, got "
        f"{width}; pass your own features callable to frechet_distance"
    )


# ---------------------------------------------------------------------- mode coverage
class ClassCoverage(NamedTuple):
    r"""Mode coverage of generated samples under a classifier (see :func:`class_coverage`).

    Attributes:
        counts: ``(C,)`` int64, samples predicted in each class.
        shares: ``(C,)`` float64, ``counts / n``.
        kl_to_uniform: :math:`\mathrm{KL}(\hat q \Vert u) = \sum_c \hat q_c \log(C \hat q_c)`,
            0 for a uniform spread, :math:`\log C` when every sample is in one class.
        max_share: the largest share, :math:`1/C` at best.
        num_covered: classes holding at least ``min_share`` of the samples (and one sample).
    """

    counts: torch.Tensor
    shares: torch.Tensor
    kl_to_uniform: float
    max_share: float
    num_covered: int


def class_coverage(
    classifier: Callable[[torch.Tensor], torch.Tensor],
    samples: torch.Tensor,
    min_share: float = 0.01,
    batch_size: int = 4096,
) -> ClassCoverage:
    r"""How evenly ``samples`` spread over the classes a classifier predicts for them.

    Each sample gets its arg-max class :math:`\hat y_i`; with :math:`\hat q_c` the share of
    class :math:`c` among the ``n`` samples and :math:`C` classes,

    .. math:: \mathrm{KL}(\hat q \Vert u) = \sum_c \hat q_c \log (C \hat q_c)
              = \log C - H(\hat q),

    the KL divergence to the uniform class distribution (the mode KL of PacGAN, Lin et al.
    2018, and of :func:`pyrogen.data.toy.mode_metrics`), with :math:`0 \log 0 = 0`. It
    measures coverage of balanced data such as MNIST (about 10% per digit); a mode-collapsed
    generator gives a large ``max_share``, missing classes, and a KL towards :math:`\log C`.
    The classifier's own errors put a floor under it: score real test images the same way.

    Args:
        classifier: the logits map. An object with a ``logits`` method
            (:class:`MnistFeatures`, :class:`DigitsFeatures`) is used through it; any other
            callable must map ``(m, D)`` to logits ``(m, C)``, ``C >= 2``.
        samples: ``(n, D)`` samples, e.g. 10,000 generator draws.
        min_share: share a class needs to count as covered (PacGAN's 1%).
        batch_size: samples classified at a time.

    Returns:
        :class:`ClassCoverage`.

    Example:
        >>> one_hot = torch.eye(4).repeat(25, 1)  # 100 samples, 25 in each class
        >>> coverage = class_coverage(lambda x: x, one_hot)
        >>> coverage.kl_to_uniform, coverage.max_share, coverage.num_covered
        (0.0, 0.25, 4)
    """
    logits_fn = getattr(classifier, "logits", classifier)
    if not callable(logits_fn):
        raise TypeError(
            f"classifier must be callable or have a logits method, got {type(classifier).__name__}"
        )
    check_tensor(samples, "samples", ndim=2)
    check_finite(samples, "samples")
    min_share = check_probability(min_share, "min_share")
    batch_size = check_positive_int(batch_size, "batch_size")
    predicted = []
    num_classes = 0  # set by the first batch: samples is not empty
    with torch.no_grad():
        for start in range(0, samples.shape[0], batch_size):
            batch = samples[start : start + batch_size]
            logits = logits_fn(batch)
            if (
                not isinstance(logits, torch.Tensor)
                or logits.dim() != 2
                or logits.shape[0] != batch.shape[0]
                or logits.shape[1] < 2
            ):
                got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
                raise ValueError(
                    f"classifier must return logits of shape ({batch.shape[0]}, C) with C >= 2 "
                    f"for samples of shape {tuple(batch.shape)}, got {got}"
                )
            num_classes = logits.shape[1]
            predicted.append(logits.argmax(-1).cpu())
    counts = torch.bincount(torch.cat(predicted), minlength=num_classes)
    shares = counts.double() / samples.shape[0]
    kl = float(torch.xlogy(shares, shares * num_classes).sum())
    return ClassCoverage(
        counts=counts,
        shares=shares,
        kl_to_uniform=max(kl, 0.0),  # >= 0 exactly; rounding can leave -1e-16
        max_share=float(shares.max()),
        num_covered=int(((counts > 0) & (shares >= min_share)).sum()),
    )
