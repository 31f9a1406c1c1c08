"""Analytic activation memory, per operation and for the V2 paper's memory-efficient inference. No torch.

Sandler et al. 2018, sec. 5.1: with tensors freed as soon as they are dead, an op needs its inputs, its
outputs and whatever must be held for later (a residual's input) to be live at once. Treating a whole
inverted residual block as one operation whose t-times-wider inner tensor is a disposable temporary, and
computing that tensor in `splits` channel groups (F(x) = sum_i B_i N A_i x), leaves only the narrow
bottleneck tensors plus one group of the inner tensor alive.

Counting convention: elements of one image unless a batch is given; bytes = elements x bytes per element.
The split plan mirrors `mobilenet.deploy.split.SplitInference` exactly, so its bound is what that executor
allocates (inputs in channels-last layout; an NCHW input costs one extra copy of the image).
"""

from __future__ import annotations

from dataclasses import dataclass

from mobilenet.config import ModelConfig
from mobilenet.specs import NetworkSpec, check_resolution, network_spec, output_size

DTYPE_BYTES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}
FIRST_LAYER_MODES: tuple[str, ...] = ("materialise", "split", "stream")


@dataclass(frozen=True)
class OpMemory:
    """Elements that must be live while one operation runs."""

    name: str
    inputs: int
    outputs: int
    held: int = 0  # live for a later op: a residual's input
    scratch: int = 0  # disposable inner tensors (one channel group of an expanded tensor)

    @property
    def total(self) -> int:
        return self.inputs + self.outputs + self.held + self.scratch


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _spec(config: ModelConfig, resolution: int) -> NetworkSpec:
    spec = network_spec(config)
    check_resolution(spec, resolution)
    return spec


def per_op_memory(config: ModelConfig, resolution: int = 224) -> list[OpMemory]:
    """Every conv is its own op (BN folded, activations in place): expanded tensors exist whole."""
    spec = _spec(config, resolution)
    size = output_size(resolution, spec.stem_stride)
    ops = [OpMemory("stem", spec.in_channels * resolution**2, spec.stem_channels * size**2)]
    for i, b in enumerate(spec.blocks):
        x = b.in_channels * size**2
        out_size = output_size(size, b.stride)
        y = b.out_channels * out_size**2
        held = x if b.use_residual else 0
        if b.kind == "conv":
            ops.append(OpMemory(f"blocks.{i}", x, y))
        elif b.kind == "separable":
            mid = b.in_channels * out_size**2
            ops += [OpMemory(f"blocks.{i}.depthwise", x, mid), OpMemory(f"blocks.{i}.pointwise", mid, y)]
        else:
            h_in, h_out = b.hidden_channels * size**2, b.hidden_channels * out_size**2
            first = "reduce" if b.kind == "classic" else "expand"
            last = "expand" if b.kind == "classic" else "project"
            if b.kind == "classic" or b.has_expand:
                ops.append(OpMemory(f"blocks.{i}.{first}", x, h_in))
            else:
                h_in = x  # t = 1: the depthwise conv reads the block input itself
            ops.append(OpMemory(f"blocks.{i}.depthwise", h_in, h_out, held if h_in != x else 0))
            ops.append(OpMemory(f"blocks.{i}.{last}", h_out, y, held))
        size = out_size
    features = spec.blocks[-1].out_channels * size**2
    if spec.head_channels is not None:
        ops.append(OpMemory("head", features, spec.head_channels * size**2))
        features = spec.head_channels * size**2
    ops.append(OpMemory("pool", features, spec.feature_channels))
    ops.append(OpMemory("classifier", spec.feature_channels, config.num_classes))
    return ops


def max_splits(config: ModelConfig) -> int:
    """The widest inner tensor a split can cut: the largest expansion (or V2's 1x1 head) width."""
    spec = network_spec(config)
    widths = [b.hidden_channels for b in spec.blocks if b.kind == "inverted"]
    return max([*widths, spec.stem_channels, spec.head_channels or 0])


def check_splittable(config: ModelConfig, splits: int = 1) -> None:
    """Raise ValueError unless `config` has inverted residuals whose inner tensors can be split `splits` ways."""
    if config.arch != "mobilenet_v2" or config.block != "inverted":
        what = "classic residual blocks" if config.block == "classic" else config.arch
        raise ValueError(
            f"split inference needs inverted residual blocks (mobilenet_v2); {what} has none: its "
            "wide tensors are block inputs and outputs, so they cannot be computed a group at a time"
        )
    if config.shortcut == "expansion":
        raise ValueError(
            "split inference cannot run shortcut='expansion': that ablation adds expanded tensors across "
            "blocks, so they must exist whole"
        )
    if config.padding != "symmetric":
        raise ValueError(
            "split inference runs symmetric padding only; this model pads like TensorFlow (padding='tf-same')"
        )
    if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
        raise ValueError(f"splits must be an integer >= 1, got {splits!r}")
    widest = max_splits(config)
    if splits > widest:
        raise ValueError(
            f"splits={splits} is larger than the widest expanded tensor ({widest} channels) of "
            f"{config.arch} at width {config.width}; use 1..{widest}"
        )


def groups_of(channels: int, splits: int) -> list[tuple[int, int]]:
    """[start, stop) channel ranges of `min(splits, channels)` nearly equal groups, widest first."""
    pieces = min(splits, channels)
    base, extra = divmod(channels, pieces)
    bounds, start = [], 0
    for i in range(pieces):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def fuses_stem(config: ModelConfig, first_layer: str = "split") -> bool:
    """Whether the stem conv acts as the first block's expansion (the V2 paper's first-layer trick):
    possible when that block has t = 1, so the stem's output is the block's inner tensor, and no skip
    connection (at width 0.25 and below the stem and the first block both have 8 channels, and the
    skip needs the stem's output whole)."""
    first = network_spec(config).blocks[0]
    return first_layer == "split" and first.kind == "inverted" and not first.has_expand and not first.use_residual


def split_memory(config: ModelConfig, resolution: int = 224, splits: int = 1) -> list[OpMemory]:
    """Live elements per op of `SplitInference`: each inverted residual block is one op whose inner
    tensor is computed `splits` channel groups at a time (a group of the expansion output at the
    input size plus the same group of the depthwise output at the output size)."""
    check_splittable(config, splits)
    spec = _spec(config, resolution)
    fuse = fuses_stem(config)
    size = output_size(resolution, spec.stem_stride)
    image = spec.in_channels * resolution**2
    ops = []
    blocks = list(enumerate(spec.blocks))
    if fuse:
        b = spec.blocks[0]
        g = _ceil_div(b.hidden_channels, min(splits, b.hidden_channels))
        out_size = output_size(size, b.stride)
        ops.append(OpMemory("stem+blocks.0", image, b.out_channels * out_size**2, 0, g * (size**2 + out_size**2)))
        size, blocks = out_size, blocks[1:]
    else:
        ops.append(OpMemory("stem", image, spec.stem_channels * size**2))
    for i, b in blocks:
        out_size = output_size(size, b.stride)
        g = _ceil_div(b.hidden_channels, min(splits, b.hidden_channels))
        # A residual block writes into a fresh buffer while its input is still being read.
        x, y = b.in_channels * size**2, b.out_channels * out_size**2
        ops.append(OpMemory(f"blocks.{i}", x, y, 0, g * (size**2 + out_size**2)))
        size = out_size
    head = spec.head_channels or 0
    g = _ceil_div(head, min(splits, head))
    x = spec.blocks[-1].out_channels * size**2
    # The 1x1 head conv is split too: global pooling is per channel, so each group is pooled at once.
    ops.append(OpMemory("head+pool", x, head, 0, g * size**2 + g))
    ops.append(OpMemory("classifier", head, config.num_classes))
    return ops


def live_totals(ops: list[OpMemory], *, input_held: bool = False) -> list[int]:
    """Each op's live elements; `input_held` adds the network input to every op after the first, as
    when the caller keeps its batch alive through the whole forward pass (what a measurement sees)."""
    image = ops[0].inputs
    return [op.total + (image if input_held and i > 0 else 0) for i, op in enumerate(ops)]


def peak(ops: list[OpMemory], *, input_held: bool = False) -> OpMemory:
    totals = live_totals(ops, input_held=input_held)
    return ops[totals.index(max(totals))]


def peak_bytes(ops: list[OpMemory], *, batch: int = 1, dtype: str = "float32", input_held: bool = False) -> int:
    return max(live_totals(ops, input_held=input_held)) * batch * dtype_bytes(dtype)


def dtype_bytes(dtype: str) -> int:
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of: {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[dtype]


@dataclass(frozen=True)
class MaterialisedRow:
    """V2 paper Table 3: the largest tensor that must exist whole at one spatial size."""

    size: int
    channels: int
    name: str  # the tensor's producer

    def bytes(self, dtype: str = "float16") -> int:
        return self.channels * self.size**2 * dtype_bytes(dtype)


def materialised(config: ModelConfig, resolution: int = 224, first_layer: str = "split") -> list[MaterialisedRow]:
    """Per spatial size, the widest tensor that must be materialised, largest size first.

    V1 materialises every layer output. V2 materialises only bottleneck tensors (block inputs and
    outputs): expanded tensors are split away, and so is the 1x1 head, which global pooling consumes
    channel by channel. `first_layer`: "materialise" keeps the stem output; "split" (the paper's Table 3)
    treats V2's stem as the first block's expansion (that block has t = 1); "stream" also computes every
    tensor at the stem's output size in spatial tiles, so none of them exists whole (the 800K / 200K
    variant of the table).
    """
    if first_layer not in FIRST_LAYER_MODES:
        raise ValueError(f"unknown first_layer {first_layer!r}; expected one of: {', '.join(FIRST_LAYER_MODES)}")
    spec = _spec(config, resolution)
    size = output_size(resolution, spec.stem_stride)
    tensors: list[tuple[int, int, str]] = []  # (size, channels, producer)
    v2 = spec.blocks[0].kind in ("inverted", "classic")
    if not (v2 and fuses_stem(config, first_layer)):
        tensors.append((size, spec.stem_channels, "stem"))
    for i, b in enumerate(spec.blocks):
        out_size = output_size(size, b.stride)
        if b.kind == "separable":
            tensors.append((out_size, b.in_channels, f"blocks.{i}.depthwise"))
        # A classic block's disposable inner tensor is its narrow one; its wide ends are materialised.
        tensors.append((out_size, b.out_channels, f"blocks.{i}"))
        size = out_size
    if spec.head_channels is None:
        tensors.append((1, spec.feature_channels, "pool"))
    else:
        tensors.append((1, spec.head_channels, "head+pool"))
    if first_layer == "stream":
        first = output_size(resolution, spec.stem_stride)
        tensors = [t for t in tensors if t[0] != first]
    rows: dict[int, MaterialisedRow] = {}
    for s, c, name in tensors:
        if s not in rows or c > rows[s].channels:
            rows[s] = MaterialisedRow(s, c, name)
    return sorted(rows.values(), key=lambda r: -r.size)
