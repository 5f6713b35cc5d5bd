"""Sizes of the tour's runs: the default (under 5 minutes on 2 CPU cores) and ``--quick``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["TourConfig"]


@dataclass(frozen=True)
class TourConfig:
    """Every size the tour uses; :meth:`default` and :meth:`quick` are the two presets."""

    rbm_hidden: int = 64
    rbm_epochs: int = 100
    # Of each of the two estimators of the log-likelihood bracket (AIS and reverse AIS), with
    # equally spaced temperatures: about 5 s for both at 64x64 on a shared 2-core CPU (the
    # default schedule of 14,501 takes about 15 s). On the digits the bracket came out 0.01
    # nats wide with 4,000 temperatures and with 1,000 (quick).
    ais_chains: int = 100
    ais_temperatures: int = 2500
    rbm_sample_sweeps: int = 1000
    vae_z_dim: int = 8
    vae_epochs: int = 100
    vae_embedding_epochs: int = 60
    iwae_samples: int = 500
    inpaint_images: int = 8
    inpaint_samples: int = 1500
    gan_latent_dim: int = 8
    gan_steps: int = 3000
    superres_images: int = 6
    superres_chains: int = 16
    superres_samples: int = 4000
    denoise_images: int = 6
    denoise_chains: int = 16
    denoise_steps: int = 3000
    mcmc_chains: int = 4
    mcmc_warmup: int = 300
    mcmc_samples: int = 500
    vectorized_chains: int = 1024

    @classmethod
    def default(cls) -> TourConfig:
        return cls()

    @classmethod
    def quick(cls) -> TourConfig:
        return cls(
            rbm_hidden=32,
            rbm_epochs=25,
            ais_chains=100,
            ais_temperatures=1000,
            rbm_sample_sweeps=300,
            vae_epochs=25,
            vae_embedding_epochs=15,
            iwae_samples=100,
            inpaint_images=4,
            inpaint_samples=300,
            gan_steps=600,
            superres_images=3,
            superres_chains=4,
            superres_samples=400,
            denoise_images=3,
            denoise_chains=8,
            denoise_steps=800,
            mcmc_chains=2,
            mcmc_warmup=100,
            mcmc_samples=200,
            vectorized_chains=256,
        )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)
