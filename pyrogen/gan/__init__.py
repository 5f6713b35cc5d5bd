"""Generative adversarial networks as implicit Pyro models: the game, its theory, latent MCMC."""

from pyrogen.gan.game import GAN, fit
from pyrogen.gan.implicit import ImplicitModel
from pyrogen.gan.latent import discriminator_energy, discriminator_log_density
from pyrogen.gan.networks import MLP, mlp_discriminator, mlp_generator
from pyrogen.gan.posterior import LatentPosterior, latent_posterior
from pyrogen.gan.recipe import (
    GANRecipe,
    gan_recipe,
    recipe_fit_kwargs,
    recipe_hidden,
    recipe_latent_dim,
)
from pyrogen.gan.theory import game_value, jensen_shannon, optimal_discriminator

__all__ = [
    "GAN",
    "GANRecipe",
    "MLP",
    "ImplicitModel",
    "LatentPosterior",
    "discriminator_energy",
    "discriminator_log_density",
    "fit",
    "gan_recipe",
    "game_value",
    "jensen_shannon",
    "latent_posterior",
    "mlp_discriminator",
    "mlp_generator",
    "optimal_discriminator",
    "recipe_fit_kwargs",
    "recipe_hidden",
    "recipe_latent_dim",
]
