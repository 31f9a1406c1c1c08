"""Datasets: bundled digits, CIFAR-10/100 from the official archives, and ImageFolder trees.

Every split offers `batches(...)`: shuffled (seeded by seed and epoch, so a resumed run sees the same
order), sharded across distributed ranks, augmented and normalized. No torchvision at run time.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from mobilenet.config import DataConfig
from mobilenet.data import transforms as T
from mobilenet.data.ahead import map_ahead
from mobilenet.data.cifar import load_cifar
from mobilenet.data.images import IMAGE_EXTENSIONS, open_image
from mobilenet.data.subsets import stratified_subset

log = logging.getLogger("mobilenet")


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def epoch_order(n: int, *, train: bool, seed: int, epoch: int, rank: int, world: int) -> tuple[Tensor, torch.Generator]:
    """This rank's sample indices for one epoch, and the generator that also drives its augmentation.

    Training: a permutation seeded by (seed, epoch), padded and strided like DistributedSampler.
    Evaluation: every index once over all ranks, in order.
    """
    g = _epoch_generator(seed, epoch)
    if not train:
        return torch.arange(n)[rank::world], g
    return _shard(torch.randperm(n, generator=g), rank, world), g


def _shard(order: Tensor, rank: int, world: int) -> Tensor:
    """DistributedSampler's rule: pad by wrapping so every rank gets the same number of samples."""
    if world == 1:
        return order
    per_rank = math.ceil(len(order) / world)
    padded = torch.cat([order, order[: per_rank * world - len(order)]])
    return padded[rank::world]


@dataclass
class ArraySplit:
    """Images that fit in memory as one uint8 (N, 3, H, W) tensor: augmentation runs on whole batches."""

    images: Tensor
    labels: Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    padding: int = 4  # random-crop padding for training (CIFAR recipe)
    flip: bool = True

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return len(self.labels)

    def batches(
        self,
        batch_size: int,
        *,
        train: bool,
        epoch: int = 0,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        device: torch.device | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        order, g = epoch_order(len(self), train=train, seed=seed, epoch=epoch, rank=rank, world=world)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            # uint8 crosses to the device (4x less traffic than float); crop, flip, normalize run there
            images = self.images[idx].to(device or "cpu", non_blocking=True)
            if train:
                images = T.random_crop_flip(images, self.padding, generator=g, flip=self.flip)
            yield T.normalize(images, self.mean, self.std), self.labels[idx]


def load_digits_splits(resolution: int = 32) -> tuple[ArraySplit, ArraySplit]:
    """scikit-learn's 1,797 real 8x8 digits, upsampled to RGB `resolution`, stratified 80/20 split (seed 0).
    Made once per process and resolution (a run, its evaluation and its exports each ask for them); every
    call gets its own tensors."""
    train, test = (
        dataclasses.replace(s, images=s.images.clone(), labels=s.labels.clone(), classes=list(s.classes))
        for s in _digits_splits(resolution)
    )
    return train, test


@functools.lru_cache(maxsize=4)
def _digits_splits(resolution: int) -> tuple[ArraySplit, ArraySplit]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    x = torch.nn.functional.interpolate(x, size=resolution, mode="bilinear", align_corners=False)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1)
    labels = torch.tensor(digits.target, dtype=torch.int64)
    train_idx, test_idx = (
        torch.tensor(i)
        for i in train_test_split(list(range(len(labels))), test_size=0.2, stratify=digits.target, random_state=0)
    )
    pixels = images[train_idx].float() / 255
    mean, std = tuple(pixels.mean(dim=(0, 2, 3)).tolist()), tuple(pixels.std(dim=(0, 2, 3)).tolist())
    classes = [str(i) for i in range(10)]
    # Shift by up to 2 pixels (a quarter of the 8-pixel original), never flip: a mirrored 2 is not a 2.
    return (
        ArraySplit(images[train_idx], labels[train_idx], classes, mean, std, padding=resolution // 16, flip=False),
        ArraySplit(images[test_idx], labels[test_idx], classes, mean, std, flip=False),
    )


def scan_folder(root: Path, classes: list[str] | None = None) -> tuple[list[str], list[tuple[Path, int]]]:
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise ValueError(f"image folder {root} has no class folders")
    classes = classes or found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ValueError(f"{root} has class folders not in the training set: {', '.join(unknown)}")
    samples: list[tuple[Path, int]] = []
    others: list[Path] = []
    for index, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue  # a validation split may lack a class
        # a broken link is kept, so that it is named as unreadable like any other file that cannot be read
        files = sorted(
            p for p in folder.rglob("*") if (p.is_file() or (p.is_symlink() and not p.exists())) and p.name[0] != "."
        )
        others += [p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]  # sidecars: notes, JSON, XMP
        files = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
        if not files:
            raise ValueError(f"class folder {folder} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        samples += [(path, index) for path in files]
    if others:
        log.info(f"{root}: left out {len(others)} file(s) that are not images by their name, e.g. {others[0]}")
    return classes, samples


@dataclass
class FolderSplit:
    """An ImageFolder split (ImageNet layout); images are decoded by `workers` threads (`data.ahead`)."""

    samples: list[tuple[Path, int]]
    classes: list[str]
    resolution: int
    workers: int = 2
    mean: tuple[float, ...] = T.IMAGENET_MEAN
    std: tuple[float, ...] = T.IMAGENET_STD
    crop: float = T.EVAL_CROP_FRACTION  # evaluation: resize to resolution / crop, centre crop
    interpolation: str = "bilinear"
    reduced_decode: bool = True  # evaluation: decode large JPEGs at reduced size (False: every pixel)
    # evaluation: leave out files that cannot be read and list them in `skipped` (else the first one stops it)
    skip_unreadable: bool = False
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def batches(
        self,
        batch_size: int,
        *,
        train: bool,
        epoch: int = 0,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        device: torch.device | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        order, _ = epoch_order(len(self), train=train, seed=seed, epoch=epoch, rank=rank, world=world)
        sample = functools.partial(self._sample, train=train, seed=seed * 1000 + epoch)
        if not train:
            self.skipped.clear()  # this pass's unreadable files only
        images: list[Tensor] = []
        labels: list[int] = []
        for item in map_ahead(sample, order.tolist(), self.workers):
            if isinstance(item, str):  # unreadable, with skip_unreadable: left out and named
                self.skipped.append(item)
                continue
            images.append(item[0])
            labels.append(item[1])
            if len(images) == batch_size:
                yield self._batch(images, labels, device)
                images, labels = [], []
        if images:
            yield self._batch(images, labels, device)

    def _sample(self, index: int, *, train: bool, seed: int) -> tuple[Tensor, int] | str:
        """One image as uint8 CHW at the split's side, or (evaluation with `skip_unreadable`) the reason
        it cannot be read."""
        path, label = self.samples[index]
        size = self.resolution
        # evaluation needs only the short side size / crop: large JPEGs decode at reduced size (DCT scaling)
        need = round(size / self.crop) if not train and self.reduced_decode else None
        try:
            image = open_image(path, need)
        except ValueError as err:
            if train or not self.skip_unreadable:
                raise
            return str(err)
        if train:  # per-sample generator: the same crops whatever the thread count or resume point
            g = torch.Generator().manual_seed(seed * 1_000_003 + index)
            image = T.random_resized_crop(image, size, g)
        else:
            image = T.resize_center_crop(image, size, self.crop, self.interpolation)
        return T.pil_to_tensor(image), label

    def _batch(self, images: list[Tensor], labels: list[int], device: torch.device | None) -> tuple[Tensor, Tensor]:
        x = torch.stack(images).to(device or "cpu", non_blocking=True)
        return T.normalize(x, self.mean, self.std), torch.tensor(labels).to(device or "cpu", non_blocking=True)


Split = ArraySplit | FolderSplit


def load_splits(config: DataConfig) -> tuple[Split, Split]:
    """(train, test) splits of the configured dataset; `config.train_images` keeps a stratified subset of
    the training split (the normalisation stays that of the whole split)."""
    train, test = _load_splits(config)
    return fewer_images(train, config.train_images), test


def fewer_images(split: Split, n: int) -> Split:
    """`split` cut to a stratified subset of `n` images (0 or the whole size: unchanged)."""
    if n == 0 or n == len(split):
        return split
    if isinstance(split, ArraySplit):
        idx = torch.tensor(stratified_subset(split.labels.tolist(), n))
        return dataclasses.replace(split, images=split.images[idx], labels=split.labels[idx])
    assert isinstance(split, FolderSplit)
    keep = stratified_subset([label for _, label in split.samples], n)
    return dataclasses.replace(split, samples=[split.samples[i] for i in keep])


def _load_splits(config: DataConfig) -> tuple[Split, Split]:
    if config.dataset == "digits":
        return load_digits_splits(config.resolution or 32)
    if config.dataset in ("cifar10", "cifar100"):
        train_x, train_y, test_x, test_y, classes = load_cifar(config.dataset, config.data_dir, config.download)
        ten = config.dataset == "cifar10"
        mean, std = (T.CIFAR10_MEAN, T.CIFAR10_STD) if ten else (T.CIFAR100_MEAN, T.CIFAR100_STD)
        if config.resolution and config.resolution != 32:
            train_x, test_x = (_resize_uint8(x, config.resolution) for x in (train_x, test_x))
        return ArraySplit(train_x, train_y, classes, mean, std), ArraySplit(test_x, test_y, classes, mean, std)
    if not config.data_dir:
        raise ValueError("dataset 'imagefolder' needs --data-dir (a folder holding train/ and val/)")
    root = Path(config.data_dir)
    classes, train = scan_folder(root / "train")
    _, val = scan_folder(root / "val", classes)
    size = config.resolution or 224
    return FolderSplit(train, classes, size, config.workers), FolderSplit(val, classes, size, config.workers)


def _resize_uint8(images: Tensor, size: int) -> Tensor:
    x = torch.nn.functional.interpolate(images.float(), size=size, mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)
