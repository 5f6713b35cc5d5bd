import gzip
import struct

import numpy as np
import pytest
import torch

from pyrogen.data import load_digits, load_idx, load_npz


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
