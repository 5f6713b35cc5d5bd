"""gan_recipe: sizes at 8x8 and 28x28, the settings fit accepts, the tour's use, bad input."""

from __future__ import annotations

import inspect

import pytest
import torch

import pyrogen.tour.gan_stage as gan_stage
from pyrogen.gan import (
    MLP,
    GANRecipe,
    fit,
    gan_recipe,
    recipe_fit_kwargs,
    recipe_hidden,
    recipe_latent_dim,
)
from pyrogen.tour.models import DIGITS_GAN_FIT, digits_gan


def _hidden(net: MLP) -> list[int]:
    return [m.out_features for m in net if isinstance(m, torch.nn.Linear)][:-1]


@pytest.mark.parametrize(
    ("data_dim", "latent_dim", "generator_hidden"),
    [(64, 8, [256, 256]), (784, 32, [256, 512])],
)
def test_recipe_sizes(data_dim, latent_dim, generator_hidden):
    torch.manual_seed(0)
    recipe = gan_recipe(data_dim)
    assert isinstance(recipe, GANRecipe)
    g, d = recipe.gan.generator, recipe.gan.discriminator
    assert (g.latent_dim, g.out_dim) == (latent_dim, data_dim)
    assert _hidden(g.generator) == generator_hidden
    assert _hidden(d) == generator_hidden[::-1]  # the wide layer next to the pixels
    x = g.sample(5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, data_dim) and bool(((x >= 0) & (x <= 1)).all())  # sigmoid pixels
    assert recipe.gan.logits(x).shape == (5,)
    assert recipe_latent_dim(data_dim) == latent_dim
    assert list(recipe_hidden(data_dim)) == generator_hidden


def test_recipe_widths_grow_with_the_data_and_stay_bounded():
    assert recipe_hidden(16) == (256, 256) and recipe_latent_dim(16) == 8
    assert recipe_hidden(4096) == (256, 1024) and recipe_latent_dim(4096) == 64
    assert recipe_hidden(10**6) == (256, 1024) and recipe_latent_dim(10**6) == 128


def test_recipe_fit_kwargs_are_fit_arguments_and_fresh():
    kwargs = recipe_fit_kwargs(784)
    assert set(kwargs) <= set(inspect.signature(fit).parameters)
    assert kwargs["r1_penalty"] > 0  # binary pixels need it (see pyrogen.gan.recipe)
    kwargs["r1_penalty"] = -1.0
    assert recipe_fit_kwargs(784)["r1_penalty"] > 0
    torch.manual_seed(0)
    recipe = gan_recipe(784, latent_dim=4, hidden=(16,))
    data = (torch.rand(64, 784, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    settings = {**recipe.fit_kwargs, "batch_size": 32}
    history = fit(recipe.gan, data, steps=3, seed=0, progress=False, **settings)
    assert len(history["value"]) > 0


def test_tour_aliases_build_the_recipe_of_64_pixels():
    torch.manual_seed(3)
    alias = digits_gan()
    torch.manual_seed(3)
    recipe = gan_recipe(64)
    a, b = alias.state_dict(), recipe.gan.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert DIGITS_GAN_FIT == {"r1_penalty": recipe.fit_kwargs["r1_penalty"]}
    # A custom hidden still goes to both networks unreversed, as before the recipe existed.
    assert _hidden(digits_gan(hidden=(32, 16)).discriminator) == [32, 16]


class _Stop(Exception):
    pass


def test_tour_gan_stage_trains_the_recipe(make_tour_context, monkeypatch):
    calls: list[tuple] = []

    def spy_recipe(*args, **kwargs):
        recipe = gan_recipe(*args, **kwargs)
        calls.append((args, kwargs, recipe))
        return recipe

    def stop_fit(gan, data, **kwargs):
        calls.append((gan, kwargs))
        raise _Stop

    monkeypatch.setattr(gan_stage, "gan_recipe", spy_recipe)
    monkeypatch.setattr(gan_stage, "fit", stop_fit)
    data = (torch.rand(20, 64, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    ctx = make_tour_context(data, data)
    config = ctx.config
    with pytest.raises(_Stop):
        gan_stage.run_gan(ctx)
    (args, kwargs, recipe), (gan, fit_kwargs) = calls
    assert args[:2] == (64, config.gan_latent_dim) and kwargs["device"] == ctx.device
    assert gan is recipe.gan
    assert {k: fit_kwargs[k] for k in recipe.fit_kwargs} == recipe.fit_kwargs


def test_recipe_bad_input():
    with pytest.raises(ValueError, match="data_dim"):
        gan_recipe(0)
    with pytest.raises(TypeError, match="data_dim"):
        gan_recipe(64.0)
    with pytest.raises(ValueError, match="latent_dim"):
        gan_recipe(64, latent_dim=0)
    with pytest.raises(TypeError, match="hidden"):
        gan_recipe(64, hidden="256")
    with pytest.raises(ValueError, match=r"discriminator_hidden\[1\]"):
        gan_recipe(64, discriminator_hidden=(8, 0))
    with pytest.raises(TypeError, match="data_dim"):
        recipe_fit_kwargs(None)
