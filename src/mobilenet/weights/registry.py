"""Every official MobileNet V1/V2 ImageNet weight file the four peers publish, as data (no torch).

Sources, read from the peers' own code and docs:
- torchvision: `MobileNet_V2_Weights` in `torchvision/models/mobilenetv2.py` (URL, acc@1, eval resize).
  The 8 hex digits in each file name are the start of its SHA-256, which torchvision checks too.
- timm: the pretrained configs in `timm/models/efficientnet.py` (Hugging Face hub files, or the
  release files whose names carry a SHA-256 prefix) and `results/results-imagenet.csv` (top-1 at 224).
- Keras Applications: `keras/src/applications/mobilenet.py` and `mobilenet_v2.py` (file names; no
  hashes are published) and the keras-applications README (top-1 error at 224 per width). The Keras
  files are TF-Slim's checkpoints converted, so at other resolutions the TF-Slim table's top-1 is given.
- TF-Slim: `research/slim/nets/mobilenet_v1.md` and `nets/mobilenet/README.md` (archives and top-1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION = (0.5, 0.5, 0.5)  # (x - 0.5) / 0.5: pixels scaled to [-1, 1], as TF-Slim and Keras do
_TF = (INCEPTION, INCEPTION)


@dataclass(frozen=True)
class Preprocess:
    """How the source evaluates: resize the short side to resolution / crop, centre-crop the resolution,
    scale to [0, 1], subtract mean and divide by std (per RGB channel)."""

    resolution: int = 224
    crop: float = 0.875
    interpolation: str = "bilinear"  # bilinear | bicubic
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def resize(self) -> int:
        return round(self.resolution / self.crop)


@dataclass(frozen=True)
class WeightsEntry:
    """One published file: where it is, what it holds, how to check it and how to feed it."""

    name: str
    source: str  # torchvision | timm | keras | slim
    arch: str
    width: float
    url: str
    preprocess: Preprocess
    classes: int  # 1000, 1001 (TF-Slim: class 0 is "background"), or 0 for a file without the top
    top1: float | None  # the source's published ImageNet top-1 (%), None for files without the top
    top1_note: str = ""
    sha256: str = ""  # the full hash, or the prefix the source publishes in the file name
    size: int = 0  # bytes, where the source publishes it exactly (checked after the download)
    megabytes: float = 0.0  # the source's rounded file size, for `weights list`
    unsupported: str = ""  # why this file cannot be loaded by this library (listed for completeness)

    @property
    def file_name(self) -> str:
        """The name the file is cached and mirrored under: the URL's last part, except where a source names
        every file alike (Hugging Face's `<repo>/resolve/main/model.safetensors`): there `<repo>.safetensors`,
        so that two models never share a cache file or a mirror path."""
        parts = self.url.split("/")
        if "resolve" in parts[1:]:
            repo = parts[parts.index("resolve") - 1]
            return repo + "." + parts[-1].rsplit(".", 1)[-1]
        return parts[-1]

    @property
    def check(self) -> str:
        """What is verified after the download (`weights list` shows it)."""
        if len(self.sha256) == 64:
            return "sha256"
        if self.sha256:
            return f"sha256 prefix {self.sha256}"
        if self.size:
            return "size"
        return "tensor shapes"

    def download_url(self) -> str:
        """The URL, or the same file name under `$MOBILENET_WEIGHTS_URL` (an organisation's mirror)."""
        base = os.environ.get("MOBILENET_WEIGHTS_URL", "").rstrip("/")
        return f"{base}/{self.source}/{self.file_name}" if base else self.url


_TV = "https://download.pytorch.org/models/"
_TIMM_HUB = "https://huggingface.co/timm/{}/resolve/main/model.safetensors"
_TIMM_GH = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"
_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_SLIM_V1 = "http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/"
_SLIM_V1_QUANT = "http://download.tensorflow.org/models/mobilenet_v1_2018_08_02/"
_SLIM_V2 = "https://storage.googleapis.com/mobilenet_v2/checkpoints/"

# TF-Slim READMEs: top-1 per (width, resolution).
SLIM_V1_TOP1 = {
    1.0: {224: 70.9, 192: 70.0, 160: 68.0, 128: 65.2},
    0.75: {224: 68.4, 192: 67.2, 160: 65.3, 128: 62.1},
    0.5: {224: 63.3, 192: 61.7, 160: 59.1, 128: 56.3},
    0.25: {224: 49.8, 192: 47.7, 160: 45.5, 128: 41.5},
}
SLIM_V1_QUANT_TOP1 = {
    1.0: {224: 69.7, 192: 69.0, 160: 67.3, 128: 64.0},
    0.75: {224: 67.9, 192: 66.2, 160: 63.9, 128: 59.8},
    0.5: {224: 62.2, 192: 60.4, 160: 57.7, 128: 54.9},
    0.25: {224: 48.2, 192: 45.8, 160: 43.5, 128: 39.9},
}
SLIM_V2_TOP1 = {
    1.4: {224: 75.0},
    1.3: {224: 74.4},
    1.0: {224: 71.8, 192: 70.7, 160: 68.8, 128: 65.3, 96: 60.3},
    0.75: {224: 69.8, 192: 68.7, 160: 66.4, 128: 63.2, 96: 58.8},
    0.5: {224: 65.4, 192: 63.9, 160: 61.0, 128: 57.7, 96: 51.2},
    0.35: {224: 60.3, 192: 58.2, 160: 55.7, 128: 50.8, 96: 45.5},
}
# keras-applications README: top-1 error at 224 (their preprocessing), as top-1.
KERAS_TOP1_224 = {
    "mobilenet_v1": {0.25: 51.582, 0.5: 64.292, 0.75: 68.412, 1.0: 70.424},
    "mobilenet_v2": {0.35: 60.086, 0.5: 65.194, 0.75: 69.532, 1.0: 71.336, 1.3: 74.680, 1.4: 75.230},
}


def _torchvision() -> list[WeightsEntry]:
    return [
        WeightsEntry("torchvision/mobilenet_v2.imagenet1k_v1", "torchvision", "mobilenet_v2", 1.0,
                     _TV + "mobilenet_v2-b0353104.pth", Preprocess(224, 224 / 256), 1000, 71.878,
                     sha256="b0353104", megabytes=13.555),
        WeightsEntry("torchvision/mobilenet_v2.imagenet1k_v2", "torchvision", "mobilenet_v2", 1.0,
                     _TV + "mobilenet_v2-7ebf99e0.pth", Preprocess(224, 224 / 232), 1000, 72.154,
                     sha256="7ebf99e0", megabytes=13.598),
    ]  # fmt: skip


def _timm() -> list[WeightsEntry]:
    def hub(tag: str) -> str:
        return _TIMM_HUB.format(tag)

    incep = Preprocess(interpolation="bicubic", mean=INCEPTION, std=INCEPTION)
    bicubic = Preprocess(interpolation="bicubic")
    depth = "timm's depth-multiplier model (extra blocks per stage): not the papers' network"
    return [
        WeightsEntry("timm/mobilenetv1_100.ra4_e3600_r224_in1k", "timm", "mobilenet_v1", 1.0,
                     hub("mobilenetv1_100.ra4_e3600_r224_in1k"), incep, 1000, 75.388),
        WeightsEntry("timm/mobilenetv1_125.ra4_e3600_r224_in1k", "timm", "mobilenet_v1", 1.25,
                     hub("mobilenetv1_125.ra4_e3600_r224_in1k"), replace(incep, crop=0.9), 1000, 76.920),
        WeightsEntry("timm/mobilenetv1_100h.ra4_e3600_r224_in1k", "timm", "mobilenet_v1", 1.0,
                     hub("mobilenetv1_100h.ra4_e3600_r224_in1k"), incep, 1000, 75.664,
                     unsupported="timm's variant with an extra 1x1 head convolution: not the paper's network"),
        WeightsEntry("timm/mobilenetv2_050.lamb_in1k", "timm", "mobilenet_v2", 0.5,
                     _TIMM_GH + "mobilenetv2_050-3d30d450.pth", bicubic, 1000, 65.928,
                     sha256="3d30d450"),
        WeightsEntry("timm/mobilenetv2_100.ra_in1k", "timm", "mobilenet_v2", 1.0,
                     _TIMM_GH + "mobilenetv2_100_ra-b33bc2c4.pth", bicubic, 1000, 72.910,
                     sha256="b33bc2c4"),
        WeightsEntry("timm/mobilenetv2_140.ra_in1k", "timm", "mobilenet_v2", 1.4,
                     _TIMM_GH + "mobilenetv2_140_ra-21a4e913.pth", bicubic, 1000, 76.528,
                     sha256="21a4e913"),
        WeightsEntry("timm/mobilenetv2_110d.ra_in1k", "timm", "mobilenet_v2", 1.1,
                     _TIMM_GH + "mobilenetv2_110d_ra-77090ade.pth", bicubic, 1000, 75.056,
                     sha256="77090ade", unsupported=depth),
        WeightsEntry("timm/mobilenetv2_120d.ra_in1k", "timm", "mobilenet_v2", 1.2,
                     _TIMM_GH + "mobilenetv2_120d_ra-5987e2ed.pth", bicubic, 1000, 77.300,
                     sha256="5987e2ed", unsupported=depth),
    ]  # fmt: skip


def _keras() -> list[WeightsEntry]:
    out = []
    v1_text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}
    for arch, table in (("mobilenet_v1", SLIM_V1_TOP1), ("mobilenet_v2", SLIM_V2_TOP1)):
        for width, per_res in table.items():
            for res, slim_top1 in per_res.items():
                for top in (True, False):
                    if arch == "mobilenet_v1":
                        file = f"mobilenet/mobilenet_{v1_text[width]}_{res}_tf{'' if top else '_no_top'}.h5"
                    else:
                        file = (
                            "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_"
                            f"{float(width)}_{res}{'' if top else '_no_top'}.h5"
                        )
                    keras = KERAS_TOP1_224[arch].get(width) if res == 224 else None
                    top1 = (keras if keras is not None else slim_top1) if top else None
                    note = "" if not top else ("keras-applications" if keras is not None else "TF-Slim, same weights")
                    out.append(
                        WeightsEntry(
                            f"keras/{arch}_{width}_{res}{'' if top else '_no_top'}",
                            "keras", arch, width, _KERAS + file, Preprocess(res, 0.875, "bilinear", *_TF),
                            1000 if top else 0, top1, note,
                        )
                    )  # fmt: skip
    return out


def _slim() -> list[WeightsEntry]:
    out = []
    for width, per_res in SLIM_V1_TOP1.items():
        for res, top1 in per_res.items():
            name = f"mobilenet_v1_{width}_{res}"
            out.append(WeightsEntry(f"slim/{name}", "slim", "mobilenet_v1", width, f"{_SLIM_V1}{name}.tgz",
                                    Preprocess(res, 0.875, "bilinear", *_TF), 1001, top1))  # fmt: skip
    for width, per_res in SLIM_V1_QUANT_TOP1.items():
        for res, top1 in per_res.items():
            name = f"mobilenet_v1_{width}_{res}_quant"
            out.append(WeightsEntry(f"slim/{name}", "slim", "mobilenet_v1", width, f"{_SLIM_V1_QUANT}{name}.tgz",
                                    Preprocess(res, 0.875, "bilinear", *_TF), 1001, top1,
                                    unsupported="quantization-aware training checkpoint (fake-quant ranges); "
                                    "use `mobilenet quantize` on the float weights instead"))  # fmt: skip
    for width, per_res in SLIM_V2_TOP1.items():
        for res, top1 in per_res.items():
            name = f"mobilenet_v2_{width}_{res}"  # widths as TF-Slim writes them: 1.0, 0.5
            out.append(WeightsEntry(f"slim/{name}", "slim", "mobilenet_v2", width,
                                    f"{_SLIM_V2}{name}.tgz", Preprocess(res, 0.875, "bilinear", *_TF),
                                    1001, top1))  # fmt: skip
    return out


ENTRIES: dict[str, WeightsEntry] = {e.name: e for e in (*_torchvision(), *_timm(), *_keras(), *_slim())}


def _defaults() -> dict[str, str]:
    """`mobilenet_v2` / `mobilenet_v2_0.5` ...: the loadable 224 entry with the highest published top-1."""
    best: dict[tuple[str, float], WeightsEntry] = {}
    for e in ENTRIES.values():
        if e.unsupported or not e.classes or e.preprocess.resolution != 224 or e.top1 is None:
            continue
        key = (e.arch, e.width)
        if key not in best or e.top1 > (best[key].top1 or 0):
            best[key] = e
    out = {f"{arch}_{float(width)}": e.name for (arch, width), e in best.items()}
    for arch in ("mobilenet_v1", "mobilenet_v2"):
        out[arch] = out[f"{arch}_1.0"]
    return out


DEFAULTS: dict[str, str] = _defaults()


def lookup(name: str) -> WeightsEntry:
    """The entry for a registry name or a short default (`mobilenet_v2`, `mobilenet_v1_0.5`)."""
    entry = ENTRIES.get(DEFAULTS.get(name, name))
    if entry is None:
        import difflib

        close = difflib.get_close_matches(name, [*ENTRIES, *DEFAULTS], n=3, cutoff=0.8)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `mobilenet weights list` shows them all"
        raise ValueError(f"unknown weights name {name!r}{hint}")
    if entry.unsupported:
        raise ValueError(f"{entry.name} is listed but cannot be loaded: {entry.unsupported}")
    return entry


def is_name(text: str) -> bool:
    """Whether `text` is a registry name rather than a file path."""
    return text in ENTRIES or text in DEFAULTS
