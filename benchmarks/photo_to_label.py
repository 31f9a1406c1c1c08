"""From photo file to label: our pipeline against torchvision's and Keras' documented ones, same run.

    python benchmarks/photo_to_label.py [--threads 2] [--latency 20] [--folder-web 500] [--folder-camera 500]
        [--checkpoint RUN] [--precision fp32 int8]

The same as `mobilenet bench --photos`; what is measured is described in `mobilenet.deploy.bench_photos`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from mobilenet.deploy.bench_photos import PhotoBenchOptions, bench_photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency", type=int, default=20, help="photos per size for latency")
    parser.add_argument("--folder-web", type=int, default=500, help="web-size photos for folder throughput")
    parser.add_argument("--folder-camera", type=int, default=500, help="camera-size photos for folder throughput")
    parser.add_argument("--checkpoint", help="a trained digits run: also measure reduced vs full decoding accuracy")
    parser.add_argument("--digits", type=int, default=360, help="digits test images for --checkpoint")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=("fp32", "int8"))
    a = parser.parse_args()
    options = PhotoBenchOptions(
        threads=a.threads,
        latency=a.latency,
        folder_web=a.folder_web,
        folder_camera=a.folder_camera,
        checkpoint=a.checkpoint,
        digits=a.digits,
        precisions=tuple(a.precision),
    )
    print(bench_photos(options, progress=lambda m: print(f"timing {m}", file=sys.stderr)))


if __name__ == "__main__":
    main()
