"""Where one photo's time goes, stage by stage, in our pipeline and in the peers' documented ones.

    python benchmarks/photo_stages.py [--threads 2] [--photos 20] [--repeats 3]

Stages, each timed on its own over the same JPEGs (median ms over photos x repeats), for a camera-size
(4000x3000) and a web-size (1280x960) photo: decoding (full, and at the reduced scales libjpeg's DCT
scaling offers), each pipeline's resize, and the networks (MobileNetV2 1.0/224, fp32 and int8) on the
engines the photo bench uses. What `mobilenet bench --photos` times end to end is the sum of one row
per stage; this shows which stage a faster pipeline could still shorten. Last, what each decoding scale
costs in pixels: the PSNR of the 224x224 centre crop against the one made from a full decode.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from mobilenet.data.images import open_image
from mobilenet.data.photos import PhotoPrep, load_pixels, resize_center_crop
from mobilenet.deploy.bench_paths import random_calibration
from mobilenet.deploy.bench_photos import MEAN, SIZES, STD, keras_load, keras_runners, make_photos
from mobilenet.deploy.engines import load
from mobilenet.deploy.export import export_onnx, onnx_export
from mobilenet.deploy.mobile import Preprocessing, Uint8NHWC
from mobilenet.deploy.qdq import quantize_onnx
from mobilenet.models import mobilenet_v2


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def over_photos(photos: list[Path], fn: Callable[[Path], object], repeats: int) -> float:
    fn(photos[0])  # warm the file cache and the code paths
    return statistics.median(median_ms(lambda p=p: fn(p), repeats) for p in photos)


def decode_at(path: Path, scale: int) -> Image.Image:
    with Image.open(path) as image:
        if scale > 1:
            image.draft("RGB", (image.width // scale, image.height // scale))
        image.load()
        return image


def torch_resize_crop(image: Image.Image, size: int) -> np.ndarray:
    """Resize the short side to size / 0.875 with PyTorch's uint8 antialiased bilinear, then centre crop."""
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]
    short = round(size / 0.875)
    h, w = x.shape[2:]
    new_h, new_w = (short, round(w * short / h)) if h <= w else (round(h * short / w), short)
    y = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return y[0, :, top : top + size, left : left + size].permute(1, 2, 0).numpy()


def psnr_rows(photos: list[Path], size: str) -> list[tuple[str, str, float]]:
    """dB of each decoding scale's crop against the full decode's (median, and the worst photo)."""
    full = [np.asarray(resize_center_crop(decode_at(p, 1).convert("RGB"), 224), np.float64) for p in photos]
    rows = []
    for scale in (2, 4, 8):
        values = []
        for p, ref in zip(photos, full, strict=True):
            crop = np.asarray(resize_center_crop(decode_at(p, scale).convert("RGB"), 224), np.float64)
            values.append(10 * np.log10(255**2 / max(np.mean((crop - ref) ** 2), 1e-12)))
        rows.append((size, f"PSNR dB of the crop, decoded at 1/{scale}: median", statistics.median(values)))
        rows.append((size, f"PSNR dB of the crop, decoded at 1/{scale}: worst", min(values)))
    return rows


def photo_rows(photos: list[Path], size: str, repeats: int) -> list[tuple[str, str, float]]:
    prep = PhotoPrep(224)
    rows = []
    for scale in (1, 2, 4, 8):
        label = "full decode" if scale == 1 else f"decode at 1/{scale} (DCT scaling)"
        rows.append((size, label, over_photos(photos, lambda p, s=scale: decode_at(p, s), repeats)))
    reduced = {p: open_image(p, prep.min_side()) for p in photos}
    full = {p: Image.open(p).convert("RGB") for p in photos}
    stages: list[tuple[str, Callable[[Path], object]]] = [
        ("ours: decode as load_pixels does", lambda p: open_image(p, prep.min_side())),
        ("ours: resize + centre crop (antialiased)", lambda p: resize_center_crop(reduced[p], 224)),
        ("ours: load_pixels, all of it", lambda p: load_pixels(p, prep)),
        (
            "  the same with PyTorch's uint8 resize (not used)",
            lambda p: torch_resize_crop(open_image(p, prep.min_side()), 224),
        ),
        ("keras: squash to 224 (nearest)", lambda p: full[p].resize((224, 224), Image.Resampling.NEAREST)),
        ("keras: load_img + preprocess_input, all of it", keras_load),
    ]
    rows += [(size, label, over_photos(photos, fn, repeats)) for label, fn in stages]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--photos", type=int, default=20, help="photos per size")
    parser.add_argument("--repeats", type=int, default=3)
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    rows: list[tuple[str, str, float]] = []
    psnr: list[tuple[str, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for kind in ("camera", "web"):
            photos = make_photos(work, kind, a.photos)
            size = "x".join(map(str, SIZES[kind]))
            rows += photo_rows(photos, size, a.repeats)
            psnr += psnr_rows(photos, size)
        model = mobilenet_v2().eval()
        u8 = np.zeros((1, 224, 224, 3), np.uint8)
        fp32 = onnx_export(Uint8NHWC(model, Preprocessing(MEAN, STD, 224)).eval(), work / "u8.onnx",
                           torch.zeros(2, 224, 224, 3, dtype=torch.uint8))  # fmt: skip
        nchw = export_onnx(model, work / "f.onnx", 224)  # BN folded, as `quantize` does
        int8 = quantize_onnx(nchw, work / "f.int8.onnx", random_calibration(224))
        run = load(fp32, "openvino", threads=a.threads)
        rows.append(("network", "ours: OpenVINO fp32, uint8 NHWC in", median_ms(lambda: run(u8), 50)))
        run8 = load(int8, "openvino", threads=a.threads, precision="int8", pixels=(MEAN, STD))
        rows.append(("network", "ours: OpenVINO int8 (QDQ), uint8 NHWC in", median_ms(lambda: run8(u8), 50)))
        notes: list[str] = []
        x = np.zeros((1, 224, 224, 3), np.float32)
        for precision, keras in keras_runners(work, a.threads, ("fp32", "int8"), notes).items():
            label = f"keras: LiteRT {precision} (TFLiteConverter)"
            rows.append(("network", label, median_ms(lambda k=keras: k(x), 50)))
    print(f"threads {a.threads}; median ms per photo ({a.photos} photos x {a.repeats})")
    for what, stage, ms in rows + psnr:
        print(f"{what:<10} {stage:<48} {ms:8.2f}")
    for note in notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
