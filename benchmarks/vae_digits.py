"""VAE on the binarized 8x8 digits: speed and likelihood vs Pyro's example, inpainting, M2.

Three parts, each against its anchor in the same run:

1. Training. (a) a VAE written the way Pyro's ``examples/vae/vae.py`` writes it (separate
   Encoder/Decoder modules, softplus hidden layers, ``exp`` scale, sigmoid decoder into
   ``Bernoulli(probs)``, ``Trace_ELBO``, ``pyro.optim.Adam``, a ``DataLoader``, ``svi.step`` per
   batch) and (b) ``pyrogen.vae.fit`` with its defaults, both z_dim 8, hidden 256, batch 128,
   lr 1e-3. Reported: ms per epoch, test ELBO and test IWAE (K=500), the same estimator code
   for both. Timing comes from rounds that alternate the contenders (so that load on a shared
   machine hits both alike); the likelihoods from one full-length run of each. Two extra
   timing rows help read the figures: pyrogen's model under stock ``SVI.step`` and a bare
   PyTorch loop of the same network.
2. Inpainting the test set with the bottom half hidden: hidden-pixel log-likelihood (nats per
   pixel, per-pixel predictive probabilities) and wall time for NUTS, MWG, pseudo-Gibbs and the
   per-pixel training marginals, with the largest split R-hat of z.
3. SSVAE (M2) accuracy on the test set with 20 / 50 / 100 labels vs an MLP of the same
   classifier architecture trained on the labels alone.

Run ``python benchmarks/vae_digits.py --help``. The figures are machine dependent.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Trace_ELBO
from pyro.ops.stats import split_gelman_rubin
from torch import nn

from pyrogen.data import load_digits
from pyrogen.vae import (
    SSVAE,
    VAE,
    fit,
    fit_classifier,
    fit_semisupervised,
    hidden_log_likelihood,
    inpaint,
    marginal_impute,
)
from pyrogen.vae.functional import encode, pixel_log_likelihood
from pyrogen.vae.training import make_adam

Z_DIM, HIDDEN, BATCH, LR = 8, 256, 128, 1e-3


# --------------------------------------------------------------------------- the anchor
class _Encoder(nn.Module):
    """As in Pyro's examples/vae/vae.py: softplus hidden layer, exp for the scale."""

    def __init__(self, x_dim: int, z_dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(x_dim, hidden)
        self.fc21 = nn.Linear(hidden, z_dim)
        self.fc22 = nn.Linear(hidden, z_dim)
        self.softplus = nn.Softplus()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.softplus(self.fc1(x))
        return self.fc21(h), torch.exp(self.fc22(h))


class _Decoder(nn.Module):
    def __init__(self, x_dim: int, z_dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(z_dim, hidden)
        self.fc21 = nn.Linear(hidden, x_dim)
        self.softplus = nn.Softplus()
        self.sigmoid = nn.Sigmoid()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.sigmoid(self.fc21(self.softplus(self.fc1(z))))


class PyroExampleVAE(nn.Module):
    def __init__(self, x_dim: int = 64, z_dim: int = Z_DIM, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.encoder = _Encoder(x_dim, z_dim, hidden)
        self.decoder = _Decoder(x_dim, z_dim, hidden)
        self.z_dim = z_dim

    def model(self, x: torch.Tensor) -> None:
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z_loc = x.new_zeros(torch.Size((x.shape[0], self.z_dim)))
            z_scale = x.new_ones(torch.Size((x.shape[0], self.z_dim)))
            z = pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))
            loc_img = self.decoder(z)
            pyro.sample("obs", dist.Bernoulli(loc_img, validate_args=False).to_event(1), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            z_loc, z_scale = self.encoder(x)
            pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))

    # the two maps the shared estimators below need
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def log_px(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return dist.Bernoulli(self.decoder(z), validate_args=False).log_prob(x).sum(-1)


def train_anchor(train: torch.Tensor, epochs: int, seed: int) -> tuple[PyroExampleVAE, list[float]]:
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    vae = PyroExampleVAE()
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": LR}), loss=Trace_ELBO())
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(train), batch_size=BATCH, shuffle=True
    )
    times = []
    for _ in range(epochs):
        tic = time.perf_counter()
        epoch_loss = 0.0
        for (x,) in loader:
            epoch_loss += svi.step(x)
        times.append(time.perf_counter() - tic)
    pyro.clear_param_store()
    return vae, times


def train_pyrogen(train: torch.Tensor, epochs: int, seed: int) -> tuple[VAE, list[float]]:
    torch.manual_seed(seed)
    vae = VAE(64, Z_DIM, hidden=(HIDDEN,))
    history = fit(vae, train, epochs=epochs, batch_size=BATCH, lr=LR, seed=seed, progress=False)
    return vae, history["epoch_time"]


def train_pyrogen_stock_svi(train: torch.Tensor, epochs: int, seed: int) -> list[float]:
    """pyrogen's model/guide under stock SVI.step + Trace_ELBO + pyro.optim.Adam."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    vae = VAE(64, Z_DIM, hidden=(HIDDEN,))
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": LR}), loss=Trace_ELBO())
    times = []
    for _ in range(epochs):
        tic = time.perf_counter()
        for index in torch.randperm(train.shape[0]).split(BATCH):
            svi.step(train[index])
        times.append(time.perf_counter() - tic)
    pyro.clear_param_store()
    return times


def train_bare_torch(train: torch.Tensor, epochs: int, seed: int) -> list[float]:
    """Hand-written PyTorch loop, same network as pyrogen's VAE, analytic KL, fused Adam."""
    torch.manual_seed(seed)
    vae = VAE(64, Z_DIM, hidden=(HIDDEN,))
    optimizer = make_adam(list(vae.parameters()), LR)
    times = []
    for _ in range(epochs):
        tic = time.perf_counter()
        total = torch.zeros(())
        for index in torch.randperm(train.shape[0]).split(BATCH):
            x = train[index]
            loc, scale = encode(vae, x)
            z = loc + scale * torch.randn_like(loc)
            rec = F.binary_cross_entropy_with_logits(vae.decoder(z), x, reduction="sum")
            kl = 0.5 * (loc**2 + scale**2 - 1 - 2 * torch.log(scale)).sum()
            loss = rec + kl
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        float(total)
        times.append(time.perf_counter() - tic)
    return times


# ------------------------------------------------------- one estimator for both models
@torch.no_grad()
def evaluate_elbo_and_iwae(
    encode: Any, log_px: Any, x: torch.Tensor, num_samples: int, seed: int
) -> tuple[float, float]:
    """Mean test ELBO (analytic KL, 10 draws) and mean IWAE with ``num_samples`` draws."""
    g = torch.Generator().manual_seed(seed)
    loc, scale = encode(x)
    kl = 0.5 * (loc**2 + scale**2 - 1 - 2 * torch.log(scale)).sum(-1)
    eps = torch.randn((10, *loc.shape), generator=g)
    elbo = log_px(x, loc + scale * eps).mean(0) - kl
    log_w = []
    for chunk in range(0, num_samples, 100):
        k = min(100, num_samples - chunk)
        eps = torch.randn((k, *loc.shape), generator=g)
        z = loc + scale * eps
        log_q = (-0.5 * eps**2 - torch.log(scale)).sum(-1)
        log_p = -0.5 * (z**2).sum(-1)  # the (2 pi) terms of p(z) and q(z|x) cancel
        log_w.append(log_px(x, z) + log_p - log_q)
    iwae = torch.logsumexp(torch.cat(log_w), 0) - math.log(num_samples)
    return float(elbo.mean()), float(iwae.mean())


def _pyrogen_maps(vae: VAE) -> tuple[Any, Any]:
    return partial(encode, vae), lambda x, z: pixel_log_likelihood(vae, x, z).sum(-1)


# --------------------------------------------------------------------------- parts
def bench_training(args: argparse.Namespace, train: torch.Tensor, test: torch.Tensor) -> dict:
    contenders = {
        "pyro_example": lambda e, s: train_anchor(train, e, s)[1],
        "pyrogen": lambda e, s: train_pyrogen(train, e, s)[1],
        "pyrogen_model_stock_svi": lambda e, s: train_pyrogen_stock_svi(train, e, s),
        "bare_torch": lambda e, s: train_bare_torch(train, e, s),
    }
    per_epoch: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(args.timing_rounds):
        for name, run in contenders.items():
            per_epoch[name] += run(args.timing_epochs, 100 + r)[1:]  # first epoch = warm-up
    timing = {name: 1e3 * statistics.median(t) for name, t in per_epoch.items()}

    anchor, anchor_times = train_anchor(train, args.epochs, args.seed)
    ours, our_times = train_pyrogen(train, args.epochs, args.seed)
    a_elbo, a_iwae = evaluate_elbo_and_iwae(
        anchor.encode, anchor.log_px, test, args.iwae_samples, 1
    )
    o_elbo, o_iwae = evaluate_elbo_and_iwae(*_pyrogen_maps(ours), test, args.iwae_samples, 1)
    steps = math.ceil(train.shape[0] / BATCH)
    rows = {
        "pyro_example": {
            "ms_per_epoch": timing["pyro_example"],
            "ms_per_epoch_full_run": 1e3 * statistics.median(anchor_times),
            "test_elbo": a_elbo,
            "test_iwae": a_iwae,
        },
        "pyrogen": {
            "ms_per_epoch": timing["pyrogen"],
            "ms_per_epoch_full_run": 1e3 * statistics.median(our_times),
            "test_elbo": o_elbo,
            "test_iwae": o_iwae,
        },
        "pyrogen_model_stock_svi": {"ms_per_epoch": timing["pyrogen_model_stock_svi"]},
        "bare_torch": {"ms_per_epoch": timing["bare_torch"]},
    }
    for row in rows.values():
        row["ms_per_step"] = row["ms_per_epoch"] / steps
        row["time_ratio_vs_pyro_example"] = row["ms_per_epoch"] / timing["pyro_example"]
    ratios = {
        "epoch_time_ratio": timing["pyrogen"] / timing["pyro_example"],
        "iwae_difference_nats": o_iwae - a_iwae,
        "target_epoch_time_ratio_max": 0.5,
        "target_iwae_min": -19.2,
    }
    print(f"\n(1) training, {args.epochs} epochs, test IWAE K={args.iwae_samples}")
    print(
        f"{'contender':<26}{'ms/epoch':>10}{'ms/step':>9}{'x anchor':>10}{'test ELBO':>11}"
        f"{'test IWAE':>11}"
    )
    for name, row in rows.items():
        elbo_s = f"{row['test_elbo']:>11.3f}" if "test_elbo" in row else f"{'':>11}"
        iwae_s = f"{row['test_iwae']:>11.3f}" if "test_iwae" in row else f"{'':>11}"
        print(
            f"{name:<26}{row['ms_per_epoch']:>10.2f}{row['ms_per_step']:>9.3f}"
            f"{row['time_ratio_vs_pyro_example']:>10.3f}{elbo_s}{iwae_s}"
        )
    print(
        f"pyrogen / pyro-example epoch time: {ratios['epoch_time_ratio']:.3f} (target <= 0.5); "
        f"IWAE difference {ratios['iwae_difference_nats']:+.3f} nats (target IWAE >= -19.2)"
    )
    return {"rows": rows, "ratios": ratios, "vae": ours}


def bench_inpainting(
    args: argparse.Namespace, vae: VAE, train: torch.Tensor, test: torch.Tensor
) -> dict:
    x = test[: args.inpaint_images]
    mask = (torch.arange(64) < 32).expand(x.shape[0], 64)  # top half observed
    settings = {
        "nuts": {"num_samples": args.nuts_samples, "warmup_steps": args.nuts_warmup},
        "mwg": {"num_samples": args.mwg_samples, "warmup_steps": args.mwg_warmup},
        "pseudo_gibbs": {"num_samples": args.mwg_samples, "warmup_steps": args.mwg_warmup},
    }
    rows: dict[str, dict] = {}
    tic = time.perf_counter()
    imputed = marginal_impute(train, x, mask)
    rows["pixel_marginals"] = {
        "hidden_ll_per_pixel": float(hidden_log_likelihood(imputed, x, mask)),
        "wall_time_s": time.perf_counter() - tic,
    }
    for method, kw in settings.items():
        tic = time.perf_counter()
        result = inpaint(vae, x, mask, method=method, num_chains=args.chains, seed=0, **kw)
        wall = time.perf_counter() - tic
        # R-hat of every (image, latent coordinate): the maximum over n_images x z_dim values
        # is a strict summary, so the median and the share above 1.05 are kept too.
        r_hat = split_gelman_rubin(result.samples.flatten(2)).flatten()
        rows[method] = {
            "hidden_ll_per_pixel": float(hidden_log_likelihood(result.imputed, x, mask)),
            "wall_time_s": wall,
            "max_rhat_z": float(r_hat.max()),
            "median_rhat_z": float(r_hat.median()),
            "share_rhat_z_above_1.05": float((r_hat > 1.05).float().mean()),
            "accept_rate": result.idata.posterior.attrs["accept_rate"],
            **kw,
            "num_chains": args.chains,
        }
    nuts = rows["nuts"]
    for row in rows.values():
        row["ll_minus_nuts"] = row["hidden_ll_per_pixel"] - nuts["hidden_ll_per_pixel"]
        row["time_ratio_vs_nuts"] = row["wall_time_s"] / nuts["wall_time_s"]
    print(f"\n(2) inpainting {x.shape[0]} test digits, bottom half hidden, {args.chains} chains")
    print(
        f"{'method':<16}{'nats/pixel':>11}{'- NUTS':>9}{'wall s':>9}{'x NUTS':>9}{'max R-hat':>10}"
        f"{'median':>8}{'>1.05':>7}"
    )
    for name, row in rows.items():
        rhat = (
            f"{row['max_rhat_z']:>10.3f}{row['median_rhat_z']:>8.3f}"
            f"{row['share_rhat_z_above_1.05']:>7.1%}"
            if "max_rhat_z" in row
            else f"{'':>25}"
        )
        print(
            f"{name:<16}{row['hidden_ll_per_pixel']:>11.4f}{row['ll_minus_nuts']:>+9.4f}"
            f"{row['wall_time_s']:>9.2f}{row['time_ratio_vs_nuts']:>9.4f}{rhat}"
        )
    print("target: mwg within 0.01 nats/pixel of NUTS in under 1/50 of its time")
    return rows


def bench_ssvae(args: argparse.Namespace) -> dict:
    train, test, y_train, y_test = load_digits(return_labels=True, seed=args.seed)
    order = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(args.seed))
    rows = {}
    print(f"\n(3) SSVAE (M2), {args.ssvae_epochs} epochs, test accuracy on {test.shape[0]} digits")
    print(f"{'labels':>6}{'SSVAE':>9}{'MLP':>9}{'SSVAE-MLP':>11}{'SSVAE s':>9}")
    for n in args.labels:
        lab, unl = order[:n], order[n:]
        mlp = fit_classifier(train[lab], y_train[lab], 10, seed=args.seed)
        with torch.no_grad():
            mlp_acc = float((mlp(test).argmax(-1) == y_test).double().mean())
        torch.manual_seed(args.seed)
        ssvae = SSVAE(64, Z_DIM, 10, hidden=(HIDDEN,))
        tic = time.perf_counter()
        fit_semisupervised(
            ssvae,
            (train[lab], y_train[lab]),
            train[unl],
            epochs=args.ssvae_epochs,
            seed=args.seed,
            progress=False,
        )
        wall = time.perf_counter() - tic
        acc = float((ssvae.predict(test) == y_test).double().mean())
        rows[str(n)] = {"ssvae_accuracy": acc, "mlp_accuracy": mlp_acc, "ssvae_wall_time_s": wall}
        print(f"{n:>6}{acc:>9.3f}{mlp_acc:>9.3f}{acc - mlp_acc:>+11.3f}{wall:>9.1f}")
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run (smoke test)")
    parser.add_argument("--out", default="benchmarks/results/vae_digits.json", help="JSON path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--timing-rounds", type=int, default=3)
    parser.add_argument("--timing-epochs", type=int, default=11)
    parser.add_argument("--iwae-samples", type=int, default=500)
    parser.add_argument("--inpaint-images", type=int, default=360)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--nuts-samples", type=int, default=200)
    parser.add_argument("--nuts-warmup", type=int, default=200)
    parser.add_argument("--mwg-samples", type=int, default=300)
    parser.add_argument("--mwg-warmup", type=int, default=100)
    parser.add_argument("--ssvae-epochs", type=int, default=50)
    parser.add_argument("--labels", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["training", "inpainting", "ssvae"]
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.timing_rounds, args.timing_epochs = 5, 1, 3
        args.iwae_samples, args.inpaint_images = 50, 20
        args.nuts_samples, args.nuts_warmup, args.mwg_samples, args.mwg_warmup = 30, 30, 50, 20
        args.ssvae_epochs = 3
    torch.set_num_threads(args.threads)
    train, test = load_digits(seed=args.seed)
    results: dict[str, Any] = {
        "config": vars(args),
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "pyro": pyro.__version__,
            "threads": torch.get_num_threads(),
        },
    }
    vae = None
    if "training" not in args.skip:
        training = bench_training(args, train, test)
        vae = training.pop("vae")
        results["training"] = training
    if "inpainting" not in args.skip:
        if vae is None:
            vae = train_pyrogen(train, args.epochs, args.seed)[0]
        results["inpainting"] = bench_inpainting(args, vae.eval(), train, test)
    if "ssvae" not in args.skip:
        results["ssvae"] = bench_ssvae(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")
    return results


if __name__ == "__main__":
    main()
