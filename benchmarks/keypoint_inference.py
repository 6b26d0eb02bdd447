"""S3K keypoint inference speed: 4 views at 128 px -> 3D keypoints, on this machine's CPU.

Times :meth:`KeypointPredictor.predict` (network + spatial softmax + peak-windowed means +
confidence weights + weighted triangulation, numpy in and out) for one multi-view frame,
and the network alone, for model variants that differ in what the issue asked to measure:

* ``stride`` — heatmaps at full resolution (1), 1/2 (2, the default) or 1/4 (4);
* ``skip`` — U-Net skip connections by concatenation or by addition (the default);
* ``fused`` — BatchNorm folded into the convolutions (the predictor's default);
* ``channels_last`` — NHWC memory format (the predictor's default);
* ``stem2-res2`` — two convs at the first resolution and two ResNet blocks instead of one.

Timing does not depend on the weights, so the variants are freshly initialised models (or
``--checkpoint``'s). Variants are interleaved within each repeat so that they all see the
same machine load (the machine may be shared); the median over ``--repeats`` x ``--calls``
calls is reported, after ``--warmup`` calls. Threads: ``--threads`` (default 2).

Outputs (atomically) in ``--out`` (default ``benchmarks/results/``):
``keypoint_inference.csv`` and ``keypoint_inference.json`` (rows + machine info + the
target verdict: default variant, batch 1, 4 views at 128 px, <= 10 ms).

Usage::

    python -m benchmarks.keypoint_inference [--quick] [--size 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import common
from s3k_envs.keypoints.model import build_model, load_checkpoint
from s3k_envs.keypoints.predictor import KeypointPredictor
from s3k_envs.keypoints.train import TrainConfig

TARGET_MS = 10.0
CSV_COLUMNS = (
    "variant", "stride", "skip", "fused", "channels_last", "batch", "views", "image_size",
    "predict_ms", "predict_p90_ms", "network_ms", "ms_per_frame", "frames_per_s", "is_default",
)
TABLE = [
    ("variant", "variant", "s"), ("batch", "frames", "d"), ("predict_ms", "predict ms", ".2f"),
    ("predict_p90_ms", "p90 ms", ".2f"), ("network_ms", "network ms", ".2f"),
    ("ms_per_frame", "ms / frame", ".2f"),
]


def _variants(quick: bool) -> list[dict[str, Any]]:
    out = [dict(stride=2, skip="add", fused=True, channels_last=True, default=True)]
    out += [
        dict(stride=2, skip="add", fused=True, channels_last=False),
        dict(stride=2, skip="add", fused=False, channels_last=False),
        dict(stride=2, skip="concat", fused=True, channels_last=True),
        dict(stride=4, skip="add", fused=True, channels_last=True),
        dict(stride=1, skip="add", fused=True, channels_last=True),
        dict(stride=2, skip="add", fused=True, channels_last=True, stem_convs=2, res_blocks=2),
    ]
    return out[:3] if quick else out


def _name(v: dict[str, Any]) -> str:
    extra = "-stem2-res2" if v.get("res_blocks") == 2 else ""
    return (f"stride{v['stride']}-{v['skip']}-{'fused' if v['fused'] else 'bn'}-"
            f"{'nhwc' if v['channels_last'] else 'nchw'}{extra}")


def _make_predictor(v: dict[str, Any], size: int, cams: int, checkpoint: Path | None
                    ) -> KeypointPredictor:
    if checkpoint is not None:
        model, config = load_checkpoint(checkpoint)
        config = {**config}
    else:
        d = TrainConfig()
        config = {"keypoint_names": ["a", "b", "c"], "num_cameras": cams,
                  "image_size": [size, size], "sigma": d.sigma, "stride": v["stride"],
                  "channels": d.channels, "res_blocks": v.get("res_blocks", d.res_blocks),
                  "res_channels": d.res_channels, "skip": v["skip"],
                  "stem_convs": v.get("stem_convs", d.stem_convs), "window_px": d.window_px}
        torch.manual_seed(0)
        model = build_model(config)
    return KeypointPredictor(model, config, fuse=v["fused"], channels_last=v["channels_last"])


def _inputs(batch: int, cams: int, size: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, cams, size, size, 3), dtype=np.uint8)
    f = size / 2 / np.tan(np.radians(22.5))
    intr = np.tile(np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]], np.float32),
                   (batch, cams, 1, 1))
    extr = np.tile(np.eye(4, dtype=np.float32), (batch, cams, 1, 1))
    extr[..., :3, 3] = rng.normal(0, 0.1, (batch, cams, 3)) + np.array([0.0, 0.0, 0.5])
    return images, intr, extr


def run(size: int, cams: int, batches: Sequence[int], calls: int, repeats: int, warmup: int,
        threads: int, quick: bool, checkpoint: Path | None) -> list[dict[str, Any]]:
    torch.set_num_threads(threads)
    variants = _variants(quick)
    if checkpoint is not None:
        variants = variants[:1]
    preds = [_make_predictor(v, size, cams, checkpoint) for v in variants]
    times: dict[tuple[int, int], dict[str, list[float]]] = {}
    for batch in batches:
        images, intr, extr = _inputs(batch, cams, size, 0)
        x = torch.from_numpy(images)
        for i, p in enumerate(preds):
            for _ in range(warmup):
                p.predict(images, intr, extr)
            times[(i, batch)] = {"predict": [], "network": []}
        for _ in range(repeats):
            for i, p in enumerate(preds):
                rec = times[(i, batch)]
                for _ in range(calls):
                    t0 = time.perf_counter()
                    p.predict(images, intr, extr)
                    rec["predict"].append(time.perf_counter() - t0)
                with torch.inference_mode():
                    for _ in range(calls):
                        t0 = time.perf_counter()
                        p.model.forward_views(x)
                        rec["network"].append(time.perf_counter() - t0)
    rows = []
    for (i, batch), rec in times.items():
        v = variants[i]
        pred_ms = 1000 * statistics.median(rec["predict"])
        rows.append({
            "variant": _name(v), "stride": v["stride"], "skip": v["skip"], "fused": v["fused"],
            "channels_last": v["channels_last"], "batch": batch, "views": cams,
            "image_size": size, "predict_ms": pred_ms,
            "predict_p90_ms": 1000 * float(np.percentile(rec["predict"], 90)),
            "network_ms": 1000 * statistics.median(rec["network"]),
            "ms_per_frame": pred_ms / batch, "frames_per_s": 1000 * batch / pred_ms,
            "is_default": bool(v.get("default")), "n_calls": len(rec["predict"]),
        })
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.keypoint_inference",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=128, help="image size, px (default 128)")
    p.add_argument("--cameras", type=int, default=4)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8],
                   help="frames per call (envs batched together); default 1 8")
    p.add_argument("--calls", type=int, default=None, help="timed calls per repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpoint", type=Path, default=None, help="time this checkpoint")
    p.add_argument("--quick", action="store_true", help="3 variants, fewer calls")
    p.add_argument("--out", type=Path, default=common.RESULTS_DIR)
    a = p.parse_args(argv)
    calls = a.calls or (10 if a.quick else 20)
    rows = run(a.size, a.cameras, a.batches, calls, a.repeats, a.warmup, a.threads, a.quick,
               a.checkpoint)
    default = next(r for r in rows if r["is_default"] and r["batch"] == 1) if 1 in a.batches \
        else None
    verdict = None
    if default is not None and a.size == 128 and a.cameras == 4:
        verdict = {"target_ms": TARGET_MS, "predict_ms": default["predict_ms"],
                   "passed": default["predict_ms"] <= TARGET_MS}
    machine = common.machine_info()
    machine["torch_threads"] = a.threads
    paths = [
        common.write_csv(a.out / "keypoint_inference.csv", rows, CSV_COLUMNS),
        common.write_json(a.out / "keypoint_inference.json", {
            "benchmark": "keypoint_inference", "rows": rows, "target": verdict,
            "settings": {"calls": calls, "repeats": a.repeats, "warmup": a.warmup,
                         "checkpoint": str(a.checkpoint) if a.checkpoint else None},
            "machine": machine}),
    ]
    print(common.markdown_table(rows, TABLE))
    if verdict:
        print(f"\nTarget: 4 views at 128 px <= {TARGET_MS:.0f} ms: "
              f"{verdict['predict_ms']:.2f} ms -> {'PASS' if verdict['passed'] else 'FAIL'}")
    print("Wrote " + ", ".join(str(x) for x in paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
