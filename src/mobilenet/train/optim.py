"""Optimizers, weight decay groups, the weight average and the precision choice, as the recipes' references do.

- `TFRMSprop`: TensorFlow's RMSProp (tf.compat.v1.train.RMSPropOptimizer), which TF-Slim's
  `train_image_classifier.py` trained both papers' networks with. It differs from `torch.optim.RMSprop` in
  two ways that matter early in training: epsilon sits inside the square root (Slim uses 1.0), and the
  squared-gradient average starts at 1, not 0. With PyTorch's defaults the first updates are ~30x larger.
- `param_groups`: weight decay on conv and linear weights; never on BN or biases; on depthwise weights
  only where the recipe's reference does (TF-Slim's MobileNet scopes leave them unregularised).
- `ema_avg_fn`: TensorFlow's ExponentialMovingAverage with `num_updates`: the decay ramps up as
  min(decay, (1 + n) / (10 + n)), so a short run is not scored on its random initialisation.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mobilenet.config import TrainConfig


class TFRMSprop(torch.optim.Optimizer):
    """ms <- rho * ms + (1 - rho) * g^2;  mom <- momentum * mom + lr * g / sqrt(ms + eps);  w <- w - mom.

    `ms` starts at 1 (TF's slot initialiser). Weight decay is added to the gradient first, as Slim's L2
    regularisers add wd/2 * ||w||^2 to the loss.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        *,
        rho: float = 0.9,
        momentum: float = 0.9,
        eps: float = 1.0,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0 or not 0 <= rho < 1 or not 0 <= momentum < 1 or eps <= 0:
            raise ValueError(f"invalid RMSProp settings: lr={lr}, rho={rho}, momentum={momentum}, eps={eps}")
        defaults = {"lr": lr, "rho": rho, "momentum": momentum, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["ms"] = torch.ones_like(p)
                    state["mom"] = torch.zeros_like(p)
                ms, mom = state["ms"], state["mom"]
                ms.mul_(group["rho"]).addcmul_(grad, grad, value=1 - group["rho"])
                mom.mul_(group["momentum"]).addcdiv_(grad, ms.add(group["eps"]).sqrt_(), value=group["lr"])
                p.sub_(mom)
        return loss


def _depthwise_weights(model: nn.Module) -> set[int]:
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1}


def param_groups(model: nn.Module, weight_decay: float, *, decay_depthwise: bool) -> list[dict[str, Any]]:
    """Trainable parameters split into decayed and undecayed groups (a frozen backbone is left out)."""
    depthwise = set() if decay_depthwise else _depthwise_weights(model)
    trained = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trained if p.ndim > 1 and id(p) not in depthwise]
    no_decay = [p for p in trained if p.ndim <= 1 or id(p) in depthwise]  # BN gamma/beta, biases
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """The recipe's optimizer at learning rate `lr` (already scaled to the global batch)."""
    groups = param_groups(model, cfg.weight_decay, decay_depthwise=cfg.decay_depthwise)
    if cfg.optimizer == "rmsprop":
        return TFRMSprop(groups, lr, rho=0.9, momentum=cfg.momentum, eps=cfg.rmsprop_eps)
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=True)


def ema_decay_at(decay: float, updates: int) -> float:
    """TensorFlow's ramp: the average follows the weights closely at first and slows to `decay`."""
    return min(decay, (1 + updates) / (10 + updates))


TensorList = list[Tensor] | tuple[Tensor, ...]


def ema_avg_fn(decay: float) -> Callable[[TensorList, TensorList, Tensor | int], None]:
    """A `multi_avg_fn` for `torch.optim.swa_utils.AveragedModel` with TensorFlow's warm-up."""

    def update(averaged: TensorList, current: TensorList, num_averaged: Tensor | int) -> None:
        d = ema_decay_at(decay, int(num_averaged))
        if averaged and averaged[0].is_floating_point():
            torch._foreach_lerp_(list(averaged), list(current), 1 - d)
        else:
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c if not a.is_floating_point() else a.lerp(c, 1 - d))

    return update


def choose_bf16(model: nn.Module, images: Tensor, labels: Tensor, cfg: TrainConfig, device: torch.device) -> bool:
    """`precision="auto"`: bf16 only where it is clearly faster here. That depends on the kernels and the
    sizes: on a CPU, AMX is fast and AVX512-BF16 alone was slower than fp32; on an H200, MobileNetV2 at
    224 px and batch 96 trained faster in fp32 (channels-last), its small convolutions being bound by
    memory and kernel launches rather than arithmetic. So training steps of a copy of the model are
    timed both ways, interleaved, and bf16 must win by 10%."""
    if cfg.precision != "auto":
        return cfg.precision == "bf16"
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return False
    if device.type == "cpu" and "AVX512" not in torch.backends.cpu.get_cpu_capability():
        return False  # bf16 would be emulated
    timings = step_times(model, images, labels, device)
    return timings["bf16"] < 0.9 * timings["fp32"]


def step_times(
    model: nn.Module, images: Tensor, labels: Tensor, device: torch.device, rounds: int = 4
) -> dict[str, float]:
    """Fastest seconds of a forward+backward+SGD step on throwaway copies of `model`, fp32 and bf16
    alternating (so load from other processes falls on both alike); the minimum resists that noise."""
    probes = {name: copy.deepcopy(model).train() for name in ("fp32", "bf16")}
    optimizers = {name: torch.optim.SGD(p.parameters(), lr=1e-6) for name, p in probes.items()}
    best = {name: float("inf") for name in probes}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for r in range(rounds + 1):
        for name, probe in probes.items():
            sync()
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=name == "bf16"):
                loss = F.cross_entropy(probe(images).float(), labels)
            optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[name].step()
            sync()  # a GPU has only queued the step until here
            if r:  # round 0 warms the kernels up
                best[name] = min(best[name], time.perf_counter() - start)
    return best
