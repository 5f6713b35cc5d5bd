r"""More than one process: the few ``torch.distributed`` pieces that pyrogen's loops share.

Launch any script (or the ``pyrogen`` command) with ``torchrun --nproc_per_node N``; torchrun
sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``, and
:func:`init_from_environment` opens the process group from them (``gloo`` on the CPU,
``nccl`` for CUDA devices). Once a group of more than one process is open, the training
loops (:func:`pyrogen.rbm.fit`, :func:`pyrogen.vae.fit`,
:func:`pyrogen.vae.fit_semisupervised`, :func:`pyrogen.gan.fit`) and the samplers
(:func:`pyrogen.infer.sample`, :func:`pyrogen.vae.inpaint`) use it by themselves; their
``distributed=False`` opts out (every process then runs alone), ``distributed=True``
insists on a group. Without a group (a plain ``python`` run) nothing here is used and every
function behaves exactly as in one process.

How the training loops split the work so that :math:`W` processes compute what one does:

* **Data.** Every rank holds the whole training tensor and draws the same permutation from
  the same seed, so all ranks agree on each *global* minibatch of ``batch_size`` examples;
  rank :math:`r` takes the contiguous rows :func:`shard` gives it (sizes differ by at most
  one, like ``torch.tensor_split``). This is what ``DistributedSampler`` does, with the
  global batch kept intact, so ``batch_size`` means the same thing for any world size.
* **Gradients.** The mean loss of a global batch of :math:`B` examples is
  :math:`\sum_r \frac{B_r}{B} \bar\ell_r`: each rank scales its local mean by
  :math:`W B_r / B` and ``DistributedDataParallel`` averages the gradients over the
  :math:`W` ranks, which gives exactly the one-process gradient. The RBM's CD/PCD statistics
  are sums: each rank sums over its rows, one ``all_reduce`` adds them up. This holds for
  networks that treat examples independently (pyrogen's MLPs); batch normalisation would
  see per-rank batches.
* **Randomness.** Every rank seeds its streams with the *same* seed. A random draw that
  belongs to the examples of the global batch (the Gibbs noise of CD, the reparameterised
  :math:`\epsilon` of a VAE, a GAN's latent vectors) is drawn at the shape of the *global*
  batch on every rank, and each rank keeps its own rows (:func:`draw_rows`,
  :class:`GlobalBatchNoise`). The noise an example gets therefore does not depend on how the
  batch was split, and :math:`W` processes train the same parameters as one process, to
  floating-point rounding (``tests/test_distributed.py``). The price is that each rank
  draws the whole batch's noise: :math:`O(B d)` random numbers against the
  :math:`O(B_r d^2)` of its share of the network.
* **State.** Parameters are broadcast from rank 0 at the start; persistent PCD chains are
  split between the ranks like the batch and stay where they are (only their statistics
  travel). Every rank ends with the same parameters and the same history; only rank 0
  should write files (:func:`is_main_process`; the CLI does so, atomically).

The functions above are collective: every rank must call them, in the same order, with
the same arguments (their data and seeds included). Code that runs on rank 0 alone (an
evaluation after training, say) passes ``distributed=False``, or closes the group first as
the ``pyrogen`` command does.

Chains of :func:`pyrogen.infer.sample` are split into contiguous blocks, one per rank, each
block run with its own seed (:func:`shard_seed`), and gathered on rank 0.

The CUDA path (``nccl``, one device per local rank) follows PyTorch's documented set-up
but has not been run by pyrogen's tests, which use ``gloo`` on the CPU.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import Message
from torch import nn

from pyrogen.seeding import DRAWN_SEED_BOUND, check_seed, resolve_seed

__all__ = [
    "GlobalBatchNoise",
    "Shard",
    "all_reduce_sum",
    "broadcast_module",
    "check_batches",
    "default_backend",
    "draw_rows",
    "gather_to_main",
    "get_rank",
    "get_world_size",
    "init_from_environment",
    "is_main_process",
    "launched_by_torchrun",
    "local_device",
    "make_ddp",
    "resolve_distributed",
    "shard",
    "shard_seed",
    "shared_seed",
]

# The environment variables torchrun (and torch.multiprocessing launchers) set for env://.
_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class Shard(NamedTuple):
    """Rank ``rank``'s contiguous part ``[start, stop)`` of ``total`` items."""

    start: int
    stop: int
    total: int
    rank: int
    world_size: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    def slice(self) -> slice:
        return slice(self.start, self.stop)


def launched_by_torchrun() -> bool:
    """Whether the process was started with the ``env://`` variables that torchrun sets."""
    return all(name in os.environ for name in _TORCHRUN_VARIABLES)


def _group_active() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's rank in the default group; 0 without one."""
    return dist.get_rank() if _group_active() else 0


def get_world_size() -> int:
    """Number of processes in the default group; 1 without one."""
    return dist.get_world_size() if _group_active() else 1


def is_main_process() -> bool:
    """True on rank 0 (and in a single process): the one process that writes files."""
    return get_rank() == 0


def default_backend(device: torch.device | str | None = None) -> str:
    """``"nccl"`` for a CUDA device when NCCL is built in, else ``"gloo"`` (CPU).

    The NCCL branch is untested by pyrogen (its tests run on CPUs).
    """
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda" and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def local_device(device: torch.device | str) -> torch.device:
    """``device`` for this process: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun.

    A CPU device, an explicit index, or a run without torchrun is returned unchanged.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def init_from_environment(
    device: torch.device | str | None = None, timeout_s: float = 300.0
) -> bool:
    """Open the default process group from torchrun's environment variables, if set.

    Args:
        device: the device this process trains on; picks the backend
            (:func:`default_backend`) and, for CUDA, becomes the current device.
        timeout_s: seconds a collective may wait for the other ranks before failing.

    Returns:
        True when a group of more than one process is open afterwards (opened here or
        before); False in a plain single-process run, where nothing is done.
    """
    if not dist.is_available():
        return False
    if not dist.is_initialized():
        if not launched_by_torchrun():
            return False
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)):
            raise TypeError(f"timeout_s must be a number of seconds, got {timeout_s!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        device = local_device("cpu" if device is None else device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(
            backend=default_backend(device),
            init_method="env://",
            timeout=datetime.timedelta(seconds=timeout_s),
        )
    return dist.get_world_size() > 1


def resolve_distributed(distributed: object, name: str = "distributed") -> bool:
    """Whether a loop runs distributed: ``None`` detects it, ``True`` insists, ``False`` opts out.

    ``None`` (the default of every ``distributed=`` argument) is True exactly when a process
    group of more than one process is open. Raises ``TypeError`` for a non-bool and
    ``ValueError`` for ``True`` without a group.
    """
    if distributed is None:
        return _group_active() and dist.get_world_size() > 1
    if not isinstance(distributed, bool):
        raise TypeError(f"{name} must be True, False or None, got {distributed!r}")
    if distributed and not _group_active():
        raise ValueError(
            f"{name}=True but no torch.distributed process group is open; launch with "
            "torchrun and call pyrogen.distributed.init_from_environment() first"
        )
    return distributed


def shard(total: int, rank: int | None = None, world_size: int | None = None) -> Shard:
    """Rank ``rank``'s contiguous share of ``total`` items (default: this process's).

    The first ``total % world_size`` ranks get one item more, as in ``torch.tensor_split``;
    a rank may get none when ``total < world_size``.

    Example:
        >>> [tuple(shard(5, r, 2)[:2]) for r in range(2)]
        [(0, 3), (3, 5)]
    """
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, world_size={world_size}), got {rank}")
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    base, extra = divmod(total, world_size)
    start = rank * base + min(rank, extra)
    stop = start + base + (1 if rank < extra else 0)
    return Shard(start, stop, total, rank, world_size)


def check_batches(n: int, batch_size: int, name: str = "batch_size") -> None:
    """Raise ``ValueError`` unless every minibatch of ``n`` items gives each rank a row.

    The minibatches are ``batch_size`` items and a last, shorter one of ``n % batch_size``;
    the variational and adversarial loops need at least one row per rank in each.
    """
    world_size = get_world_size()
    sizes = [min(batch_size, n)] + ([n % batch_size] if n > batch_size and n % batch_size else [])
    if min(sizes) < world_size:
        raise ValueError(
            f"{name}={batch_size} on {n} examples makes a minibatch of {min(sizes)}, fewer "
            f"than the {world_size} ranks; choose a batch size (and a last batch) of at least "
            f"{world_size}"
        )


def shard_seed(seed: int, index: int) -> int:
    """Seed of block ``index`` of a run seeded with ``seed``; block 0 keeps ``seed`` itself.

    Other blocks get 62 bits of a BLAKE2b hash of ``(seed, index)``: a function of those two
    numbers only (not of the world size), so a block's chains can be rerun on their own.
    """
    checked = check_seed(seed)
    if checked is None:
        raise TypeError("seed must be an int, got None")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"index must be an int >= 0, got {index!r}")
    if index == 0:
        return checked
    digest = hashlib.blake2b(f"pyrogen:{checked}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % DRAWN_SEED_BOUND


def shared_seed(seed: object, name: str = "seed") -> int:
    """``seed`` resolved (:func:`pyrogen.seeding.resolve_seed`) on rank 0 and sent to all.

    ``seed=None`` draws the run's seed once, on rank 0, so that every rank runs with the
    same one; an int is checked and returned. Without a group this is ``resolve_seed``.
    """
    value = resolve_seed(seed, name) if is_main_process() else 0
    if _group_active():
        box = [value]
        dist.broadcast_object_list(box, src=0)
        value = int(box[0])
    return value


@torch.no_grad()
def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers into every rank's ``module``, in place."""
    if not _group_active():
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=src)


def all_reduce_sum(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Sums over the ranks of ``tensors`` (any shapes, one dtype and device), in one message.

    The tensors are flattened into one buffer for a single ``all_reduce``; the results come
    back in the input shapes (the inputs are not modified).
    """
    flat = torch.cat([t.reshape(-1) for t in tensors])
    if _group_active():
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    out, offset = [], 0
    for t in tensors:
        out.append(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()
    return out


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` (picklable; tensors best on the CPU) as a list on rank 0.

    Returns the list ordered by rank on rank 0 and ``None`` elsewhere; ``[obj]`` without a
    group.
    """
    if not _group_active():
        return [obj]
    out = [None] * dist.get_world_size() if is_main_process() else None
    dist.gather_object(obj, out, dst=0)
    return out


def make_ddp(module: nn.Module) -> nn.Module:
    """``module`` wrapped in ``DistributedDataParallel`` for the current device.

    Buffers are not re-broadcast at every call (pyrogen's models keep only constants there);
    the parameters are broadcast from rank 0 once, by the wrapper's constructor.
    """
    from torch.nn.parallel import DistributedDataParallel

    params = list(module.parameters())
    device = params[0].device if params else torch.device("cpu")
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=False)


def draw_rows(
    sampler: Callable[[torch.Tensor], torch.Tensor],
    local: torch.Tensor,
    part: Shard,
    dim: int = 0,
) -> torch.Tensor:
    """``sampler`` applied at the global shape, restricted to this rank's rows.

    ``local`` holds this rank's ``part.size`` rows (along ``dim``) of the parameters of an
    elementwise sampler (e.g. ``torch.bernoulli`` of probabilities); the other rows are
    padded with zeros, ``sampler`` draws at the global shape (consuming the generator as a
    single process would) and the rows ``part.start:part.stop`` come back. Since each
    element's draw depends only on its own parameter and its place in the stream, the result
    equals the matching rows of the one-process draw.
    """
    shape = list(local.shape)
    shape[dim] = part.total
    full = local.new_zeros(shape)
    full.narrow(dim, part.start, part.size).copy_(local)
    return sampler(full).narrow(dim, part.start, part.size)


class GlobalBatchNoise(Messenger):
    """Pyro handler: reparameterised Normal draws inside a sharded plate use global-batch noise.

    Inside the plate ``plate`` (subsampled to this rank's ``part.size`` rows of a global
    batch of ``part.total``), every latent Normal site (``Normal`` or ``Independent`` of one,
    not observed and not already given a value, e.g. by a replay) draws its standard-normal
    :math:`\\epsilon` at the shape with the plate's dimension widened to ``part.total``, from
    torch's global generator, exactly as one process drawing the whole batch does
    (``torch.distributions.Normal.rsample``), and keeps this rank's rows:
    ``value = loc + eps[rows] * scale``. Other sites are left alone.
    """

    def __init__(self, part: Shard, plate: str = "data") -> None:
        super().__init__()
        self.part = part
        self.plate = plate

    def _process_message(self, msg: Message) -> None:
        if msg["type"] != "sample" or msg["is_observed"] or msg["value"] is not None:
            return
        frame = next((f for f in msg["cond_indep_stack"] if f.name == self.plate), None)
        if frame is None or frame.dim is None:
            return
        fn = msg["fn"]
        if not isinstance(fn, torch.distributions.Distribution):
            return
        base = fn.base_dist if isinstance(fn, torch.distributions.Independent) else fn
        normal = torch.distributions.Normal
        if not isinstance(base, normal) or type(base).rsample is not normal.rsample:
            return
        batch = list(fn.batch_shape)
        position = len(batch) + frame.dim
        if position < 0 or batch[position] != self.part.size:
            return
        shape = batch + list(fn.event_shape)
        shape[position] = self.part.total
        eps = torch.empty(shape, dtype=base.loc.dtype, device=base.loc.device).normal_()
        eps = eps.narrow(position, self.part.start, self.part.size)
        msg["value"] = base.loc + eps * base.scale
