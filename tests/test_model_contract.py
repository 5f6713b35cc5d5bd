"""One contract for the four model families (RBM, VAE, SSVAE, GAN) and their fits.

Every model has ``.device``/``.dtype``, ``config()``, ``save``/``load`` and
``sample(n, generator)``; every fit takes ``(model, data...)`` positionally and the rest by
keyword (old positional calls warn), calls ``callback(epoch, model, history)`` once per
epoch (``True`` stops), and returns normally with ``history.interrupted`` on Ctrl-C.
Deprecated spellings (``visible=``, ``z_dim=``, the RBM's per-update ``callback``) warn.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from pyrogen import gan as gan_lib
from pyrogen import rbm as rbm_lib
from pyrogen import vae as vae_lib
from pyrogen.history import History
from pyrogen.io import save_module
from pyrogen.seeding import forked_global_rng
from pyrogen.training_loop import keyword_only

DT = torch.float64
WIDTH = 6
TIMING = {"epoch_time", "wall_time", "monitor_time"}


def _binary(n: int, seed: int) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, WIDTH), 0.4, dtype=DT), generator=_gen(seed))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@dataclass
class Family:
    """How to build, feed and fit one model family, at test size."""

    name: str
    build: Callable[[], Any]
    data: Callable[[], tuple[Any, ...]]
    fit: Callable[..., History]
    options: dict[str, Any]
    legacy: tuple[str, Any]  # (old positional name, value) for the first extra argument
    output: Callable[[Any], torch.Tensor]  # a deterministic function of the parameters


def _rbm() -> rbm_lib.RBM:
    return rbm_lib.RBM(WIDTH, 3, dtype=DT, seed=0)


def _vae() -> vae_lib.VAE:
    with forked_global_rng(0):
        return vae_lib.VAE(WIDTH, 2, hidden=(8,), dtype=DT)


def _ssvae() -> vae_lib.SSVAE:
    with forked_global_rng(0):
        return vae_lib.SSVAE(WIDTH, 2, 3, hidden=(8,), dtype=DT)


def _gan() -> gan_lib.GAN:
    with forked_global_rng(0):
        generator = gan_lib.mlp_generator(2, WIDTH, hidden=(8,), dtype=DT)
        discriminator = gan_lib.mlp_discriminator(WIDTH, hidden=(8,), dtype=DT)
        return gan_lib.GAN(gan_lib.ImplicitModel(generator, 2), discriminator)


def _ssvae_data() -> tuple[Any, ...]:
    x = _binary(40, 1)
    y = torch.randint(3, (10,), generator=_gen(2))
    return (x[:10], y), x[10:]


PROBE = _binary(5, 9)
LATENT = torch.randn(5, 2, generator=_gen(8), dtype=DT)

FAMILIES = [
    Family(
        "rbm",
        _rbm,
        lambda: (_binary(40, 1),),
        rbm_lib.fit,
        {"batch_size": 10, "monitor": "reconstruction"},
        ("algorithm", "cd"),
        lambda m: m.free_energy(PROBE),
    ),
    Family(
        "vae",
        _vae,
        lambda: (_binary(40, 1),),
        vae_lib.fit,
        {"batch_size": 10},
        ("epochs", 3),
        lambda m: torch.cat([m.decode(LATENT), *m.encode(PROBE)], -1),
    ),
    Family(
        "ssvae",
        _ssvae,
        _ssvae_data,
        vae_lib.fit_semisupervised,
        {"batch_size": 10},
        ("epochs", 3),
        lambda m: m.class_probs(PROBE),
    ),
    Family(
        "gan",
        _gan,
        lambda: (torch.randn(64, WIDTH, generator=_gen(1), dtype=DT),),
        gan_lib.fit,
        {"batch_size": 16},
        ("loss", "nonsaturating"),
        lambda m: torch.cat([m.logits(PROBE), m.generator.generate(LATENT).flatten()]),
    ),
]


@pytest.fixture(params=FAMILIES, ids=[f.name for f in FAMILIES])
def family(request) -> Family:
    return request.param


def _fit(family: Family, model: Any, **kwargs: Any) -> History:
    options = {"epochs": 3, "seed": 0, "progress": False, **family.options, **kwargs}
    return family.fit(model, *family.data(), **options)


def _series(history: History) -> dict[str, list[float]]:
    return {k: v for k, v in history.to_dict().items() if k not in TIMING}


def _same_series(a: History, b: History) -> bool:
    sa, sb = _series(a), _series(b)
    if sa.keys() != sb.keys():
        return False
    return all(
        all(
            (x == y) or (math.isnan(x) and math.isnan(y)) for x, y in zip(sa[k], sb[k], strict=True)
        )
        for k in sa
    )


def _same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------ the model contract
def test_device_and_dtype_follow_the_parameters(family):
    model = family.build()
    assert model.device == torch.device("cpu")
    assert model.dtype == DT
    model = model.to(torch.float32)
    assert model.dtype == torch.float32


def test_config_is_json_and_survives_save_load(family, tmp_path):
    model = family.build()
    config = model.config()
    assert json.loads(json.dumps(config)) == config
    path = tmp_path / f"{family.name}.safetensors"
    model.save(path)
    loaded = type(model).load(path, device="cpu")
    assert loaded.config() == config
    assert loaded.dtype == model.dtype and loaded.device == model.device
    with torch.no_grad():
        torch.testing.assert_close(family.output(loaded), family.output(model), rtol=0, atol=0)
    assert not list(tmp_path.glob(".*"))  # the atomic write left no temporary file


def test_sample_shape_and_reproducibility(family):
    model = family.build()
    a = model.sample(7, generator=_gen(3))
    b = model.sample(7, generator=_gen(3))
    c = model.sample(7, generator=_gen(4))
    assert a.shape == (7, WIDTH) and a.dtype == DT and not a.requires_grad
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_fit_positional_extras_warn_and_change_nothing(family):
    model = family.build()
    history = _fit(family, model)
    name, value = family.legacy
    old = family.build()
    options = {"epochs": 3, "seed": 0, "progress": False, **family.options}
    options.pop(name, None)
    with pytest.warns(FutureWarning, match=rf"{name}=\.\.\."):
        old_history = family.fit(old, *family.data(), value, **options)
    assert _same_series(history, old_history)
    assert _same_parameters(model, old)


def test_fit_rejects_too_many_positional_arguments(family):
    model = family.build()
    with pytest.raises(TypeError, match="positional"):
        family.fit(model, *family.data(), *([None] * 40))


def test_fit_is_reproducible_for_a_seed(family):
    a, b = family.build(), family.build()
    ha, hb = _fit(family, a), _fit(family, b)
    assert _same_series(ha, hb) and _same_parameters(a, b)
    assert len(ha) == 3 and all(t >= 0 for t in ha["epoch_time"])
    walls = ha["wall_time"]
    assert walls == sorted(walls)
    torch.testing.assert_close(walls[-1], sum(ha["epoch_time"]))
    assert ha.wall_time == walls[-1]


def test_callback_once_per_epoch_and_early_stop(family):
    model = family.build()
    calls = []

    def watch(epoch, seen, history):
        calls.append((epoch, seen is model, len(history), isinstance(history, History)))
        return epoch == 1

    history = _fit(family, model, epochs=4, callback=watch)
    assert calls == [(0, True, 1, True), (1, True, 2, True)]
    assert len(history) == 2 and not history.interrupted


def test_callback_returning_none_runs_every_epoch_and_changes_nothing(family):
    calls = []

    def draw(epoch, model, history):
        calls.append(epoch)
        torch.rand(3)  # the global stream, which Pyro's sites in the VAE fits draw from

    a, b = family.build(), family.build()
    history = _fit(family, a, callback=draw)
    assert calls == [0, 1, 2] and len(history) == 3
    assert _same_series(history, _fit(family, b)) and _same_parameters(a, b)


def test_keyboard_interrupt_returns_the_history_so_far(family):
    model = family.build()

    def interrupt(epoch, seen, history):
        if epoch == 1:
            raise KeyboardInterrupt

    history = _fit(family, model, epochs=4, callback=interrupt)
    assert history.interrupted and len(history) == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.is_grad_enabled()


def test_callback_must_be_callable(family):
    with pytest.raises(TypeError, match="callback"):
        _fit(family, family.build(), callback=3)


# ------------------------------------------------------------------ family specifics
def test_ssvae_sample_takes_labels_and_means():
    model = _ssvae()
    y = torch.tensor([0, 1, 2, 0])
    x = model.sample(4, _gen(0), y=y)
    mean = model.sample(4, _gen(0), y=y, mean=True)
    assert x.shape == mean.shape == (4, WIDTH)
    assert ((x == 0) | (x == 1)).all() and ((mean > 0) & (mean < 1)).all()
    with pytest.raises(ValueError, match="y"):
        model.sample(4, _gen(0), y=torch.tensor([0, 1]))


def test_gan_sample_is_the_generators_and_latent_dim():
    model = _gan()
    assert model.latent_dim == 2
    assert torch.equal(model.sample(5, _gen(1)), model.generator.sample(5, _gen(1)))


def test_gan_validation_adds_a_held_out_score_and_leaves_training_alone():
    data = torch.randn(64, WIDTH, generator=_gen(1), dtype=DT)
    held_out = torch.randn(32, WIDTH, generator=_gen(2), dtype=DT)
    a, b = _gan(), _gan()
    ha = gan_lib.fit(a, data, epochs=3, batch_size=16, seed=0, progress=False)
    hb = gan_lib.fit(b, data, epochs=3, batch_size=16, seed=0, progress=False, validation=held_out)
    assert _same_parameters(a, b)
    assert len(hb["validation_d_real"]) == 3
    assert all(0 < v < 1 for v in hb["validation_d_real"])
    assert _series(ha) == {k: v for k, v in _series(hb).items() if k != "validation_d_real"}
    with pytest.raises(ValueError, match="validation"):
        gan_lib.fit(a, data, epochs=1, batch_size=16, progress=False, validation=held_out[:, :2])


def test_gan_steps_still_work_with_the_callback():
    data = torch.randn(64, WIDTH, generator=_gen(1), dtype=DT)
    epochs = []
    history = gan_lib.fit(
        _gan(), data, steps=10, record_every=5, batch_size=16, seed=0, progress=False,
        callback=lambda epoch, m, h: epochs.append(epoch),
    )  # fmt: skip
    assert history["step"] == [5.0, 10.0] and epochs == [0, 1]


def test_rbm_step_callback_sees_every_update():
    steps = []
    rbm_lib.fit(
        _rbm(), _binary(40, 1), epochs=2, batch_size=10, seed=0, progress=False,
        step_callback=lambda step, model, wall: steps.append(step),
    )  # fmt: skip
    assert steps == list(range(1, 9))


def test_rbm_old_style_callback_warns_and_becomes_the_step_callback():
    a, b = _rbm(), _rbm()
    steps = []

    def old(step, rbm, wall_time):
        steps.append(step)

    with pytest.warns(FutureWarning, match="step_callback"):
        ha = rbm_lib.fit(a, _binary(40, 1), epochs=2, batch_size=10, seed=0, progress=False,
                         callback=old)  # fmt: skip
    hb = rbm_lib.fit(b, _binary(40, 1), epochs=2, batch_size=10, seed=0, progress=False)
    assert steps == list(range(1, 9))
    assert _same_series(ha, hb) and _same_parameters(a, b)
    with pytest.raises(TypeError, match="step_callback"):
        rbm_lib.fit(a, _binary(40, 1), epochs=1, progress=False, callback=old, step_callback=old)


# ------------------------------------------------------------------ deprecated names
def test_rbm_visible_is_the_old_name_of_likelihood(tmp_path):
    with pytest.warns(FutureWarning, match="likelihood="):
        old = rbm_lib.RBM(4, 3, visible="gaussian", seed=0)
    new = rbm_lib.RBM(4, 3, likelihood="gaussian", seed=0)
    assert old.likelihood == old.visible == "gaussian" and old.is_gaussian
    assert old.config() == new.config() and "visible" not in new.config()
    assert rbm_lib.RBM(4, 3, "gaussian").likelihood == "gaussian"  # positional, as before
    with pytest.raises(TypeError, match="likelihood"):
        rbm_lib.RBM(4, 3, likelihood="gaussian", visible="bernoulli")
    with pytest.raises(ValueError, match="likelihood"):
        rbm_lib.RBM(4, 3, likelihood="poisson")
    # A file written before the rename loads.
    config = {**new.config(), "visible": "gaussian"}
    del config["likelihood"]
    save_module(new, tmp_path / "old.safetensors", "RBM", config)
    assert rbm_lib.RBM.load(tmp_path / "old.safetensors").likelihood == "gaussian"


@pytest.mark.parametrize("cls", [vae_lib.VAE, vae_lib.SSVAE])
def test_z_dim_is_the_old_name_of_latent_dim(cls, tmp_path):
    extra = {"num_classes": 3} if cls is vae_lib.SSVAE else {}
    with pytest.warns(FutureWarning, match="latent_dim="):
        old = cls(WIDTH, z_dim=2, hidden=(8,), **extra)
    new = cls(WIDTH, latent_dim=2, hidden=(8,), **extra)
    assert old.latent_dim == old.z_dim == 2
    assert old.config() == new.config() and "z_dim" not in new.config()
    with pytest.raises(TypeError, match="latent_dim"):
        cls(WIDTH, 2, z_dim=2, hidden=(8,), **extra)
    with pytest.raises(TypeError, match="latent_dim"):
        cls(WIDTH, hidden=(8,), **extra)
    config = {**new.config(), "z_dim": 2}
    del config["latent_dim"]
    save_module(new, tmp_path / "old.safetensors", cls.__name__, config)
    assert cls.load(tmp_path / "old.safetensors").latent_dim == 2


def test_vae_sample_mean_positionally_warns():
    model = _vae()
    with pytest.warns(FutureWarning, match="mean="):
        old = model.sample(3, True)
    assert old.shape == (3, WIDTH) and ((old > 0) & (old < 1)).all()


def test_keyword_only_maps_names_and_rejects_duplicates():
    @keyword_only("epochs", "lr")
    def fit(model, data, *, lr=0.1, epochs=1):
        return epochs, lr

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit(None, None, epochs=2) == (2, 0.1)
    with pytest.warns(FutureWarning, match=r"test_model_contract\..*fit.*epochs=\.\.\., lr=\.\.\."):
        assert fit(None, None, 3, 0.5) == (3, 0.5)
    with pytest.raises(TypeError, match="multiple values"):
        fit(None, None, 3, epochs=4)
    with pytest.raises(TypeError, match="positional"):
        fit(None, None, 1, 2, 3)
