"""Benchmark: mode coverage of a plain MLP GAN on the 8-Gaussian ring and 25-Gaussian grid,
and of three samplers that correct it with its discriminator: DDLS (Che et al. 2020), MH-GAN
(Turner et al. 2019) and discriminator rejection sampling (DRS, Azadi et al. 2019).

For each data set and seed: train a small MLP GAN with ``pyrogen.gan.fit`` (non-saturating
loss, Adam, a learning-rate drop for the last phase, the discriminator regularised by the R1
gradient penalty of Mescheder et al. 2018), calibrate the discriminator against the final
generator (``fit(..., train_generator=False)``, 2,000 steps at the full learning rate and
without R1, so that its logit approaches log(p_data / p_g), the quantity every corrector
relies on), then score 2,500 samples (PacGAN's protocol) of each contender with
``pyrogen.data.toy.mode_metrics``. All contenders of a seed use the same trained GAN:

* plain: ``x = G(z)``, ``z ~ N(0, I)`` (the anchor, measured in the same run);
* DDLS: ``x = G(z)`` with ``z`` the final state of 2,500 MALA chains started from the prior
  and run on ``pyrogen.gan.discriminator_energy(gan)`` by ``pyrogen.infer``'s vectorised
  MetropolisHastings (per-chain dual-averaging step sizes during warmup, then frozen);
* MH-GAN: ``pyrogen.gan.mh_gan_sample``, 2,500 independence chains of ``--mh-proposals``
  generator proposals each, started from held-out real samples (the paper's choice), the
  final states kept;
* DRS: ``pyrogen.gan.discriminator_rejection_sample`` until 2,500 samples are accepted, its
  shift gamma set by the percentile rule (``--drs-gamma-quantile``, 0.95): with gamma = 0
  (exact rejection sampling) a few high-ratio draws set an envelope so high that acceptance
  fell to 1e-4 and the proposal cap was hit in our runs.

MH-GAN and DRS use the logit Platt-calibrated (``pyrogen.gan.calibrate_discriminator``) on a
held-out draw of the data set that neither network saw in training (logits above the highest
held-out real one clamped to it); the chains' starting points are a third, separate draw.
DDLS uses the raw logit, as before. ``--ratio-steps N`` trains the discriminator alone for
``N`` more steps (then ``N / 2`` at a tenth of the rate) before *all* contenders, DDLS
included: MH-GAN and DRS sample ``p_g exp(l)`` exactly, so their quality is that of the
ratio estimate, and the default 2,000 calibration steps leave it too smooth to resolve the
modes' width.

Reported per seed and contender and on average: modes covered, % high-quality samples, mode
KL, acceptance rate and sampling seconds, plus the calibration (slope, intercept, held-out log
loss before/after). PacGAN's published vanilla-GAN rows (Lin et al. 2018, Table 1: their
architecture and training budget, not rerun here) are printed for context.

    python benchmarks/gan_toy.py            # 5 seeds per data set
    python benchmarks/gan_toy.py --quick    # 2 seeds, shorter training
    python benchmarks/gan_toy.py --cache DIR  # keep trained GANs in DIR, reuse them on rerun
    python benchmarks/gan_toy.py --ratio-steps 20000  # sharpen D further for all contenders
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, format_table, write_json

from pyrogen.data.toy import grid, mode_metrics, ring
from pyrogen.gan import (
    GAN,
    ImplicitModel,
    calibrate_discriminator,
    discriminator_energy,
    discriminator_rejection_sample,
    fit,
    mh_gan_sample,
    mlp_discriminator,
    mlp_generator,
)
from pyrogen.infer import MetropolisHastings, sample

#: PacGAN (Lin et al. 2018) Table 1, vanilla GAN: modes, % high quality, reverse KL.
PACGAN_GAN = {
    "ring": {"modes": 6.3, "high_quality": 98.2, "kl": 0.45},
    "grid": {"modes": 17.3, "high_quality": 94.8, "kl": 0.70},
}
#: Mixture parameters of the issue (VEEGAN / PacGAN set-ups).
DATASETS = {
    "ring": {"make": ring, "std": 0.02, "modes": 8},
    "grid": {"make": grid, "std": 0.05, "modes": 25},
}
NUM_EVAL = 2500  # samples scored per model, as in PacGAN
METHODS = ("plain", "ddls", "mh_gan", "drs")
#: Seed offsets of the three independent draws of each data set: training, calibration,
#: MH-GAN chain starts (held out from training and from each other).
TRAIN_SEED, CALIBRATION_SEED, START_SEED = 1000, 2000, 3000
TARGET_HQ = 97.0  # % high quality the corrected samplers should reach on both data sets


def draw(name: str, n: int, seed: int) -> torch.Tensor:
    """``n`` samples of data set ``name`` drawn with ``seed`` (unscaled)."""
    return DATASETS[name]["make"](n, std=DATASETS[name]["std"], seed=seed)[0]


def train_gan(name: str, seed: int, args: argparse.Namespace) -> tuple[GAN, float, float]:
    """Train one GAN on a fresh draw of the data set, standardised by its overall standard
    deviation ``s`` (the generator then works in units of ``s``); return the GAN, ``s`` and
    the training seconds (NaN when loaded from ``--cache``)."""
    data = draw(name, args.num_data, TRAIN_SEED + seed)
    # Unit-scale data matter: at the raw scale (grid corners at +-4, default initialisation
    # giving outputs ~0.5) the same GAN stalled at 14-21 of 25 grid modes in our trials.
    scale = float(data.std())
    data = data / scale
    # The file name carries every training setting, so a cache never serves another config.
    key = "_".join(
        str(getattr(args, k))
        for k in ("steps", "fine_steps", "calibration_steps", "calibration_lr", "lr",
                  "r1_penalty", "batch_size", "latent_dim", "hidden", "layers", "num_data")
    )  # fmt: skip
    cached = Path(args.cache) / f"{name}_seed{seed}_{key}.safetensors" if args.cache else None
    if cached is not None and cached.is_file():
        return GAN.load(cached), scale, math.nan
    torch.manual_seed(seed)
    hidden = (args.hidden,) * args.layers
    gan = GAN(
        ImplicitModel(mlp_generator(args.latent_dim, 2, hidden=hidden), args.latent_dim),
        mlp_discriminator(2, hidden=hidden),
    )
    common = {
        "batch_size": args.batch_size,
        "progress": False,
        "betas": (0.5, 0.999),
        "r1_penalty": args.r1_penalty,
    }
    tic = time.perf_counter()
    fit(gan, data, steps=args.steps, lr=args.lr, seed=seed, **common)
    fit(gan, data, steps=args.fine_steps, lr=args.lr / 10, seed=seed + 1, **common)
    # The correctors need d = log p_data - log p_g for the *final* generator: retrain D
    # alone. No R1 here: the penalty pulls d away from the log density ratio.
    calibration = {**common, "r1_penalty": 0.0}
    fit(gan, data, steps=args.calibration_steps, lr=args.calibration_lr, seed=seed + 2,
        train_generator=False, **calibration)  # fmt: skip
    seconds = time.perf_counter() - tic
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        gan.save(cached)
    return gan, scale, seconds


def ddls(gan: GAN, seed: int, args: argparse.Namespace) -> tuple[torch.Tensor, float, float]:
    """Final states of ``NUM_EVAL`` MALA chains on the DDLS latent target, pushed through G.

    Returns ``(x (NUM_EVAL, 2), mean acceptance rate, seconds)``.
    """
    z0 = gan.generator.sample_latent(NUM_EVAL, torch.Generator().manual_seed(seed))
    kernel = MetropolisHastings(
        discriminator_energy(gan), proposal="mala", step_size=args.ddls_step_size
    )
    tic = time.perf_counter()
    with warnings.catch_warnings():  # ArviZ warns when chains outnumber draws: intended here
        warnings.simplefilter("ignore", UserWarning)
        idata = sample(
            kernel,
            num_chains=NUM_EVAL,
            num_samples=args.ddls_steps,
            warmup_steps=args.ddls_warmup,
            seed=seed,
            progress=False,
            initial_params={"z": z0},
        )
    z = torch.as_tensor(idata.posterior["z"].values[:, -1])
    with torch.no_grad():
        x = gan.generator.generate(z.to(z0.dtype))
    accept = float(idata.sample_stats["acceptance_rate"].mean())
    return x, accept, time.perf_counter() - tic


def run_seed(name: str, seed: int, args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Train one GAN and score every contender on it: ``(rows, calibration record)``."""
    gan, scale, train_s = train_gan(name, seed, args)
    ratio_s = 0.0
    if args.ratio_steps:
        # Optional: more discriminator-only training on the training data (after the cache,
        # so cached GANs are reused), shared by every contender, DDLS included.
        data = draw(name, args.num_data, TRAIN_SEED + seed) / scale
        tic = time.perf_counter()
        # ratio_steps at ratio_lr, then half as many at a tenth of it: the drop lets Adam's
        # noise settle, which sharpened the held-out log loss most in our trials.
        for i, (steps, lr) in enumerate(
            [(args.ratio_steps, args.ratio_lr), (args.ratio_steps // 2, args.ratio_lr / 10)]
        ):
            if steps:
                fit(gan, data, steps=steps, lr=lr, seed=seed + 3 + i,
                    batch_size=args.batch_size, progress=False, train_generator=False)  # fmt: skip
        ratio_s = time.perf_counter() - tic
    _, centers = DATASETS[name]["make"](1, seed=0)
    std = DATASETS[name]["std"]
    heldout = draw(name, args.num_heldout, CALIBRATION_SEED + seed) / scale
    starts = draw(name, NUM_EVAL, START_SEED + seed) / scale
    tic = time.perf_counter()
    cal = calibrate_discriminator(gan, heldout, seed=seed + 10)
    cal_s = time.perf_counter() - tic

    samples: dict[str, tuple[torch.Tensor, float, float]] = {}
    tic = time.perf_counter()
    x = gan.generator.sample(NUM_EVAL, torch.Generator().manual_seed(seed))
    samples["plain"] = (x, math.nan, time.perf_counter() - tic)
    x, accept, ddls_s = ddls(gan, seed, args)
    samples["ddls"] = (x, accept, ddls_s)
    tic = time.perf_counter()
    mh = mh_gan_sample(gan, NUM_EVAL, num_proposals=args.mh_proposals, calibration=cal,
                       initial=starts, seed=seed + 20)  # fmt: skip
    samples["mh_gan"] = (mh.samples, mh.acceptance_rate, time.perf_counter() - tic)
    tic = time.perf_counter()
    drs = discriminator_rejection_sample(
        gan, NUM_EVAL, calibration=cal, gamma=args.drs_gamma,
        gamma_quantile=None if args.drs_gamma_quantile < 0 else args.drs_gamma_quantile,
        seed=seed + 30,
    )  # fmt: skip
    samples["drs"] = (drs.samples, drs.acceptance_rate, time.perf_counter() - tic)

    rows = []
    for method, (x, accept, seconds) in samples.items():
        if x.shape[0] == 0:  # DRS hit its proposal cap without accepting anything
            metrics = {"modes": 0, "high_quality": 0.0, "kl": math.nan}
        else:
            metrics = mode_metrics(scale * x, centers, std)
        rows.append({
            "data": name,
            "seed": seed,
            "method": method,
            "modes": metrics["modes"],
            "hq_%": 100 * metrics["high_quality"],
            "kl": metrics["kl"],
            "accept": accept,
            "sample_s": seconds,
            "n": int(x.shape[0]),
        })  # fmt: skip
    record = {
        "data": name,
        "seed": seed,
        "train_s": train_s,
        "ratio_s": ratio_s,
        "cal_slope": cal.slope,
        "cal_intercept": cal.intercept,
        "logloss_raw": cal.log_loss_before,
        "logloss_cal": cal.log_loss_after,
        "brier_raw": cal.brier_before,
        "brier_cal": cal.brier_after,
        "cal_s": cal_s,
        "mh_restarted": mh.num_restarted,
        "mh_never_accepted": mh.num_never_accepted,
        "drs_proposals": drs.num_proposals,
        "drs_gamma": drs.gamma,
    }
    return rows, record


def summarise(rows: list[dict], name: str, method: str) -> dict:
    mine = [r for r in rows if r["data"] == name and r["method"] == method]
    total = DATASETS[name]["modes"]

    def mean(key: str) -> float:
        return sum(r[key] for r in mine) / len(mine)

    return {
        "data": name,
        "method": method,
        "seeds": len(mine),
        "modes": mean("modes"),
        "all_modes_seeds": sum(r["modes"] == total for r in mine),
        "hq_%": mean("hq_%"),
        "min_hq_%": min(r["hq_%"] for r in mine),
        "kl": mean("kl"),
        "accept": mean("accept"),
        "sample_s": mean("sample_s"),
    }


def target_met(summary: list[dict], method: str) -> bool:
    """All modes in every seed and mean high quality >= TARGET_HQ on every data set."""
    mine = [s for s in summary if s["method"] == method]
    return all(s["all_modes_seeds"] == s["seeds"] and s["hq_%"] >= TARGET_HQ for s in mine)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=["ring", "grid"], choices=list(DATASETS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6000, help="steps at --lr")
    parser.add_argument("--fine-steps", type=int, default=3000, help="steps at --lr / 10")
    parser.add_argument("--calibration-steps", type=int, default=2000)
    parser.add_argument("--calibration-lr", type=float, default=1e-3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--r1-penalty", type=float, default=0.1, help="R1 weight while G trains (0: none)"
    )
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--latent-dim", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--num-data", type=int, default=20000)
    parser.add_argument("--ddls-warmup", type=int, default=100)
    parser.add_argument("--ddls-steps", type=int, default=50)
    parser.add_argument("--ddls-step-size", type=float, default=0.05)
    parser.add_argument("--num-heldout", type=int, default=10000, help="calibration set size")
    parser.add_argument("--mh-proposals", type=int, default=200, help="MH-GAN chain length K")
    parser.add_argument("--drs-gamma", type=float, default=0.0, help="DRS shift gamma")
    parser.add_argument(
        "--drs-gamma-quantile", type=float, default=0.95,
        help="set the DRS gamma to this quantile of F on the burn-in batch (Azadi et al.'s "
        "percentile rule; overrides --drs-gamma; a negative value: use --drs-gamma)",
    )  # fmt: skip
    parser.add_argument(
        "--ratio-steps", type=int, default=0,
        help="extra discriminator-only steps on the training data before all contenders "
        "(then half as many at a tenth of --ratio-lr)",
    )  # fmt: skip
    parser.add_argument("--ratio-lr", type=float, default=3e-3)
    parser.add_argument("--cache", default=None, help="folder to keep / reuse trained GANs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2000 + 1000 steps")
    parser.add_argument("--out", default=str(RESULTS_DIR / "gan_toy.json"))
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.seeds, args.steps, args.fine_steps = 2, 2000, 1000
    rows, records = [], []
    for name in args.data:
        for seed in range(args.seeds):
            seed_rows, record = run_seed(name, seed, args)
            rows += seed_rows
            records.append(record)
            print(f"done: {name} seed {seed}", file=sys.stderr, flush=True)
    summary = [summarise(rows, name, m) for name in args.data for m in METHODS]
    published = [{"data": k, **v} for k, v in PACGAN_GAN.items() if k in args.data]
    print(format_table(rows, list(rows[0])))
    print()
    print(format_table(records, list(records[0])))
    print()
    print(format_table(summary, list(summary[0])))
    print()
    print("PacGAN Table 1, vanilla GAN (published, not rerun):")
    print(format_table(published, ["data", "modes", "high_quality", "kl"]))
    targets = {m: target_met(summary, m) for m in ("mh_gan", "drs")}
    print(
        f"target: all modes in every seed; high-quality >= {TARGET_HQ:g}% on both data sets "
        "(mean over seeds): "
        + ", ".join(f"{m} {'met' if ok else 'MISSED'}" for m, ok in targets.items())
    )
    payload = {
        "rows": rows,
        "calibration": records,
        "summary": summary,
        "targets": targets,
        "pacgan_published": published,
        "args": vars(args),
    }
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
