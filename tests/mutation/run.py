r"""Mutation check: do the kernel and RBM tests catch deliberately planted bugs?

A test suite is judged by the bugs it catches (``../shared/STYLE.md``, "Trust, as code"). This
script holds a fixed list of :class:`Mutation`\ s, each a one-line change to the package
source that makes it wrong but still importable (a dropped Hastings term, a missing sigma, an
off-by-one AIS temperature, ...). For each one it

1. copies ``pyrogen/``, ``tests/`` and ``pyproject.toml`` into a fresh temporary directory,
2. applies the change there (the original text must occur exactly once in its file),
3. runs pytest serially (``-x -q -p no:cacheprovider -p no:xdist``) on the mutation's own list
   of test files, most relevant first, from that directory with ``PYTHONPATH`` pointing at it,
4. records whether a test failed (the mutation is *caught*) and which one failed first.

pyrogen is installed in editable mode in the venv, so an import could silently reach the
unmutated working tree: every pytest run loads a small plugin (``-p _mutation_guard``) that
imports ``pyrogen`` and aborts unless it comes from the temporary copy, and the baseline also
runs ``python -c "import pyrogen; print(pyrogen.__file__)"`` under the same environment.

The unmutated copy (the baseline) runs first on the union of the selected mutations' test
files and must pass. The exit status is 1 when the baseline fails or any mutation survives
(or could not be applied), else 0. The whole list takes 4 to 5 minutes with one job on two
CPU cores; CI does not run it.

Usage::

    .venv/bin/python tests/mutation/run.py                 # everything, results.json
    .venv/bin/python tests/mutation/run.py --list          # the mutations, nothing run
    .venv/bin/python tests/mutation/run.py --only hastings_q_sign,ais_skip_first_increment
    .venv/bin/python tests/mutation/run.py --jobs 2 --json /tmp/mutants.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "MUTATIONS",
    "Mutation",
    "Outcome",
    "apply_mutation",
    "main",
    "mutated_source",
    "run_one",
]

REPO = Path(__file__).resolve().parents[2]
DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"

#: The kernel/RBM test files, in the order the baseline runs them.
TEST_FILES = (
    "tests/infer/test_exact.py",
    "tests/infer/test_blocks.py",
    "tests/infer/test_informed.py",
    "tests/infer/test_tempered_mala.py",
    "tests/rbm/test_parallel_tempering.py",
    "tests/infer/test_gof.py",
    "tests/infer/test_trust.py",
    "tests/infer/test_sample.py",
    "tests/rbm/test_model.py",
    "tests/rbm/test_sigma.py",
    "tests/rbm/test_functional.py",
    "tests/rbm/test_ais_ess.py",
    "tests/rbm/test_likelihood.py",
    "tests/diagnostics/test_diagnostics.py",
    "tests/infer/test_sbc.py",
    "tests/infer/test_mcmc.py",  # last: 80 s of the 120 s the ten files take
)

#: Wall-clock limit of one pytest run, seconds (the baseline takes about 2 minutes).
DEFAULT_TIMEOUT = 400

PYTEST_FLAGS = ("-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "_mutation_guard")

# Loaded into every pytest run of a copy: fails the run unless pyrogen comes from that copy.
_GUARD = '''"""Abort the run unless pyrogen is imported from this copy (written by run.py)."""
import os
from pathlib import Path

import pytest


def pytest_configure(config):
    import pyrogen

    root = Path(os.environ["PYROGEN_MUTATION_ROOT"]).resolve()
    origin = Path(pyrogen.__file__).resolve()
    if root not in origin.parents:
        raise pytest.UsageError(f"pyrogen imported from {origin}, not from the copy {root}")
'''


@dataclass(frozen=True)
class Mutation:
    """One planted bug: replace ``original`` by ``replacement`` in ``pyrogen/<file>``.

    ``original`` is an exact substring of one source line and must occur exactly once in the
    file; neither it nor ``replacement`` spans a line break. ``tests`` are the test files to
    run (relative to the repository), the one expected to catch it first.
    """

    id: str
    description: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]


#: Short names whose file is not ``tests/<package>/test_<rest>.py`` for ``<package>_<rest>``.
_SHORT_NAMES = {
    "sbc": "tests/infer/test_sbc.py",
    "diagnostics": "tests/diagnostics/test_diagnostics.py",
}


def _test_path(name: str) -> str:
    """``"infer_gof"`` -> ``"tests/infer/test_gof.py"`` (the tests mirror the package)."""
    if name in _SHORT_NAMES:
        return _SHORT_NAMES[name]
    package, _, topic = name.partition("_")
    return f"tests/{package}/test_{topic}.py"


def _order(*first: str, rest: bool = True) -> tuple[str, ...]:
    """``first`` (short names such as ``"infer_gof"``), then, with ``rest``, the other
    kernel/RBM files (``rest=False`` where no other file reaches the mutated code)."""
    head = tuple(_test_path(name) for name in first)
    unknown = set(head) - set(TEST_FILES)
    if unknown:
        raise ValueError(f"unknown test files {sorted(unknown)}")
    return head + (tuple(t for t in TEST_FILES if t not in head) if rest else ())


# The only kernel/RBM test files that call pyrogen.rbm.ais.
_AIS_TESTS = _order("rbm_sigma", "rbm_ais_ess", "rbm_model", "rbm_likelihood", rest=False)
_BRACKET_TESTS = _order("rbm_likelihood", rest=False)

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "mala_backward_no_drift",
        "MALA's reverse density q(z | z') without the gradient drift at z'",
        "infer/mala.py",
        "log_q_backward = log_proposal_density(z, proposed, grad, eps)",
        "log_q_backward = log_proposal_density(z, proposed, 0 * grad, eps)",
        _order("infer_gof", "infer_sample", "sbc"),
    ),
    Mutation(
        "adapt_no_fixed_window",
        "step size adapted until the last warm-up step (no frozen final fifth)",
        "infer/adaptation.py",
        "return warmup_steps - int(FIXED_WINDOW_FRACTION * warmup_steps)",
        "return warmup_steps",
        _order("infer_trust", "infer_sample"),
    ),
    Mutation(
        "adapt_during_sampling",
        "MH keeps adapting its step size after warm-up (the warmup flag is ignored)",
        "infer/metropolis.py",
        "if warmup and adapt_step_size:",
        "if adapt_step_size:",
        _order("infer_trust", "infer_gof"),
    ),
    Mutation(
        "gaussian_v_no_sigma",
        "BlockGibbs draws Gaussian v | h with sd 1 instead of sigma",
        "rbm/functional.py",
        "return stat.add_(noise, alpha=c.scale)",
        "return stat.add_(noise)",
        _order("rbm_sigma", "infer_gof"),
    ),
    Mutation(
        "rbm_sample_visible_no_sigma",
        # RBM.sample_visible and BlockGibbs now share this line (the one sweep); the two
        # mutations differ in the tests that must catch it.
        "RBM.sample_visible draws Gaussian v | h with sd 1 instead of sigma",
        "rbm/functional.py",
        "return stat.add_(noise, alpha=c.scale)",
        "return stat.add_(noise)",
        _order("rbm_sigma", "rbm_model"),
    ),
    Mutation(
        "hastings_q_sign",
        "Hastings ratio with the proposal terms' signs swapped (+log q_fwd - log q_bwd)",
        "infer/proposal.py",
        "ratio = log_density_new - log_density_old + log_q_backward - log_q_forward",
        "ratio = log_density_new - log_density_old - log_q_backward + log_q_forward",
        _order("infer_exact", "infer_gof"),
    ),
    Mutation(
        "mh_accept_flipped",
        "MH accepts when log u > log r (accept/reject comparison reversed)",
        "infer/proposal.py",
        "accepted = torch.log(u) < log_ratio",
        "accepted = torch.log(u) > log_ratio",
        _order("infer_gof", "infer_trust"),
    ),
    Mutation(
        "hidden_logits_bias_sign",
        "BlockGibbs h | v logits use -c instead of the hidden bias c",
        "rbm/functional.py",
        "return torch.addmm(c.hidden_bias, v, c.weight, alpha=1.0 / c.scale)",
        "return torch.addmm(-c.hidden_bias, v, c.weight, alpha=1.0 / c.scale)",
        _order("infer_exact", "infer_gof"),
    ),
    Mutation(
        "hidden_logits_sigma_inverted",
        "BlockGibbs h | v logits scale v by sigma instead of 1 / sigma",
        "rbm/functional.py",
        "return torch.addmm(c.hidden_bias, v, c.weight, alpha=1.0 / c.scale)",
        "return torch.addmm(c.hidden_bias, v, c.weight, alpha=c.scale)",
        _order("rbm_sigma", "infer_gof"),
    ),
    Mutation(
        "block_gibbs_v_from_old_h",
        # The one sweep never sees the old h, so that exact bug cannot be written any more;
        # this is its closest form: the returned (v', h') is again not a Gibbs pair (v' is
        # drawn from one h, another h ~ P(h | v) is returned), the v-chain stays exact.
        "BlockGibbs returns an h' other than the one v' was drawn from",
        "rbm/functional.py",
        "return sample_visible(c, h, generator, beta, base_bias, rows=rows), h",
        "return sample_visible(c, h, generator, beta, base_bias, rows=rows), "
        "sample_hidden(c, v, generator, beta)",
        _order("infer_gof", "infer_sample", "rbm_sigma"),
    ),
    Mutation(
        "ais_skip_first_increment",
        "AIS loop starts at k = 2: the weight increment log p_1(v_1) - log p_0(v_1) is lost",
        "rbm/ais.py",
        "range(1, len(beta_list)),",
        "range(2, len(beta_list)),",
        _AIS_TESTS,
    ),
    Mutation(
        "ais_transition_off_by_one",
        "AIS sweep after increment k runs at beta_{k-1} instead of beta_k (off by one)",
        "rbm/ais.py",
        "v = gibbs_sweep(rbm, v, generator, cur, base_bias, logits)[0]",
        "v = gibbs_sweep(rbm, v, generator, prev, base_bias, logits)[0]",
        _AIS_TESTS,
    ),
    Mutation(
        "reverse_ais_not_reversed",
        "reverse AIS anneals from the base up to the model instead of back down",
        "rbm/ais.py",
        "beta_list = betas.flip(0).tolist()",
        "beta_list = betas.tolist()",
        _BRACKET_TESTS,
    ),
    Mutation(
        "floor_counts_duplicates",
        "the log Z floor sums repeated states more than once",
        "rbm/ais.py",
        "unique = torch.unique(rows, dim=0)",
        "unique = rows",
        _BRACKET_TESTS,
    ),
    Mutation(
        "bracket_ignores_floor",
        "the bracket's optimistic end uses the AIS estimate even below the floor",
        "rbm/likelihood.py",
        "upper = mean_neg_f - max(log_z_ais, floor)",
        "upper = mean_neg_f - log_z_ais",
        _BRACKET_TESTS,
    ),
    Mutation(
        "ess_chain_draw_swapped",
        "ESS computed with the chain and draw axes swapped",
        "diagnostics/statistics.py",
        'result = arviz_stats.ess(dataset, method="bulk")',
        'result = arviz_stats.ess(dataset.rename({"chain": "draw", "draw": "chain"}), '
        'method="bulk")',
        _order("diagnostics", "infer_sample"),
    ),
    Mutation(
        "warmup_not_discarded",
        "sample() skips warm-up, so its first draws are the chains' starting transient",
        "infer/vectorized.py",
        "state = run.warmup(state, warmup_steps, bar)",
        "state = run.warmup(state, 0, bar)",
        _order("infer_sample", "infer_trust"),
    ),
    Mutation(
        "shared_proposal_noise",
        "random-walk MH draws one noise vector and broadcasts it over all chains",
        "infer/random_walk.py",
        "continuous.shape, generator=generator, dtype=continuous.dtype, device=continuous.device",
        "continuous.shape[1:], generator=generator, dtype=continuous.dtype, "
        "device=continuous.device",
        _order("infer_gof", "infer_trust", "sbc"),
    ),
    Mutation(
        "discrete_gibbs_carried_log_joint_stale",
        "DiscreteGibbs carries the log joint of the state before the update, not after it",
        "infer/discrete_gibbs.py",
        "joints.gather(1, new).squeeze(-1)",
        "joints.gather(1, discrete.gather(1, coordinate.unsqueeze(-1))).squeeze(-1)",
        _order("infer_gof", "infer_blocks", "infer_exact"),
    ),
    Mutation(
        "colour_candidate_shift_direction",
        "colour Gibbs puts the log joint of value x+s at value x-s (invisible for bits)",
        "infer/gibbs_blocks.py",
        "values = (current.unsqueeze(-1) + torch.arange(k, device=device)) % k",
        "values = (current.unsqueeze(-1) - torch.arange(k, device=device)) % k",
        _order("infer_blocks", rest=False),
    ),
    Mutation(
        "discrete_gibbs_softmax_axis",
        "DiscreteGibbs full conditional normalised over chains instead of values",
        "infer/discrete_gibbs.py",
        "return torch.log_softmax(joints, dim=-1)",
        "return torch.log_softmax(joints, dim=0)",
        _order("infer_exact", "infer_gof"),
    ),
    Mutation(
        "gaussian_log_z_no_sigma",
        "Gaussian RBM log Z uses (2 pi)^(n/2) instead of (2 pi sigma^2)^(n/2)",
        "rbm/model.py",
        "log_z = log_z + 0.5 * self.n_visible * math.log(2 * math.pi * self.sigma**2)",
        "log_z = log_z + 0.5 * self.n_visible * math.log(2 * math.pi)",
        _order("rbm_sigma", "rbm_model"),
    ),
    Mutation(
        "missing_log_jacobian",
        "MH target in unconstrained space without log |det J| of the transforms",
        "infer/pyro_target.py",
        "return log_p + ladj if jacobian else log_p",
        "return log_p",
        _order("infer_exact", "sbc"),
    ),
    Mutation(
        "plate_block_terms_summed",
        "plate blocks read the log joint summed over the plate instead of per element",
        "infer/gibbs_blocks.py",
        "out = log_joint_fn(candidates, plate_dims=block.plate_dims)",
        "out = log_joint_fn(candidates).reshape(k, num_chains, *(1,) * len(block.plate_dims))",
        _order("infer_blocks", rest=False),
    ),
    Mutation(
        "plate_block_stale_state",
        "blocked sweep: chains updating a plate block keep their old state",
        "infer/discrete_gibbs.py",
        "discrete[rows] = draw_block(sub, coords, log_block, generator, names)",
        "discrete[rows] = sub",
        _order("infer_blocks", rest=False),
    ),
    Mutation(
        "informed_reverse_at_forward_index",
        "locally balanced MH: reverse proposal read at the forward move's index",
        "infer/locally_balanced.py",
        "new.log_density, state.log_density, log_q[rows, choice], log_q_back[rows, back]",
        "new.log_density, state.log_density, log_q[rows, choice], log_q_back[rows, choice]",
        _order("infer_informed", rest=False),
    ),
    Mutation(
        "langevin_no_backward",
        "DMALA without the reverse proposal density q(x | y)",
        "infer/discrete_langevin.py",
        "log_r = log_accept_ratio(new.log_density, state.log_density, forward, backward)",
        "log_r = log_accept_ratio(new.log_density, state.log_density, forward, forward)",
        _order("infer_informed", rest=False),
    ),
    Mutation(
        "gradient_ratio_sign",
        "Gibbs-with-Gradients rates with the gradient's sign flipped (still exact, uninformed)",
        "infer/neighbours.py",
        "ratio = (g.unsqueeze(2) * change).sum(-1)",
        "ratio = -(g.unsqueeze(2) * change).sum(-1)",
        _order("infer_informed", rest=False),
    ),
    Mutation(
        "tempered_swap_sign",
        "replica-exchange MALA: exchange ratio with its sign flipped",
        "infer/tempered_mala.py",
        "swap_ratio = swap_log_accept_ratio(ladder, e.log_likelihood)",
        "swap_ratio = -swap_log_accept_ratio(ladder, e.log_likelihood)",
        _order("infer_tempered_mala", rest=False),
    ),
    Mutation(
        "tempered_mala_stale_gradient",
        "replica-exchange MALA: reverse proposal density with the gradient at the old point",
        "infer/tempered_mala.py",
        "log_q_backward = log_proposal_density(z, proposed, grad_new, eps, inverse_mass)",
        "log_q_backward = log_proposal_density(z, proposed, grad, eps, inverse_mass)",
        _order("infer_tempered_mala", rest=False),
    ),
    Mutation(
        "tempered_mala_backward_unpreconditioned",
        "preconditioned MALA: proposal density drifts without the inverse mass matrix",
        "infer/mala.py",
        "mean = z_from + 0.5 * eps**2 * inverse_mass * grad_from",
        "mean = z_from + 0.5 * eps**2 * grad_from + 0 * inverse_mass",
        _order("infer_tempered_mala", rest=False),
    ),
    Mutation(
        "rbm_tempering_base_left_in_swap",
        "RBM replica exchange with a base: swaps on the whole log density, base included",
        "infer/block_gibbs.py",
        "out = out - base_log_density(c, state.visible, self.base_bias)",
        "out = out + 0.0 * base_log_density(c, state.visible, self.base_bias)",
        ("tests/infer/test_replica_exchange.py::test_block_gibbs_replica_exchange_is_invariant",),
    ),
    Mutation(
        "rbm_tempering_base_dropped_in_sweep",
        "tempered BlockGibbs sweep ignores its base (draws the base-free tempered conditionals)",
        "infer/block_gibbs.py",
        "v, h = functional.gibbs_sweep(c, state.visible, generator, beta, base_bias)",
        "v, h = functional.gibbs_sweep(c, state.visible, generator, beta)",
        ("tests/infer/test_replica_exchange.py::test_block_gibbs_replica_exchange_is_invariant",),
    ),
    Mutation(
        "pt_pcd_energy_sign",
        "PT-PCD exchange with the energy's sign flipped",
        "rbm/parallel_tempering.py",
        "log_l = -rbm.energy(chains.visible, chains.hidden)",
        "log_l = rbm.energy(chains.visible, chains.hidden)",
        _order("rbm_parallel_tempering", rest=False),
    ),
    Mutation(
        "inpaint_tempered_unmasked",
        "replica-exchange inpainting: likelihood over every pixel, holes included",
        "vae/inpaint.py",
        "return torch.where(observed, pixels, torch.zeros((), dtype=pixels.dtype)).sum(-1)",
        "return pixels.sum(-1)",
        (
            "tests/vae/test_inpaint.py::test_matches_quadrature_posterior_of_a_one_dimensional_latent",
        ),
    ),
)


@dataclass
class Outcome:
    """What one pytest run of a (mutated or baseline) copy gave."""

    id: str
    description: str
    caught: bool  # a test failed (for the baseline: it passed)
    status: str  # "caught", "survived", "passed", "failed", "error"
    first_failure: str | None
    seconds: float
    returncode: int | None
    tests: list[str] = field(default_factory=list)
    detail: str = ""


# ---------------------------------------------------------------------------- workspace
def make_copy(destination: Path) -> None:
    """``pyrogen/``, ``tests/`` (without this folder) and ``pyproject.toml`` under
    ``destination``, plus the import guard plugin."""
    caches = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")

    def ignore_tests(directory: str, names: list[str]) -> set[str]:
        skipped = set(caches(directory, names))
        if Path(directory) == REPO / "tests":
            skipped.add("mutation")
        return skipped

    shutil.copytree(REPO / "pyrogen", destination / "pyrogen", ignore=caches)
    shutil.copytree(REPO / "tests", destination / "tests", ignore=ignore_tests)
    shutil.copy2(REPO / "pyproject.toml", destination / "pyproject.toml")
    (destination / "_mutation_guard.py").write_text(_GUARD)


def mutated_source(source: str, mutation: Mutation) -> str:
    """``source`` with ``mutation`` applied; ``ValueError`` unless its original text occurs
    exactly once and the change stays on one line."""
    if "\n" in mutation.original or "\n" in mutation.replacement:
        raise ValueError(f"{mutation.id}: a mutation must not span lines")
    if mutation.original == mutation.replacement:
        raise ValueError(f"{mutation.id}: replacement equals the original")
    count = source.count(mutation.original)
    if count != 1:
        raise ValueError(
            f"{mutation.id}: {mutation.original!r} occurs {count} times in pyrogen/{mutation.file} "
            "(expected exactly once; has the source changed?)"
        )
    return source.replace(mutation.original, mutation.replacement)


def apply_mutation(root: Path, mutation: Mutation) -> None:
    """Apply ``mutation`` to the copy of ``pyrogen/`` under ``root`` (see
    :func:`mutated_source`)."""
    path = root / "pyrogen" / mutation.file
    path.write_text(mutated_source(path.read_text(), mutation))


def _environment(root: Path, single_thread: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root)  # ahead of the editable install's finder
    env["PYROGEN_MUTATION_ROOT"] = str(root)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    if single_thread:  # parallel jobs: one intra-op thread each, as under pytest-xdist
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    return env


def check_import_path(root: Path, single_thread: bool = False) -> str:
    """``pyrogen.__file__`` as imported under the copy's environment; ``RuntimeError`` unless
    it lies under ``root``."""
    out = subprocess.run(
        [sys.executable, "-c", "import pyrogen; print(pyrogen.__file__)"],
        cwd=root,
        env=_environment(root, single_thread),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if root.resolve() not in Path(out).resolve().parents:
        raise RuntimeError(f"pyrogen is imported from {out}, not from the copy {root}")
    return out


# ------------------------------------------------------------------------------ running
def _first_failure(junit: Path, output: str) -> str | None:
    """``file::test`` of the first failed or erroring test case (junit XML, else the ``-rfE``
    short summary of ``output``)."""
    if junit.exists():
        try:
            tree = ET.parse(junit)
        except ET.ParseError:
            tree = None
        if tree is not None:
            for case in tree.iter("testcase"):
                if case.find("failure") is not None or case.find("error") is not None:
                    module = case.get("classname", "").replace(".", "/")
                    return f"{module}.py::{case.get('name')}" if module else case.get("name")
    for line in output.splitlines():
        for tag in ("FAILED ", "ERROR "):
            if line.startswith(tag):
                return line[len(tag) :].split(" - ")[0].strip()
    return None


def run_pytest(
    root: Path, tests: Sequence[str], timeout: float, single_thread: bool
) -> tuple[int | None, str | None, str]:
    """Run pytest on ``tests`` in the copy ``root``: ``(returncode, first failure, output
    tail)``; the return code is None when the run timed out."""
    junit = root / "junit.xml"
    command = [sys.executable, "-m", "pytest", *PYTEST_FLAGS, "-rfE", f"--junitxml={junit}"]
    try:
        proc = subprocess.run(
            [*command, *tests],
            cwd=root,
            env=_environment(root, single_thread),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        text = out.decode(errors="replace") if isinstance(out, bytes) else out
        return None, _first_failure(junit, text), text[-2000:]
    output = proc.stdout + proc.stderr
    return proc.returncode, _first_failure(junit, output), output[-2000:]


def run_one(
    mutation: Mutation | None,
    tests: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
    single_thread: bool = False,
) -> Outcome:
    """Copy the package, apply ``mutation`` (None: the baseline), run ``tests``."""
    ident = mutation.id if mutation else "baseline"
    description = mutation.description if mutation else "unmutated source"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"pyrogen-mutant-{ident}-") as tmp:
        root = Path(tmp)
        make_copy(root)
        try:
            if mutation is None:
                check_import_path(root, single_thread)
            else:
                apply_mutation(root, mutation)
        except (ValueError, RuntimeError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", None) or str(exc)
            seconds = time.perf_counter() - start
            return Outcome(ident, description, False, "error", None, seconds, None, [], detail)
        code, first, tail = run_pytest(root, tests, timeout, single_thread)
    seconds = time.perf_counter() - start
    if code is None:
        status, caught, detail = "error", False, f"timed out after {timeout:.0f} s\n{tail}"
    elif mutation is None:
        caught = code == 0
        status, detail = ("passed", "") if caught else ("failed", tail)
    elif code == 1:  # tests ran and at least one failed
        status, caught, detail = "caught", True, ""
    elif code == 0:
        status, caught, detail = "survived", False, ""
    elif code == 2 and first is not None:  # a collection/import error: caught, but crudely
        status, caught, detail = "caught", True, "collection error\n" + tail
    else:  # usage error (e.g. the import guard), internal error, no tests collected
        status, caught, detail = "error", False, f"pytest exit code {code}\n{tail}"
    return Outcome(ident, description, caught, status, first, seconds, code, list(tests), detail)


# ------------------------------------------------------------------------------- output
def format_table(outcomes: Iterable[Outcome]) -> str:
    """A plain-text table: id, description, caught?, first failing test, seconds."""
    rows = [("id", "description", "caught?", "first failing test", "seconds")]
    for o in outcomes:
        caught = "yes" if o.caught else ("no" if o.status == "survived" else o.status)
        rows.append((o.id, o.description, caught, o.first_failure or "-", f"{o.seconds:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def select(only: str | None) -> list[Mutation]:
    """The mutations named in ``only`` (comma-separated ids), or all of them."""
    if not only:
        return list(MUTATIONS)
    wanted = [s.strip() for s in only.split(",") if s.strip()]
    known = {m.id: m for m in MUTATIONS}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise SystemExit(f"unknown mutation ids {unknown}; see --list")
    return [known[w] for w in wanted]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", metavar="ID[,ID]", help="run only these mutations")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--jobs", type=int, default=1, help="mutations run at once (default 1)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per pytest run"
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the baseline, then every selected mutation; print the table, write JSON. Returns
    the exit status: 0 when the baseline passes and every mutation is caught, else 1."""
    args = _parse(argv)
    mutations = select(args.only)
    if args.list:
        for m in mutations:
            print(f"{m.id}\n    {m.description}\n    pyrogen/{m.file}: {m.original!r}")
            print(f"    -> {m.replacement!r}\n    first: {m.tests[0]}")
        return 0
    problems = []
    for m in mutations:  # cheap: fail before the 2-minute baseline, not after it
        try:
            mutated_source((REPO / "pyrogen" / m.file).read_text(), m)
        except (OSError, ValueError) as exc:
            problems.append(str(exc))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    start = time.perf_counter()
    single_thread = args.jobs > 1
    needed = {t for m in mutations for t in m.tests}
    baseline_tests = [t for t in TEST_FILES if t in needed]
    print(f"baseline: {len(baseline_tests)} test files ...", flush=True)
    baseline = run_one(None, baseline_tests, args.timeout, single_thread)
    print(f"baseline {baseline.status} in {baseline.seconds:.1f} s", flush=True)
    outcomes: list[Outcome] = []
    if baseline.caught:

        def work(m: Mutation) -> Outcome:
            outcome = run_one(m, m.tests, args.timeout, single_thread)
            print(f"  {m.id}: {outcome.status} ({outcome.seconds:.1f} s)", flush=True)
            return outcome

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            outcomes = list(pool.map(work, mutations))
    else:
        print(baseline.detail, file=sys.stderr)
    total = time.perf_counter() - start

    print()
    print(format_table([baseline, *outcomes]))
    missed = [o for o in outcomes if not o.caught]
    print(
        f"\n{sum(o.caught for o in outcomes)}/{len(outcomes)} mutations caught; "
        f"total wall time {total:.1f} s ({args.jobs} job{'s' if args.jobs > 1 else ''})"
    )
    for o in missed:
        print(f"NOT CAUGHT: {o.id} ({o.status}) {o.detail}".rstrip(), file=sys.stderr)
    report = {
        "baseline": asdict(baseline),
        "mutations": [asdict(o) for o in outcomes],
        "caught": sum(o.caught for o in outcomes),
        "total": len(outcomes),
        "jobs": args.jobs,
        "total_seconds": round(total, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {args.json}")
    return 0 if baseline.caught and len(outcomes) == len(mutations) and not missed else 1


if __name__ == "__main__":
    sys.exit(main())
