"""FGSM and PGD robustness on the bundled digits, standard vs adversarially trained MLP.

Pixels are the grey levels scaled to [0, 1] (``load_digits(binarize=False)``), the natural
scale for perturbations of eps 0.1 and 0.2. For each seed two identical MLPs
(64-256-256-10, ReLU) are trained with Adam for the same number of epochs: one on
cross-entropy, one on Goodfellow et al.'s adversarial objective (alpha 0.5, eps
``--train-eps``). Both are attacked on the test split, using the true labels, with FGSM (eps 0.1
and 0.2) and PGD (eps 0.2, 20 steps of size 2.5 eps / 20, random start).

The anchor is the measured reference quoted in issue 5 (clean / FGSM 0.1 / FGSM 0.2 / PGD 0.2
accuracy: standard 97.1 / 35 / 0.2 / 0.2 %, adversarial 98.0 / 86 / 54 / 31 %); the table
prints it next to this run's means and the ratio of the two, plus the adversarial / standard
ratio measured in this run.

    python benchmarks/adversarial_digits.py --quick
    python benchmarks/adversarial_digits.py --seeds 5 --out results.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from pyrogen.adversarial import accuracy, fgsm, fit_classifier, pgd
from pyrogen.data import load_digits
from pyrogen.io import atomic_write_bytes

# Issue 5's measured reference, in percent.
REFERENCE = {
    "standard": {"clean": 97.1, "fgsm_0.1": 35.0, "fgsm_0.2": 0.2, "pgd_0.2": 0.2},
    "adversarial": {"clean": 98.0, "fgsm_0.1": 86.0, "fgsm_0.2": 54.0, "pgd_0.2": 31.0},
}
COLUMNS = ("clean", "fgsm_0.1", "fgsm_0.2", "pgd_0.2")


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> dict[str, float]:
    return {
        "clean": 100 * accuracy(model, x, y),
        "fgsm_0.1": 100 * accuracy(model, fgsm(model, x, y, eps=0.1), y),
        "fgsm_0.2": 100 * accuracy(model, fgsm(model, x, y, eps=0.2), y),
        "pgd_0.2": 100 * accuracy(model, pgd(model, x, y, eps=0.2, steps=20, seed=seed), y),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python benchmarks/adversarial_digits.py --quick",
    )
    parser.add_argument("--seeds", type=int, default=5, help="number of training seeds")
    parser.add_argument("--epochs", type=int, default=50, help="training epochs per model")
    parser.add_argument("--train-eps", type=float, default=0.2, help="eps of adversarial training")
    parser.add_argument("--quick", action="store_true", help="1 seed, 15 epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results" / "adversarial_digits.json",
        help="JSON output path",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 1, 15
    torch.set_num_threads(args.threads)
    train, test, train_labels, test_labels = load_digits(binarize=False, return_labels=True)

    runs: dict[str, list[dict[str, float]]] = {"standard": [], "adversarial": []}
    for seed in range(args.seeds):
        for kind, train_eps in (("standard", None), ("adversarial", args.train_eps)):
            model = _mlp(seed)
            tic = time.perf_counter()
            fit_classifier(
                model, train, train_labels, epochs=args.epochs, adversarial_eps=train_eps, seed=seed
            )
            train_time = time.perf_counter() - tic
            row = _evaluate(model, test, test_labels, seed)
            row["train_time_s"] = train_time
            runs[kind].append(row)
            print(
                f"seed {seed} {kind:11s} "
                + " ".join(f"{c}={row[c]:5.1f}" for c in COLUMNS)
                + f" train {train_time:.1f}s"
            )

    summary: dict[str, dict[str, float]] = {}
    for kind, rows in runs.items():
        summary[kind] = {}
        for column in (*COLUMNS, "train_time_s"):
            values = [r[column] for r in rows]
            summary[kind][column] = statistics.fmean(values)
            summary[kind][column + "_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0

    print(f"\nmean test accuracy (%) over {args.seeds} seed(s), {args.epochs} epochs")
    header = (
        f"{'model':12s} {'metric':9s} {'measured':>9s} {'sd':>5s} {'reference':>9s} {'ratio':>6s}"
    )
    print(header)
    print("-" * len(header))
    for kind in runs:
        for column in COLUMNS:
            mean, sd = summary[kind][column], summary[kind][column + "_sd"]
            ref = REFERENCE[kind][column]
            print(f"{kind:12s} {column:9s} {mean:9.1f} {sd:5.1f} {ref:9.1f} {mean / ref:6.2f}")
    print("\nadversarial / standard accuracy in this run")
    ratios = {}
    for column in COLUMNS:
        standard = summary["standard"][column]
        ratios[column] = summary["adversarial"][column] / standard if standard > 0 else None
        shown = f"{ratios[column]:.2f}" if ratios[column] is not None else "inf (standard = 0)"
        print(f"  {column:9s} {shown}")
    for kind in runs:
        print(f"mean training time {kind}: {summary[kind]['train_time_s']:.1f} s")

    result = {
        "benchmark": "adversarial_digits",
        "config": vars(args) | {"out": str(args.out)},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "reference_percent": REFERENCE,
        "runs": runs,
        "summary": summary,
        "adversarial_over_standard": ratios,
    }
    atomic_write_bytes(args.out, json.dumps(result, indent=2).encode())
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
