"""Two gloo processes on localhost compute what one process computes.

The test process runs every scenario below alone; it also starts this file as a script in two
processes with torchrun's environment variables (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``), where :func:`pyrogen.distributed.init_from_environment` opens a gloo group
and the same scenarios run sharded. Trained parameters must agree to float64 rounding and
sampled draws exactly. All scenarios share one launch (starting Python with torch and Pyro
costs seconds), bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from pyrogen import distributed
from pyrogen.convergence import ConvergenceWarning
from pyrogen.seeding import forked_global_rng

WORLD_SIZE = 2
# Wall-clock bound of the two-process launch (it takes about 15 s on 2 busy cores).
LAUNCH_TIMEOUT_S = 120
DTYPE = torch.float64


def _binary_data(n: int, width: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, width), 0.3, dtype=DTYPE), generator=generator)


def _parameters(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------- scenarios
# Each returns tensors to compare; run alone (no group) and under two ranks.


def scenario_rbm_cd() -> dict[str, torch.Tensor]:
    from pyrogen.rbm import RBM, fit

    with forked_global_rng(1):
        rbm = RBM(12, 5, dtype=DTYPE)
    # 61 examples in batches of 16: the last batch (13) splits unevenly, 7 + 6.
    data = _binary_data(61, 12, 2)
    steps = []

    def stop_at_step_9(step, model, wall_time):
        # Alone this is rank 0 of 1; sharded only the last rank asks to stop, which must stop
        # every rank after the same update.
        steps.append(step)
        return step == 9 and distributed.get_rank() == distributed.get_world_size() - 1

    history = fit(
        rbm,
        data,
        k=2,
        epochs=3,
        batch_size=16,
        seed=3,
        progress=False,
        step_callback=stop_at_step_9,
    )
    assert steps == list(range(1, 10))
    return {
        **_parameters(rbm),
        "history_reconstruction": torch.tensor(history["reconstruction_error"]),
    }


def scenario_rbm_pcd() -> dict[str, torch.Tensor]:
    from pyrogen.rbm import RBM, fit

    with forked_global_rng(4):
        rbm = RBM(10, 4, dtype=DTYPE)
    data = _binary_data(40, 10, 5)
    fit(
        rbm,
        data,
        algorithm="pcd",
        epochs=2,
        batch_size=10,
        num_persistent=7,
        seed=6,
        progress=False,
        monitor=None,
    )
    return _parameters(rbm)


def scenario_vae() -> dict[str, torch.Tensor]:
    from pyrogen.vae import VAE, fit

    with forked_global_rng(7):
        vae = VAE(12, 3, hidden=(8,), dtype=DTYPE)
    data = _binary_data(53, 12, 8)  # last batch of 5: split 3 + 2
    history = fit(vae, data, epochs=2, batch_size=16, seed=9, progress=False)
    return {**_parameters(vae), "history_elbo": torch.tensor(history["elbo"])}


def scenario_vae_trace() -> dict[str, torch.Tensor]:
    """Monte Carlo KL and two vectorised particles: a second plate left of the data's."""
    from pyrogen.vae import VAE, fit

    with forked_global_rng(28):
        vae = VAE(8, 2, hidden=(5,), dtype=DTYPE)
    data = _binary_data(21, 8, 29)
    fit(vae, data, epochs=2, batch_size=7, elbo="trace", num_particles=2, seed=30, progress=False)
    return _parameters(vae)


def scenario_ssvae() -> dict[str, torch.Tensor]:
    from pyrogen.vae import SSVAE, fit_semisupervised

    with forked_global_rng(10):
        ssvae = SSVAE(10, 2, 3, hidden=(6,), dtype=DTYPE)
    x_l = _binary_data(9, 10, 11)
    y_l = torch.arange(9) % 3
    history = fit_semisupervised(
        ssvae,
        (x_l, y_l),
        _binary_data(30, 10, 12),
        epochs=2,
        batch_size=8,
        seed=13,
        progress=False,
    )
    return {**_parameters(ssvae), "history_loss": torch.tensor(history["loss"])}


def scenario_gan() -> dict[str, torch.Tensor]:
    from pyrogen.gan import GAN, ImplicitModel, fit, mlp_discriminator, mlp_generator

    with forked_global_rng(14):
        gan = GAN(
            ImplicitModel(mlp_generator(2, 3, hidden=(8,), dtype=DTYPE), 2),
            mlp_discriminator(3, hidden=(8,), dtype=DTYPE),
        )
    data = torch.randn(40, 3, dtype=DTYPE, generator=torch.Generator().manual_seed(15))
    history = fit(
        gan,
        data,
        steps=6,
        d_steps=2,
        batch_size=10,
        seed=16,
        progress=False,
        r1_penalty=0.5,
        record_every=3,
    )
    return {
        **_parameters(gan),
        "history_value": torch.tensor(history["value"]),
        "history_d_real": torch.tensor(history["d_real"]),
    }


def _small_rbm():
    from pyrogen.rbm import RBM

    with forked_global_rng(17):
        rbm = RBM(8, 3, dtype=DTYPE)
        rbm.weight.data.normal_()
    return rbm


def scenario_sample() -> dict[str, torch.Tensor]:
    """Rank 0's gathered draws; alone, the two blocks run one after the other."""
    from pyrogen.convergence import check_convergence
    from pyrogen.infer import BlockGibbs, sample

    kernel, seed, num_chains = BlockGibbs(_small_rbm()), 18, 5
    options = dict(num_samples=30, warmup_steps=5, progress=False)
    if distributed.get_world_size() > 1:
        idata = sample(kernel, num_chains, seed=seed, **options)
        if idata is None:
            assert distributed.get_rank() != 0
            return {}
        v = torch.as_tensor(idata.posterior["v"].values)
        rate = torch.as_tensor(idata.sample_stats["acceptance_rate"].values)
        r_hat = torch.tensor(idata.posterior.attrs["max_r_hat"])
        assert idata.posterior.attrs["num_processes"] == WORLD_SIZE
        return {"v": v, "acceptance_rate": rate, "max_r_hat": r_hat}
    blocks = [distributed.shard(num_chains, r, WORLD_SIZE) for r in range(WORLD_SIZE)]
    runs = [
        sample(kernel, b.size, seed=distributed.shard_seed(seed, b.rank), **options) for b in blocks
    ]
    v = torch.cat([torch.as_tensor(run.posterior["v"].values) for run in runs])
    rate = torch.cat([torch.as_tensor(run.sample_stats["acceptance_rate"].values) for run in runs])
    r_hat = torch.tensor(check_convergence({"v": v}, "reference", warn=False).max_r_hat)
    return {"v": v, "acceptance_rate": rate, "max_r_hat": r_hat}


def _inpaint_case(method: str) -> dict[str, torch.Tensor]:
    from pyrogen.vae import VAE, inpaint

    with forked_global_rng(19):
        vae = VAE(10, 2, hidden=(6,), dtype=DTYPE)
    x = _binary_data(3, 10, 20)
    mask = torch.arange(10).expand(3, 10) < 6
    steps = (20, 5) if method == "mwg" else (6, 4)
    result = inpaint(
        vae,
        x,
        mask,
        method=method,
        num_samples=steps[0],
        warmup_steps=steps[1],
        num_chains=3,
        seed=21,
    )
    if result is None:
        assert distributed.get_rank() != 0
        return {}
    return {
        "samples": result.samples,
        "imputed": result.imputed,
        "accept_rate": torch.tensor(result.idata.posterior.attrs["accept_rate"]),
        "max_r_hat": torch.tensor(result.reliability.max_r_hat),
    }


def scenario_inpaint_mwg() -> dict[str, torch.Tensor]:
    return _inpaint_case("mwg")


def scenario_inpaint_nuts() -> dict[str, torch.Tensor]:
    return _inpaint_case("nuts")


SCENARIOS = {
    "vae_trace": scenario_vae_trace,
    "sample": scenario_sample,
    "inpaint_mwg": scenario_inpaint_mwg,
    "inpaint_nuts": scenario_inpaint_nuts,
    "ssvae": scenario_ssvae,
    "gan": scenario_gan,
    "rbm_cd": scenario_rbm_cd,
    "rbm_pcd": scenario_rbm_pcd,
    "vae": scenario_vae,
}


def scenario_timing_rbm() -> dict[str, torch.Tensor]:
    """Big enough to time: a 784 x 256 RBM, CD-1, 5 epochs of 2,000 examples."""
    from pyrogen.rbm import RBM, fit

    with forked_global_rng(22):
        rbm = RBM(784, 256, dtype=DTYPE)
    data = _binary_data(2000, 784, 23)
    fit(rbm, data, epochs=5, batch_size=100, seed=24, progress=False, monitor=None)
    return _parameters(rbm)


def scenario_timing_vae() -> dict[str, torch.Tensor]:
    """Big enough to time: a 784-256-16 VAE, 3 epochs of 2,000 examples."""
    from pyrogen.vae import VAE, fit

    with forked_global_rng(25):
        vae = VAE(784, 16, hidden=(256,), dtype=DTYPE)
    data = _binary_data(2000, 784, 26)
    fit(vae, data, epochs=3, batch_size=128, seed=27, progress=False)
    return _parameters(vae)


SCENARIOS["timing_rbm"] = scenario_timing_rbm
SCENARIOS["timing_vae"] = scenario_timing_vae

# Scenarios whose result exists on rank 0 only.
GATHERED = {"sample", "inpaint_mwg", "inpaint_nuts"}

# ---------------------------------------------------------------- the launch


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(out_dir: str) -> None:
    """Entry point of one rank: run every scenario, save rank-tagged results."""
    torch.set_num_threads(1)
    assert distributed.init_from_environment()
    rank = distributed.get_rank()
    results, timings = {}, {}
    for name, scenario in SCENARIOS.items():
        tic = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            results[name] = scenario()
        timings[name] = time.perf_counter() - tic
    torch.save({"results": results, "timings": timings}, Path(out_dir) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def launch(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    port = _free_port()
    procs = []
    for rank in range(WORLD_SIZE):
        env = dict(
            os.environ,
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(WORLD_SIZE),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            OMP_NUM_THREADS="1",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    logs = []
    try:
        for proc in procs:
            remaining = max(1.0, deadline - time.monotonic())
            output, _ = proc.communicate(timeout=remaining)
            logs.append(output.decode(errors="replace"))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for rank, (proc, log) in enumerate(zip(procs, logs, strict=True)):
        assert proc.returncode == 0, f"rank {rank} failed:\n{log[-4000:]}"
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]


def _single(name: str) -> tuple[dict[str, torch.Tensor], float]:
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = SCENARIOS[name]()
    return result, time.perf_counter() - tic


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_two_processes_match_one(launch, name):
    single, seconds = _single(name)
    for rank, payload in enumerate(launch):
        sharded = payload["results"][name]
        if name in GATHERED and rank > 0:  # the samplers return their result on rank 0 only
            assert sharded == {}
            continue
        assert sharded.keys() == single.keys()
        for key, value in single.items():
            torch.testing.assert_close(
                sharded[key], value, rtol=1e-9, atol=1e-10, msg=f"{name}/{key} on rank {rank}"
            )
    print(f"{name}: 1 process {seconds:.2f} s, 2 processes {launch[0]['timings'][name]:.2f} s")


def test_helpers_without_a_group():
    assert not distributed.resolve_distributed(None)
    assert not distributed.resolve_distributed(False)
    with pytest.raises(ValueError, match="distributed=True"):
        distributed.resolve_distributed(True)
    with pytest.raises(TypeError, match="distributed"):
        distributed.resolve_distributed("yes")
    assert (distributed.get_rank(), distributed.get_world_size()) == (0, 1)
    assert distributed.default_backend("cpu") == "gloo"
    assert distributed.gather_to_main(3) == [3]
    # Shards cover the items once, in order, sizes differing by at most one.
    for total in (0, 1, 5, 12):
        parts = [distributed.shard(total, r, 3) for r in range(3)]
        assert [p.start for p in parts[1:]] == [p.stop for p in parts[:-1]]
        assert parts[0].start == 0 and parts[-1].stop == total
        assert max(p.size for p in parts) - min(p.size for p in parts) <= 1
    assert distributed.shard_seed(7, 0) == 7
    assert len({distributed.shard_seed(7, i) for i in range(100)}) == 100


def test_torchrun_cli_matches_one_process(tmp_path):
    """``torchrun --nproc_per_node 2 -m pyrogen.cli train rbm`` trains the one-process RBM."""
    from safetensors.torch import load_file

    from pyrogen.cli import main

    options = ["train", "rbm", "--hidden", "4", "--epochs", "2", "--no-progress"]
    assert main(["--threads", "1", *options, "--out", str(tmp_path / "one")]) == 0
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
        "--nproc_per_node", str(WORLD_SIZE), "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), "-m", "pyrogen.cli", "--threads", "1",
        *options, "--out", str(tmp_path / "two"),
    ]  # fmt: skip
    done = subprocess.run(
        command,
        capture_output=True,
        timeout=LAUNCH_TIMEOUT_S,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["num_processes"] == WORLD_SIZE
    one = load_file(tmp_path / "one" / "rbm.safetensors")
    two = load_file(tmp_path / "two" / "rbm.safetensors")
    for key, value in one.items():  # float32 parameters: sums in another order differ by ulps
        torch.testing.assert_close(two[key], value, rtol=1e-4, atol=1e-5)


if __name__ == "__main__":
    _worker(sys.argv[1])
