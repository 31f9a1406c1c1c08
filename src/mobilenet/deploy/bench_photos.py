"""`mobilenet bench --photos`: from photo file to label, our pipeline against torchvision's documented one,
same engine, same run (also `python benchmarks/photo_to_label.py`).

Photos: scikit-learn's two sample photos (china.jpg, flower.jpg), varied by crop, flip and brightness,
re-encoded as JPEG (quality 90) at camera size (4000x3000) and web size (1280x960).

Both pipelines run MobileNetV2 1.0/224 (the same random weights: ours, and torchvision's model with the
same tensors) through OpenVINO (fp32 by default) on `--threads` threads:
- peer: `Image.open(...).convert("RGB")`, torchvision's `Resize(256)`, `CenterCrop(224)`, `ToTensor()`,
  `Normalize(ImageNet)`, then its ONNX export on OpenVINO (NCHW float input). For folders, torchvision's
  own way to overlap decoding: a `DataLoader` with 2 worker processes, batch 8.
- ours: `mobilenet.deploy.pipeline`: reduced-size JPEG decoding, resize + crop, uint8 NHWC into the
  exported network (normalisation folded into the stem), 2 decoding threads for folders, batch 8.
- Keras (where TensorFlow is installed): its documented `load_img(path, target_size=(224, 224))` (full
  decode, whole image resized with nearest-neighbour) and `preprocess_input` (to [-1, 1]), written out
  here so TensorFlow stays out of this process, feeding Keras' MobileNetV2 converted by TFLiteConverter
  (fp32) in the LiteRT interpreter; for folders the same 2-worker overlap as torchvision's.
With `precisions=("fp32", "int8")` every workload is timed again with each pipeline's network at its
int8 path (see `networks`). Latency is one photo at a time, the pipelines interleaved photo by photo;
the median is reported. Speed-ups are against the faster of the peers' pipelines.
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance

from mobilenet.cores import restores_torch_threads
from mobilenet.data.photos import PhotoPrep, load_pixels
from mobilenet.deploy.engines import load
from mobilenet.deploy.export import onnx_export
from mobilenet.deploy.mobile import Preprocessing
from mobilenet.deploy.pipeline import label_photos, uint8_runner
from mobilenet.models import MobileNet, mobilenet_v2
from mobilenet.peers import import_peer
from mobilenet.weights import export_tensors

SIZES = {"camera": (4000, 3000), "web": (1280, 960)}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def make_photos(folder: Path, kind: str, count: int) -> list[Path]:
    from sklearn.datasets import load_sample_images

    sources = [Image.fromarray(a) for a in load_sample_images().images]
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        src = sources[i % len(sources)]
        w, h = src.size
        cw, ch = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        photo = src.crop((left, top, left + cw, top + ch)).resize(SIZES[kind], Image.Resampling.BICUBIC)
        photo = ImageEnhance.Brightness(photo).enhance(float(rng.uniform(0.8, 1.2)))
        if rng.random() < 0.5:
            photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = folder / f"{kind}-{i:04d}.jpg"
        photo.save(path, quality=90)
        out.append(path)
    return out


def keras_load(path: Path) -> np.ndarray:
    """Keras' documented input path, as `keras.utils.load_img(path, target_size=(224, 224))`, then
    `img_to_array` and `keras.applications.mobilenet_v2.preprocess_input`: (224, 224, 3) float in [-1, 1]."""
    image = Image.open(path).convert("RGB").resize((224, 224), Image.Resampling.NEAREST)
    return np.asarray(image, dtype=np.float32) / 127.5 - 1.0


def torchvision_load(path: Path, transform: Callable[[Image.Image], torch.Tensor]) -> torch.Tensor:
    """torchvision's documented input path: PIL decode of every pixel, then its transforms."""
    return transform(Image.open(path).convert("RGB"))


class PhotoFiles(torch.utils.data.Dataset[object]):
    """Photo files read by a peer's `load`, for a `DataLoader` with worker processes (the peers' overlap)."""

    def __init__(self, paths: list[Path], load: Callable[[Path], object]) -> None:
        self.paths, self.load = paths, load

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> object:
        return self.load(self.paths[i])


def digits_agreement(checkpoint: str, count: int, side: int, work: Path) -> str:
    """Reduced-size vs full decoding with a trained model: the digits test set as camera-size JPEGs."""
    from mobilenet.checkpoint import Checkpoint
    from mobilenet.data.splits import load_digits_splits

    ckpt = Checkpoint.load(checkpoint)
    _, test = load_digits_splits()
    count = min(count, len(test.labels))
    paths = []
    for i in range(count):
        photo = Image.fromarray(test.images[i, 0].numpy()).resize((side, side), Image.Resampling.BICUBIC)
        paths.append(work / f"digit-{i:03d}.jpg")
        photo.convert("RGB").save(paths[-1], quality=90)
    run, _ = uint8_runner(ckpt.build_model(), Preprocessing(ckpt.mean, ckpt.std, ckpt.resolution), "openvino")
    fast = [r.logits for r in label_photos(paths, PhotoPrep(ckpt.resolution, crop=False), run, workers=2)]
    full = [
        r.logits for r in label_photos(paths, PhotoPrep(ckpt.resolution, False, reduced_decode=False), run, workers=2)
    ]
    f, g = np.stack(fast), np.stack(full)  # type: ignore[arg-type]
    labels = test.labels[:count].numpy()
    return (
        f"digits test set as {side}x{side} JPEGs ({count} images): top-1 agreement fast vs full decode "
        f"{(f.argmax(1) == g.argmax(1)).mean():.2%}; accuracy fast {(f.argmax(1) == labels).mean():.2%}, "
        f"full {(g.argmax(1) == labels).mean():.2%}; largest logit difference {np.abs(f - g).max():.3f} "
        f"(logits span {g.min():.1f} to {g.max():.1f})"
    )


@dataclass(frozen=True)
class PhotoBenchOptions:
    threads: int = 2
    latency: int = 20  # photos per size, one at a time
    folder_web: int = 500
    folder_camera: int = 500
    checkpoint: str | None = None  # a trained digits run: reduced vs full decoding accuracy
    digits: int = 360
    keras: bool = True  # Keras' pipeline too, where TensorFlow is installed (its conversion takes ~20 s)
    precisions: tuple[str, ...] = ("fp32",)  # "int8": every pipeline's network quantized (see `networks`)


Runner = Callable[[np.ndarray], np.ndarray]


def networks(
    work: Path, ours: MobileNet, theirs: torch.nn.Module, options: PhotoBenchOptions, notes: list[str]
) -> dict[str, tuple[Runner, Runner | None, Runner]]:
    """Per precision, the three pipelines' networks: (torchvision's, Keras' or None, ours).

    fp32: torchvision's ONNX export and ours (uint8 NHWC in, normalisation folded) on OpenVINO, Keras'
    TFLiteConverter file on LiteRT. int8: each network at its fastest int8 path on the same engine:
    torchvision's export and ours quantized alike (onnxruntime's static QDQ, per-channel weights, the same
    16 calibration images) on OpenVINO, ours fed uint8 NHWC pixels converted inside OpenVINO's graph (as
    `predict` runs a quantized run); Keras' model full-integer through TFLiteConverter on LiteRT."""
    from mobilenet.deploy.bench_paths import random_calibration
    from mobilenet.deploy.qdq import quantize_onnx

    threads, example = options.threads, torch.zeros(2, 3, 224, 224)
    peer_file = onnx_export(theirs, work / "tv.onnx", example)
    keras = keras_runners(work, threads, options.precisions, notes) if options.keras else {}
    out: dict[str, tuple[Runner, Runner | None, Runner]] = {}
    for precision in options.precisions:
        if precision == "fp32":
            our_run, _ = uint8_runner(ours, Preprocessing(MEAN, STD, 224), "openvino", threads=threads)
            out[precision] = (load(peer_file, "openvino", threads=threads), keras.get(precision), our_run)
            continue
        calibration = random_calibration(224)
        peer_int8 = quantize_onnx(peer_file, work / "tv.int8.onnx", calibration)
        our_int8 = quantize_onnx(onnx_export(ours, work / "ours.onnx", example), work / "ours.int8.onnx", calibration)
        out[precision] = (
            load(peer_int8, "openvino", threads=threads, precision="int8"),
            keras.get(precision),
            load(our_int8, "openvino", threads=threads, precision="int8", pixels=(MEAN, STD)),
        )
    return out


def keras_runners(work: Path, threads: int, precisions: tuple[str, ...], notes: list[str]) -> dict[str, Runner]:
    """Keras' MobileNetV2 1.0/224 through TFLiteConverter (fp32, or full-integer int8), in the LiteRT
    interpreter; empty (and a note) where TensorFlow or LiteRT is missing."""
    from mobilenet.deploy.keras_tflite import keras_files
    from mobilenet.deploy.mobile import tflite_runner

    try:
        files = keras_files(work, 1.0, 1000, 224, precisions)
        return {p: tflite_runner(path, threads) for p, path in files.items()}
    except ValueError as err:
        notes.append(f"Keras pipeline skipped: {err}")
        return {}


def _row(label: str, precision: str, tv: float, keras: float | None, our: float, agree: str, rate: bool) -> str:
    fastest = max(tv, keras or 0) if rate else min(tv, keras or tv)
    ratio = our / fastest if rate else fastest / our
    k = f"{keras:>10.1f}" if keras is not None else f"{'-':>10}"
    return f"{label:<34}{precision:>6}{tv:>12.1f}{k}{our:>10.1f}{ratio:>10.2f}x  {agree}"


@restores_torch_threads
def bench_photos(options: PhotoBenchOptions, progress: Callable[[str], None] | None = None) -> str:
    """Run every workload and return the report table."""
    say = progress or (lambda _: None)
    torch.set_num_threads(options.threads)
    tv = import_peer("torchvision")
    T = tv.transforms
    peer_transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
    ours = mobilenet_v2().eval()
    with torch.no_grad():  # the default init zeroes the classifier: give it weights so top-1 means something
        torch.nn.init.normal_(ours.classifier.weight, std=0.05, generator=torch.Generator().manual_seed(0))
    theirs = tv.models.mobilenet_v2().eval()
    tensors, _ = export_tensors(ours, "torchvision")
    theirs.load_state_dict(tensors)  # the same weights: only the pipelines differ
    lines = [
        f"threads {options.threads}; MobileNetV2 1.0/224: torchvision's and ours on OpenVINO, Keras' on LiteRT; "
        f"precision: {', '.join(options.precisions)} (int8: every network quantized)"
    ]
    header = f"{'workload':<34}{'prec':>6}{'torchvision':>12}{'keras':>10}{'ours':>10}{'vs fastest':>11}  agreement"
    lines.append(header)
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        say("preparing the networks")
        nets = networks(work, ours, theirs, options, notes)
        prep = PhotoPrep(224, crop_fraction=0.875)
        peer_load = functools.partial(torchvision_load, transform=peer_transform)

        def timed(run: Runner, read: Callable[[Path], np.ndarray], path: Path) -> tuple[int, float]:
            """Top-1 and milliseconds from the file to the label."""
            t = time.perf_counter()
            top = int(run(read(path)).argmax())
            return top, (time.perf_counter() - t) * 1e3

        def peer_pixels(path: Path) -> np.ndarray:
            return peer_load(path)[None].numpy()

        def keras_pixels(path: Path) -> np.ndarray:
            return keras_load(path)[None]

        def ours_pixels(path: Path) -> np.ndarray:
            pixels = load_pixels(path, prep)
            assert isinstance(pixels, np.ndarray)
            return pixels[None]

        for kind in ("camera", "web"):
            if not options.latency:
                continue
            say(f"one {kind} photo at a time")
            photos = make_photos(work, kind, options.latency)
            ms: dict[tuple[str, str], list[float]] = {}
            agree = dict.fromkeys(nets, 0)
            for path in photos:
                for precision, (peer_run, keras_run, our_run) in nets.items():
                    a, t_peer = timed(peer_run, peer_pixels, path)
                    ms.setdefault((precision, "tv"), []).append(t_peer)
                    if keras_run is not None:
                        _, t_keras = timed(keras_run, keras_pixels, path)
                        ms.setdefault((precision, "keras"), []).append(t_keras)
                    b, t_ours = timed(our_run, ours_pixels, path)
                    ms.setdefault((precision, "ours"), []).append(t_ours)
                    agree[precision] += a == b
            w, h = SIZES[kind]
            for precision in nets:
                p, o = (statistics.median(ms[precision, k][1:] or ms[precision, k]) for k in ("tv", "ours"))
                keras_ms = ms.get((precision, "keras"))
                k = statistics.median(keras_ms[1:] or keras_ms) if keras_ms else None
                label = f"one {kind} photo ({w}x{h}), ms"
                lines.append(_row(label, precision, p, k, o, f"{agree[precision]}/{len(photos)}", rate=False))
        for kind, count in (("web", options.folder_web), ("camera", options.folder_camera)):
            if not count:
                continue
            say(f"a folder of {count} {kind} photos")
            photos = make_photos(work, kind, count)
            for precision, (peer_run, keras_run, our_run) in nets.items():
                t = time.perf_counter()
                loader = torch.utils.data.DataLoader(PhotoFiles(photos, peer_load), batch_size=8, num_workers=2)
                peer_top = [peer_run(batch.numpy()).argmax(1) for batch in loader]
                peer_s = time.perf_counter() - t
                keras_rate = None
                if keras_run is not None:
                    t = time.perf_counter()
                    batches = torch.utils.data.DataLoader(PhotoFiles(photos, keras_load), batch_size=8, num_workers=2)
                    for batch in batches:
                        keras_run(batch.numpy())
                    keras_rate = count / (time.perf_counter() - t)
                t = time.perf_counter()
                labelled = label_photos(photos, prep, our_run, batch=8, workers=2)
                our_top = [r.logits.argmax() for r in labelled]  # type: ignore[union-attr]
                our_s = time.perf_counter() - t
                same = int((np.concatenate(peer_top) == np.array(our_top)).sum())
                label = f"folder of {count} {kind} photos, img/s"
                lines.append(
                    _row(label, precision, count / peer_s, keras_rate, count / our_s, f"{same}/{count}", rate=True)
                )
        if options.checkpoint:
            say("the digits test set as camera-size photos")
            lines.append(digits_agreement(options.checkpoint, options.digits, 3000, work))
    lines.append(
        "vs fastest: the fastest peer pipeline's ms / ours, or our img/s / the fastest peer's (above 1: ours is faster)"
    )
    lines.append("agreement: top-1 of ours vs torchvision's pipeline (the same weights; Keras' model has its own)")
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)
