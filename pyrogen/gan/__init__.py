"""Generative adversarial networks as implicit Pyro models: the game, its theory, latent MCMC,
discriminator-ratio sampling (MH-GAN, DRS)."""

from pyrogen.gan.discriminator_sampling import (
    DRSSamples,
    IndependenceChains,
    MHGANSamples,
    PlattCalibration,
    calibrate_discriminator,
    discriminator_rejection_sample,
    drs_log_acceptance,
    independence_sampler,
    mh_gan_sample,
    mh_log_acceptance,
    platt_scaling,
)
from pyrogen.gan.implicit import ImplicitModel
from pyrogen.gan.latent import discriminator_energy, discriminator_log_density
from pyrogen.gan.model import GAN
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
from pyrogen.gan.training import fit

__all__ = [
    "DRSSamples",
    "GAN",
    "GANRecipe",
    "MLP",
    "ImplicitModel",
    "IndependenceChains",
    "LatentPosterior",
    "MHGANSamples",
    "PlattCalibration",
    "calibrate_discriminator",
    "discriminator_energy",
    "discriminator_log_density",
    "discriminator_rejection_sample",
    "drs_log_acceptance",
    "fit",
    "gan_recipe",
    "game_value",
    "independence_sampler",
    "jensen_shannon",
    "latent_posterior",
    "mh_gan_sample",
    "mh_log_acceptance",
    "mlp_discriminator",
    "mlp_generator",
    "optimal_discriminator",
    "platt_scaling",
    "recipe_fit_kwargs",
    "recipe_hidden",
    "recipe_latent_dim",
]
