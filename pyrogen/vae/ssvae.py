r"""Semi-supervised VAE: the M2 model of Kingma et al. (2014) with the class enumerated.

Generative model, for each example:

.. math:: y \sim \operatorname{Categorical}(1/K), \quad z \sim \mathcal N(0, I), \quad
          x \mid y, z \sim \operatorname{Bernoulli}(\sigma(f_\theta(z, y))).

Guide: :math:`q_\phi(y \mid x)` (the classifier) and
:math:`q_\phi(z \mid x, y) = \mathcal N(\mu_\phi(x, y), \operatorname{diag} s_\phi(x, y)^2)`.
For a labelled example :math:`y` is observed and the ELBO is :math:`\mathcal L(x, y)`; for
an unlabelled one ``TraceEnum_ELBO`` sums :math:`y` out exactly,

.. math:: \mathcal U(x) = \sum_y q_\phi(y|x)\, \mathcal L(x, y) + H(q_\phi(y|x)),

by enumerating the ``"y"`` site in parallel (``config_enumerate``). Training maximises
:math:`\sum_{\text{lab}} \mathcal L + \sum_{\text{unl}} \mathcal U
- \alpha \sum_{\text{lab}} -\log q_\phi(y|x)`, the last term training the classifier on the
labels directly, as in the paper.

References:
    D. P. Kingma, D. J. Rezende, S. Mohamed and M. Welling, "Semi-supervised learning with
    deep generative models", NeurIPS 2014.
"""

from __future__ import annotations

import contextlib
import os

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import TraceEnum_ELBO, TraceMeanField_ELBO, config_enumerate
from pyro.infer.util import is_validation_enabled
from torch import nn

from pyrogen import distributed as _dist
from pyrogen._validation import (
    check_binary,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_tensor,
)
from pyrogen.deprecation import renamed_argument
from pyrogen.history import History
from pyrogen.io import load_state, save_module
from pyrogen.networks import MLP, check_hidden
from pyrogen.seeding import draw_seed, forked_global_rng, make_generator
from pyrogen.training_loop import Callback, EpochResult, check_callback, keyword_only, run_epochs
from pyrogen.vae import functional
from pyrogen.vae.training import make_adam, unregistered

__all__ = ["SSVAE", "fit_semisupervised", "fit_classifier"]

#: Default :math:`\alpha` of :func:`fit_semisupervised` per training example: ``alpha = 1.0 * N``.
#: The paper's :math:`0.1 N` weights the labelled *mean* of the cross-entropy; here it weighs
#: the labelled *sum* (already :math:`n_l` times heavier), and a further 10x won. Measured on
#: the 8x8 digits (20 class-balanced labels, 50 epochs, lr 3e-3, seed 1): 0.1 N gave 0.783
#: test accuracy, 1.0 N 0.817; at lr 1e-3, seed 0: 0.01 N 0.539, 0.1 N 0.700, 1.0 N 0.783,
#: 10 N 0.786 (labels-only MLP, best of four settings: 0.689 and 0.756).
DEFAULT_ALPHA_PER_EXAMPLE = 1.0

#: Default Adam step size of :func:`fit_semisupervised`. Measured as above (alpha 1.0 N,
#: 20 labels, 50 epochs): seed 1, lr 1e-3 0.689, 3e-3 0.817; seed 2, 3e-3 0.794, 1e-2 0.767.
DEFAULT_LR = 3e-3


class SSVAE(nn.Module):
    """Kingma et al.'s M2 semi-supervised VAE for binary data.

    Args:
        x_dim: width of one flattened binary example.
        latent_dim: latent ("style") dimension.
        num_classes: number of classes :math:`K` (>= 2).
        hidden: hidden widths of each network (classifier, z-encoder, decoder mirrored).
        dtype, device: of the parameters.
        z_dim: deprecated spelling of ``latent_dim`` (a ``FutureWarning``); the attribute
            ``ssvae.z_dim`` stays as an alias of ``ssvae.latent_dim``.

    Shapes: ``x`` ``(n, x_dim)`` float binary; ``y`` ``(n,)`` int64 in ``[0, K)``.

    Example:
        >>> ssvae = SSVAE(64, 4, 10)
        >>> x = torch.bernoulli(torch.full((5, 64), 0.3))
        >>> ssvae.predict(x).shape
        torch.Size([5])
    """

    # Registered with register_buffer, which nn.Module's attribute typing cannot see.
    _zero: torch.Tensor
    _one: torch.Tensor

    def __init__(
        self,
        x_dim: int,
        latent_dim: int | None = None,
        num_classes: int | None = None,
        hidden: tuple[int, ...] = (256,),
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        z_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.x_dim = check_positive_int(x_dim, "x_dim")
        latent_dim = renamed_argument(latent_dim, z_dim, "latent_dim", "z_dim", "SSVAE")
        if latent_dim is None or num_classes is None:
            raise TypeError("SSVAE needs latent_dim and num_classes (ints >= 1 and >= 2)")
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.num_classes = check_positive_int(num_classes, "num_classes", minimum=2)
        self.hidden = check_hidden(hidden)
        # ReLU MLPs, as in the VAE (see its constructor).
        self.classifier = MLP(self.x_dim, self.num_classes, self.hidden, dtype=dtype, device=device)
        self.encoder = MLP(
            self.x_dim + self.num_classes,
            2 * self.latent_dim,
            self.hidden,
            dtype=dtype,
            device=device,
        )
        self.decoder = MLP(
            self.latent_dim + self.num_classes,
            self.x_dim,
            tuple(reversed(self.hidden)),
            dtype=dtype,
            device=device,
        )
        self.register_buffer("_zero", torch.zeros((), dtype=dtype, device=device), persistent=False)
        self.register_buffer("_one", torch.ones((), dtype=dtype, device=device), persistent=False)
        self.register_params = True

    @property
    def z_dim(self) -> int:
        """Old name of :attr:`latent_dim` (kept as an alias)."""
        return self.latent_dim

    @property
    def device(self) -> torch.device:
        return self._zero.device

    @property
    def dtype(self) -> torch.dtype:
        return self._zero.dtype

    def config(self) -> dict[str, object]:
        """Constructor arguments (what :meth:`save` stores besides the weights)."""
        return {
            "x_dim": self.x_dim,
            "latent_dim": self.latent_dim,
            "num_classes": self.num_classes,
            "hidden": list(self.hidden),
        }

    def extra_repr(self) -> str:
        return (
            f"x_dim={self.x_dim}, latent_dim={self.latent_dim}, num_classes={self.num_classes}, "
            f"hidden={self.hidden}"
        )

    # ---------------------------------------------------------------- checks
    def check_data(self, x: object, name: str = "x") -> torch.Tensor:
        x = check_tensor(x, name, ndim=2, last_dim=self.x_dim)
        if x.dtype != self.dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype}, but the SSVAE's parameters are {self.dtype}"
            )
        return check_binary(x, name)

    def check_labels(self, y: object, n: int, name: str = "y") -> torch.Tensor:
        if not isinstance(y, torch.Tensor) or y.dtype != torch.int64:
            got = y.dtype if isinstance(y, torch.Tensor) else type(y).__name__
            raise TypeError(f"{name} must be an int64 tensor of class indices, got {got}")
        if y.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {tuple(y.shape)}")
        if n and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(f"{name} must lie in [0, {self.num_classes}), got a value outside")
        return y

    # ---------------------------------------------------------------- classifier
    @torch.no_grad()
    def class_probs(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`q_\\phi(y | x)`, shape ``(n, num_classes)``."""
        return torch.softmax(functional.class_logits(self, self.check_data(x)), dim=-1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Most probable class under the classifier :math:`q_\\phi(y|x)`; int64 ``(n,)``."""
        return functional.class_logits(self, self.check_data(x)).argmax(-1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
        *,
        mean: bool = False,
    ) -> torch.Tensor:
        r"""Draw ``n`` examples from the generative model: :math:`y \sim` uniform over the
        ``num_classes`` classes (unless given), :math:`z \sim \mathcal N(0, I)`,
        :math:`x \sim \operatorname{Bernoulli}(\sigma(f_\theta(z, y)))`.

        Args:
            n: number of draws.
            generator: drives every draw (``None``: torch's global one), on the model's
                device; the same generator state gives the same draws.
            y: int64 classes of shape ``(n,)`` to generate (class-conditional samples);
                ``None`` draws them from the uniform prior.
            mean: return the decoder mean :math:`\sigma(f_\theta(z, y))` instead of a draw.

        Returns:
            Shape ``(n, x_dim)``, in the model's dtype and on its device.

        Example:
            >>> ssvae = SSVAE(16, 2, 3, hidden=(8,))
            >>> ssvae.sample(5, torch.Generator().manual_seed(0)).shape
            torch.Size([5, 16])
        """
        check_positive_int(n, "n")
        if y is None:
            y = torch.randint(self.num_classes, (n,), generator=generator, device=self.device)
        else:
            y = self.check_labels(y, n).to(self.device)
        z = torch.randn(
            n, self.latent_dim, generator=generator, dtype=self.dtype, device=self.device
        )
        probs = torch.sigmoid(functional.decode_logits(self, z, y))
        return probs if mean else torch.bernoulli(probs, generator=generator)

    # ---------------------------------------------------------------- Pyro pair
    def model(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        subsample: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pyro model: sites ``"y"`` (uniform prior, observed when labelled), ``"z"``, ``"x"``.

        ``subsample`` indexes a minibatch of ``x`` (and ``y``), scaling by ``N / B``.
        """
        if self.register_params:
            pyro.module("ssvae", self)
        if is_validation_enabled():
            self.check_data(x)
            if y is not None:
                self.check_labels(y, x.shape[0])
        # Pyro annotates plate's device as str | None; it passes it on to torch, which takes a
        # torch.device as well.
        data_plate = pyro.plate(
            "data",
            x.shape[0],
            subsample=subsample,
            device=self.device,  # type: ignore[arg-type]
        )
        with data_plate as index:
            if subsample is not None:
                x = x[index]
                y = None if y is None else y[index]
            prior_z = dist.Normal(self._zero, self._one).expand([self.latent_dim]).to_event(1)
            z = pyro.sample("z", prior_z)
            prior_y = dist.Categorical(logits=self._zero.expand(self.num_classes))
            y = pyro.sample("y", prior_y, obs=y)
            logits = functional.decode_logits(self, z, y)
            return pyro.sample(
                "x", dist.Bernoulli(logits=logits, validate_args=False).to_event(1), obs=x
            )

    @config_enumerate(default="parallel")
    def guide(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        subsample: torch.Tensor | None = None,
    ) -> None:
        """Pyro guide: ``"y" ~ q(y|x)`` (enumerated in parallel) unless observed; ``"z"``."""
        if self.register_params:
            pyro.module("ssvae", self)
        # Pyro annotates plate's device as str | None; it passes it on to torch, which takes a
        # torch.device as well.
        data_plate = pyro.plate(
            "data",
            x.shape[0],
            subsample=subsample,
            device=self.device,  # type: ignore[arg-type]
        )
        with data_plate as index:
            if subsample is not None:
                x = x[index]
                y = None if y is None else y[index]
            if y is None:
                y = pyro.sample("y", dist.Categorical(logits=functional.class_logits(self, x)))
            loc, scale = functional.encode(self, x, y)
            pyro.sample("z", dist.Normal(loc, scale, validate_args=False).to_event(1))

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write weights and configuration to a safetensors file, atomically."""
        save_module(self, path, "SSVAE", self.config())

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: torch.device | str | None = None) -> SSVAE:
        """Load an SSVAE written by :meth:`save`."""
        config, state = load_state(path, "SSVAE")
        if "z_dim" in config:  # files written before the rename to latent_dim
            config["latent_dim"] = config.pop("z_dim")
        dtype = next(iter(state.values())).dtype
        config["hidden"] = tuple(config["hidden"])
        model = cls(**config, dtype=dtype, device=device)
        model.load_state_dict(state)
        return model


class _StepLoss(nn.Module):
    """The loss of one step of :func:`fit_semisupervised`, as a module that DDP can wrap.

    ``forward(index_u, index_l)`` takes the global minibatches' indices. In one process it
    returns the negative objective of those rows; distributed, it takes this rank's rows of
    each (:func:`pyrogen.distributed.shard`) and returns :math:`W` times its share of the
    global loss, each term weighted by the rank's share of its batch, so that DDP's average
    of the gradients over the :math:`W` ranks is the one-process gradient.
    """

    def __init__(
        self,
        ssvae: SSVAE,
        x_l: torch.Tensor,
        y_l: torch.Tensor,
        x_u: torch.Tensor,
        alpha: float,
        sharded: bool,
    ) -> None:
        super().__init__()
        self.ssvae, self.sharded = ssvae, sharded
        self.x_l, self.y_l, self.x_u, self.alpha = x_l, y_l, x_u, alpha
        # y is summed out for unlabelled data; with y observed there is nothing to enumerate
        # and the mean-field ELBO gives the z term its closed-form KL.
        self.unlabelled_elbo = TraceEnum_ELBO(max_plate_nesting=1)
        self.labelled_elbo = TraceMeanField_ELBO(max_plate_nesting=1)

    def _loss(
        self,
        handler: contextlib.AbstractContextManager[object],
        elbo: TraceEnum_ELBO | TraceMeanField_ELBO,
        *args: object,
        **kwargs: object,
    ) -> torch.Tensor:
        with handler:
            return elbo.differentiable_loss(self.ssvae.model, self.ssvae.guide, *args, **kwargs)

    def forward(self, index_u: torch.Tensor, index_l: torch.Tensor) -> torch.Tensor:
        ssvae, n_l = self.ssvae, self.x_l.shape[0]
        scale_u = scale_l = 1.0
        handler_u: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        handler_l: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        if self.sharded:
            part_u, part_l = _dist.shard(index_u.numel()), _dist.shard(index_l.numel())
            index_u, index_l = index_u[part_u.slice()], index_l[part_l.slice()]
            handler_u, handler_l = _dist.GlobalBatchNoise(part_u), _dist.GlobalBatchNoise(part_l)
            scale_u = part_u.world_size * part_u.size / part_u.total
            scale_l = part_l.world_size * part_l.size / part_l.total
        unlabelled = self._loss(handler_u, self.unlabelled_elbo, self.x_u, subsample=index_u)
        labelled = self._loss(handler_l, self.labelled_elbo, self.x_l, self.y_l, subsample=index_l)
        cross_entropy = None
        if self.alpha > 0:
            logits = functional.class_logits(ssvae, self.x_l[index_l])
            cross_entropy = F.cross_entropy(logits, self.y_l[index_l], reduction="sum")
            cross_entropy = self.alpha * cross_entropy * (n_l / index_l.numel())
        if self.sharded:
            if cross_entropy is not None:
                labelled = labelled + cross_entropy
            return scale_u * unlabelled + scale_l * labelled
        loss = unlabelled + labelled  # one process: summed in the order of earlier versions
        return loss if cross_entropy is None else loss + cross_entropy


@keyword_only(
    "epochs", "batch_size", "lr", "alpha", "seed", "validation", "progress", "distributed"
)
def fit_semisupervised(
    ssvae: SSVAE,
    labelled: tuple[torch.Tensor, torch.Tensor],
    unlabelled: torch.Tensor,
    *,
    epochs: int = 100,
    batch_size: int = 128,
    lr: float = DEFAULT_LR,
    seed: int | None = None,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: bool = True,
    callback: Callback | None = None,
    alpha: float | None = None,
    distributed: bool | None = None,
) -> History:
    """Train ``ssvae`` in place on labelled and unlabelled data; return a :class:`History`.

    Each step takes one minibatch of unlabelled data (``y`` enumerated) and one of labelled
    data (``y`` observed; the small labelled set is cycled), adds the auxiliary loss
    :math:`\\alpha \\cdot` cross-entropy of the classifier on the labelled batch, and takes one
    Adam step. An epoch is one pass over the unlabelled data. ``ssvae``, ``labelled`` and
    ``unlabelled`` are positional, everything else keyword-only (the old positional form
    still works, with a ``FutureWarning``, until the next release).

    Args:
        ssvae: the model.
        labelled: ``(x, y)`` with ``x`` ``(n_l, x_dim)`` binary and ``y`` ``(n_l,)`` int64.
        unlabelled: ``(n_u, x_dim)`` binary.
        epochs, batch_size: as for :func:`pyrogen.vae.fit`.
        lr: Adam step size; the default, ``3e-3`` (:data:`DEFAULT_LR`), beat ``1e-3`` (the
            default before issue 10) and ``1e-2`` on the digits with 20 labels.
        seed: seeds minibatches and samples; the global RNG state is restored afterwards.
            ``None``: a fresh seed drawn from torch's global generator (:mod:`pyrogen.seeding`).
        validation: ``(x, y)`` held out; adds ``validation_accuracy``.
        progress: show a tqdm bar.
        callback: ``callback(epoch, ssvae, history)`` after every epoch's record (``epoch``
            from 0); ``True`` stops training (:func:`pyrogen.training_loop.run_epochs`).
        alpha: weight of the classification loss per labelled example (the cross-entropy is
            summed over the labelled set); ``None`` uses :math:`1.0 (n_l + n_u)`
            (:data:`DEFAULT_ALPHA_PER_EXAMPLE`), ten times the default before issue 10
            (the paper's :math:`0.1 N`, which the paper applies to a labelled *mean*).
            See ``benchmarks/ssvae_labels.py`` for the comparison with the labels-only MLP.
        distributed: as for :func:`pyrogen.vae.fit`: ``None`` trains across the ranks of an
            open ``torch.distributed`` group (both minibatches split between them, DDP
            averaging the gradients, global-batch noise), ``False`` alone, ``True`` requires
            a group. Each rank needs a row of every minibatch: at least as many labelled
            examples as ranks.

    Returns:
        History with ``loss`` (negative objective per example), ``accuracy`` (classifier
        accuracy on the labelled set), ``epoch_time``, ``wall_time`` and optionally
        ``validation_accuracy``. Ctrl-C stops training cleanly and sets
        ``history.interrupted``.
    """
    if not isinstance(ssvae, SSVAE):
        raise TypeError(f"ssvae must be a pyrogen.vae.SSVAE, got {type(ssvae).__name__}")
    if not isinstance(labelled, tuple) or len(labelled) != 2:
        raise TypeError("labelled must be a tuple (x, y)")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    lr = check_positive_float(lr, "lr")
    callback = check_callback(callback)
    x_l = ssvae.check_data(labelled[0], "labelled[0]").to(ssvae.device)
    y_l = ssvae.check_labels(labelled[1], x_l.shape[0], "labelled[1]").to(ssvae.device)
    x_u = ssvae.check_data(unlabelled, "unlabelled").to(ssvae.device)
    n_l, n_u = x_l.shape[0], x_u.shape[0]
    if alpha is None:
        alpha = DEFAULT_ALPHA_PER_EXAMPLE * (n_l + n_u)
    else:
        alpha = check_nonnegative_float(alpha, "alpha")
    if validation is not None:
        if not isinstance(validation, tuple) or len(validation) != 2:
            raise TypeError("validation must be a tuple (x, y)")
        x_v = ssvae.check_data(validation[0], "validation[0]").to(ssvae.device)
        y_v = ssvae.check_labels(validation[1], x_v.shape[0], "validation[1]").to(ssvae.device)

    sharded = _dist.resolve_distributed(distributed)
    step_loss: nn.Module = _StepLoss(ssvae, x_l, y_l, x_u, alpha, sharded)
    if sharded:  # one seed and rank 0's parameters everywhere (DDP broadcasts them)
        _dist.check_batches(n_u, batch_size)
        labelled_batch = min(batch_size, n_l)  # always full: the labelled set is cycled
        _dist.check_batches(labelled_batch, labelled_batch, "the labelled batch size")
        seed = _dist.shared_seed(seed)
        step_loss = _dist.make_ddp(step_loss)
        progress = progress and _dist.is_main_process()
    optimizer = make_adam(list(ssvae.parameters()), lr)
    n_total = n_l + n_u
    # As in pyrogen.vae.fit: Pyro draws from the global stream, forked and seeded.
    with (
        forked_global_rng(seed, ssvae.device),
        pyro.validation_enabled(False),
        unregistered(ssvae),
    ):
        generator = make_generator(draw_seed())
        labelled_order = torch.empty(0, dtype=torch.int64)

        def train_epoch(epoch: int) -> EpochResult:
            nonlocal labelled_order
            ssvae.train()
            total = torch.zeros((), dtype=ssvae.dtype, device=ssvae.device)
            for index_u in torch.randperm(n_u, generator=generator).split(batch_size):
                if labelled_order.numel() < min(batch_size, n_l):
                    labelled_order = torch.randperm(n_l, generator=generator)
                index_l = labelled_order[: min(batch_size, n_l)]
                labelled_order = labelled_order[index_l.numel() :]
                index_u, index_l = index_u.to(ssvae.device), index_l.to(ssvae.device)
                loss = step_loss(index_u, index_l)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total = total + loss.detach() * (index_u.numel() / n_u)
            if sharded:  # each rank's loss is W times its share of the global one
                (total,) = _dist.all_reduce_sum([total.reshape(1) / _dist.get_world_size()])
                total = total.sum()
            return EpochResult({"loss": float(total) / n_total})

        @torch.no_grad()
        def evaluate(epoch: int, last: bool) -> dict[str, float]:
            ssvae.eval()
            predicted = functional.class_logits(ssvae, x_l).argmax(-1)
            record = {"accuracy": float((predicted == y_l).double().mean())}
            if validation is not None:
                correct = functional.class_logits(ssvae, x_v).argmax(-1) == y_v
                record["validation_accuracy"] = float(correct.double().mean())
            return record

        return run_epochs(
            ssvae,
            epochs,
            train_epoch,
            evaluate=evaluate,
            callback=callback,
            progress=progress,
            desc="SSVAE",
            postfix=lambda record: {"loss": f"{record['loss']:.3f}"},
            device=ssvae.device,
            sharded=sharded and callback is not None,
        )


def fit_classifier(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    hidden: tuple[int, ...] = (256,),
    epochs: int = 200,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int | None = None,
) -> nn.Sequential:
    """The labelled-only baseline: an MLP ``x -> hidden -> num_classes`` trained by
    full-batch Adam on cross-entropy. Returns the network (logits); ``net(x).argmax(-1)``
    predicts. Same architecture as :class:`SSVAE`'s classifier, so that the comparison
    isolates what the unlabelled data add.

    ``seed`` seeds the weight initialisation (under :func:`pyrogen.seeding.forked_global_rng`:
    the caller's global RNG state is restored); ``None``: a fresh seed drawn from torch's
    global generator.
    """
    x = check_tensor(x, "x", ndim=2)
    check_positive_int(num_classes, "num_classes", minimum=2)
    if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != x.shape[:1]:
        raise TypeError(f"y must be an int64 tensor of shape ({x.shape[0]},)")
    check_positive_int(epochs, "epochs")
    lr = check_positive_float(lr, "lr")
    weight_decay = check_nonnegative_float(weight_decay, "weight_decay")
    # The initialisation draws from the global generator: run it on a seeded fork.
    with forked_global_rng(seed, x.device):
        net = MLP(x.shape[1], num_classes, check_hidden(hidden), dtype=x.dtype, device=x.device)
        optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        for _ in range(epochs):
            loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    net.eval()
    return net
