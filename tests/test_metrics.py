"""Fréchet distance: closed forms to machine precision, and the digits feature map."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

import pyrogen.metrics as metrics
from pyrogen.data import load_digits
from pyrogen.io import load_state
from pyrogen.metrics import (
    DigitsFeatures,
    digits_features,
    frechet_distance,
    gaussian_frechet_distance,
)


def _random_cov(k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(k, k, generator=g, dtype=torch.float64)
    return a @ a.T / k + 0.1 * torch.eye(k, dtype=torch.float64)


def _samples_with_moments(mean: torch.Tensor, cov: torch.Tensor, n: int, seed: int):
    """n points whose sample mean and unbiased covariance are exactly ``mean`` and ``cov``."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, mean.shape[0], generator=g, dtype=torch.float64)
    z = z - z.mean(0)
    # Whiten to identity sample covariance, then colour with the Cholesky factor of cov.
    white = z @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(z.T))).T
    return white @ torch.linalg.cholesky(cov).T + mean


def _scipy_frechet(m1, c1, m2, c2) -> float:
    root = scipy.linalg.sqrtm(c1.numpy() @ c2.numpy())
    return float(
        np.sum((m1 - m2).numpy() ** 2) + np.trace(c1.numpy() + c2.numpy() - 2 * np.real(root))
    )


def test_gaussian_frechet_distance_closed_form_for_diagonal_covariances():
    # Commuting covariances: d^2 = |m1 - m2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
    a = torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64)
    b = torch.tensor([9.0, 1.0, 0.25], dtype=torch.float64)
    m1 = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    m2 = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    expected = 5.0 + (1 - 3) ** 2 + (2 - 1) ** 2 + 0.0
    actual = gaussian_frechet_distance(m1, torch.diag(a), m2, torch.diag(b))
    assert actual == pytest.approx(expected, rel=1e-14)


def test_frechet_distance_matches_the_closed_form_with_identity_features():
    k = 6
    m1, m2 = torch.zeros(k, dtype=torch.float64), torch.linspace(-1, 1, k, dtype=torch.float64)
    c1, c2 = _random_cov(k, 0), _random_cov(k, 1)
    x = _samples_with_moments(m1, c1, 500, seed=2)
    y = _samples_with_moments(m2, c2, 300, seed=3)
    expected = _scipy_frechet(m1, c1, m2, c2)  # an independent route: sqrtm of the product
    assert frechet_distance(x, y, None) == pytest.approx(expected, rel=1e-10)
    assert gaussian_frechet_distance(m1, c1, m2, c2) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_is_zero_on_identical_sets_and_symmetric():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g, dtype=torch.float64)
    y = torch.randn(150, 5, generator=g, dtype=torch.float64) * 2 + 1
    assert frechet_distance(x, x, None) < 1e-10
    assert frechet_distance(x, y, None) == pytest.approx(frechet_distance(y, x, None), rel=1e-10)
    # Fewer samples than features: singular covariances still give a finite value >= 0.
    few = frechet_distance(x[:3], y[:4], None)
    assert np.isfinite(few) and few >= 0


def test_frechet_distance_applies_the_feature_map():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 3, generator=g, dtype=torch.float64)
    assert frechet_distance(x, x + 1, lambda t: t[:, :1] * 0) < 1e-12  # features blind to it
    assert frechet_distance(x, x + 1, lambda t: t) == pytest.approx(3.0, rel=1e-12)


def test_frechet_distance_bad_input():
    x = torch.zeros(10, 3)
    with pytest.raises(ValueError, match="width"):
        frechet_distance(x, torch.zeros(10, 4), None)
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(x, x[:1], None)
    with pytest.raises(TypeError, match="callable"):
        frechet_distance(x, x, "identity")
    with pytest.raises(ValueError, match=r"\(n, k\)"):
        frechet_distance(x, x, lambda t: t.sum(-1))
    with pytest.raises(ValueError, match="shape"):
        gaussian_frechet_distance(torch.zeros(2), torch.eye(3), torch.zeros(2), torch.eye(2))


@pytest.fixture(scope="module")
def features() -> DigitsFeatures:
    return digits_features()


def test_digits_features_classify_and_separate_digits_from_noise(features):
    grey, grey_test = load_digits(binarize=False)
    binary, binary_test = load_digits(binarize=True)
    assert features.test_accuracy > 0.93
    assert not any(p.requires_grad for p in features.parameters()) and not features.training
    assert features(grey_test).shape == (360, DigitsFeatures.num_features)
    g = torch.Generator().manual_seed(0)
    held_out = frechet_distance(grey, grey_test, features)
    noise = frechet_distance(grey_test, torch.rand(360, 64, generator=g), features)
    binary_held_out = frechet_distance(binary, binary_test, features)
    binary_noise = frechet_distance(
        binary_test, (torch.rand(360, 64, generator=g) < 0.3).float(), features
    )
    assert held_out < 0.1 * noise
    assert binary_held_out < 0.1 * binary_noise
    assert digits_features() is features  # the in-process cache


def test_digits_features_disk_cache_round_trip(features, tmp_path, monkeypatch):
    first = digits_features(cache_dir=tmp_path)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    config, _ = load_state(files[0], "DigitsFeatures")
    assert config["seed"] == 0

    def no_training(seed):
        raise AssertionError("should have loaded the cache")

    monkeypatch.setattr(metrics, "_IN_PROCESS", {})
    monkeypatch.setattr(metrics, "_train_features", no_training)
    loaded = digits_features(cache_dir=tmp_path)
    assert loaded is not first
    for (name, a), (_, b) in zip(
        first.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert loaded.test_accuracy == pytest.approx(first.test_accuracy)


def test_digits_features_replaces_a_corrupt_cache(features, tmp_path, monkeypatch):
    path = tmp_path / f"digits_features_v{metrics._FEATURES_VERSION}_seed0.safetensors"
    path.write_bytes(b"not a safetensors file")
    monkeypatch.setattr(metrics, "_IN_PROCESS", {})
    monkeypatch.setattr(metrics, "_train_features", lambda seed: features)
    with pytest.warns(UserWarning, match="unreadable"):
        digits_features(cache_dir=tmp_path)
    config, _ = load_state(path, "DigitsFeatures")
    assert config["version"] == metrics._FEATURES_VERSION


def test_digits_features_input_checks(features):
    with pytest.raises(ValueError, match="last dimension 64"):
        features(torch.zeros(3, 63))
    with pytest.raises(TypeError, match="seed"):
        digits_features(seed=1.5)
