"""The pyrogen command line: every command runs, and bad input exits non-zero with one line."""

import json

import pytest

from pyrogen.cli import main


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
