"""Photo to pixels without torch: decode, orient, resize, crop.

`load_pixels` is the input half of the photo-to-label pipeline: a JPEG much larger than the network's
input is decoded at reduced size by libjpeg's DCT scaling (`open_image(min_side=...)`), then resized and
centre-cropped as the weights' preprocessing says, and returned as uint8 (H, W, 3): the normalisation
is folded into the network's first convolution, so no float image is ever made here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mobilenet.data.images import open_image

RESAMPLING = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
EVAL_CROP_FRACTION = 0.875  # 224 / 256: the peers' evaluation crop


def resize_center_crop(
    image: Image.Image, size: int, crop_fraction: float = EVAL_CROP_FRACTION, interpolation: str = "bilinear"
) -> Image.Image:
    """Resize the short side to size / crop_fraction, then take the central size x size crop.

    Only the part of the image that lands in the crop is resampled (Pillow's `box`), which gives the
    same pixels as resizing everything and cropping, for a third of the work at the usual 0.875."""
    width, height = image.size
    short = round(size / crop_fraction)
    scale = short / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    sx, sy = width / new_w, height / new_h
    left, top = (new_w - size) // 2, (new_h - size) // 2
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    return image.resize((size, size), RESAMPLING[interpolation], box=box)


@dataclass(frozen=True)
class PhotoPrep:
    """How a photo becomes the network's input."""

    size: int
    crop: bool = True  # resize + centre crop (ImageNet style), else resize the whole image (digits, CIFAR)
    crop_fraction: float = 0.875
    interpolation: str = "bilinear"
    reduced_decode: bool = True  # decode large JPEGs at 1/2, 1/4 or 1/8 scale (never below the need)

    def min_side(self) -> int | None:
        if not self.reduced_decode:
            return None
        return round(self.size / self.crop_fraction) if self.crop else self.size


def load_pixels(path: str | Path, prep: PhotoPrep) -> np.ndarray | str:
    """uint8 (size, size, 3) pixels of one photo, or the one-line reason it cannot be read."""
    try:
        image = open_image(Path(path), prep.min_side())
    except ValueError as err:
        return str(err)
    if prep.crop:
        image = resize_center_crop(image, prep.size, prep.crop_fraction, prep.interpolation)
    else:
        image = image.resize((prep.size, prep.size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)
