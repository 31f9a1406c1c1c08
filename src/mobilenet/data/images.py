"""Image files as a person sees them: decoded to 8-bit RGB, upright, at their full tonal range.

Three things Pillow's plain `convert("RGB")` gets wrong for real files:
- 16-bit and 32-bit greyscale (scientific PNGs and TIFFs) are clipped, not scaled: a mid-grey 16-bit
  pixel (32768) becomes white. Here they are scaled to 0..255 by their bit depth.
- Phone photos store the camera's orientation in an EXIF tag and the pixels sideways; viewers rotate
  them. Here the tag is applied (`ImageOps.exif_transpose`).
- Transparent pixels carry arbitrary colour under them; viewers show the background. Here they are
  composited onto white.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.JpegImagePlugin import JpegImageFile

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
_WIDE_GREY = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535}


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB the way it looks on screen (see the module docstring)."""
    if image.getexif().get(0x0112, 1) != 1:  # an orientation to apply (no copy of upright images)
        image = ImageOps.exif_transpose(image) or image
    if image.mode in _WIDE_GREY or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode in _WIDE_GREY:
            top = float(_WIDE_GREY[image.mode])
        elif image.mode == "F":
            top = 1.0 if values.size and values.max() <= 1.0 else 255.0  # float images are [0, 1] or [0, 255]
        else:  # 32-bit integers: 16-bit data (as PNG decoders give it) unless the values say otherwise
            top = 255.0 if values.size and values.max() <= 255 else 65535.0
        grey = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _is_jpeg(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(3) == b"\xff\xd8\xff"


def _over_pillow_limit(width: int, height: int) -> str | None:
    """Pillow's decompression-bomb rule (refuse over twice `Image.MAX_IMAGE_PIXELS`), as a reason."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > 2 * limit:
        return f"{width}x{height} is over Pillow's limit of {2 * limit:,} pixels (Image.MAX_IMAGE_PIXELS x 2)"
    return None


def open_image(path: Path, min_side: int | None = None) -> Image.Image:
    """Decode an image file to upright 8-bit RGB, or raise ValueError naming it.

    `min_side`: the short side the caller needs. A JPEG much larger than that is decoded at a reduced
    scale (1/2, 1/4 or 1/8, by libjpeg's DCT scaling), never below `min_side`: 5-10x faster for camera
    photos, with slightly different pixels than a full decode followed by a resize. Pillow's
    decompression-bomb limit (about 179 megapixels) then applies to the pixels actually decoded, so a
    200-megapixel phone photo is read at reduced size rather than refused; a full decode keeps it."""
    try:
        # JPEGs are opened by their plugin directly when they may be decoded at reduced size: Image.open
        # would refuse (or warn about) the full pixel count before the scale is chosen. MPO files (phone
        # photos with a depth map or preview) open as their primary image, the one viewers show.
        reduced = bool(min_side) and path.is_file() and _is_jpeg(path)
        with JpegImageFile(str(path)) if reduced else Image.open(path) as image:
            if reduced and min_side and min(image.size) >= 2 * min_side:
                scale = min_side / min(image.size)
                image.draft("RGB", (int(image.width * scale + 0.999), int(image.height * scale + 0.999)))
            too_large = _over_pillow_limit(*image.size) if reduced else None
            if not too_large:
                image.load()
                return to_rgb(image)
    except FileNotFoundError:
        raise ValueError(f"cannot read image {path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"cannot read image {path}: it is a directory") from None
    except Image.DecompressionBombError as err:
        raise ValueError(f"cannot decode image {path}: {err}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if path.is_file() and path.stat().st_size == 0:
            raise ValueError(f"cannot decode image {path}: the file is empty") from None
        raise ValueError(f"cannot decode image {path}: {err}") from None
    raise ValueError(f"cannot decode image {path}: {too_large}")
