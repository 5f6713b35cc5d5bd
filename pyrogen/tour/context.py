"""State shared by the tour's stages: data, output folders, metrics, report, timings."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pyrogen.seeding import make_generator
from pyrogen.tour.config import TourConfig
from pyrogen.tour.report import Report

__all__ = ["TourContext"]


@dataclass
class TourContext:
    out: Path
    config: TourConfig
    device: torch.device
    seed: int
    progress: bool
    report: Report
    train: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor
    test_labels: torch.Tensor
    metrics: dict[str, Any] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    _features: Any = None

    @property
    def figures(self) -> Path:
        path = self.out / "figures"
        path.mkdir(exist_ok=True)
        return path

    def generator(self, offset: int = 0) -> torch.Generator:
        """A fresh generator on the tour's device, seeded from the tour seed and ``offset``."""
        return make_generator(self.seed * 1000 + offset, self.device)

    @property
    def features(self) -> Any:
        """The digits feature map of the Fréchet distance (trained once, then cached)."""
        if self._features is None:
            from pyrogen.metrics import digits_features

            self._features = digits_features(seed=self.seed, device=self.device)
        return self._features

    def frechet(self, samples: torch.Tensor) -> float:
        from pyrogen.metrics import frechet_distance

        return float(frechet_distance(samples.to(self.test), self.test, self.features))

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a stage, collect its metrics under ``metrics[name]``, print one line."""
        record: dict[str, Any] = {}
        print(f"[tour] {name} ...", file=sys.stderr, flush=True)
        tic = time.perf_counter()
        yield record
        seconds = time.perf_counter() - tic
        self.stage_seconds[name] = seconds
        record["stage_seconds"] = seconds
        self.metrics[name] = record
        headline = record.get("summary", "")
        print(f"[tour] {name}: {seconds:.1f} s. {headline}", flush=True)
