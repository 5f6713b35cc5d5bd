"""Per-epoch training records shared by every ``fit`` function."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

__all__ = ["History"]


@dataclass
class History:
    """Named per-epoch (or per-step) series, e.g. ``history["reconstruction_error"]``.

    ``record(epoch_time=..., loss=...)`` appends one value per name; a name first seen
    later is padded with NaN so that every series lines up with ``epochs``. The fits
    record through :func:`pyrogen.training_loop.run_epochs`: ``epoch_time`` is the training
    time of each record in seconds and the series ``wall_time`` its cumulative sum
    (:attr:`wall_time` is the total); ``interrupted`` is set when Ctrl-C ended the run.
    """

    series: dict[str, list[float]] = field(default_factory=dict)
    length: int = 0
    interrupted: bool = False

    def record(self, **values: float) -> None:
        for name, value in values.items():
            column = self.series.setdefault(name, [math.nan] * self.length)
            column.append(float(value))
        self.length += 1
        for column in self.series.values():
            if len(column) < self.length:
                column.append(math.nan)

    def __getitem__(self, name: str) -> list[float]:
        return self.series[name]

    def __contains__(self, name: object) -> bool:
        return name in self.series

    def __len__(self) -> int:
        return self.length

    @property
    def wall_time(self) -> float:
        """Total training time in seconds: the last ``wall_time`` record (0.0 before any)."""
        column = self.series.get("wall_time")
        return column[-1] if column else 0.0

    def last(self, name: str) -> float:
        """Most recent value of ``name``."""
        return self.series[name][-1]

    def best(self, name: str, mode: str = "max") -> float:
        """Best finite value of ``name`` (``mode`` "max" or "min")."""
        finite = [x for x in self.series[name] if math.isfinite(x)]
        if not finite:
            return math.nan
        return max(finite) if mode == "max" else min(finite)

    def to_dict(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self.series.items()}

    def to_json(self) -> str:
        return json.dumps({"series": self.to_dict(), "interrupted": self.interrupted})

    def __repr__(self) -> str:
        names = ", ".join(self.series)
        return f"History(length={self.length}, series=[{names}])"
