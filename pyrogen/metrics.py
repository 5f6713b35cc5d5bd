r"""Sample-quality metrics: the Fréchet distance and a digits feature map to compute it in.

The Fréchet (2-Wasserstein) distance between :math:`\mathcal N(\mu_1, \Sigma_1)` and
:math:`\mathcal N(\mu_2, \Sigma_2)` is

.. math:: d^2 = \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{tr}\Sigma_1
          + \operatorname{tr}\Sigma_2 - 2 \operatorname{tr}\big(\Sigma_1^{1/2} \Sigma_2
          \Sigma_1^{1/2}\big)^{1/2}

(Dowson and Landau, 1982). :func:`frechet_distance` fits Gaussians to features of two sample
sets and returns :math:`d^2`, as the FID does with Inception features (Heusel et al., 2017).
Here the features come from :func:`digits_features`, a small classifier trained on the
bundled digits, so the metric needs no download.

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

import torch
from torch import nn

from pyrogen._validation import check_finite, check_tensor
from pyrogen.io import load_state, save_module
from pyrogen.seeding import check_seed, forked_global_rng

__all__ = [
    "frechet_distance",
    "gaussian_frechet_distance",
    "DigitsFeatures",
    "digits_features",
    "default_cache_dir",
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
    """Adapter exposing ``DigitsFeatures.logits`` as ``forward`` for the classifier trainer."""

    def __init__(self, net: DigitsFeatures) -> None:
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
    if seed is None:
        raise TypeError("seed must be an int, got None (the features are cached per seed)")
    seed = check_seed(seed)
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
