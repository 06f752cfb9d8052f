"""Exported segmenter + tracker step as drop-in replacements for the eager modules.

:class:`ExportedSegmenter` is called like :class:`~vidpan.models.segmenter.Segmenter`
(``images [N, 3, H, W] uint8 -> SegmenterOutput``) and :class:`ExportedTracker` like
:class:`~vidpan.models.tracker.ReferringTracker` (``(embeds, embeds_unnormed, mask_features,
state) -> (TrackerOutput, TrackerState)``), so :func:`with_exported` can put them into a
:class:`~vidpan.models.build.DVIS` and the unchanged :class:`VideoPredictor` runs them, with
the same Python post-processing and writers (the refiner, for ``--mode offline`` / ``long``,
stays eager). Behind both is a *runner* that maps input tensors to output tensors:

- :class:`OrtRunner`: an onnxruntime session on an ``.onnx`` file (CPU provider; the CUDA
  provider first when the device is CUDA and onnxruntime has it);
- :class:`ProgramRunner`: a loaded ``torch.export`` program (``.pt2``).

The tracker's Hungarian assignment runs between the steps with the eager
:func:`~vidpan.models.association.match_embeddings`, and the state is a plain
:class:`~vidpan.models.tracker.TrackerState`, carried across windows exactly as the eager one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import torch
from torch import nn

from vidpan.errors import InputError
from vidpan.export.manifest import ExportManifest, Format, find_manifests, sha256_file
from vidpan.models.association import match_embeddings
from vidpan.models.build import DVIS
from vidpan.models.segmenter import Segmenter
from vidpan.models.tracker import ReferringTracker, TrackerOutput, TrackerState
from vidpan.structures import SegmenterOutput


class OrtRunner:
    """An onnxruntime session: tensors in (manifest input order) -> tensors out (CPU)."""

    def __init__(
        self, path: str | Path, manifest: ExportManifest, *, device: str | torch.device = "cpu"
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise InputError("the onnxruntime engine needs onnxruntime: pip install vidpan[export]") from None
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        self.manifest = manifest
        self.session = ort.InferenceSession(str(path), providers=providers)
        self.providers = self.session.get_providers()
        self.output_names = [t.name for t in manifest.outputs]

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        feed = {
            spec.name: x.detach().cpu().contiguous().numpy()
            for spec, x in zip(self.manifest.inputs, inputs, strict=True)
        }
        return [torch.from_numpy(a) for a in self.session.run(self.output_names, feed)]


class ProgramRunner:
    """A ``torch.export`` program loaded from a ``.pt2`` file (runs on CPU)."""

    def __init__(self, path: str | Path, manifest: ExportManifest) -> None:
        self.manifest = manifest
        self.module = torch.export.load(str(path)).module()

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        with torch.inference_mode():
            out = self.module(*(x.detach().cpu() for x in inputs))
        return list(out)


Runner = OrtRunner | ProgramRunner


class ExportedSegmenter(nn.Module):
    """An exported segmenter called like the eager one (last-layer outputs only, no aux)."""

    def __init__(self, runner: Runner) -> None:
        super().__init__()
        self.runner = runner
        self.manifest = runner.manifest
        self.size = tuple(self.manifest.size)
        self.frames = self.manifest.frames

    def forward(self, images: torch.Tensor, *, return_aux: bool = False) -> SegmenterOutput:
        """images: [N, 3, H, W] uint8 (H, W = the exported size) -> :class:`SegmenterOutput`."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise InputError(f"images: expected an [N, 3, H, W] RGB tensor, got shape {tuple(images.shape)}")
        n, _, h, w = images.shape
        if (h, w) != self.size:
            raise InputError(
                f"frames are {h}x{w} after the resize but the segmenter was exported for "
                f"{self.size[0]}x{self.size[1]}: export again with --size {h}x{w} (or set inference.short_side)"
            )
        if images.dtype != torch.uint8:
            raise InputError(f"images: the exported segmenter takes uint8 frames, got {images.dtype}")
        frames = images.permute(0, 2, 3, 1)  # [N, 3, H, W] -> [N, H, W, 3]
        chunks = []
        for start in range(0, n, self.frames):
            part = frames[start : start + self.frames]
            real = part.shape[0]
            if real < self.frames:  # fixed T: repeat the last frame, drop its outputs
                part = torch.cat([part, part[-1:].expand(self.frames - real, -1, -1, -1)])
            chunks.append([o[:real] for o in self.runner(part)])
        outs = [torch.cat(parts).to(images.device) for parts in zip(*chunks, strict=True)]
        class_logits, mask_logits, embeds, embeds_unnormed, mask_features = outs
        return SegmenterOutput(
            class_logits=class_logits,
            mask_logits=mask_logits,
            embeds=embeds,
            embeds_unnormed=embeds_unnormed,
            mask_features=mask_features,
            image_size=(int(h), int(w)),
        )


class ExportedTracker(nn.Module):
    """An exported tracker step looped over the frames of a window, called like the eager tracker."""

    def __init__(self, runner: Runner) -> None:
        super().__init__()
        self.runner = runner
        self.manifest = runner.manifest
        self.mask_shape = self.manifest.spec("mask_features").shape  # [1, C_m, h, w]

    def forward(
        self,
        frame_embeds: torch.Tensor,
        frame_embeds_unnormed: torch.Tensor,
        mask_features: torch.Tensor | None,
        state: TrackerState | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[TrackerOutput, TrackerState]:
        """Shapes as :meth:`ReferringTracker.forward` (B = 1); ``generator`` is unused (no noise)."""
        batch, num_frames, num_queries, channels = frame_embeds.shape
        if batch != 1:
            raise InputError(f"the exported tracker step takes one video at a time, got a batch of {batch}")
        device = frame_embeds.device
        zeros_mask = torch.zeros(self.mask_shape)
        names = ("class_logits", "mask_logits", "embeds", "references", "indices")
        per_frame: dict[str, list[torch.Tensor]] = {k: [] for k in names}
        for t in range(num_frames):
            cur = frame_embeds[:, t].float().cpu()
            if state is None:
                perm = torch.arange(num_queries)[None]
                last_output = torch.zeros(1, num_queries, channels)
                count = 0
            else:
                perm = match_embeddings(state.last_frame_embeds.float().cpu(), cur).cpu()
                last_output, count = state.last_output.float().cpu(), state.num_frames
            mf = zeros_mask if mask_features is None else mask_features[:, t].float()
            logits, masks, embeds, last_frame, out, reference, _ = self.runner(
                cur, frame_embeds_unnormed[:, t].float(), mf, perm, last_output, torch.tensor([count])
            )
            state = TrackerState(
                last_frame_embeds=last_frame.to(device),
                last_output=out.to(device),
                last_reference=reference.to(device),
                num_frames=count + 1,
            )
            for key, value in zip(names, (logits, masks, embeds, reference, perm), strict=True):
                per_frame[key].append(value)
        assert state is not None
        stacked = {k: torch.stack(v, dim=1).to(device) for k, v in per_frame.items()}  # [B, T, ...]
        output = TrackerOutput(
            class_logits=stacked["class_logits"],
            mask_logits=None if mask_features is None else stacked["mask_logits"],
            embeds=stacked["embeds"],
            references=stacked["references"],
            indices=stacked["indices"],
            noised=torch.zeros(batch, num_frames, dtype=torch.bool, device=device),
        )
        return output, state


def _pick(manifests: Sequence[ExportManifest], part: str, fmt: Format, directory: Path) -> ExportManifest:
    found = [m for m in manifests if m.part == part and m.format == fmt]
    if not found:
        raise InputError(
            f"--exported: no {fmt} {part} in this directory (run `vidpan export --part {part} "
            f"--format {fmt} --out {directory}/{part}{'.onnx' if fmt == 'onnx' else '.pt2'}`)",
            path=directory,
        )
    if len(found) > 1:
        raise InputError(f"--exported: several {fmt} {part} files: {[m.file for m in found]}", path=directory)
    return found[0]


def load_exported(
    directory: str | Path,
    *,
    fmt: Format = "onnx",
    device: str | torch.device = "cpu",
    weights: str | Path | None = None,
) -> tuple[ExportedSegmenter, ExportedTracker]:
    """The exported segmenter and tracker step of ``directory`` (their manifests pick the files).

    With ``weights`` (a file), both manifests must record that file's SHA-256: the exported
    graphs embed their weights, and post-processing / the refiner come from ``weights``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError("--exported: not a directory", path=directory)
    manifests = find_manifests(directory)
    picked = [_pick(manifests, part, fmt, directory) for part in ("segmenter", "tracker-step")]
    if weights is not None and Path(weights).is_file():
        digest = sha256_file(weights)
        for m in picked:
            if m.weights_sha256 is not None and m.weights_sha256 != digest:
                raise InputError(
                    f"--exported: {m.file} was exported from other weights than {weights} "
                    f"(sha256 {m.weights_sha256[:12]}… vs {digest[:12]}…)",
                    path=directory,
                )
    runners: list[Runner] = [
        OrtRunner(directory / m.file, m, device=device)
        if fmt == "onnx"
        else ProgramRunner(directory / m.file, m)
        for m in picked
    ]
    return ExportedSegmenter(runners[0]), ExportedTracker(runners[1])


def with_exported(model: DVIS, segmenter: ExportedSegmenter, tracker: ExportedTracker) -> DVIS:
    """A :class:`DVIS` that runs ``segmenter`` / ``tracker`` (the refiner, if any, stays eager)."""
    return DVIS(
        segmenter=cast(Segmenter, segmenter),
        tracker=cast(ReferringTracker, tracker),
        refiner=model.refiner,
        num_things=model.num_things,
        class_names=model.class_names,
    )


def use_exported(
    model: DVIS, directory: str | Path | None, *, weights: str | Path | None = None, device: str = "cpu",
    precision: str = "fp32",
) -> DVIS:  # fmt: skip
    """``vidpan segment --engine onnxruntime --exported DIR``: ``model`` with its segmenter and
    tracker replaced by the ONNX files of ``directory`` (checked against ``weights``)."""
    if directory is None:
        raise InputError("--engine onnxruntime needs --exported DIR (written by `vidpan export`)")
    if precision != "fp32":
        raise InputError(
            f"--engine onnxruntime runs the exported float32 graphs; got --precision {precision}"
        )
    segmenter, tracker = load_exported(directory, fmt="onnx", device=device, weights=weights)
    return with_exported(model, segmenter, tracker)
