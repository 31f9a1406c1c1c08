"""Quantization-aware fine-tuning: the model is trained for a few epochs with fake-quantized weights and
activations (straight-through gradients), so it learns weights that survive int8, then calibrated and
quantized as usual by `deploy/quantize.py`."""

from __future__ import annotations

import math
from typing import Any

import torch
from tqdm import tqdm

from mobilenet.data.splits import Split
from mobilenet.models import MobileNet


def _fake_quant_hooks(model: MobileNet) -> list[Any]:
    """Quantize-dequantize every conv/linear weight (per output channel, symmetric int8) and every conv
    input (per tensor, affine uint8, running min/max) in the forward pass; gradients pass straight through."""
    handles = []
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            handles.append(module.register_forward_pre_hook(_quantize_input))
            torch.nn.utils.parametrize.register_parametrization(module, "weight", _WeightFakeQuant())
    return handles


class _WeightFakeQuant(torch.nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        scale = w.detach().abs().flatten(1).amax(1).clamp(min=1e-8) / 127
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)


class _FakeQuantize(torch.autograd.Function):
    """Quantize-dequantize to uint8 with a straight-through gradient: the same values as
    `torch.fake_quantize_per_tensor_affine`, in in-place passes over one new tensor (PyTorch's kernel took
    25 ms on a 6M-element tensor on one core; with it, a fine-tuning step took twice as long). The range
    is the batch's own min and max, so nothing is clipped and the gradient passes everywhere (PyTorch's
    mask would be all ones but for a value rounding past the very end of the range)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float, zero: float) -> torch.Tensor:
        q = torch.mul(x.detach(), 1.0 / scale).add_(zero).round_().clamp_(0, 255)
        return q.sub_(zero).mul_(scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return grad, None, None


def _quantize_input(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
    x = args[0]
    flat = x.detach()
    if flat.dim() == 4 and not flat.is_contiguous() and flat.is_contiguous(memory_format=torch.channels_last):
        flat = flat.permute(0, 2, 3, 1)  # the same elements in memory order: the reduction copies nothing
    low, high = torch.aminmax(flat)
    lo, hi = min(float(low), 0.0), max(float(high), 0.0)
    scale = max(hi - lo, 1e-8) / 255
    return (_FakeQuantize.apply(x, scale, float(round(-lo / scale))),)


def qat_finetune(model: MobileNet, train: Split, *, epochs: int, lr: float = 1e-3, batch_size: int = 64) -> MobileNet:
    """Fine-tune with fake quantization (BN kept in eval mode, as it will be folded), then drop the fakes."""
    handles = _fake_quant_hooks(model)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # as training runs
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    steps = epochs * math.ceil(len(train) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()  # frozen statistics: the deployed graph folds them into the convs
    with tqdm(total=steps, desc="quantization-aware fine-tuning", leave=False) as bar:
        for epoch in range(epochs):
            for x, y in train.batches(batch_size, train=True, epoch=epoch, seed=1):
                x = x.contiguous(memory_format=torch.channels_last)
                loss = torch.nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}")
    for h in handles:
        h.remove()
    for module in model.modules():
        if torch.nn.utils.parametrize.is_parametrized(module, "weight"):
            # keep the quantization-friendly weights the fine-tuning found
            torch.nn.utils.parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model.to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
