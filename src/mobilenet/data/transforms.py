"""The papers' few input transforms, in torch, batched where the images share a size.

CIFAR recipe (He et al. 2016, used by every CIFAR MobileNet port): random crop with 4-pixel zero
padding, horizontal flip, per-channel normalization. ImageNet recipe (Inception preprocessing, as the
MobileNet papers and torchvision use): random resized crop + flip for training; resize to
resolution / 0.875 and center crop for evaluation.
"""

from __future__ import annotations

import math

import torch
from PIL import Image
from torch import Tensor

from mobilenet.data.photos import EVAL_CROP_FRACTION as EVAL_CROP_FRACTION  # re-exported: one definition
from mobilenet.data.photos import resize_center_crop as resize_center_crop

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


def random_crop_flip(
    images: Tensor, padding: int, generator: torch.Generator | None = None, flip: bool = True
) -> Tensor:
    """Per-image random crop after zero padding, and a random horizontal flip, for a (N, C, H, W) batch."""
    n, _, h, w = images.shape
    device = images.device
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(device)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(device)
    flips = (torch.rand(n, generator=generator) < 0.5).to(device) & flip
    rows = top[:, None] + torch.arange(h, device=device)  # (N, H)
    cols = left[:, None] + torch.arange(w, device=device)  # (N, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)  # flipping = reading the columns backwards
    batch = torch.arange(n, device=device)[:, None, None]
    # advanced indexing gathers (N, H, W, C); one gather for crop and flip of the whole batch
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


def normalize(images: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """uint8 or [0, 1] float images -> (x - mean) / std per channel, as float32."""
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def pil_to_tensor(image: Image.Image) -> Tensor:
    """Any PIL mode -> (3, H, W) uint8 RGB."""
    rgb = image.convert("RGB")
    data = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
    return data.view(rgb.height, rgb.width, 3).permute(2, 0, 1).contiguous()


def random_resized_crop(
    image: Image.Image,
    size: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Image.Image:
    """Inception-style crop: random area fraction and aspect ratio, resized to size x size, random flip."""
    width, height = image.size
    area = width * height
    for _ in range(10):
        target = area * _uniform(generator, *scale)
        aspect = math.exp(_uniform(generator, math.log(ratio[0]), math.log(ratio[1])))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            break
    else:  # fall back to a center crop of the whole image
        w = h = min(width, height)
        left, top = (width - w) // 2, (height - h) // 2
    crop = image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    if _uniform(generator, 0.0, 1.0) < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return crop


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(1, generator=generator))
