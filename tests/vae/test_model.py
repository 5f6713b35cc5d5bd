"""VAE model/guide: exact identities, contract (gradients, SVI, Predictive, save/load), checks."""

from __future__ import annotations

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import SVI, Predictive, Trace_ELBO, TraceMeanField_ELBO

from pyrogen.io import save_module
from pyrogen.vae import VAE, fit

CONFIGS = [
    {"likelihood": "bernoulli"},
    {"likelihood": "gaussian"},
    {"likelihood": "gaussian", "sigma": 0.5},
    {"likelihood": "gaussian", "hidden": ()},
    {"likelihood": "bernoulli", "hidden": (16, 8)},
]


def _data(vae: VAE, n: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if vae.is_bernoulli:
        return torch.bernoulli(torch.full((n, vae.x_dim), 0.3), generator=g).to(vae.dtype)
    return torch.randn(n, vae.x_dim, generator=g, dtype=vae.dtype)


def _vae(config: dict, **kw) -> VAE:
    torch.manual_seed(0)
    return VAE(6, 3, **{"hidden": (16,), **config, **kw})


# ----------------------------------------------------------------- exact identities
@pytest.mark.parametrize("config", CONFIGS)
def test_model_log_joint_is_prior_plus_decoder_likelihood(config):
    """The traced model's log joint equals log N(z; 0, I) + log p(x|z) written out by hand."""
    vae = _vae(config, dtype=torch.float64)
    x = _data(vae)
    z = torch.randn(x.shape[0], vae.z_dim, dtype=torch.float64)
    trace = poutine.trace(poutine.condition(vae.model, {"z": z})).get_trace(x)
    out = vae.decoder(z)
    if vae.is_bernoulli:
        log_px = (x * out - torch.nn.functional.softplus(out)).sum()
    else:
        sigma = vae.log_sigma.exp()
        log_px = (-0.5 * ((x - out) / sigma) ** 2 - sigma.log() - 0.5 * math.log(2 * math.pi)).sum()
    log_pz = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum()
    torch.testing.assert_close(trace.log_prob_sum(), log_px + log_pz, rtol=1e-12, atol=1e-10)


def test_guide_is_the_encoder_gaussian():
    vae = _vae({}, dtype=torch.float64)
    x = _data(vae)
    trace = poutine.trace(vae.guide).get_trace(x)
    loc, scale = vae.encode(x)
    site = trace.nodes["z"]
    torch.testing.assert_close(site["fn"].base_dist.loc, loc)
    torch.testing.assert_close(site["fn"].base_dist.scale, scale)
    assert site["fn"].event_shape == (3,)


def test_subsample_scales_the_elbo_to_the_full_data():
    """With ``subsample`` the plate scales the batch log-likelihood by N / B."""
    vae = _vae({}, dtype=torch.float64)
    x = _data(vae, n=12)
    index = torch.tensor([0, 5, 7])
    elbo = TraceMeanField_ELBO()
    pyro.set_rng_seed(1)
    full = elbo.differentiable_loss(vae.model, vae.guide, x[index])
    pyro.set_rng_seed(1)
    scaled = elbo.differentiable_loss(vae.model, vae.guide, x, subsample=index)
    torch.testing.assert_close(scaled, full * 12 / 3, rtol=1e-12, atol=1e-9)


# ----------------------------------------------------------------- contract
@pytest.mark.parametrize("config", CONFIGS)
def test_every_parameter_gets_a_gradient(config):
    vae = _vae(config)
    x = _data(vae)
    loss = TraceMeanField_ELBO().differentiable_loss(vae.model, vae.guide, x)
    loss.backward()
    for name, p in vae.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("config", CONFIGS)
def test_one_epoch_lowers_the_loss_on_a_toy_batch(config):
    vae = _vae(config)
    x = _data(vae, n=32)
    elbo = TraceMeanField_ELBO(num_particles=64, vectorize_particles=True, max_plate_nesting=1)

    def loss() -> float:
        pyro.set_rng_seed(3)  # common random numbers: the comparison is not MC noise
        with torch.no_grad():
            return float(elbo.differentiable_loss(vae.model, vae.guide, x))

    before = loss()
    fit(vae, x, epochs=1, batch_size=4, lr=1e-2, seed=0, progress=False)
    assert loss() < before


def test_plain_pyro_svi_trains_the_pair():
    """The model/guide pair also works with stock SVI and pyro.optim (param store path)."""
    vae = _vae({})
    x = _data(vae, n=32)
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    losses = [svi.step(x) for _ in range(60)]
    assert sum(losses[-10:]) < sum(losses[:10])
    assert any(name.startswith("vae$$$") for name in pyro.get_param_store().keys())
    svi_sub = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    assert math.isfinite(svi_sub.step(x, subsample_size=8))


def test_predictive_prior_and_posterior():
    vae = _vae({})
    x = _data(vae, n=5)
    prior = Predictive(vae.model, num_samples=7)(None, 4)
    assert prior["z"].shape == (7, 4, 3) and prior["x"].shape == (7, 4, 6)
    assert set(prior["x"].unique().tolist()) <= {0.0, 1.0}
    posterior = Predictive(vae.model, guide=vae.guide, num_samples=7, parallel=True)(x)
    assert posterior["z"].shape == (7, 5, 3)


def test_fit_is_reproducible_and_records_history():
    x = _data(_vae({}), n=40)
    histories, states = [], []
    for _ in range(2):
        vae = _vae({})
        histories.append(
            fit(vae, x, epochs=3, batch_size=16, seed=5, validation=x[:10], progress=False)
        )
        states.append(vae.state_dict())
    assert histories[0]["elbo"] == histories[1]["elbo"]
    for k in states[0]:
        torch.testing.assert_close(states[0][k], states[1][k], rtol=0, atol=0)
    h = histories[0]
    assert len(h) == 3 and "validation_elbo" in h and len(h["epoch_time"]) == 3
    assert all(math.isfinite(v) for v in h["elbo"] + h["validation_elbo"])


def test_fit_trace_elbo_with_vectorized_particles():
    vae = _vae({"likelihood": "gaussian"})
    h = fit(vae, _data(vae, n=20), epochs=2, elbo="trace", num_particles=3, seed=0, progress=False)
    assert all(math.isfinite(v) for v in h["elbo"])


def test_fit_keyboard_interrupt_returns_partial_history(monkeypatch):
    vae = _vae({})
    x = _data(vae, n=20)
    calls = {"n": 0}
    original = torch.optim.Adam.step

    def interrupting_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # during the 4th epoch (2 steps per epoch)
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", interrupting_step)
    h = fit(vae, x, epochs=10, batch_size=10, seed=0, progress=False)
    assert h.interrupted and len(h) == 3
    assert vae.register_params  # the registration switch is restored


@pytest.mark.parametrize("config", CONFIGS)
def test_save_load_round_trip(tmp_path, config):
    vae = _vae(config)
    x = _data(vae)
    path = tmp_path / "vae.safetensors"
    vae.save(path)
    loaded = VAE.load(path)
    assert loaded.config() == vae.config()
    for k, v in vae.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)
    torch.testing.assert_close(loaded.reconstruct(x), vae.reconstruct(x), rtol=0, atol=0)
    other = tmp_path / "other.safetensors"
    save_module(vae, other, "RBM", {})
    with pytest.raises(ValueError, match="expected 'VAE'"):
        VAE.load(other)


def test_shapes_of_public_methods():
    vae = _vae({})
    x = _data(vae, n=5)
    loc, scale = vae.encode(x)
    assert loc.shape == scale.shape == (5, 3) and (scale > 0).all()
    assert vae.decode(loc).shape == (5, 6)
    assert ((vae.decode(loc) > 0) & (vae.decode(loc) < 1)).all()
    assert vae.reconstruct(x).shape == (5, 6)
    g = torch.Generator().manual_seed(0)
    s = vae.sample(4, generator=g)
    assert s.shape == (4, 6) and set(s.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(
        vae.sample(4, generator=torch.Generator().manual_seed(1)),
        vae.sample(4, generator=torch.Generator().manual_seed(1)),
    )
    assert vae.sample(4, mean=True).shape == (4, 6)


def test_extreme_weights_stay_finite():
    vae = _vae({})
    with torch.no_grad():
        for p in vae.parameters():
            p.mul_(1e3)
    x = _data(vae)
    loss = TraceMeanField_ELBO().differentiable_loss(vae.model, vae.guide, x)
    assert torch.isfinite(loss)


# ----------------------------------------------------------------- input validation
def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="latent_dim"):
        VAE(6, 0)
    with pytest.raises(TypeError, match="x_dim"):
        VAE(6.0, 2)
    with pytest.raises(ValueError, match="likelihood"):
        VAE(6, 2, likelihood="poisson")
    with pytest.raises(ValueError, match="sigma"):
        VAE(6, 2, sigma=0.5)
    with pytest.raises(ValueError, match="sigma"):
        VAE(6, 2, likelihood="gaussian", sigma=-1.0)
    with pytest.raises(ValueError, match=r"hidden\[1\]"):
        VAE(6, 2, hidden=(4, 0))
    with pytest.raises(TypeError, match="hidden"):
        VAE(6, 2, hidden=256)


def test_bad_data_is_refused():
    vae = _vae({})
    x = _data(vae)
    with pytest.raises(ValueError, match="last dimension 6"):
        vae.encode(x[:, :5])
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fit(vae, bad, epochs=1, progress=False)
    with pytest.raises(ValueError, match="binary"):
        fit(vae, x * 0.5, epochs=1, progress=False)
    with pytest.raises(TypeError, match="dtype"):
        vae.encode(x.double())
    with pytest.raises(ValueError, match="binary"):
        vae.model(x * 0.5)  # Pyro validation is on by default
    with pytest.raises(ValueError, match="elbo"):
        fit(vae, x, epochs=1, elbo="renyi", progress=False)
    with pytest.raises(ValueError, match="epochs"):
        fit(vae, x, epochs=0, progress=False)
    with pytest.raises(ValueError, match="num_samples"):
        vae.model(x, num_samples=3)
