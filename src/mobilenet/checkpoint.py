"""The one checkpoint type: what a training run writes and every other command reads.

On disk a checkpoint is a plain dict of tensors and builtins written with `torch.save` and read with
`weights_only=True`, so a hostile file cannot run code. Only this module knows its keys; everything else
uses `Checkpoint`'s fields (model, configs, classes, normalisation, history, run directory).
"""

from __future__ import annotations

import dataclasses
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mobilenet.config import DataConfig, ModelConfig, TrainConfig
from mobilenet.files import atomic_path, checkpoint_file, run_dir_of

if TYPE_CHECKING:
    from mobilenet.models import MobileNet

REQUIRED_KEYS = ("model", "model_config", "classes", "epoch")


@dataclass(frozen=True)
class Expected:
    """What a command was told the checkpoint holds (e.g. `--arch`); None means "whatever it is"."""

    arch: str | None = None
    width: float | None = None
    num_classes: int | None = None

    def check(self, config: ModelConfig) -> None:
        for name in ("arch", "width", "num_classes"):
            given, actual = getattr(self, name), getattr(config, name)
            if given is not None and given != actual:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"the checkpoint holds {name}={actual!r} but {flag} asks for {given!r}")


@dataclass(frozen=True)
class TrainingState:
    """What resuming needs beyond the weights: optimizer, EMA, RNG and the raw (non-averaged) weights."""

    optimizer: dict[str, Any]
    rng: torch.Tensor
    ema: dict[str, Any] | None = None
    raw_model: dict[str, Any] | None = None  # with EMA, `Checkpoint.weights` holds the average
    step: int = 0  # > 0: saved this many steps into epoch `Checkpoint.epoch` (a step checkpoint)
    partial: tuple[float, float, int] = (0.0, 0.0, 0)  # that epoch's loss sum, correct count, images so far
    cuda_rng: torch.Tensor | None = None  # trained on a GPU: its generator (dropout there draws from it)


@dataclass(frozen=True)
class Checkpoint:
    weights: dict[str, torch.Tensor]  # the state dict to deploy (the EMA average when EMA is on)
    model_config: ModelConfig
    data_config: DataConfig
    train_config: TrainConfig
    classes: list[str]
    mean: tuple[float, ...]  # the normalisation the model was trained with
    std: tuple[float, ...]
    resolution: int  # the side the model was trained at
    epoch: int  # epochs completed (a step checkpoint is `training.step` steps into the next one)
    best_acc: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    training: TrainingState | None = None
    path: Path | None = None  # where it was read from

    @property
    def run_dir(self) -> Path:
        if self.path is None:
            raise ValueError("this checkpoint was not read from a file, so it has no run directory")
        return run_dir_of(self.path)

    def build_model(self) -> MobileNet:
        """The network in eval mode with the checkpoint's weights."""
        from mobilenet.models import build_model

        model = build_model(self.model_config)
        if len(self.classes) != self.model_config.num_classes:
            raise ValueError(
                f"checkpoint {self.path} names {len(self.classes)} classes for a model with "
                f"{self.model_config.num_classes} outputs"
            )
        mismatch = _weights_mismatch(model.state_dict(), self.weights)
        if mismatch:
            raise ValueError(f"checkpoint {self.path} does not match its own model config: {mismatch}")
        model.load_state_dict(self.weights)
        return model.eval()

    def check_classes(self, classes: list[str], source: str) -> None:
        """Refuse data whose classes are not the ones the model was trained on."""
        check_class_count(self.model_config.num_classes, len(classes), source)
        if classes != self.classes:
            raise ValueError(
                f"the checkpoint was trained on classes {', '.join(self.classes[:5])}, ... "
                f"but {source} has {', '.join(classes[:5])}, ..."
            )

    def to_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "model": self.weights,
            "model_config": dataclasses.asdict(self.model_config),
            "data_config": dataclasses.asdict(self.data_config),
            "train_config": dataclasses.asdict(self.train_config),
            "classes": list(self.classes),
            "mean": list(self.mean),
            "std": list(self.std),
            "resolution": self.resolution,
            "epoch": self.epoch,
            "best_acc": self.best_acc,
            "history": list(self.history),
        }
        if self.training is not None:
            state |= {"optimizer": self.training.optimizer, "rng": self.training.rng, "ema": self.training.ema}
            if self.training.raw_model is not None:
                state["raw_model"] = self.training.raw_model
            if self.training.step:
                state |= {"step": self.training.step, "partial": list(self.training.partial)}
            if self.training.cuda_rng is not None:
                state["cuda_rng"] = self.training.cuda_rng
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any], path: Path | None = None) -> Checkpoint:
        training = None
        if "optimizer" in state and "rng" in state:
            partial = state.get("partial", (0.0, 0.0, 0))
            training = TrainingState(
                state["optimizer"],
                state["rng"],
                state.get("ema"),
                state.get("raw_model"),
                int(state.get("step", 0)),
                (float(partial[0]), float(partial[1]), int(partial[2])),
                state.get("cuda_rng"),
            )
        try:
            return cls(
                weights=state["model"],
                model_config=ModelConfig(**state["model_config"]),
                data_config=DataConfig(**state["data_config"]),
                train_config=TrainConfig(**state["train_config"]),
                classes=list(state["classes"]),
                mean=tuple(state["mean"]),
                std=tuple(state["std"]),
                resolution=int(state["resolution"]),
                epoch=int(state["epoch"]),
                best_acc=float(state.get("best_acc", 0.0)),
                history=list(state.get("history", [])),
                training=training,
                path=path,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path} is a damaged or foreign checkpoint: {err}") from None

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        """Read a `.pt` file or a run directory's `last.pt`; raise ValueError naming the file if it is not one."""
        given, path = Path(path), checkpoint_file(path)
        if given.is_dir() and not path.exists():
            raise ValueError(
                f"{given} is not a run directory (it has no {path.name}); give a run directory or a .pt file"
            )
        if not path.is_file():
            raise ValueError(f"checkpoint {path} does not exist")
        if path.suffix.lower() in _EXPORTS:
            raise ValueError(f"{path} is not a mobilenet checkpoint: {_why_unreadable(path, None)}")
        damaged = _damaged_record(path)
        if damaged:
            raise ValueError(
                f"{path} is damaged: its record {damaged} does not match the checksum written with it "
                "(a disk or copy error); use another checkpoint of the run (best.pt, last.pt) or a backup"
            )
        try:
            with warnings.catch_warnings():  # noise read as a pickle warns of an odd protocol before it fails
                warnings.simplefilter("ignore", UserWarning)
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # whatever the loader raises, the file is not one of ours
            raise ValueError(f"{path} is not a readable mobilenet checkpoint: {_why_unreadable(path, err)}") from None
        if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
            raise ValueError(f"{path} is not a mobilenet checkpoint (expected keys {', '.join(REQUIRED_KEYS)})")
        return cls.from_dict(state, path)

    def save(self, path: str | Path) -> Path:
        """Write atomically: a crash leaves the previous file or this one, never a torn mix."""
        with atomic_path(path) as tmp:
            torch.save(self.to_dict(), tmp)
        return Path(path)


def _weights_mismatch(expected: dict[str, Any], weights: dict[str, Any]) -> str:
    """One line on how `weights` differ from a model's state dict in names and shapes ("" if they fit)."""
    missing = [k for k in expected if k not in weights]
    extra = [k for k in weights if k not in expected]
    shapes = [k for k in expected if k in weights and tuple(weights[k].shape) != tuple(expected[k].shape)]
    parts = []
    if shapes:
        k = shapes[0]
        parts.append(
            f"{len(shapes)} tensor(s) of another shape, e.g. {k}: {tuple(weights[k].shape)} in the file, "
            f"{tuple(expected[k].shape)} in the model"
        )
    if missing:
        parts.append(f"{len(missing)} missing, e.g. {missing[0]}")
    if extra:
        parts.append(f"{len(extra)} unexpected, e.g. {extra[0]}")
    return "; ".join(parts)


def check_class_count(expected: int, got: int, source: str) -> None:
    """The one class-count check: a model's head and the data (or a request) must agree."""
    if expected != got:
        raise ValueError(f"the model has {expected} classes but {source} has {got}")


_EXPORTS = {
    ".onnx": "an exported model (ONNX)",
    ".pt2": "an exported model (a torch.export program)",
    ".tflite": "an exported model (LiteRT)",
    ".pte": "an exported model (ExecuTorch)",
    ".safetensors": "a weights file (give it with --weights)",
}


def _damaged_record(path: Path) -> str | None:
    """The first record of a checkpoint (a zip archive) whose bytes fail their CRC-32, else None.
    torch.load does not check them, so a flipped bit in the weights would load silently."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return None  # not a whole zip archive: torch.load says what it is


def _why_unreadable(path: Path, err: Exception | None) -> str:
    """One line on why torch.load refused a file, without PyTorch's advice to retry with weights_only=False
    (which would run whatever code an untrusted file holds)."""
    if path.suffix.lower() in _EXPORTS:
        return (
            f"it is {_EXPORTS[path.suffix.lower()]}, not a checkpoint with its training configuration; give "
            "a run directory or its .pt file"
        )
    if path.stat().st_size == 0:
        return "the file is empty"
    with path.open("rb") as f:
        head = f.read(4)
    is_zip, is_pickle = head.startswith(b"PK\x03\x04"), head.startswith(b"\x80")  # PyTorch's two formats
    if isinstance(err, pickle.UnpicklingError) and (is_zip or is_pickle):
        return (
            "it is not a PyTorch file of tensors and plain values (other pickles are never loaded: they can run code)"
        )
    text = str(err)
    if not is_zip or not isinstance(err, (RuntimeError, EOFError, OSError, ValueError)):
        return "it is not a PyTorch checkpoint (its contents are not recognised)"  # random bytes fail in many ways
    if "zip archive" in text:
        return "the file is truncated or corrupted (an incomplete PyTorch archive)"
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__
