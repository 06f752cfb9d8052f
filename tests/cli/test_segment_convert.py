"""``vidpan convert`` and ``vidpan segment`` end to end on the DVIS++ fixture's reference weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

from vidpan.cli.main import main
from vidpan.config import Config, save_yaml
from vidpan.data.formats.rgb_id import read_id_png
from vidpan.data.formats.vipseg import read_panoptic_video_json
from vidpan.models.reference_config import inference_config_from_reference, model_config_from_reference


@pytest.fixture(scope="module")
def converted(dvis_fixture: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cli")
    meta = json.loads((dvis_fixture / "meta.json").read_text())
    preset = tmp / "fixture.yaml"
    save_yaml(
        Config(
            name="fixture",
            model=model_config_from_reference(
                meta["config"], num_things=int(meta["metadata"]["n_thing_classes"])
            ),
            inference=inference_config_from_reference(meta["config"]),
        ),
        preset,
    )
    weights = tmp / "fixture.safetensors"
    assert main(["convert", str(dvis_fixture / "weights.safetensors"), "--format", "dvis-plus",
                 "--preset", str(preset), "--out", str(weights)]) == 0  # fmt: skip
    frames_dir = tmp / "clip"
    frames_dir.mkdir()
    video = load_file(str(dvis_fixture / "inputs.safetensors"))["video_tchw_uint8"]
    for t, frame in enumerate(video.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(frame).save(frames_dir / f"frame{t}.png")  # lossless, natural-sorted
    return {"weights": weights, "frames": frames_dir, "preset": preset}


def test_segment_cli_writes_reference_result(
    converted: dict[str, Path], dvis_fixture: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code = main(["segment", str(converted["frames"]), "--weights", str(converted["weights"]),
                 "--mode", "offline", "--out", str(out), "--overlay", "--no-progress"])  # fmt: skip
    assert code == 0
    pred = read_panoptic_video_json(out / "pred.json", require_videos=False)
    (video,) = pred.videos
    assert video.video_id == "clip"
    expected = load_file(str(dvis_fixture / "outputs.safetensors"))["final_offline.panoptic"].numpy()
    mismatches = 0
    for t, (frame, segments) in enumerate(zip(video.frames, video.segments, strict=True)):
        ids = read_id_png(out / "pan_pred" / "clip" / frame.file_name)
        assert frame.file_name == f"frame{t}.png"
        assert set(np.unique(ids).tolist()) - {0} == {s.id for s in segments}
        # Same partition as the reference's segment ids (the colours are ours).
        pairs = set(zip(ids.flatten().tolist(), expected[t].flatten().tolist(), strict=True))
        mismatches += len(pairs) - len({a for a, _ in pairs})
    assert mismatches == 0
    assert (out / "overlay" / "clip.mp4").stat().st_size > 0
    lines = (out / "frames.jsonl").read_text().splitlines()
    assert len(lines) == expected.shape[0]
    assert (out / "config.yaml").is_file()


def test_segment_cli_bad_input(
    converted: dict[str, Path], dvis_fixture: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    assert (
        main(
            [
                "segment",
                str(tmp_path / "missing.mp4"),
                "--weights",
                str(converted["weights"]),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "no such video" in capsys.readouterr().err
    assert (
        main(
            [
                "segment",
                str(converted["frames"]),
                "--weights",
                str(tmp_path / "none.safetensors"),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "weights file not found" in capsys.readouterr().err
    foreign = dvis_fixture / "weights.safetensors"
    assert main(["segment", str(converted["frames"]), "--weights", str(foreign), "--out", str(out)]) == 2
    assert "pass --preset" in capsys.readouterr().err
    assert (
        main(
            [
                "segment",
                str(converted["frames"]),
                "--weights",
                str(foreign),
                "--preset",
                "vits",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "shape mismatches" in capsys.readouterr().err
    assert not out.exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert (
        main(
            [
                "segment",
                str(converted["frames"]),
                "--weights",
                str(converted["weights"]),
                "--out",
                str(blocker),
            ]
        )
        == 2
    )
    assert "not a directory" in capsys.readouterr().err


def test_convert_cli_rejects_mismatched_preset(dvis_fixture: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "w.safetensors"
    code = main(["convert", str(dvis_fixture / "weights.safetensors"), "--format", "dvis-plus",
                 "--preset", "vits", "--out", str(out)])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "shape mismatches" in err and "expected" in err
    assert not out.exists()


def test_convert_dinov2_official_to_patch16_preset(tmp_path: Path) -> None:
    """An official-layout DINOv2 .pth (patch 14) converts into the tiny preset's patch-16 ViT."""
    import dataclasses

    import torch

    from vidpan.config import load_config
    from vidpan.models.backbone.vit import build_vit
    from vidpan.models.checkpoint import load_native

    config = load_config("tiny")
    official = build_vit(dataclasses.replace(config.model.vit, patch_size=14, img_size=518))
    state = {f"backbone.{k}": v for k, v in official.state_dict().items()}  # wrapper prefix, stripped
    torch.save({"model": state}, tmp_path / "dinov2.pth")
    out = tmp_path / "vit.safetensors"
    assert main(["convert", str(tmp_path / "dinov2.pth"), "--format", "dinov2", "--preset", "tiny",
                 "--out", str(out)]) == 0  # fmt: skip
    stored, converted = load_native(out)
    assert stored.model.vit.patch_size == 16
    kernel = converted["segmenter.backbone.vit.patch_embed.proj.weight"]
    assert kernel.shape[-2:] == (16, 16)
    assert torch.equal(
        converted["segmenter.backbone.vit.blocks.0.attn.qkv.weight"], official.blocks[0].attn.qkv.weight
    )
