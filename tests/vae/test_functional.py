"""pyrogen.vae.functional: the public maths agrees with the Pyro model/guide it feeds."""

from __future__ import annotations

import math
import re

import pyro
import pytest
import torch
from pyro import poutine

from pyrogen.vae import SSVAE, VAE
from pyrogen.vae import functional as vf


def _vae(likelihood: str = "bernoulli", sigma: float | None = None) -> VAE:
    torch.manual_seed(0)
    return VAE(6, 2, hidden=(5,), likelihood=likelihood, sigma=sigma, dtype=torch.float64)


def _data(vae: VAE, n: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if vae.is_bernoulli:
        return torch.bernoulli(torch.full((n, vae.x_dim), 0.4, dtype=torch.float64), generator=g)
    return torch.randn(n, vae.x_dim, generator=g, dtype=torch.float64)


@pytest.mark.parametrize(
    ("likelihood", "sigma"), [("bernoulli", None), ("gaussian", None), ("gaussian", 0.3)]
)
def test_pixel_log_prob_and_log_prior_are_the_model_trace_log_probs(likelihood, sigma):
    vae = _vae(likelihood, sigma)
    x = _data(vae)
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    pyro.clear_param_store()
    trace = poutine.trace(poutine.condition(vae.model, data={"z": z})).get_trace(x)
    trace.compute_log_prob()
    out = vae.decoder(z)
    pixels = vf.pixel_log_prob(vae, x, out)
    assert pixels.shape == (4, 6)
    torch.testing.assert_close(pixels.sum(-1), trace.nodes["x"]["log_prob"])
    torch.testing.assert_close(vf.pixel_log_likelihood(vae, x, z), pixels)
    torch.testing.assert_close(vf.log_prior(vae, z), trace.nodes["z"]["log_prob"])
    torch.testing.assert_close(vf.prior(vae).log_prob(z), vf.log_prior(vae, z))


def test_log_prior_closed_form():
    vae = _vae()
    z = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    expected = -0.5 * 5.0 - math.log(2 * math.pi)
    assert float(vf.log_prior(vae, z)) == pytest.approx(expected, abs=1e-12)


def test_pixel_log_prob_broadcasts_chains_against_images():
    vae = _vae()
    x = _data(vae, 3)
    out = torch.randn(5, 3, 6, dtype=torch.float64)  # (chains, images, x_dim)
    got = vf.pixel_log_prob(vae, x, out)
    assert got.shape == (5, 3, 6)
    torch.testing.assert_close(got[2], vf.pixel_log_prob(vae, x, out[2]))


def test_encode_is_the_guide_gaussian():
    vae = _vae()
    x = _data(vae)
    loc, scale = vf.encode(vae, x)
    assert loc.shape == scale.shape == (4, 2) and bool((scale > 0).all())
    pyro.clear_param_store()
    site = poutine.trace(vae.guide).get_trace(x).nodes["z"]["fn"].base_dist
    torch.testing.assert_close(site.loc, loc)
    torch.testing.assert_close(site.scale, scale)
    torch.testing.assert_close(vae.encode(x)[0], loc)
    batched = vf.encode(vae, x.expand(3, 4, 6))  # leading batch dimensions pass through
    assert batched[0].shape == (3, 4, 2)


def test_mean_and_sample_output():
    vae = _vae()
    out = torch.randn(4, 6, dtype=torch.float64)
    torch.testing.assert_close(vf.mean_output(vae, out), torch.sigmoid(out))
    a = vf.sample_output(vae, out, torch.Generator().manual_seed(3))
    b = vf.sample_output(vae, out, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}
    gauss = _vae("gaussian", 0.3)
    draw = vf.sample_output(gauss, out, torch.Generator().manual_seed(4))
    noise = torch.randn(out.shape, generator=torch.Generator().manual_seed(4), dtype=out.dtype)
    torch.testing.assert_close(draw, out + 0.3 * noise)
    torch.testing.assert_close(vf.mean_output(gauss, out), out)
    assert float(vf.noise_scale(gauss)) == pytest.approx(0.3)


def test_ssvae_functions_match_the_model():
    torch.manual_seed(0)
    ssvae = SSVAE(6, 2, 3, hidden=(5,), dtype=torch.float64)
    x = torch.bernoulli(torch.full((4, 6), 0.5, dtype=torch.float64))
    y = torch.tensor([0, 2, 1, 1])
    torch.testing.assert_close(torch.softmax(vf.class_logits(ssvae, x), -1), ssvae.class_probs(x))
    z = torch.randn(4, 2, dtype=torch.float64)
    pyro.clear_param_store()
    trace = poutine.trace(poutine.condition(ssvae.model, data={"z": z})).get_trace(x, y)
    logits = trace.nodes["x"]["fn"].base_dist.logits
    torch.testing.assert_close(vf.decode_logits(ssvae, z, y), logits)
    loc, scale = vf.encode(ssvae, x, y)
    site = poutine.trace(ssvae.guide).get_trace(x, y).nodes["z"]["fn"].base_dist
    torch.testing.assert_close(site.loc, loc)
    torch.testing.assert_close(site.scale, scale)


def test_bad_input_raises_naming_the_argument():
    vae = _vae()
    x = _data(vae)
    with pytest.raises(
        TypeError, match=re.escape("model must be a pyrogen.vae.VAE or pyrogen.vae.SSVAE")
    ):
        vf.encode(torch.nn.Linear(6, 4), x)
    with pytest.raises(ValueError, match="x must have last dimension 6"):
        vf.encode(vae, x[:, :5])
    with pytest.raises(TypeError, match=re.escape("x has dtype torch.float32")):
        vf.encode(vae, x.float())
    with pytest.raises(TypeError, match=re.escape("x must be a torch.Tensor")):
        vf.pixel_log_prob(vae, x.tolist(), x)
    with pytest.raises(ValueError, match="out must have last dimension 6"):
        vf.mean_output(vae, x[:, :3])
    with pytest.raises(ValueError, match="z must have last dimension 2"):
        vf.log_prior(vae, x)
    with pytest.raises(ValueError, match="only defined for likelihood='gaussian'"):
        vf.noise_scale(vae)
    with pytest.raises(ValueError, match="y is only for an SSVAE"):
        vf.encode(vae, x, torch.zeros(4, dtype=torch.int64))
    with pytest.raises(TypeError, match=re.escape("generator must be a torch.Generator")):
        vf.sample_output(vae, x, generator=0)
    with pytest.raises(TypeError, match=re.escape("ssvae must be a pyrogen.vae.SSVAE")):
        vf.class_logits(vae, x)
    ssvae = SSVAE(6, 2, 3, hidden=(5,), dtype=torch.float64)
    with pytest.raises(ValueError, match="needs the class y"):
        vf.encode(ssvae, x)
    with pytest.raises(TypeError, match="y must be an int64 tensor"):
        vf.decode_logits(ssvae, torch.zeros(4, 2, dtype=torch.float64), torch.zeros(4))
