"""Attempts to make the network itself faster than the fastest peer path on the same engine (OpenVINO int8).

    python benchmarks/network_attempts.py [--threads 2] [--runs 40]

MobileNetV2 1.0/224, random weights, the same tensors in ours and torchvision's model. Every variant is
timed interleaved with the others in one run (median of `--runs` after warm-up), at batch 1 and 32:
- the bench paths: ours and torchvision's ONNX (dynamic batch) quantized to QDQ int8 by onnxruntime's
  static quantizer, compiled by OpenVINO with the LATENCY hint;
- static shapes: the same files reshaped to a fixed batch before compiling;
- OpenVINO-native int8: NNCF's post-training quantization of the OpenVINO model (needs `nncf`);
- THROUGHPUT hint at batch 32 (OpenVINO picks streams); the peer gets each setting too where it applies.
Outputs are checked against PyTorch (top-1 agreement on the random inputs) so no attempt trades accuracy.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from mobilenet.deploy.export import export_onnx, onnx_export
from mobilenet.deploy.qdq import quantize_onnx
from mobilenet.models import mobilenet_v2
from mobilenet.peers import import_peer
from mobilenet.weights import export_tensors


def compile_ov(
    path: Path, threads: int, batch: int | None, hint: str = "LATENCY"
) -> Callable[[np.ndarray], np.ndarray]:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    if batch is not None:
        model.reshape({model.inputs[0].any_name: [batch, 3, 224, 224]})
    compiled = core.compile_model(
        model,
        "CPU",
        {"PERFORMANCE_HINT": hint, "INFERENCE_NUM_THREADS": str(threads), "INFERENCE_PRECISION_HINT": "f32"},
    )
    if hint == "THROUGHPUT":
        queue = ov.AsyncInferQueue(compiled)
        outputs: dict[int, np.ndarray] = {}
        queue.set_callback(lambda request, i: outputs.__setitem__(i, request.get_output_tensor(0).data.copy()))

        def run_async(x: np.ndarray) -> np.ndarray:  # split the batch over the streams' requests
            parts = np.array_split(x, len(queue))
            for i, part in enumerate(parts):
                queue.start_async({0: part}, i)
            queue.wait_all()
            return np.concatenate([outputs[i] for i in range(len(parts))])

        return run_async
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        request.infer({0: x})
        return request.get_output_tensor(0).data.copy()

    return run


def nncf_int8(onnx_fp32: Path, out: Path, calibration: np.ndarray) -> Path | None:
    try:
        import nncf
        import openvino as ov
    except ImportError:
        return None
    model = ov.Core().read_model(str(onnx_fp32))
    dataset = nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))])
    quantized = nncf.quantize(model, dataset, subset_size=len(calibration))
    ov.save_model(quantized, str(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ours = mobilenet_v2().eval()
    with torch.no_grad():  # the default init zeroes the classifier: give it weights so top-1 means something
        torch.nn.init.normal_(ours.classifier.weight, std=0.05, generator=torch.Generator().manual_seed(0))
    tv = import_peer("torchvision").models.mobilenet_v2().eval()
    tv.load_state_dict(export_tensors(ours, "torchvision")[0])
    g = torch.Generator().manual_seed(1)
    calibration = torch.randn(16, 3, 224, 224, generator=g).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = {
            "ours": export_onnx(ours, work / "ours.onnx", 224),
            "torchvision": onnx_export(tv, work / "tv.onnx", torch.randn(1, 3, 224, 224)),
        }
        qdq = {k: quantize_onnx(v, work / f"{k}.int8.onnx", [calibration]) for k, v in files.items()}
        native = {k: nncf_int8(v, work / f"{k}.nncf.xml", calibration) for k, v in files.items()}
        for batch in (1, 32):
            x = torch.randn(batch, 3, 224, 224, generator=g).numpy()
            with torch.no_grad():
                want = ours(torch.from_numpy(x)).argmax(1).numpy()
            variants: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
            for who in ("ours", "torchvision"):
                variants[f"{who} QDQ int8, dynamic batch (bench path)"] = compile_ov(qdq[who], args.threads, None)
                variants[f"{who} QDQ int8, static batch {batch}"] = compile_ov(qdq[who], args.threads, batch)
                if native[who] is not None:
                    variants[f"{who} NNCF int8, static batch {batch}"] = compile_ov(native[who], args.threads, batch)  # type: ignore[arg-type]
                if batch > 1:
                    variants[f"{who} QDQ int8, THROUGHPUT hint"] = compile_ov(
                        qdq[who], args.threads, None, "THROUGHPUT"
                    )
            times: dict[str, list[float]] = {k: [] for k in variants}
            agree = {k: float((run(x).argmax(1) == want).mean()) for k, run in variants.items()}
            for _ in range(args.runs):
                for name, run in variants.items():
                    t = time.perf_counter()
                    run(x)
                    times[name].append(time.perf_counter() - t)
            medians = {k: statistics.median(v[3:]) * 1e3 for k, v in times.items()}
            best_peer = min(v for k, v in medians.items() if k.startswith("torchvision"))
            print(f"\nbatch {batch} ({args.threads} threads); ratio = fastest torchvision variant / variant")
            for name, ms in sorted(medians.items(), key=lambda kv: kv[1]):
                print(
                    f"  {name:<48}{ms:9.2f} ms  {best_peer / ms:5.2f}x  top-1 agreement with PyTorch {agree[name]:.0%}"
                )


if __name__ == "__main__":
    main()
