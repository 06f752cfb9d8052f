"""Weight specs, the zoo table, zoo entries resolved against the fake hub, the default-weights path,
``VideoPredictor.from_pretrained`` and training ``stage.init`` with remote specs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hubtools import FakeHub, run_py, run_vidpan

from vidpan.errors import InputError
from vidpan.hub.pretrained import DEFAULT_NOTICE
from vidpan.hub.spec import parse_hf_url, parse_spec
from vidpan.hub.zoo import load_zoo

SHIPPED = Path(__file__).resolve().parents[2] / "src/vidpan/assets/synthetic_tiny/model.safetensors"


def test_parse_hf_url() -> None:
    assert parse_hf_url("hf://a/b/c.pth") == ("a/b", "main", "c.pth")
    assert parse_hf_url("hf://a/b@v1.0/d/e/f.pth") == ("a/b", "v1.0", "d/e/f.pth")
    for bad in ("hf://a/b", "hf://a//c.pth", "hf://a/b@/c.pth", "hf://a/b/"):
        with pytest.raises(InputError, match=r"hf://owner/repo|around '@'"):
            parse_hf_url(bad)


def test_parse_spec_kinds(tmp_path: Path) -> None:
    assert parse_spec("dvis++/vipseg-vitl-offline").kind == "zoo"
    assert parse_spec("synthetic-tiny").local == SHIPPED
    assert parse_spec("hf://a/b/c.pth").is_remote
    assert parse_spec(tmp_path / "x.safetensors").kind == "local"


def test_zoo_table_is_complete_and_sourced() -> None:
    zoo = load_zoo()
    wanted = {
        "synthetic-tiny",
        "dvis++/vipseg-vitl-online",
        "dvis++/vipseg-vitl-offline",
        "dinov2/vitl14",
        "dinov2/vitg14",
    }
    assert wanted <= set(zoo)
    assert any(e.task == "vss" for e in zoo.values()) and any(e.task == "vis" for e in zoo.values())
    for name, e in zoo.items():
        if e.is_local:
            assert e.local_path.is_file(), name
            continue
        assert e.licence and e.size and e.sources.get("file"), name
        # A hash is either published (64 hex) or the table says it is not verified.
        assert e.sha256 or "not verified" in e.sources.get("sha256", ""), name
        assert e.file or "not verified" in e.sources["file"], name
        for s in e.scores:
            assert s.source, (name, s.metric)


def test_zoo_pattern_is_resolved_from_the_hub_listing_then_remembered(
    fake_hub: FakeHub, hub_env: dict[str, str]
) -> None:
    data = b"not a real checkpoint" * 100
    # A stand-in name (the real one is not verified); the listing's LFS hash becomes the expected hash.
    fake_hub.add("zhangtao-whu/DVIS_Plus", "DVIS++/weights/online_vitl_vipseg_000.pth", data)
    fake_hub.add("zhangtao-whu/DVIS_Plus", "DVIS++/weights/online_vitl_ytvis21_623.pth", b"x")
    code = (
        "from vidpan.hub.resolve import fetch_source\n"
        "s = fetch_source('dvis++/vipseg-vitl-online')\n"
        "print(s.sha256, s.file.name, s.format, s.preset)"
    )
    first = run_py(code, hub_env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == [
        hashlib.sha256(data).hexdigest(),
        "online_vitl_vipseg_000.pth",
        "dvis-plus",
        "vitl",
    ]
    assert any("/tree/" in r[1] for r in fake_hub.requests)
    offline = run_py(code, {**hub_env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 0, offline.stderr  # name and file both come from the cache now


def test_zoo_published_hash_is_enforced(fake_hub: FakeHub, hub_env: dict[str, str]) -> None:
    fake_hub.add(
        "zhangtao-whu/DVIS_Plus", "DVIS++/weights/online_vitl_ytvis21_623.pth", b"tampered", lfs=False
    )
    code = "from vidpan.hub.resolve import fetch_source\nfetch_source('dvis++/ytvis21-vitl-online')"
    result = run_py(code, hub_env)
    assert result.returncode != 0
    assert "db6e76b886ecd5d22b66065af697268828564bb523494e3608432868f04cb60a" in result.stderr
    assert "online_vitl_ytvis21_623.pth" in result.stderr


def test_from_pretrained_and_training_init_take_hf_specs(fake_hub: FakeHub, hub_env: dict[str, str]) -> None:
    fake_hub.add("someone/tiny", "model.safetensors", SHIPPED.read_bytes())
    code = (
        "from vidpan.inference.predictor import VideoPredictor\n"
        "from vidpan.hub.pretrained import from_pretrained\n"
        "from vidpan.config import from_dict\n"
        "from vidpan.training.config import TrainConfig, resolve_init\n"
        "p = VideoPredictor.from_pretrained('hf://someone/tiny/model.safetensors')\n"
        "q = from_pretrained('hf://someone/tiny/model.safetensors', device='cpu')\n"
        "cfg = from_dict(TrainConfig, {'stage': {'init': 'hf://someone/tiny/model.safetensors'}})\n"
        "print(p.config.model.num_classes, q.config.model.num_classes, resolve_init(cfg).name)"
    )
    result = run_py(code, hub_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["16", "16", "model.safetensors"]
    assert len([r for r in fake_hub.requests if r[0] == "GET"]) == 1


def test_segment_without_weights_runs_the_demo_model_and_says_so(tmp_path: Path, dvis_fixture: Path) -> None:
    from PIL import Image
    from safetensors.torch import load_file

    frames = tmp_path / "clip"
    frames.mkdir()
    video = load_file(str(dvis_fixture / "inputs.safetensors"))["video_tchw_uint8"][:3]
    for t, frame in enumerate(video.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(frame).save(frames / f"{t:05d}.png")
    result = run_vidpan(["segment", str(frames), "--out", str(tmp_path / "out"), "--no-progress"], {})
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(DEFAULT_NOTICE) == 1
    assert json.loads((tmp_path / "out" / "pred.json").read_text())["annotations"]


def test_convert_hf_dinov2_with_registers_from_the_hub(
    fake_hub: FakeHub, hub_env: dict[str, str], tmp_path: Path
) -> None:
    """`vidpan convert hf://.../model.safetensors --format hf-dinov2`: config.json comes along, and a
    registers model gets the registers interpolation rule without any --set."""
    import dataclasses

    import transformers

    from vidpan.config import ViTConfig, load_config, save_yaml
    from vidpan.models.checkpoint import load_native

    common = dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=3, image_size=56, patch_size=14,
                  use_swiglu_ffn=True)  # fmt: skip
    hf = transformers.Dinov2WithRegistersModel(
        transformers.Dinov2WithRegistersConfig(num_register_tokens=4, **common)
    )
    hf.save_pretrained(tmp_path / "hf")
    for name in ("model.safetensors", "config.json"):
        fake_hub.add(
            "someone/dinov2-reg-tiny", name, (tmp_path / "hf" / name).read_bytes(), lfs=name != "config.json"
        )
    preset = load_config("tiny")
    vit = ViTConfig(embed_dim=48, depth=3, num_heads=3, ffn="swiglu", patch_size=14, img_size=56)
    save_yaml(
        dataclasses.replace(preset, model=dataclasses.replace(preset.model, vit=vit)), tmp_path / "p.yaml"
    )
    out = tmp_path / "vit.safetensors"
    result = run_vidpan(["convert", "hf://someone/dinov2-reg-tiny/model.safetensors", "--format", "hf-dinov2",
                         "--preset", str(tmp_path / "p.yaml"), "--out", str(out)], hub_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "model.vit.num_register_tokens: 0 -> 4" in result.stderr
    saved, _ = load_native(out)
    assert (saved.model.vit.num_register_tokens, saved.model.vit.interpolate_offset) == (4, 0.0)
    assert saved.model.vit.interpolate_antialias is True


def test_docs_list_every_zoo_entry() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs/models.md").read_text()
    for name in load_zoo():
        assert f"`{name}`" in docs, name
