r"""Vectorised chains: every chain of a pyrogen kernel advanced as one batch of tensors.

:func:`sample` drives any :class:`~pyrogen.infer.base.VectorizedKernel`. Where
``pyro.infer.MCMC`` runs one chain per Python-level step (and chains one after another on a
small machine), here one call of ``step_chains`` moves all ``num_chains`` chains at once, so
thousands of chains cost little more than one on a GPU, and the Python overhead per step is
a handful of tensor copies into a preallocated buffer (no host synchronisation in the loop).

Chains from independent starting points that each run ``warmup_steps + num_samples`` steps
are the usual multi-chain MCMC set-up (Gelman & Rubin, 1992); with many chains the
rank-normalised R-hat of Vehtari et al. (2021) in :func:`pyrogen.diagnostics.summarize`
checks that they agree.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
from tqdm.auto import tqdm

from pyrogen import diagnostics
from pyrogen import distributed as _dist
from pyrogen._validation import check_positive_int
from pyrogen.convergence import check_convergence
from pyrogen.infer.adaptation import adaptation_steps
from pyrogen.infer.base import VectorizedKernel

__all__ = ["sample"]


def sample(
    kernel: VectorizedKernel,
    num_chains: int,
    num_samples: int,
    warmup_steps: int,
    seed: int | None = None,
    device: torch.device | str | None = None,
    thin: int = 1,
    progress: bool = True,
    initial_params: Mapping[str, torch.Tensor] | None = None,
    check: bool = True,
    distributed: bool | None = None,
) -> diagnostics.DataTree | None:
    r"""Run ``num_chains`` chains of ``kernel`` as one batch; return an ArviZ ``DataTree``.

    Each chain takes ``warmup_steps`` steps (adapting kernels adapt only in the first 80% of
    them, :func:`~pyrogen.infer.adaptation.adaptation_steps`, and move with the frozen step
    size in the rest) and then
    ``num_samples`` steps, of which every ``thin``-th is kept (NumPyro's ``thinning``
    convention), giving ``num_samples // thin`` draws per chain.

    Args:
        kernel: a :class:`~pyrogen.infer.base.VectorizedKernel` (``BlockGibbs``,
            ``MetropolisHastings``, ``DiscreteGibbs``, ...).
        num_chains: number of chains (the batch size of every step).
        num_samples: post-warmup steps per chain.
        warmup_steps: discarded steps per chain (may be 0).
        seed: seed of the ``torch.Generator`` (on the kernel's device) that drives every
            random choice: the same seed gives the same chains. ``None`` draws a seed
            from torch's global RNG (``pyro.set_rng_seed`` fixes it), stored in the
            result's attributes so the run can be repeated.
        device: where the chains must run; the kernel's own device when ``None``. The
            kernel is not moved: a different device is an error (move the model first).
        thin: keep every ``thin``-th post-warmup step.
        progress: show a tqdm progress bar.
        initial_params: site name -> tensor of shape ``(num_chains, *site_shape)`` or
            ``site_shape``, passed to ``kernel.init_chains``.
        check: compute max R-hat, min bulk ESS and the mean acceptance of the draws
            (:func:`pyrogen.convergence.check_convergence`) and emit one
            :class:`~pyrogen.ConvergenceWarning` when a threshold fails (R-hat > 1.01, bulk
            ESS < 100, acceptance < 5%); the outcome is stored in the attributes either way.
            ``False`` skips it (for callers that check the quantity they report themselves).
        distributed: ``None`` (default): split the chains across the ranks of the open
            ``torch.distributed`` group, if there is one of more than one process;
            ``False``: run every chain here; ``True``: require a group. Rank :math:`r` runs
            the contiguous block of chains :func:`pyrogen.distributed.shard` gives it, with
            the seed :func:`pyrogen.distributed.shard_seed` ``(seed, r)`` (rank 0 keeps
            ``seed``), so its draws are those of
            ``sample(..., num_chains=block size, seed=shard_seed(seed, r))`` run alone; the
            blocks are gathered on rank 0 in rank order, R-hat and ESS are computed there
            over all chains, and rank 0 returns the ``DataTree`` while the other ranks return
            ``None``. Per-chain ``initial_params`` are split like the chains.

    Returns:
        ``xarray.DataTree`` (ArviZ 1.x) built by :func:`pyrogen.diagnostics.to_inference_data`:
        ``posterior`` with every site of ``kernel.chain_values`` as
        ``(chain, draw, *site_shape)``; ``sample_stats`` with each per-chain entry of the
        kernel's ``info`` (at least ``accept_prob``) per kept draw, and
        ``acceptance_rate`` ``(chain,)``: the mean acceptance probability over all
        post-warmup steps. Attributes: ``wall_time`` (seconds, from initialisation to the
        draws on the host, excluding building the ``DataTree``), ``seed``,
        ``interrupted`` (1 when stopped by Ctrl-C: the draws made so far are returned),
        and with ``check`` ``converged`` (1 or 0), ``max_r_hat`` and ``min_ess_bulk``;
        distributed, also ``num_processes``. ``None`` on the ranks other than 0 of a
        distributed run.

    Warns:
        ConvergenceWarning: with ``check``, when the chains fail a convergence threshold.

    The loop runs under ``torch.no_grad()``; a kernel that needs gradients (Langevin
    proposals) enables them locally.

    Example:
        >>> idata = sample(BlockGibbs(rbm), num_chains=1024, num_samples=1000,
        ...                warmup_steps=500, seed=0)  # doctest: +SKIP
        >>> pyrogen.diagnostics.summarize(idata)  # doctest: +SKIP
    """
    if not isinstance(kernel, VectorizedKernel):
        raise TypeError(
            "kernel must implement pyrogen.infer.base.VectorizedKernel (device, init_chains, "
            f"step_chains, chain_values), got {type(kernel).__name__}"
        )
    num_chains = check_positive_int(num_chains, "num_chains")
    num_samples = check_positive_int(num_samples, "num_samples")
    warmup_steps = check_positive_int(warmup_steps, "warmup_steps", minimum=0)
    thin = check_positive_int(thin, "thin")
    if thin > num_samples:
        raise ValueError(f"thin={thin} keeps no draw of num_samples={num_samples} steps")
    if seed is not None:
        seed = check_positive_int(seed, "seed", minimum=0)
    kernel_device = torch.device(kernel.device)
    if device is not None and not _same_device(torch.device(device), kernel_device):
        raise ValueError(
            f"device={str(device)!r} but the kernel's model lives on {kernel_device}; "
            "move the model there (e.g. rbm.to(device)) and build the kernel again"
        )

    sharded = _dist.resolve_distributed(distributed)
    total_chains = num_chains
    if sharded:  # this rank's block of chains, with its own seed (rank 0: the seed itself)
        seed = _dist.shared_seed(seed)
        block = _dist.shard(num_chains)
        if block.size == 0:
            raise ValueError(
                f"num_chains={num_chains} leaves rank {block.rank} of {block.world_size} "
                "without a chain; run at least one chain per rank"
            )
        initial_params = _shard_initial_params(kernel, initial_params, block)
        num_chains, local_seed = block.size, _dist.shard_seed(seed, block.rank)
        progress = progress and _dist.is_main_process()
    else:
        if seed is None:  # from torch's global RNG, so pyro.set_rng_seed fixes it too
            seed = int(torch.randint(0, 2**62, (1,)).item())
        local_seed = seed
    generator = torch.Generator(device=kernel_device).manual_seed(local_seed)
    num_draws = num_samples // thin

    start = time.perf_counter()
    with torch.no_grad():
        # The protocol takes a dict: a copy of the mapping (the kernels only read it).
        params = None if initial_params is None else dict(initial_params)
        state = kernel.init_chains(num_chains, generator=generator, initial_params=params)
        buffers = {  # (draw, chain, ...): each kept draw is one contiguous write
            name: torch.empty((num_draws, *value.shape), dtype=value.dtype, device=value.device)
            for name, value in kernel.chain_values(state).items()
        }
        run = _Run(kernel, generator, thin, num_chains, num_draws, buffers)
        bar = tqdm(total=warmup_steps + num_samples, desc="sample", disable=not progress)
        try:
            state = run.warmup(state, warmup_steps, bar)
            state = run.draws(state, num_samples, bar)
        except KeyboardInterrupt:
            interrupted = True
        else:
            interrupted = False
        finally:
            bar.close()
        draws = {name: buf[: run.kept].transpose(0, 1).cpu() for name, buf in buffers.items()}
        sample_stats = run.sample_stats()
    if sharded:
        gathered = _dist.gather_to_main((draws, sample_stats, interrupted))
        if gathered is None:
            return None
        draws, sample_stats, interrupted = _concatenate_blocks(gathered)
        run.kept = next(iter(draws.values())).shape[1] if draws else 0
    num_chains = total_chains
    wall_time = time.perf_counter() - start

    attrs: dict[str, int | float] = {"seed": seed, "interrupted": int(interrupted), "thin": thin}
    attrs["warmup_steps"] = warmup_steps
    if sharded:
        attrs["num_processes"] = _dist.get_world_size()
    if check and run.kept:
        rate = sample_stats.get("acceptance_rate")
        reliability = check_convergence(
            draws,
            f"draws of {type(kernel).__name__} ({num_chains} chains)",
            acceptance=None if rate is None else float(torch.as_tensor(rate).double().mean()),
            stacklevel=3,
        )
        attrs["converged"] = int(reliability.converged)
        for key in ("max_r_hat", "min_ess_bulk"):
            value = float(getattr(reliability, key))
            if value == value:  # NaN (one chain, constant draws) is left out
                attrs[key] = value
    return diagnostics.to_inference_data(
        draws, wall_time=wall_time, sample_stats=sample_stats, attrs=attrs
    )


def _shard_initial_params(
    kernel: VectorizedKernel,
    initial_params: Mapping[str, torch.Tensor] | None,
    block: _dist.Shard,
) -> dict[str, torch.Tensor] | None:
    """This rank's rows of the per-chain entries of ``initial_params``.

    A value with one dimension more than its site (read off one throw-away chain) is per
    chain, ``(num_chains, *site_shape)``, and is cut to the block; a ``site_shape`` value is
    shared by every chain and kept whole.
    """
    if initial_params is None:
        return None
    probe = torch.Generator(device=torch.device(kernel.device)).manual_seed(0)
    with torch.no_grad():
        sites = kernel.chain_values(kernel.init_chains(1, generator=probe))
    out = {}
    for name, value in initial_params.items():
        value = torch.as_tensor(value)
        site = sites.get(name)
        per_chain = site is not None and value.dim() == site.dim() and value.shape[0] == block.total
        out[name] = value[block.slice()] if per_chain else value
    return out


def _concatenate_blocks(
    gathered: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], bool]],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], bool]:
    """Every rank's ``(draws, sample_stats, interrupted)`` joined along the chain dimension.

    An interrupted rank may have kept fewer draws: all are cut to the shortest.
    """
    kept = min((next(iter(d.values())).shape[1] for d, _s, _i in gathered if d), default=0)
    draws = {
        name: torch.cat([d[name][:, :kept] for d, _s, _i in gathered]) for name in gathered[0][0]
    }
    stats = {}
    for name, first in gathered[0][1].items():
        parts = [s[name] for _d, s, _i in gathered]
        stats[name] = torch.cat([p[:, :kept] if first.dim() > 1 else p for p in parts])
    return draws, stats, any(i for _d, _s, i in gathered)


class _Run:
    """The sampling loop, split so that the per-step path has no branches and no syncs."""

    def __init__(
        self,
        kernel: VectorizedKernel,
        generator: torch.Generator,
        thin: int,
        num_chains: int,
        num_draws: int,
        buffers: dict[str, torch.Tensor],
    ) -> None:
        self.step = kernel.step_chains
        self.values = kernel.chain_values
        self.generator = generator
        self.thin = thin
        self.num_chains, self.num_draws = num_chains, num_draws
        self.buffers = buffers
        self.stats: dict[str, torch.Tensor] = {}
        self.kept = 0
        # With thin > 1 not every step's acceptance is stored: sum it as we go.
        self.accept_sum = torch.zeros(num_chains, dtype=torch.float64, device=kernel.device)
        self.post_warmup_steps = 0

    def warmup(self, state: Any, warmup_steps: int, bar: tqdm) -> Any:
        step, generator = self.step, self.generator
        adapting = adaptation_steps(warmup_steps)
        for i in range(warmup_steps):
            # The final window moves with the frozen step size (see pyrogen.infer.adaptation).
            state, _info = step(state, generator=generator, warmup=i < adapting)
            bar.update()
        return state

    def draws(self, state: Any, num_samples: int, bar: tqdm) -> Any:
        step, generator, thin = self.step, self.generator, self.thin
        for _ in range(self.num_draws):
            for _ in range(thin):
                state, info = step(state, generator=generator, warmup=False)
                self.post_warmup_steps += 1
                if not self.stats:  # first post-warmup step: now the info keys are known
                    self.stats = _allocate_stats(info, self.num_draws, self.num_chains)
                if thin > 1:
                    self.accept_sum += info["accept_prob"]
            for name, value in self.values(state).items():
                self.buffers[name][self.kept].copy_(value)
            for name, buffer in self.stats.items():
                buffer[self.kept].copy_(info[name])
            self.kept += 1
            bar.update(thin)
        for _ in range(num_samples - self.num_draws * thin):  # steps after the last kept one
            state, info = step(state, generator=generator, warmup=False)
            self.post_warmup_steps += 1
            self.accept_sum += info["accept_prob"]
            bar.update()
        return state

    def sample_stats(self) -> dict[str, torch.Tensor]:
        stats = {name: buf[: self.kept].transpose(0, 1).cpu() for name, buf in self.stats.items()}
        if self.thin == 1 and self.kept:
            # Every step was kept (the leftover loop does not run when thin == 1).
            total, steps = stats["accept_prob"].double().sum(1), self.kept
        else:
            total, steps = self.accept_sum.cpu(), self.post_warmup_steps
        stats["acceptance_rate"] = total / steps if steps else total * float("nan")
        return stats


def _same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:0`` name the same device when 0 is the current one."""
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        current = torch.cuda.current_device() if a.type == "cuda" else 0
        return (a.index if a.index is not None else current) == (
            b.index if b.index is not None else current
        )
    return a.index == b.index


def _allocate_stats(
    info: Mapping[str, torch.Tensor], num_draws: int, num_chains: int
) -> dict[str, torch.Tensor]:
    """Buffers for the per-chain entries of a kernel's ``info`` (shape ``(num_chains,)``)."""
    if "accept_prob" not in info:
        raise ValueError(
            "kernel.step_chains must report info['accept_prob'] of shape (num_chains,); "
            f"its info has {sorted(info)}"
        )
    return {
        name: torch.empty((num_draws, num_chains), dtype=value.dtype, device=value.device)
        for name, value in info.items()
        if isinstance(value, torch.Tensor) and tuple(value.shape) == (num_chains,)
    }
