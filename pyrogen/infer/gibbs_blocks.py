r"""Blocks of discrete coordinates that a Gibbs sampler may redraw together.

Coordinates :math:`x_{i_1}, \dots, x_{i_m}` that are conditionally independent given the rest,
:math:`p(x_{i_1}, \dots, x_{i_m} \mid x_{-I}) = \prod_l p(x_{i_l} \mid x_{-I})`, can be redrawn
at once, each from its own full conditional: the block update is the exact Gibbs update of the
block, so it leaves the target invariant and is reversible. Two sources of such blocks:

* **plates**: a discrete site inside ``pyro.plate`` whose every dependent site lies in the same
  plates (a mixture's assignments given its parameters) has independent elements along those
  plates. Pyro's own dependency analysis
  (:func:`pyro.infer.inspect.get_dependencies`, provenance tracking) says when a site's
  elements are coupled along a plate in the posterior (a factor that sums over the plate, say);
  a numerical spot check then compares the block's conditionals with single-site ones at two
  random states, because provenance cannot see a model that mixes plate elements by indexing.
  All :math:`k` values of the whole block go through the model as **one** batch of ``k``
  states, and the log joint is read *per plate element* (``plate_dims`` of
  :meth:`~pyrogen.infer.pyro_target.PyroTarget.log_joint`):

  .. math:: \log p(x_i = j \mid x_{-I}) = \operatorname{log\,softmax}_j\,
            \ell_i(x_I = j), \qquad \ell_i = \textstyle\sum_{s} \log p_s[\ldots, i],

  since, by conditional independence, the terms at element :math:`i` do not involve the other
  elements. A site with event dims inside the plate (``.to_event``) gives one block per event
  position: the elements along the plate with that event position.
* **a colouring** the user gives (``{"site": colours}``, colours an integer tensor of the site's
  coordinate shape, e.g. a checkerboard for a nearest-neighbour grid): coordinates of one colour
  are redrawn together, each from its own conditional, with all :math:`m k` single-coordinate
  candidate states of the colour in one model call. Pairwise interactions of the coordinate
  pairs of each colour (all, or a random 2,048) are checked at two random states (they must
  vanish); a colouring that fails is an error.

Everything else is updated one coordinate at a time.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch

from pyrogen.infer.site_layout import DiscreteSite

__all__ = [
    "PlateBlock",
    "ColourBlock",
    "GibbsPlan",
    "ColourGroup",
    "colour_block_groups",
    "plate_blocks",
    "colour_blocks",
    "gibbs_plan",
    "colour_log_conditional",
    "coordinates_log_conditional",
    "draw_block",
    "gumbel_max",
    "BLOCKS",
]

#: Accepted string values of ``blocks``: ``"auto"`` (plates, checked) and ``"none"``.
BLOCKS = ("auto", "none")

#: Coordinates per block compared with single-site conditionals when checking a plate block.
CHECKED_COORDINATES = 8

#: Pairs of one colour whose interaction is checked (all of them when there are fewer).
MAX_CHECKED_PAIRS = 2048

#: ``log_joint_fn(discrete (*batch, D), plate_dims=()) -> (*batch)`` or, with plate dims,
#: ``(*batch, *plate_shape)`` (see :meth:`~pyrogen.infer.pyro_target.PyroTarget.log_joint`).
PlateLogJointFn = Callable[..., torch.Tensor]


class PlateBlock(NamedTuple):
    """Coordinates of one discrete site that are independent along its plates.

    ``coordinates`` ``(E, B)``: row ``e`` holds the flat coordinate indices of event position
    ``e`` at each of the ``B`` plate elements (batch positions, C order); ``plate_dims`` are
    the site's batch dims as negative plate dims; ``batch_shape`` their sizes."""

    site: str
    coordinates: torch.Tensor
    plate_dims: tuple[int, ...]
    batch_shape: torch.Size
    cardinality: int


class ColourBlock(NamedTuple):
    """Coordinates ``(m,)`` of one colour of a user colouring, all of cardinality ``k``."""

    site: str
    colour: int
    coordinates: torch.Tensor
    cardinality: int


class ColourGroup(NamedTuple):
    """Colours of one size ``m`` and cardinality ``k`` (see :func:`colour_block_groups`)."""

    members: torch.Tensor  # (number of colours,): row of `table` per colour, -1 if not here
    table: torch.Tensor  # (G, m): the coordinates of each colour of the group
    cardinality: int


class GibbsPlan(NamedTuple):
    """The update units of a Gibbs sweep: plate-block rows, colours, then single coordinates.

    ``num_units`` = ``sum(E)`` over plate blocks + number of colours + number of single
    coordinates. Unit ``u`` is row ``u - plate_start[b]`` of plate block ``b`` when it falls in
    that block's range, and so on."""

    plate: tuple[PlateBlock, ...]
    colour: tuple[ColourBlock, ...]
    singles: torch.Tensor  # (S,) flat coordinate indices updated one at a time
    # The colours grouped for shared model calls (colour_block_groups), computed once by
    # gibbs_plan; None: computed by the sweep (a plan without colours, or built by hand).
    colour_groups: tuple[ColourGroup, ...] | None = None

    @property
    def num_units(self) -> int:
        return (
            sum(int(b.coordinates.shape[0]) for b in self.plate)
            + len(self.colour)
            + int(self.singles.numel())
        )


def colour_block_groups(
    colours: Sequence[ColourBlock], device: torch.device
) -> tuple[ColourGroup, ...]:
    """The colours grouped by (size, cardinality), so that chains updating different colours
    of one group (a checkerboard's two halves) are evaluated in one model call.

    Each group is a :class:`ColourGroup` ``(members, table, k)``: ``members``
    ``(len(colours),)`` maps a colour's index in ``colours`` to its row of ``table``
    ``(G, m)`` (its coordinates), ``-1`` for colours of other groups."""
    keys: dict[tuple[int, int], list[int]] = {}
    for q, block in enumerate(colours):
        keys.setdefault((int(block.coordinates.numel()), block.cardinality), []).append(q)
    groups = []
    for (_, k), qs in keys.items():
        members = torch.full((len(colours),), -1, dtype=torch.long, device=device)
        members[qs] = torch.arange(len(qs), device=device)
        table = torch.stack([colours[q].coordinates for q in qs])
        groups.append(ColourGroup(members, table, k))
    return tuple(groups)


def _site_coordinate_shape(site: DiscreteSite) -> torch.Size:
    """Shape of the site's coordinates: its value shape without a one-hot event dim."""
    base_event = site.support.dim() - 1
    return site.shape[: len(site.shape) - base_event]


def plate_blocks(
    target: Any,
    sites: list[DiscreteSite],
    dependencies: Mapping[str, Mapping[str, set[str]]] | None,
) -> list[PlateBlock]:
    """Plate blocks of ``sites`` from the prototype trace's plates and Pyro's posterior
    dependencies (``None``: dependency analysis unavailable, no plate blocks).

    A site qualifies when each of its batch dims of size > 1 is a vectorised plate along which
    the site is not coupled to itself in the posterior."""
    if dependencies is None:
        return []
    out = []
    for site in sites:
        rank, batch = site.batch_rank, site.shape[: site.batch_rank]
        if rank == 0 or batch.numel() <= 1 or site.name not in dependencies:
            continue
        coupled = dependencies[site.name].get(site.name, set())
        frames = {dim: (name, size) for name, dim, size in target.plate_frames.get(site.name, ())}
        dims = tuple(range(-rank, 0))
        independent = all(
            size == 1 or (d in frames and frames[d][1] == size and frames[d][0] not in coupled)
            for d, size in zip(dims, batch, strict=True)
        )
        if not independent:
            continue
        coord_shape = _site_coordinate_shape(site)
        events = coord_shape[rank:].numel()
        flat = torch.arange(site.num_coordinates, device=target.device) + site.offset
        coordinates = flat.reshape(batch.numel(), events).T.contiguous()
        out.append(PlateBlock(site.name, coordinates, dims, batch, int(site.support.shape[0])))
    return out


def colour_blocks(
    sites: list[DiscreteSite], colouring: Mapping[str, Any], device: torch.device
) -> list[ColourBlock]:
    """Colour blocks from ``{site name: integer colours of the site's coordinate shape}``."""
    by_name = {s.name: s for s in sites}
    out = []
    for name, colours in colouring.items():
        if name not in by_name:
            raise ValueError(
                f"blocks names site {name!r}, which is not a latent discrete site of the model "
                f"(those are {sorted(by_name)})"
            )
        site = by_name[name]
        colours = torch.as_tensor(colours)
        if colours.dtype.is_floating_point or colours.dtype == torch.bool:
            raise TypeError(
                f"blocks[{name!r}] must be an integer tensor of colours, got {colours.dtype}"
            )
        shape = _site_coordinate_shape(site)
        if colours.shape != shape:
            raise ValueError(
                f"blocks[{name!r}] must have the site's coordinate shape {tuple(shape)}, got "
                f"{tuple(colours.shape)}"
            )
        flat = colours.reshape(-1).to(device)
        for colour in sorted(set(flat.tolist())):
            members = (flat == colour).nonzero().squeeze(-1) + site.offset
            out.append(ColourBlock(name, int(colour), members, int(site.support.shape[0])))
    return out


def gibbs_plan(
    target: Any,
    blocks: str | Mapping[str, Any] | None,
    log_joint_fn: PlateLogJointFn,
    generator: torch.Generator,
    dependencies: Callable[[], Mapping[str, Mapping[str, set[str]]] | None],
) -> GibbsPlan:
    """The sweep's update units for ``blocks`` = ``"auto"``, ``"none"``/``None`` or a
    colouring mapping (sites it leaves out are treated as ``"auto"``).

    ``dependencies()`` returns Pyro's ``posterior_dependencies`` (called only when plate
    blocks are wanted). Plate blocks are checked numerically (dropped with a warning when the
    check fails); colours are checked and a failure raises ``ValueError``."""
    if blocks is None:
        blocks = "none"
    if isinstance(blocks, str):
        if blocks not in BLOCKS:
            raise ValueError(f"blocks must be one of {BLOCKS} or a mapping, got {blocks!r}")
        colouring: Mapping[str, Any] = {}
        auto = blocks == "auto"
    elif isinstance(blocks, Mapping):
        colouring, auto = blocks, True
    else:
        raise TypeError(
            f"blocks must be 'auto', 'none' or a mapping of site names to colours, got "
            f"{type(blocks).__name__}"
        )
    colour = colour_blocks(target.discrete_sites, colouring, target.device)
    for colour_block in colour:
        check_colour_block(target, colour_block, log_joint_fn, generator)
    rest = [s for s in target.discrete_sites if s.name not in colouring]
    plate: list[PlateBlock] = []
    if auto and any(s.batch_rank for s in rest):
        for block in plate_blocks(target, rest, dependencies()):
            problem = check_plate_block(target, block, log_joint_fn, generator)
            if problem is None:
                plate.append(block)
            else:
                warnings.warn(
                    f"discrete site {block.site!r} sits in plates but its elements are not "
                    f"conditionally independent ({problem}); it is updated one coordinate at "
                    "a time",
                    UserWarning,
                    stacklevel=4,
                )
    taken = torch.zeros(target.num_discrete, dtype=torch.bool, device=target.device)
    for b in plate:
        taken[b.coordinates.reshape(-1)] = True
    for c in colour:
        taken[c.coordinates] = True
    singles = (~taken).nonzero().squeeze(-1)
    groups = colour_block_groups(colour, target.device) if colour else None
    return GibbsPlan(tuple(plate), tuple(colour), singles, groups)


# ------------------------------------------------------------------ conditionals
def plate_block_log_conditional(
    discrete: torch.Tensor,
    coordinates: torch.Tensor,
    block: PlateBlock,
    log_joint_fn: PlateLogJointFn,
) -> torch.Tensor:
    """Full conditionals of the block coordinates ``coordinates`` ``(C, B)`` (one row of
    ``block.coordinates`` per chain), from one model call on ``k`` candidate states per
    chain; shape ``(C, B, k)``, log-normalised."""
    k = block.cardinality
    num_chains, num_coords = discrete.shape
    width = coordinates.shape[-1]
    candidates = discrete.unsqueeze(0).expand(k, num_chains, num_coords).clone()
    values = torch.arange(k, device=discrete.device).view(k, 1, 1).expand(k, num_chains, width)
    candidates.scatter_(2, coordinates.expand(k, num_chains, width), values)
    out = log_joint_fn(candidates, plate_dims=block.plate_dims)
    rank = len(block.plate_dims)
    out = out.expand(*out.shape[: out.dim() - rank], *block.batch_shape)
    out = out.reshape(k, num_chains, width)
    return torch.log_softmax(out.permute(1, 2, 0), dim=-1)


def colour_log_conditional(
    discrete: torch.Tensor, block: ColourBlock, log_joint_fn: PlateLogJointFn
) -> torch.Tensor:
    """Full conditionals ``(C, m, k)`` of the ``m`` coordinates of a colour
    (:func:`coordinates_log_conditional` with the colour's coordinates for every chain)."""
    coords = block.coordinates.expand(discrete.shape[0], -1)
    return coordinates_log_conditional(discrete, coords, block.cardinality, log_joint_fn)


def coordinates_log_conditional(
    discrete: torch.Tensor,
    coordinates: torch.Tensor,
    cardinality: int,
    log_joint_fn: PlateLogJointFn,
) -> torch.Tensor:
    r"""Full conditionals ``(C, m, k)`` of ``m`` conditionally independent coordinates per
    chain, ``coordinates`` ``(C, m)`` (chains may update different colours), all of
    cardinality ``k``, from one model call.

    The call evaluates :math:`1 + (k - 1) m` states per chain: the current state :math:`x`
    and, for each coordinate :math:`i` and shift :math:`s = 1, \dots, k - 1`, :math:`x` with
    :math:`x_i \leftarrow (x_i + s) \bmod k`. By conditional independence,
    :math:`\log P(x_i = j \mid x_{-I}) = \operatorname{log\,softmax}_j \log p(x_{i \to j})`
    with :math:`x_{i \to x_i} = x` itself, so the current state is shared by the ``m``
    coordinates (``m + 1`` states for bits instead of ``2m``).

    Example (two independent bits with log-odds 0 and log 3):
        >>> fn = lambda d: d[..., 1].double() * torch.tensor(3.0).log()
        >>> cond = coordinates_log_conditional(
        ...     torch.zeros(1, 2, dtype=torch.long), torch.tensor([[0, 1]]), 2, fn)
        >>> cond.exp()
        tensor([[[0.5000, 0.5000],
                 [0.2500, 0.7500]]], dtype=torch.float64)
    """
    k = cardinality
    num_chains, num_coords = discrete.shape
    m = coordinates.shape[-1]
    device = discrete.device
    current = discrete.gather(1, coordinates)  # (C, m)
    shifts = torch.arange(1, k, device=device)  # (k - 1,)
    # Candidate 1 + (s - 1) m + i changes coordinate i by shift s.
    moved = (current.unsqueeze(0) + shifts.view(-1, 1, 1)) % k  # (k - 1, C, m)
    moved = moved.permute(0, 2, 1).reshape((k - 1) * m, num_chains)
    where = coordinates.T.repeat(k - 1, 1)  # ((k - 1) m, C)
    candidates = discrete.unsqueeze(0).expand(1 + (k - 1) * m, num_chains, num_coords).clone()
    candidates[1:].scatter_(2, where.unsqueeze(-1), moved.unsqueeze(-1))
    out = log_joint_fn(candidates)  # (1 + (k - 1) m, C)
    alternatives = out[1:].reshape(k - 1, m, num_chains).permute(2, 1, 0)  # (C, m, k - 1)
    source = torch.cat([out[0].view(num_chains, 1, 1).expand(num_chains, m, 1), alternatives], -1)
    values = (current.unsqueeze(-1) + torch.arange(k, device=device)) % k  # (C, m, k)
    logits = torch.empty_like(source).scatter_(2, values, source)
    return torch.log_softmax(logits, dim=-1)


def draw_block(
    discrete: torch.Tensor,
    coordinates: torch.Tensor,
    log_conditional: torch.Tensor,
    generator: torch.Generator,
    coordinate_names: list[str] | None = None,
) -> torch.Tensor:
    """Redraw coordinates ``coordinates`` ``(C, B)`` from ``log_conditional`` ``(C, B, k)``.

    Raises ``ValueError`` naming a coordinate whose conditional is zero everywhere."""
    # The largest entry is NaN when any is, and -inf when all are: one reduction finds both.
    bad = ~(log_conditional.amax(-1) > -torch.inf)
    if bool(bad.any()):
        chain, column = (int(i) for i in bad.nonzero()[0])
        d = int(coordinates[chain, column])
        name = coordinate_names[d] if coordinate_names is not None else f"coordinate {d}"
        raise ValueError(
            f"the full conditional of discrete site {name} is -inf (or NaN) at every value in "
            f"chain {chain}: start the chains inside the support (initial_params) or check "
            "the model's constraints"
        )
    new = gumbel_max(log_conditional, generator)
    return discrete.scatter(1, coordinates, new)


def gumbel_max(log_probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    r"""One draw per row of the categorical distributions ``log_probs`` ``(..., k)``
    (normalised or not), by the Gumbel-max trick: :math:`\arg\max_j (\ell_j + G_j)` with
    :math:`G_j = -\log(-\log U_j)` i.i.d. standard Gumbel is distributed as
    :math:`\operatorname{softmax}(\ell)`; a value with :math:`\ell_j = -\infty` is never
    drawn. Shape ``(...)``, long. Much cheaper than ``torch.multinomial`` for many small rows.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> draws = gumbel_max(torch.tensor([[0.0, -torch.inf, 0.0]]).expand(4000, 3), g)
        >>> bool((draws != 1).all()), abs(float((draws == 2).double().mean()) - 0.5) < 0.05
        (True, True)
    """
    u = torch.rand(log_probs.shape, generator=generator, dtype=log_probs.dtype,
                   device=log_probs.device)  # fmt: skip
    # U = 0 gives G = -inf (never chosen), so no NaN arises.
    return (log_probs - (-u.log()).log()).argmax(-1)


# ------------------------------------------------------------------------ checks
def _random_states(target: Any, generator: torch.Generator, count: int = 2) -> torch.Tensor:
    return target.initial_state(count, generator)[0]


def check_plate_block(
    target: Any,
    block: PlateBlock,
    log_joint_fn: PlateLogJointFn,
    generator: torch.Generator,
) -> str | None:
    """Compare the block's conditionals with single-site ones (from the full log joint) for
    up to :data:`CHECKED_COORDINATES` coordinates of its first and last rows, at two random
    states; returns a description of the first disagreement, or ``None``."""
    states = _random_states(target, generator)
    width = block.coordinates.shape[-1]
    columns = torch.linspace(0, width - 1, min(width, CHECKED_COORDINATES)).round().long()
    with torch.no_grad():
        for row in {0, int(block.coordinates.shape[0]) - 1}:
            coords = block.coordinates[row].expand(len(states), width)
            try:
                fast = plate_block_log_conditional(states, coords, block, log_joint_fn)
            except (ValueError, RuntimeError, IndexError) as error:
                return f"evaluating the plate elements separately failed: {error}"
            for col in columns.tolist():
                k = block.cardinality
                single = states.unsqueeze(0).expand(k, *states.shape).clone()
                single[:, :, int(block.coordinates[row, col])] = torch.arange(
                    k, device=states.device
                ).unsqueeze(-1)
                joint = log_joint_fn(single).T  # (2, k)
                exact = joint.log_softmax(-1)
                finite = torch.isfinite(exact)
                # Both sides are differences of log joints of the size of ``joint``: their
                # rounding error grows with it (float32 at |log p| = 1e4 resolves ~1e-3),
                # so the tolerance does too; a real dependence shows at O(1).
                size = float(joint[torch.isfinite(joint)].abs().max()) if finite.any() else 0.0
                tol = 1e-4 + 64 * torch.finfo(joint.dtype).eps * size
                if not torch.equal(finite, torch.isfinite(fast[:, col])) or not torch.allclose(
                    fast[:, col][finite], exact[finite], atol=tol, rtol=1e-4
                ):
                    per_element = [round(p, 4) for p in fast[0, col].exp().tolist()]
                    single_site = [round(p, 4) for p in exact[0].exp().tolist()]
                    return (
                        f"at plate element {col} of a random state the conditional read per "
                        f"element is {per_element}, the exact one {single_site}"
                    )
    return None


def check_colour_block(
    target: Any,
    block: ColourBlock,
    log_joint_fn: PlateLogJointFn,
    generator: torch.Generator,
) -> None:
    r"""Check that pairs :math:`(i, i')` of one colour do not interact at two random states
    :math:`x`: :math:`f(a, a') - f(a, x_{i'}) - f(x_i, a') + f(x_i, x_{i'}) = 0` for other
    values :math:`a \ne x_i`, :math:`a' \ne x_{i'}` (:math:`f` the log joint with the two
    coordinates set, the rest at :math:`x`). Every pair of the colour is checked when there are
    at most :data:`MAX_CHECKED_PAIRS`, else that many drawn at random; an interaction that
    vanishes at both states (a three-way term with a third coordinate at 0) can escape. Raises
    ``ValueError`` when a pair interacts; pairs where the density is zero are skipped."""
    coords, k = block.coordinates, block.cardinality
    m = coords.numel()
    if m < 2 or k < 2:
        return
    first, second = torch.triu_indices(m, m, 1, device=coords.device)
    if first.numel() > MAX_CHECKED_PAIRS:
        keep = torch.randperm(first.numel(), generator=generator, device=coords.device)
        first, second = first[keep[:MAX_CHECKED_PAIRS]], second[keep[:MAX_CHECKED_PAIRS]]
    pairs = torch.stack([coords[first], coords[second]], -1)  # (P, 2)
    rows = torch.arange(len(pairs), device=coords.device)
    corners = ((1, 1), (1, 0), (0, 1), (0, 0))
    for state in _random_states(target, generator, 2):
        shift = torch.randint(1, k, pairs.shape, generator=generator, device=coords.device)
        other = (state[pairs] + shift) % k
        f_parts = []
        chunk = 512  # pairs per model call: 2,048 candidate states
        for start in range(0, len(pairs), chunk):
            part = slice(start, start + chunk)
            n = rows[part].numel()
            candidates = state.expand(n, 4, state.numel()).clone()
            local = torch.arange(n, device=coords.device)
            for corner, (a, b) in enumerate(corners):
                if a:
                    candidates[local, corner, pairs[part][:, 0]] = other[part][:, 0]
                if b:
                    candidates[local, corner, pairs[part][:, 1]] = other[part][:, 1]
            with torch.no_grad():
                f_parts.append(log_joint_fn(candidates).to(torch.float64))
        f = torch.cat(f_parts)
        interaction = f[:, 0] - f[:, 1] - f[:, 2] + f[:, 3]
        scale = 1e-4 * (1 + f.abs().amax(-1))
        bad = (interaction.abs() > scale) & torch.isfinite(f).all(-1)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            names = target.coordinate_names
            raise ValueError(
                f"blocks[{block.site!r}]: coordinates {names[int(pairs[i, 0])]} and "
                f"{names[int(pairs[i, 1])]} have colour {block.colour} but interact (log-joint "
                f"interaction {float(interaction[i]):.3g}); coordinates of one colour must be "
                "conditionally independent given the rest"
            )
