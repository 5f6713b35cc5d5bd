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

__all__ = ["MNIST_PIXELS", "TourContext"]

#: Width of a flattened 28x28 image, the domain of the MNIST Fréchet features.
MNIST_PIXELS = 28 * 28


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
    def image_noun(self) -> str:
        """``"digits"`` for the 8x8 digits, ``"images"`` otherwise (figure titles)."""
        return "digits" if self.is_digits else "images"

    @property
    def has_features(self) -> bool:
        """Whether a built-in Fréchet feature map fits the data: the 8x8 digits, or 784-pixel
        images with training labels (the MNIST classifier is trained on them)."""
        if self.is_digits:
            return True
        return self.num_pixels == MNIST_PIXELS and self.train_labels is not None

    @property
    def frechet_name(self) -> str:
        """How the report names the Fréchet distance of these data."""
        return "Fréchet digits distance" if self.is_digits else "Fréchet MNIST distance"

    @property
    def features(self) -> Any:
        """The Fréchet feature map (trained once, then cached): the digits classifier of
        :func:`pyrogen.metrics.digits_features` on 8x8 digits, the 28x28 classifier of
        :func:`pyrogen.metrics.mnist_features` trained on ``train`` and ``train_labels``
        at 784 pixels (:func:`pyrogen.metrics.frechet_features`)."""
        if self._features is None:
            from pyrogen.metrics import frechet_features

            if not self.has_features:
                raise ValueError(
                    f"no built-in Fréchet feature map for {self.data_name} "
                    f"({self.num_pixels} pixels, labels {self.train_labels is not None})"
                )
            self._features = frechet_features(
                self.num_pixels,
                self.train,
                self.train_labels,
                seed=self.seed,
                device=self.device,
            )
        return self._features

    def frechet(self, samples: torch.Tensor) -> float:
        """Fréchet distance of ``samples`` ``(n, H * W)`` to the test split under
        :attr:`features`; NaN where no built-in feature map fits (:attr:`has_features`)."""
        from pyrogen.metrics import frechet_distance

        if not self.has_features:
            return float("nan")
        return float(frechet_distance(samples.to(self.test), self.test, self.features))

    def coverage(self, samples: torch.Tensor) -> dict[str, Any] | None:
        """Class coverage of ``samples`` under the 28x28 classifier
        (:func:`pyrogen.metrics.class_coverage`), with the real test images' as reference;
        None on the 8x8 digits (not measured there) or without labels."""
        from pyrogen.metrics import class_coverage

        if self.is_digits or not self.has_features:
            return None
        result = {}
        for name, images in (("samples", samples.to(self.test)), ("test", self.test)):
            c = class_coverage(self.features, images)
            result[name] = {
                "kl_to_uniform": c.kl_to_uniform,
                "max_share": c.max_share,
                "num_covered": c.num_covered,
                "num_classes": int(c.counts.numel()),
            }
        return result

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
