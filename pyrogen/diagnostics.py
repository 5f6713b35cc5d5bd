"""The one module that imports ArviZ: chains from any kernel become ``InferenceData``.

(Minimal first version: dict input only. Being extended.)
"""

from __future__ import annotations

from typing import Any

import arviz as az
import torch

__all__ = ["to_inference_data"]


def to_inference_data(source: Any, wall_time: float | None = None) -> az.InferenceData:
    """Convert a dict of ``(chain, draw, ...)`` tensors to ArviZ ``InferenceData``."""
    if isinstance(source, dict):
        posterior = {
            k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v)
            for k, v in source.items()
        }
        idata = az.from_dict(posterior=posterior)
        if wall_time is not None:
            idata.posterior.attrs["wall_time"] = float(wall_time)
        return idata
    raise TypeError(f"source must be a dict of (chain, draw, ...) tensors, got {type(source)}")
