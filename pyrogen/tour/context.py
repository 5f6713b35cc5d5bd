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

from pyrogen.data import DIGITS_SHAPE
from pyrogen.seeding import make_generator
from pyrogen.tour.config import TourConfig
from pyrogen.tour.report import Report

__all__ = ["TourContext"]


@dataclass
class TourContext:
    """What every stage reads: sizes, device, seed, report, and the data.

    ``train`` ``(n_train, H * W)`` and ``test`` ``(n_test, H * W)`` are the images every stage
    trains and evaluates on (the bundled digits unless ``pyrogen tour --data`` chose others);
    ``image_shape`` is ``(H, W)`` and ``data_name`` names the source. Labels (``(n,)`` int64)
    are ``None`` for unlabelled data.
    """

    out: Path
    config: TourConfig
    device: torch.device
    seed: int
    progress: bool
    report: Report
    train: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None
    test_labels: torch.Tensor | None
    image_shape: tuple[int, int] = DIGITS_SHAPE
    data_name: str = "digits"
    metrics: dict[str, Any] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    _features: Any = None

    @property
    def figures(self) -> Path:
        path = self.out / "figures"
        path.mkdir(exist_ok=True)
        return path

    @property
    def num_pixels(self) -> int:
        """Width of one flattened image, ``H * W``: the visible layer of the stages' models."""
        return int(self.train.shape[1])

    @property
    def is_digits(self) -> bool:
        """Whether the data are 8x8 images, the domain of the Fréchet digits features."""
        return tuple(self.image_shape) == DIGITS_SHAPE

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
        """Fréchet digits distance of ``samples`` ``(n, 64)`` to the test split.

        NaN for data that are not 8x8: the feature map is a classifier of the 8x8 digits.
        TODO(issue 10): a feature map for 28x28 MNIST (pyrogen.metrics).
        """
        from pyrogen.metrics import frechet_distance

        if not self.is_digits:
            return float("nan")
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
