"""Synthetic mixtures and mode metrics against constructed samples with known answers."""

import math

import pytest
import torch

from pyrogen.data.toy import grid, mode_metrics, ring


def test_ring_and_grid_centres():
    _, c = ring(10, modes=8, radius=2.0, seed=0)
    assert c.shape == (8, 2)
    assert torch.allclose(c.norm(dim=1), torch.full((8,), 2.0))
    assert torch.allclose(c[0], torch.tensor([2.0, 0.0]))
    assert torch.allclose(c[2], torch.tensor([0.0, 2.0]), atol=1e-6)
    _, c = grid(10, side=5, spacing=2.0, seed=0)
    assert c.shape == (25, 2)
    assert set(c[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    assert len({tuple(row) for row in c.tolist()}) == 25


def test_mixtures_are_seeded_and_typed():
    a, _ = ring(100, seed=3)
    b, _ = ring(100, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, ring(100, seed=4)[0])
    assert ring(5, seed=0, dtype=torch.float64)[0].dtype == torch.float64
    assert grid(5, seed=0)[0].dtype == torch.float32


def test_mixture_statistics_match_within_monte_carlo_error():
    n, std = 40000, 0.05
    x, c = grid(n, std=std, seed=1)
    nearest = torch.cdist(x.double(), c.double()).argmin(1)
    residual = x.double() - c.double()[nearest]
    # Per-coordinate residual variance is std^2; the estimator's sd is std^2 sqrt(2 / n).
    var = residual.pow(2).mean(0)
    assert bool(((var - std**2).abs() < 4 * std**2 * math.sqrt(2 / n)).all())
    # Component counts: multinomial, Pearson chi-square with 24 dof; 60 lies above its 0.9999
    # quantile (58.6), so a correct sampler fails this with probability < 1e-4.
    counts = torch.bincount(nearest, minlength=25).double()
    chi2 = float(((counts - n / 25) ** 2 / (n / 25)).sum())
    assert chi2 < 60.0


def test_mode_metrics_on_constructed_samples():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    std = 0.1
    # 60 at centre 0, 30 at centre 1, 10 at centre 2, none at 3: all exactly on a centre.
    good = torch.cat([centers[0].expand(60, 2), centers[1].expand(30, 2), centers[2].expand(10, 2)])
    # 2.9 std away counts as high quality, 3.1 std away does not.
    near = centers[3] + torch.tensor([[0.29, 0.0]])
    far = centers[3] + torch.tensor([[0.0, 0.31]])
    m = mode_metrics(torch.cat([good, far.expand(100, 2)]), centers, std)
    assert m["counts"] == [60, 30, 10, 0]
    assert m["modes"] == 3
    assert m["high_quality"] == 0.5
    q = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    assert abs(m["kl"] - float((q * (4 * q).log()).sum())) < 1e-12
    m = mode_metrics(torch.cat([good, near.expand(100, 2)]), centers, std)
    assert m["modes"] == 4 and m["high_quality"] == 1.0


def test_mode_metrics_uniform_and_one_percent_rule():
    centers = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    m = mode_metrics(centers.repeat(50, 1), centers, std=0.1)
    assert m["modes"] == 2 and m["kl"] == 0.0
    # A mode holding exactly 1% of the high-quality samples is covered, below 1% it is not.
    at = torch.cat([centers[0].expand(198, 2), centers[1].expand(2, 2)])
    assert mode_metrics(at, centers, std=0.1)["modes"] == 2
    below = torch.cat([centers[0].expand(199, 2), centers[1].expand(1, 2)])
    result = mode_metrics(below, centers, std=0.1)
    assert result["modes"] == 1 and result["counts"] == [199, 1]
    # Everything collapsed on one of K modes: KL = log K.
    assert abs(mode_metrics(centers[:1].expand(10, 2), centers, 0.1)["kl"] - math.log(2)) < 1e-12


def test_mode_metrics_without_high_quality_samples():
    centers = torch.zeros(3, 2)
    m = mode_metrics(torch.full((5, 2), 7.0), centers, std=0.1)
    assert m["modes"] == 0 and m["high_quality"] == 0.0 and math.isnan(m["kl"])


def test_data_itself_scores_as_expected():
    x, c = ring(20000, seed=0)
    m = mode_metrics(x, c, std=0.02)
    # In 2-D, P(|noise| <= 3 std) = 1 - exp(-9/2); binomial sd sqrt(p(1-p)/n).
    p = 1 - math.exp(-4.5)
    assert m["modes"] == 8
    assert abs(m["high_quality"] - p) < 4 * math.sqrt(p * (1 - p) / 20000)


def test_dataset_validation():
    with pytest.raises(ValueError, match="n"):
        ring(0)
    with pytest.raises(ValueError, match="std"):
        grid(10, std=-1.0)
    with pytest.raises(TypeError, match="side"):
        grid(10, side=2.5)
    with pytest.raises(ValueError, match="centers"):
        mode_metrics(torch.zeros(4, 2), torch.zeros(3, 3), std=0.1)
    with pytest.raises(ValueError, match="samples"):
        mode_metrics(torch.zeros(4), torch.zeros(3, 2), std=0.1)
    with pytest.raises(ValueError, match="NaN"):
        mode_metrics(torch.full((4, 2), math.nan), torch.zeros(3, 2), std=0.1)
