"""ImplicitModel, GAN and fit: contracts, the game's value at equilibrium, persistence."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine

from pyrogen.gan import (
    GAN,
    ImplicitModel,
    fit,
    mlp_discriminator,
    mlp_generator,
)

LOG4 = math.log(4.0)


def _identity_line(bias: float = 0.0) -> torch.nn.Linear:
    """G(z) = z + bias on 1-D latents: with bias 0 it reproduces N(0, 1) exactly."""
    lin = torch.nn.Linear(1, 1)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.fill_(bias)
    return lin


def _small_gan(seed: int = 0) -> GAN:
    torch.manual_seed(seed)
    return GAN(
        ImplicitModel(mlp_generator(2, 3, hidden=(8,)), 2), mlp_discriminator(3, hidden=(8,))
    )


# ---------------------------------------------------------------------- ImplicitModel
def test_implicit_model_pyro_sites():
    g = ImplicitModel(mlp_generator(2, 3, hidden=(8,)), latent_dim=2)
    assert g.out_dim == 3
    trace = poutine.trace(g.model).get_trace(num_samples=5)
    z, x = trace.nodes["z"]["value"], trace.nodes["x"]["value"]
    assert z.shape == (5, 2) and x.shape == (5, 3)
    assert torch.equal(x, g.generator(z))
    assert [f.name for f in trace.nodes["z"]["cond_indep_stack"]] == ["samples"]
    # The log joint is the latent prior alone: x is deterministic.
    trace.compute_log_prob()
    expected = dist.Normal(0.0, 1.0).log_prob(z).sum()
    assert torch.allclose(trace.log_prob_sum(), expected)


def test_implicit_model_sampling_is_seeded():
    g = ImplicitModel(mlp_generator(2, 3, hidden=(8,)), latent_dim=2)
    a = g.sample(7, generator=torch.Generator().manual_seed(0))
    b = g.sample(7, generator=torch.Generator().manual_seed(0))
    assert a.shape == (7, 3) and torch.equal(a, b) and not a.requires_grad
    prior = dist.Uniform(-torch.ones(2), torch.ones(2)).to_event(1)
    u = ImplicitModel(mlp_generator(2, 3, hidden=(8,)), 2, latent_dist=prior)
    state = torch.get_rng_state()
    z1 = u.sample_latent(6, generator=torch.Generator().manual_seed(1))
    z2 = u.sample_latent(6, generator=torch.Generator().manual_seed(1))
    assert torch.equal(z1, z2) and bool((z1.abs() <= 1).all())
    assert torch.equal(state, torch.get_rng_state())  # global stream untouched


def test_implicit_model_follows_dtype():
    g = ImplicitModel(mlp_generator(2, 3, hidden=(4,), dtype=torch.float64), 2)
    assert g.sample(3).dtype == torch.float64
    assert g.prior().sample().dtype == torch.float64


def test_implicit_model_has_no_log_prob():
    g = ImplicitModel(mlp_generator(2, 3, hidden=(4,)), 2)
    with pytest.raises(NotImplementedError, match="adversarial"):
        g.log_prob(torch.zeros(1, 3))


def test_implicit_model_validation():
    with pytest.raises(ValueError, match="latent_dim=3"):
        ImplicitModel(mlp_generator(2, 3), latent_dim=3)  # network expects width 2
    with pytest.raises(ValueError, match="event_shape"):
        ImplicitModel(mlp_generator(2, 3), 2, latent_dist=dist.Normal(torch.zeros(2), 1.0))
    with pytest.raises(TypeError, match="Module"):
        ImplicitModel(lambda z: z, 2)
    g = ImplicitModel(mlp_generator(2, 3), 2)
    with pytest.raises(ValueError, match="last dimension 2"):
        g.generate(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="num_samples"):
        g.model(0)


# ---------------------------------------------------------------------- GAN
def test_gan_value_matches_hand_computation():
    gan = _small_gan()
    real, fake = torch.randn(50, 3), torch.randn(40, 3)
    d = gan.discriminator
    expected = (
        torch.log(torch.sigmoid(d(real))).mean() + torch.log(1 - torch.sigmoid(d(fake))).mean()
    )
    assert torch.allclose(gan.value(real, fake), expected, atol=1e-6)
    assert gan.logits(real).shape == (50,)
    assert gan.probability(real).shape == (50,)


def test_gan_validation():
    g = ImplicitModel(mlp_generator(2, 3), 2)
    with pytest.raises(ValueError, match="out_dim=3"):
        GAN(g, mlp_discriminator(4))
    with pytest.raises(ValueError, match="logits of shape"):
        GAN(g, torch.nn.Linear(3, 2))
    with pytest.raises(TypeError, match="ImplicitModel"):
        GAN(mlp_generator(2, 3), mlp_discriminator(3))


def test_fit_validation():
    gan = _small_gan()
    data = torch.randn(64, 3)
    with pytest.raises(ValueError, match="width 4"):
        fit(gan, torch.randn(64, 4), steps=1, progress=False)
    with pytest.raises(ValueError, match="exactly one"):
        fit(gan, data, steps=1, epochs=1, batch_size=32, progress=False)
    with pytest.raises(ValueError, match="exactly one"):
        fit(gan, data, batch_size=32, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        fit(gan, data, steps=1, batch_size=65, progress=False)
    with pytest.raises(ValueError, match="loss"):
        fit(gan, data, steps=1, batch_size=32, loss="wasserstein", progress=False)
    with pytest.raises(TypeError, match="dtype"):
        fit(gan, data.double(), steps=1, batch_size=32, progress=False)
    with pytest.raises(ValueError, match="betas"):
        fit(gan, data, steps=1, batch_size=32, betas=(0.5, 1.5), progress=False)
    with pytest.raises(ValueError, match="lr"):
        fit(gan, data, steps=1, batch_size=32, lr=-1.0, progress=False)
    with pytest.raises(ValueError, match="r1_penalty"):
        fit(gan, data, steps=1, batch_size=32, r1_penalty=-1.0, progress=False)


def test_fit_updates_every_parameter_and_is_reproducible():
    data = torch.randn(256, 3, generator=torch.Generator().manual_seed(0))
    runs = []
    for _ in range(2):
        gan = _small_gan(seed=1)
        before = {k: v.clone() for k, v in gan.state_dict().items()}
        history = fit(gan, data, steps=3, batch_size=32, seed=5, progress=False)
        for name, value in gan.state_dict().items():
            assert not torch.equal(value, before[name]), f"{name} received no update"
        assert all(p.grad is None for p in gan.parameters())
        runs.append(gan.state_dict())
    for name in runs[0]:
        assert torch.equal(runs[0][name], runs[1][name])
    assert set(history.series) >= {
        "discriminator_loss",
        "generator_loss",
        "value",
        "d_real",
        "d_fake",
    }
    assert history["step"] == [1.0, 2.0, 3.0]
    assert history["discriminator_loss"][0] == -history["value"][0]


def test_fit_epochs_and_records():
    gan = _small_gan()
    data = torch.randn(100, 3)
    history = fit(gan, data, epochs=2, batch_size=25, d_steps=2, progress=False)
    # 4 discriminator batches per epoch at d_steps=2: 2 steps per epoch, one record each.
    assert history["step"] == [2.0, 4.0]
    assert 0.0 < history.last("d_real") < 1.0


def test_training_discriminator_alone_reaches_minus_log4():
    """p_g = p_data exactly (G(z) = z, z ~ N(0,1)); the best D is 1/2 and V(G, D*) = -log 4."""
    torch.manual_seed(0)
    data = torch.randn(20000, 1, generator=torch.Generator().manual_seed(1))
    disc = mlp_discriminator(1, hidden=(16, 16))
    with torch.no_grad():
        disc[-2].bias.fill_(3.0)  # start confidently wrong: D ~ 0.95 everywhere
    gan = GAN(ImplicitModel(_identity_line(), 1), disc)
    history = fit(
        gan, data, steps=300, batch_size=1000, lr=1e-2, train_generator=False, seed=0,
        progress=False, record_every=10,
    )  # fmt: skip
    assert history["value"][0] < -LOG4 - 0.5
    assert math.isnan(history.last("generator_loss"))
    assert float(gan.generator.generator.bias.detach()) == 0.0  # generator untouched
    # Estimate V on fresh samples; the Monte Carlo error must be far below the 0.05 tolerance.
    g = torch.Generator().manual_seed(2)
    real, fake = torch.randn(100000, 1, generator=g), gan.generator.sample(100000, g)
    with torch.no_grad():
        log_d = F.logsigmoid(gan.logits(real))
        log_1md = F.logsigmoid(-gan.logits(fake))
    mcse = math.sqrt(float(log_d.var()) / len(real) + float(log_1md.var()) / len(fake))
    assert mcse < 0.005
    assert abs(float(log_d.mean() + log_1md.mean()) + LOG4) < 0.05


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax"])
def test_generator_learns_a_shifted_gaussian(loss):
    """G(z) = w z + b starts at b = 3; the data are N(0, 1); both losses pull b to 0."""
    torch.manual_seed(0)
    data = torch.randn(8192, 1, generator=torch.Generator().manual_seed(1))
    gan = GAN(ImplicitModel(_identity_line(3.0), 1), mlp_discriminator(1, hidden=(16, 16)))
    history = fit(
        gan, data, loss=loss, steps=400, batch_size=512, lr=(5e-3, 2e-2), seed=0, progress=False
    )
    line = gan.generator.generator
    assert abs(float(line.bias.detach())) < 0.25 and abs(float(line.weight.detach()) - 1.0) < 0.3
    assert abs(history.last("value") + LOG4) < 0.05


class _Constant(torch.nn.Module):
    """The Dirac-GAN generator G(z) = theta, whatever z."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor([value]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.theta * torch.ones_like(z)


@pytest.mark.parametrize("r1_penalty", [0.0, 1.0])
def test_r1_penalty_makes_the_dirac_gan_converge(r1_penalty):
    """Mescheder et al. (2018), Sec. 2: data at the point 0, G(z) = theta, d(x) = psi x.

    The equilibrium is theta = psi = 0. Unregularised gradient play circles around it and
    never settles; the R1 penalty (gamma / 2) psi^2 makes it locally convergent.
    """
    torch.manual_seed(0)
    disc = torch.nn.Linear(1, 1, bias=False)
    gan = GAN(ImplicitModel(_Constant(1.0), 1), disc)
    history = fit(
        gan, torch.zeros(64, 1), steps=1000, batch_size=64, lr=0.05, seed=0, progress=False,
        r1_penalty=r1_penalty,
    )  # fmt: skip
    theta, psi = float(gan.generator.generator.theta.detach()), float(disc.weight.detach())
    if r1_penalty == 0.0:
        assert abs(theta) > 0.1 or abs(psi) > 0.1
    else:
        assert abs(theta) < 1e-3 and abs(psi) < 1e-3
        assert abs(history.last("value") + LOG4) < 1e-3


class _InterruptingDiscriminator(torch.nn.Module):
    """Raises KeyboardInterrupt on its ``limit``-th forward call (a simulated Ctrl-C)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.net, self.calls, self.limit = mlp_discriminator(3, hidden=(4,)), 0, limit

    def forward(self, x):
        self.calls += 1
        if self.calls == self.limit:
            raise KeyboardInterrupt
        return self.net(x)


def test_fit_is_interruptible():
    disc = _InterruptingDiscriminator(limit=1 + 3 * 5)  # 1 probe, then 3 calls per step
    gan = GAN(ImplicitModel(mlp_generator(2, 3, hidden=(4,)), 2), disc)
    gan.eval()
    history = fit(gan, torch.randn(64, 3), steps=100, batch_size=8, progress=False)
    assert history.interrupted
    assert history["step"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert not gan.discriminator.training and not gan.generator.training  # modes restored


# ---------------------------------------------------------------------- persistence
def test_gan_save_load_round_trip(tmp_path):
    gan = _small_gan()
    path = tmp_path / "gan.safetensors"
    gan.save(path)
    loaded = GAN.load(path)
    x = torch.randn(5, 3)
    z = torch.randn(5, 2)
    assert torch.equal(loaded.logits(x), gan.logits(x))
    assert torch.equal(loaded.generator.generate(z), gan.generator.generate(z))
    assert loaded.generator.latent_dim == 2
    # Custom modules: pass freshly built ones, only the weights are read.
    custom = GAN.load(path, generator=mlp_generator(2, 3, hidden=(8,)),
                      discriminator=mlp_discriminator(3, hidden=(8,)))  # fmt: skip
    assert torch.equal(custom.logits(x), gan.logits(x))


def test_implicit_model_save_load_round_trip(tmp_path):
    g = ImplicitModel(mlp_generator(2, 3, hidden=(8,), dtype=torch.float64), 2)
    g.save(tmp_path / "g.safetensors")
    loaded = ImplicitModel.load(tmp_path / "g.safetensors")
    z = torch.randn(4, 2, dtype=torch.float64)
    assert torch.equal(loaded.generate(z), g.generate(z))
    with pytest.raises(ValueError, match="expected 'GAN'"):
        GAN.load(tmp_path / "g.safetensors")


def test_save_requires_rebuildable_networks(tmp_path):
    gan = GAN(ImplicitModel(torch.nn.Linear(2, 3), 2), mlp_discriminator(3))
    with pytest.raises(TypeError, match="config"):
        gan.save(tmp_path / "x.safetensors")
    prior = dist.Uniform(-torch.ones(2), torch.ones(2)).to_event(1)
    custom = GAN(ImplicitModel(mlp_generator(2, 3), 2, latent_dist=prior), mlp_discriminator(3))
    custom.save(tmp_path / "c.safetensors")
    with pytest.raises(ValueError, match="latent_dist"):
        GAN.load(tmp_path / "c.safetensors")
    assert GAN.load(tmp_path / "c.safetensors", latent_dist=prior).generator.latent_dist is prior


def test_model_composes_under_pyro_handlers():
    """The implicit model is an ordinary Pyro model: condition and replay work on "z"."""
    g = ImplicitModel(mlp_generator(2, 3, hidden=(8,)), 2)
    z = torch.randn(4, 2)
    x = poutine.condition(g.model, data={"z": z})(num_samples=4)
    assert torch.equal(x, g.generator(z))
    pyro.set_rng_seed(3)
    first = poutine.trace(g.model).get_trace(num_samples=2)
    replayed = poutine.trace(poutine.replay(g.model, trace=first)).get_trace(num_samples=2)
    assert torch.equal(first.nodes["x"]["value"], replayed.nodes["x"]["value"])


def test_game_module_is_a_deprecated_shim():
    """pyrogen.gan.game was split into gan.model and gan.training; importing it warns."""
    import importlib
    import sys

    import pyrogen.gan

    sys.modules.pop("pyrogen.gan.game", None)
    with pytest.warns(DeprecationWarning, match="pyrogen.gan.game is deprecated"):
        game = importlib.import_module("pyrogen.gan.game")
    assert game.GAN is GAN and game.fit is fit
    for name in pyrogen.gan.__all__:  # every public name still imports from pyrogen.gan
        assert getattr(pyrogen.gan, name) is not None


def test_probe_and_from_state():
    torch.manual_seed(0)
    g = ImplicitModel(mlp_generator(2, 3, hidden=(4,)), 2)
    g.generator.train()
    x = g.probe(5)
    assert x.shape == (5, 3) and not x.requires_grad and g.generator.training
    assert torch.equal(x, g.generator(torch.zeros(5, 2)).detach())
    with pytest.raises(ValueError, match="n must be"):
        g.probe(0)
    copy = ImplicitModel.from_state(g.config(), g.state_dict())
    assert torch.equal(copy.probe(2), g.probe(2))
