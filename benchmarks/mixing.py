"""Benchmark: do the chains mix? Replica exchange against the samplers it replaces.

Not a test. Every case compares samplers on the same model, data and seeds in one run and
reports R-hat spreads, ESS, wall time and the machine's load:

* ``inpaint64`` / ``inpaint784``: VAE hole filling, bottom half hidden, of the 8x8 digits
  (360 test digits, z_dim 8) and of MNIST-5k test images (100, z_dim 16). Samplers:
  ``pyrogen.vae.inpaint`` with ``method`` NUTS, MWG, pseudo-Gibbs and replica exchange (the
  default). Per image the worst split R-hat over its latent coordinates; the share of all
  (image, coordinate) R-hats <= 1.01; nats per hidden pixel (``hidden_log_likelihood``).
  NUTS, the slow reference, runs on the first ``nuts_images`` images only (it took 940 s for
  20 MNIST images before); the nats comparison with it is on those images.
  Target (replica exchange): max R-hat <= 1.05 on every image, <= 1.01 on >= 99% of the
  coordinates, nats within 0.01 of NUTS at <= 1/20 of its time per image.
* ``superres``: GAN super-resolution 4x4 -> 8x8 of 32 test digits, MALA vs replica-exchange
  MALA (``benchmarks/gan_superres.py``, called with its defaults). Target: R-hat of G(z)
  <= 1.05 on every image; PSNR against bilinear.
* ``rbm784``: a 784 x 500 RBM trained by PCD on MNIST-5k, sampled for ``sweeps`` sweeps by 64
  block-Gibbs chains and by 64 replica-exchange block-Gibbs chains (``ReplicaExchange``,
  adaptive ladder) on two tempering paths, the whole Boltzmann density and the base-rate
  path (``BlockGibbs(rbm, base_bias=base_rate_bias(rbm, train))``), all from the same data
  starts. Per chain: digit classes visited (a
  28x28 classifier, ``pyrogen.metrics.mnist_features``, on every 10th draw), class changes,
  and for replica exchange round trips.
* ``ptpcd``: the same RBM trained by PCD and by PT-PCD (``algorithm="pt"``), same epochs,
  held-out log-likelihood bracketed by AIS / reverse AIS (``log_likelihood_bounds``).

    .venv/bin/python benchmarks/mixing.py                 # everything (about an hour)
    .venv/bin/python benchmarks/mixing.py --quick         # smoke sizes
    .venv/bin/python benchmarks/mixing.py --cases inpaint64,rbm784
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, format_table, write_json

from pyrogen import ConvergenceWarning, diagnostics
from pyrogen.data import load_digits, load_mnist5k
from pyrogen.infer import BlockGibbs, ReplicaExchange, sample
from pyrogen.metrics import mnist_features
from pyrogen.rbm import RBM, base_rate_bias, log_likelihood_bounds
from pyrogen.rbm import fit as rbm_fit
from pyrogen.vae import VAE, hidden_log_likelihood, inpaint
from pyrogen.vae import fit as vae_fit

CASES = ("inpaint64", "inpaint784", "superres", "rbm784", "ptpcd")
SIZES: dict[str, dict[str, dict[str, int]]] = {
    "full": {
        "inpaint64": dict(images=360, nuts_images=20, z_dim=8, epochs=100, chains=4),
        "inpaint784": dict(images=100, nuts_images=5, z_dim=16, epochs=30, chains=4),
        "rbm784": dict(hidden=500, epochs=20, chains=64, sweeps=1000, replicas=16),
        "ptpcd": dict(hidden=500, epochs=10, temperatures=10, bracket_chains=100),
    },
    "quick": {
        "inpaint64": dict(images=8, nuts_images=2, z_dim=8, epochs=20, chains=4),
        "inpaint784": dict(images=4, nuts_images=1, z_dim=16, epochs=3, chains=4),
        "rbm784": dict(hidden=50, epochs=2, chains=8, sweeps=60, replicas=4),
        "ptpcd": dict(hidden=50, epochs=1, temperatures=4, bracket_chains=20),
    },
}  # fmt: skip
INPAINT_STEPS = {"nuts": (300, 300), "mwg": (1500, 700), "pseudo_gibbs": (1500, 700)}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ----------------------------------------------------------------------------- inpainting
def per_image_r_hat(samples: torch.Tensor) -> np.ndarray:
    """Split R-hat of every (image, coordinate), ``(n, z_dim)``, from ``(C, S, n, z_dim)``."""
    c, s, n, d = samples.shape
    flat = samples.reshape(c, s, n * d).double().numpy()
    return diagnostics.array_statistic(flat, "r_hat").reshape(n, d)


def case_inpaint(name: str, size: dict[str, int], seed: int) -> dict[str, Any]:
    pixels = 64 if name == "inpaint64" else 784
    train, test = load_digits() if pixels == 64 else load_mnist5k()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        vae = VAE(pixels, size["z_dim"])
    tic = time.perf_counter()
    vae_fit(vae, train, epochs=size["epochs"], seed=seed, progress=False)
    print(f"  VAE {pixels} trained in {time.perf_counter() - tic:.1f} s", flush=True)
    x = test[: size["images"]]
    mask = (torch.arange(pixels) < pixels // 2).expand_as(x)
    k = size["nuts_images"]
    rows, nuts_nats = [], None
    for method in ("nuts", "mwg", "pseudo_gibbs", "replica_exchange"):
        images = x[:k] if method == "nuts" else x
        samples, warmup = INPAINT_STEPS.get(method, (None, None))
        print(f"  {method} on {images.shape[0]} images", flush=True)
        tic = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # reported in the table
            result = inpaint(
                vae, images, mask[: images.shape[0]], method=method, num_samples=samples,
                warmup_steps=warmup, num_chains=size["chains"], seed=seed,
            )  # fmt: skip
        wall = time.perf_counter() - tic
        r_hat = per_image_r_hat(result.samples)
        worst = np.nanmax(r_hat, axis=1)
        nats_all = float(hidden_log_likelihood(result.imputed, images, mask[: images.shape[0]]))
        nats_k = float(hidden_log_likelihood(result.imputed[:k], x[:k], mask[:k]))
        if method == "nuts":
            nuts_nats, nuts_per_image = nats_k, wall / images.shape[0]
        row = {
            "case": name,
            "method": method,
            "images": images.shape[0],
            "max_r_hat": float(np.nanmax(worst)),
            "median_image_r_hat": float(np.nanmedian(worst)),
            "images_r_hat_le_1.05": int((worst <= 1.05).sum()),
            "share_coords_le_1.01": float((r_hat <= 1.01).mean()),
            "min_ess_bulk": float(result.reliability.min_ess_bulk),
            "accept": float(result.idata.posterior.attrs["accept_rate"]),
            "nats_per_hidden_pixel": nats_all,
            "nats_first_k": nats_k,
            "seconds": wall,
            "seconds_per_image": wall / images.shape[0],
        }
        if nuts_nats is not None and method != "nuts":
            row["nats_minus_nuts"] = nats_k - nuts_nats
            row["time_ratio_to_nuts"] = row["seconds_per_image"] / nuts_per_image
        rows.append(row)
    re = rows[-1]
    target = (
        f"target {name}: replica exchange max R-hat {re['max_r_hat']:.3f} (<= 1.05: "
        f"{re['images_r_hat_le_1.05']}/{re['images']} images), "
        f"{re['share_coords_le_1.01']:.1%} of coordinates <= 1.01 (>= 99%), nats - NUTS "
        f"{re.get('nats_minus_nuts', math.nan):+.4f} (|.| <= 0.01), time per image "
        f"{re.get('time_ratio_to_nuts', math.nan):.3f} of NUTS (<= 0.05)"
    )
    return {"rows": rows, "targets": [target], "load": load()}


# ----------------------------------------------------------------------- super-resolution
def case_superres(quick: bool, seed: int) -> dict[str, Any]:
    import gan_superres

    argv = ["--seed", str(seed), "--out", str(RESULTS_DIR / "mixing_superres.json")]
    payload = gan_superres.main(argv + (["--quick"] if quick else []))
    rows = [dict(case="superres", **s) for s in payload["summary"].values()]
    targets = [
        f"target superres: {r['method']}: R-hat of G(z) <= 1.05 on "
        f"{r['images_r_hat_le_1.05']}/{r['images']} images (max {r['max_r_hat_image']:.3f}); "
        f"PSNR {r['psnr_posterior_db']:.2f} vs bilinear {r['psnr_bilinear_db']:.2f} dB"
        for r in rows
    ]
    return {"rows": rows, "targets": targets, "load": load()}


# ------------------------------------------------------------------------------ RBM 784
def trained_rbm(size: dict[str, int], algorithm: str, seed: int, **kw: Any) -> tuple[RBM, float]:
    train, _ = load_mnist5k()
    rbm = RBM(784, size["hidden"], seed=seed)
    tic = time.perf_counter()
    rbm_fit(rbm, train, algorithm=algorithm, epochs=size["epochs"], seed=seed, progress=False,
            ais_every=None, monitor=None, **kw)  # fmt: skip
    rbm.requires_grad_(False)
    return rbm, time.perf_counter() - tic


def classes_of(classifier: Any, draws: torch.Tensor) -> torch.Tensor:
    """Predicted digit of draws ``(C, N, 784)``: ``(C, N)``."""
    with torch.no_grad():
        logits = classifier.logits(draws.reshape(-1, 784).float())
    return logits.argmax(-1).reshape(draws.shape[:2])


def case_rbm784(size: dict[str, int], seed: int) -> dict[str, Any]:
    train, test, train_labels, _ = load_mnist5k(return_labels=True)
    classifier = mnist_features(train, train_labels, seed=seed)
    rbm, train_s = trained_rbm(size, "pcd", seed)
    print(f"  784 x {size['hidden']} PCD RBM trained in {train_s:.1f} s", flush=True)
    chains, sweeps = size["chains"], size["sweeps"]
    start = {"v": test[:chains]}  # the same data starts for both samplers
    rows = []
    base = base_rate_bias(rbm, train)
    for name, kernel in (
        ("block Gibbs", BlockGibbs(rbm)),
        ("replica-exchange block Gibbs", ReplicaExchange(BlockGibbs(rbm), betas=size["replicas"])),
        (
            "replica-exchange block Gibbs, base-rate path",
            ReplicaExchange(BlockGibbs(rbm, base_bias=base), betas=size["replicas"]),
        ),
    ):
        print(f"  {name}", flush=True)
        warmup = sweeps // 5
        idata = sample(kernel, chains, sweeps, warmup, seed=seed, progress=False, check=False,
                       initial_params=start)  # fmt: skip
        draws = torch.as_tensor(idata.posterior["v"].values[:, ::10])
        labels = classes_of(classifier, draws)  # (C, N / 10)
        visited = torch.tensor([len(set(row.tolist())) for row in labels], dtype=torch.float64)
        changes = (labels[:, 1:] != labels[:, :-1]).double().sum(1)
        row = {
            "case": "rbm784",
            "sampler": name,
            "chains": chains,
            "sweeps": sweeps,
            "classes_visited_mean": float(visited.mean()),
            "classes_visited_min": int(visited.min()),
            "class_changes_per_chain": float(changes.mean()),
            "seconds": float(diagnostics.wall_time_of(idata)),
        }
        if isinstance(kernel, ReplicaExchange):
            summary = kernel.swap_summary()
            row["round_trips_per_chain"] = float(summary.round_trips.double().mean())
            row["swap_rate_min"] = float(summary.swap_accept_rate.min())
            row["betas"] = [round(float(b), 4) for b in summary.betas]
        rows.append(row)
    plain, re, re_base = rows
    target = (
        f"rbm784: classes visited per chain {plain['classes_visited_mean']:.2f} (block Gibbs) vs "
        f"{re['classes_visited_mean']:.2f} (replica exchange; round trips per chain "
        f"{re['round_trips_per_chain']:.1f}) vs {re_base['classes_visited_mean']:.2f} (base-rate "
        f"path; round trips per chain {re_base['round_trips_per_chain']:.1f})"
    )
    return {"rows": rows, "targets": [target], "load": load()}


def case_ptpcd(size: dict[str, int], seed: int) -> dict[str, Any]:
    train, test = load_mnist5k()
    rows = []
    for algorithm in ("pcd", "pt"):
        kw = {"num_temperatures": size["temperatures"]} if algorithm == "pt" else {}
        rbm, train_s = trained_rbm(size, algorithm, seed, **kw)
        print(f"  {algorithm} trained in {train_s:.1f} s; bracketing", flush=True)
        tic = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            bounds = log_likelihood_bounds(rbm, test, train=train, seed=seed,
                                           num_chains=size["bracket_chains"])  # fmt: skip
        rows.append(
            {
                "case": "ptpcd",
                "algorithm": algorithm,
                "epochs": size["epochs"],
                "train_seconds": train_s,
                "lower": bounds.lower,
                "upper": bounds.upper,
                "width": bounds.upper - bounds.lower,
                "flagged": bool(caught),
                "bracket_seconds": time.perf_counter() - tic,
            }
        )
    pcd, pt = rows
    target = (
        f"ptpcd: held-out LL bracket PCD [{pcd['lower']:.2f}, {pcd['upper']:.2f}]"
        f"{' (flagged)' if pcd['flagged'] else ''} vs PT-PCD [{pt['lower']:.2f}, "
        f"{pt['upper']:.2f}]{' (flagged)' if pt['flagged'] else ''} nats"
    )
    return {"rows": rows, "targets": [target], "load": load()}


# ---------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS_DIR / "mixing.json"))
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {list(CASES)}")
    torch.set_num_threads(1)
    sizes = SIZES["quick" if args.quick else "full"]
    results: dict[str, Any] = {}
    for case in cases:
        print(f"{case}: (load {load()})", flush=True)
        tic = time.perf_counter()
        if case.startswith("inpaint"):
            results[case] = case_inpaint(case, sizes[case], args.seed)
        elif case == "superres":
            results[case] = case_superres(args.quick, args.seed)
        elif case == "rbm784":
            results[case] = case_rbm784(sizes[case], args.seed)
        else:
            results[case] = case_ptpcd(sizes[case], args.seed)
        results[case]["seconds"] = time.perf_counter() - tic
        rows = results[case]["rows"]
        columns = list(dict.fromkeys(k for r in rows for k in r if k != "betas"))
        print(format_table(rows, columns))
        for line in results[case]["targets"]:
            print(line)
        print(f"  {case} done in {results[case]['seconds']:.1f} s (load {load()})", flush=True)
    payload = {"benchmark": "mixing", "quick": args.quick, "sizes": sizes, "results": results}
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
