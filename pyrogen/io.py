"""Safe, atomic persistence of modules: safetensors for weights, JSON for hyperparameters.

Nothing here unpickles: a file is a safetensors archive whose metadata holds a JSON
description of the constructor arguments, so loading an untrusted file can at worst give
wrong numbers, never run code.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

__all__ = ["atomic_path", "atomic_write_bytes", "load_state", "read_kind", "save_module"]


class atomic_path:  # lower case: used like open(), as a context manager
    """Context manager yielding a temporary path next to ``path``; renamed onto it on success.

    Example::

        with atomic_path("model.safetensors") as tmp:
            save_file(tensors, tmp)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __enter__(self) -> str:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        os.close(fd)
        self.tmp = tmp
        return tmp

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.unlink(self.tmp)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def save_module(
    module: torch.nn.Module, path: str | os.PathLike[str], kind: str, config: dict[str, Any]
) -> None:
    """Save ``module.state_dict()`` and its constructor ``config`` as one safetensors file.

    ``kind`` (e.g. ``"RBM"``) is checked on load so that a VAE file is not read as an RBM.
    """
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    metadata = {"pyrogen_kind": kind, "pyrogen_config": json.dumps(config)}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)


def read_kind(path: str | os.PathLike[str]) -> str:
    """The ``kind`` (e.g. ``"RBM"``, ``"VAE"``, ``"GAN"``) a pyrogen file was saved as."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} does not exist or is not a file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"path {str(path)!r} is not a readable safetensors file: {err}") from err
    kind = metadata.get("pyrogen_kind")
    if kind is None:
        raise ValueError(f"path {str(path)!r} was not written by pyrogen (no pyrogen_kind)")
    return kind


def load_state(
    path: str | os.PathLike[str], kind: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a file written by :func:`save_module`; return ``(config, state_dict)``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} does not exist or is not a file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"path {str(path)!r} is not a readable safetensors file: {err}") from err
    if metadata.get("pyrogen_kind") != kind:
        raise ValueError(
            f"path {str(path)!r} holds a {metadata.get('pyrogen_kind')!r}, expected {kind!r}"
        )
    return json.loads(metadata["pyrogen_config"]), state
