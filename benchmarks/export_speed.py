"""Eager PyTorch vs onnxruntime: per-frame time of the segmenter and the tracker step on CPU.

For each preset (random weights: speed does not depend on their values), exports the segmenter
(T = 1) and the tracker step to ONNX at the given size with :func:`vidpan.export.exporter.export_part`,
then times, frame by frame, the eager modules (``torch.inference_mode``, the default fast paths)
and the exported graphs under onnxruntime's CPU provider, both with the same thread count. Also
reports the export time, the ONNX file size and the largest output difference.

Usage::

    python benchmarks/export_speed.py [--presets tiny vits] [--size 480x640] [--runs 5] [--threads 2]
    python benchmarks/export_speed.py --presets vitl --size 720x1280 --export-only   # graph size only
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vidpan.config import load_config
from vidpan.export.exporter import export_part, parse_size, trace
from vidpan.models.build import build_dvis


def _median_seconds(fn, runs: int, warmup: int = 1) -> float:  # type: ignore[no-untyped-def]
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(
    preset: str, size: tuple[int, int], runs: int, threads: int, export_only: bool, out: Path
) -> dict:
    import onnxruntime as ort

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    config = load_config(preset)
    model = build_dvis(config.model, parts=("segmenter", "tracker")).eval()
    result: dict = {"preset": preset, "size": list(size), "threads": threads}
    files = {}
    for part in ("segmenter", "tracker-step"):
        start = time.perf_counter()
        program = trace(model, config, part, size)  # type: ignore[arg-type]
        path = out / f"{preset}-{part}.onnx"
        manifest = export_part(model, config, part=part, size=size, fmt="onnx", out=path, program=program)  # type: ignore[arg-type]
        result[f"{part}_export_s"] = round(time.perf_counter() - start, 1)
        nbytes = sum((out / f).stat().st_size for f in (manifest.file, *manifest.external_data))
        result[f"{part}_onnx_mb"] = round(nbytes / 2**20, 1)
        result[f"{part}_external_data_files"] = len(manifest.external_data)
        files[part] = path
        del program
    if export_only:
        return result
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    sessions = {
        p: ort.InferenceSession(str(f), options, providers=["CPUExecutionProvider"]) for p, f in files.items()
    }
    frame = torch.randint(0, 256, (1, 3, *size), dtype=torch.uint8)
    with torch.inference_mode():
        seg = model.segmenter(frame, return_aux=False)
    feed = {"frames": frame.permute(0, 2, 3, 1).contiguous().numpy()}
    ort_out = sessions["segmenter"].run(None, feed)
    eager_out = (seg.class_logits, seg.mask_logits, seg.embeds, seg.embeds_unnormed, seg.mask_features)
    result["segmenter_max_abs_diff"] = float(
        max(np.abs(a - b.numpy()).max() for a, b in zip(ort_out, eager_out, strict=True))
    )

    def eager_segmenter() -> None:
        with torch.inference_mode():
            model.segmenter(frame, return_aux=False)

    result["eager_segmenter_s"] = _median_seconds(eager_segmenter, runs)
    result["ort_segmenter_s"] = _median_seconds(lambda: sessions["segmenter"].run(None, feed), runs)
    assert model.tracker is not None
    q = seg.embeds.shape[1]
    state = None
    with torch.inference_mode():
        _, state = model.tracker(seg.embeds[None], seg.embeds_unnormed[None], seg.mask_features[None], None)

    def eager_step() -> None:
        with torch.inference_mode():
            model.tracker(seg.embeds[None], seg.embeds_unnormed[None], seg.mask_features[None], state)

    step_feed = {
        "frame_embeds": seg.embeds.numpy(),
        "frame_embeds_unnormed": seg.embeds_unnormed.numpy(),
        "mask_features": seg.mask_features.numpy(),
        "perm": np.arange(q, dtype=np.int64)[None],
        "state_last_output": state.last_output.numpy(),
        "state_num_frames": np.array([1], dtype=np.int64),
    }
    result["eager_tracker_step_s"] = _median_seconds(eager_step, runs)  # includes the Hungarian matching
    result["ort_tracker_step_s"] = _median_seconds(
        lambda: sessions["tracker-step"].run(None, step_feed), runs
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=["tiny", "vits"])
    parser.add_argument("--size", default="480x640")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--export-only", action="store_true", help="only export and report graph sizes")
    parser.add_argument(
        "--keep", type=Path, help="write the ONNX files here (default: a temporary directory)"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    size = parse_size(args.size)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for preset in args.presets:
            r = measure(preset, size, args.runs, args.threads, args.export_only, out)
            results.append(r)
            print(json.dumps(r), flush=True)
    if not args.export_only:
        print("\n| preset | size | eager segmenter ms/frame | onnxruntime ms/frame | speed-up | eager tracker step ms "
              "| onnxruntime tracker step ms | max abs diff |")  # fmt: skip
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in results:
            print(f"| `{r['preset']}` | {r['size'][0]}x{r['size'][1]} | {1e3 * r['eager_segmenter_s']:.0f} "
                  f"| {1e3 * r['ort_segmenter_s']:.0f} | {r['eager_segmenter_s'] / r['ort_segmenter_s']:.2f}x "
                  f"| {1e3 * r['eager_tracker_step_s']:.1f} | {1e3 * r['ort_tracker_step_s']:.1f} "
                  f"| {r['segmenter_max_abs_diff']:.1e} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
