"""Moved modules: the old import paths warn once and give the very same objects.

``pyrogen.random`` became :mod:`pyrogen.first_principles`, ``pyrogen.datasets`` became
:mod:`pyrogen.data.toy`, and ``pyrogen.infer.chain_kernel`` moved into
:mod:`pyrogen.infer.base`. ``pyrogen.data`` itself became a package whose names are unchanged
and import without a warning.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest

import pyrogen.data
import pyrogen.data.images
import pyrogen.data.toy
import pyrogen.first_principles
import pyrogen.infer.base

# old module -> (new module, the names the old module had, in its __all__)
MOVED = {
    "pyrogen.random": (
        "pyrogen.first_principles",
        [
            "LinearCongruential",
            "FiniteChain",
            "box_muller",
            "hull_dobell",
            "metropolis_hastings_matrix",
            "metropolis_hastings_chain",
            "gibbs_matrix",
            "gibbs_chain",
            "stationary_distribution",
            "detailed_balance_violation",
        ],
    ),
    "pyrogen.datasets": ("pyrogen.data.toy", ["grid", "mode_metrics", "ring"]),
    "pyrogen.infer.chain_kernel": ("pyrogen.infer.base", ["ChainKernel", "new_generator"]),
}

#: ``pyrogen.data.__all__`` before it became a package.
OLD_DATA_NAMES = [
    "load_digits",
    "load_idx",
    "load_mnist5k",
    "load_npz",
    "DIGITS_SHAPE",
    "ImageSplit",
    "MNIST_SHAPE",
    "MNIST_THRESHOLD",
]


def _import_old(name: str):
    """Import (or re-import) ``name`` inside ``pytest.warns``, so its warning is seen again."""
    with pytest.warns(DeprecationWarning, match=MOVED[name][0].replace(".", r"\.")) as record:
        if name in sys.modules:
            module = importlib.reload(sys.modules[name])
        else:
            module = importlib.import_module(name)
    ours = [w for w in record if issubclass(w.category, DeprecationWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    return module


@pytest.mark.parametrize("old", list(MOVED))
def test_old_module_warns_and_names_the_new_one(old):
    _import_old(old)


@pytest.mark.parametrize("old", list(MOVED))
def test_old_names_are_the_new_objects(old):
    new_name, names = MOVED[old]
    module = _import_old(old)
    new = importlib.import_module(new_name)
    assert sorted(module.__all__) == sorted(names)
    for name in names:
        assert getattr(module, name) is getattr(new, name), name
        assert name in new.__all__, name


def test_first_principles_submodules_hold_the_names():
    from pyrogen.first_principles import generators, markov_chains

    assert sorted(generators.__all__ + markov_chains.__all__) == sorted(
        pyrogen.first_principles.__all__
    )
    for name in pyrogen.first_principles.__all__:
        home = generators if name in generators.__all__ else markov_chains
        assert getattr(pyrogen.first_principles, name) is getattr(home, name)


def test_data_package_keeps_every_old_name():
    for name in OLD_DATA_NAMES:
        assert name in pyrogen.data.__all__, name
        assert getattr(pyrogen.data, name) is getattr(pyrogen.data.images, name), name


def test_real_and_toy_data_are_apart():
    assert not set(pyrogen.data.images.__all__) & set(pyrogen.data.toy.__all__)
    assert set(pyrogen.data.toy.__all__) == {"grid", "mode_metrics", "ring"}


def test_new_paths_import_without_a_warning_and_old_ones_warn_once():
    # A fresh interpreter: the first import of each old path, as a user's script does it.
    code = textwrap.dedent(
        """
        import warnings
        with warnings.catch_warnings(record=True) as new:
            warnings.simplefilter("always")
            from pyrogen.data import load_digits, load_mnist5k, ImageSplit
            from pyrogen.data.toy import ring
            from pyrogen.first_principles import LinearCongruential
            from pyrogen.infer.base import ChainKernel, VectorizedKernel
        with warnings.catch_warnings(record=True) as old:
            warnings.simplefilter("always")
            import pyrogen.random
            import pyrogen.datasets
            import pyrogen.infer.chain_kernel
            import pyrogen.random  # a second import is cached: no second warning
        mine = lambda ws: [str(w.message) for w in ws if "pyrogen" in str(w.message)]
        print(len(mine(new)), len(mine(old)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split() == ["0", "3"], out.stdout + out.stderr
