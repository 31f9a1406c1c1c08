"""This machine's compute roofline for a model: multiply-adds / measured GEMM throughput per precision.

    python benchmarks/roofline.py [--threads 2] [--width 1.0] [--resolution 224]

GEMM throughput is the best of a large square matrix multiply (2048^3) in PyTorch (fp32, bf16, and int8
via torch._int_mm) and in onnxruntime's MLAS kernels (MatMul fp32, MatMulInteger uint8 x int8), which
run the exported models. The floor is the time the model's multiply-adds would take at that throughput;
real networks sit above it (depthwise convs are memory-bound, and small 1x1 GEMMs run below peak).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from mobilenet.config import ModelConfig
from mobilenet.costs import model_costs, totals


def gemm_ops_per_s(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float | None:
    a = torch.ones(n, n, dtype=dtype) if dtype != torch.int8 else torch.ones(n, n, dtype=torch.int8)
    b = a.clone()
    mm = torch._int_mm if dtype == torch.int8 else torch.mm
    try:
        mm(a, b)
    except RuntimeError:
        return None
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def ort_ops_per_s(precision: str, threads: int, n: int = 2048, repeats: int = 5) -> float | None:
    try:
        import numpy as np
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    if precision == "fp32":
        a_type, b_type, out_type, op = TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.FLOAT, "MatMul"
        a, b = np.ones((n, n), np.float32), np.ones((n, n), np.float32)
    else:
        a_type, b_type, out_type, op = TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32, "MatMulInteger"
        a, b = np.ones((n, n), np.uint8), np.ones((n, n), np.int8)
    graph = helper.make_graph(
        [helper.make_node(op, ["A", "B"], ["C"])], "gemm",
        [helper.make_tensor_value_info("A", a_type, [n, n]), helper.make_tensor_value_info("B", b_type, [n, n])],
        [helper.make_tensor_value_info("C", out_type, [n, n])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {"A": a, "B": b}
    session.run(None, feeds)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, feeds)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--resolution", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    macs = totals(model_costs(ModelConfig("mobilenet_v2", args.width), args.resolution)).macs
    print(f"MobileNetV2 {args.width}/{args.resolution}: {macs / 1e6:.1f} M multiply-adds = {2 * macs / 1e9:.3f} GFLOP")
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("int8", torch.int8)):
        measured = {"torch": gemm_ops_per_s(dtype)}
        if name != "bf16":
            measured["onnxruntime"] = ort_ops_per_s(name, args.threads)
        found = {k: v for k, v in measured.items() if v}
        if not found:
            print(f"{name}: GEMM not supported here")
            continue
        ops = max(found.values())
        each = ", ".join(f"{k} {v / 1e9:.0f}" for k, v in found.items())
        print(f"{name}: GEMM {ops / 1e9:7.1f} G(FL)OP/s ({each}) on {args.threads} threads "
              f"-> floor {2 * macs / ops * 1e3:.3f} ms/image")  # fmt: skip


if __name__ == "__main__":
    main()
