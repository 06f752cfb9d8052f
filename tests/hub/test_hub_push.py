"""``vidpan push RUN_DIR --repo owner/name`` against the fake hub, then the model back through vidpan.

The upload goes through huggingface_hub's real client (create repo, preupload, LFS batch + upload +
verify, commit; hubupload.py); the pushed ``model.safetensors`` is then downloaded with
``--weights hf://owner/name/model.safetensors`` and must segment exactly as the local weights do.
A missing token (401) or a namespace the token may not write (403) is one line, exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from hubtools import FakeHub, run_vidpan

ASSET = Path(__file__).resolve().parents[2] / "src/vidpan/assets/synthetic_tiny"
TOKEN = "hf_fake_write_token"


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "demo"
    run.mkdir(parents=True)
    (run / "model_final.safetensors").write_bytes((ASSET / "model.safetensors").read_bytes())
    (run / "config.yaml").write_text(yaml.safe_dump({"name": "demo-recipe", "solver": {"max_iter": 3}}))
    return run


def _segment(frames: Path, weights: str, out: Path, env: dict[str, str]) -> dict[str, bytes]:
    result = run_vidpan(
        ["segment", str(frames), "--weights", weights, "--out", str(out), "--no-progress"], env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.png")}
    files["pred.json"] = (out / "pred.json").read_bytes()
    assert len(files) > 1
    return files


def test_push_then_download_gives_the_same_segmentation(
    fake_hub: FakeHub, hub_env: dict[str, str], fixture_files: dict, tmp_path: Path
) -> None:
    fake_hub.tokens[TOKEN] = {"me"}
    env = {**hub_env, "HF_TOKEN": TOKEN}
    result = run_vidpan(
        ["push", str(_run_dir(tmp_path)), "--repo", "me/demo", "--licence", "Apache-2.0"], env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"pushed to me/demo: {fake_hub.url}/me/demo/commit/" in result.stdout
    assert [(repo, paths) for repo, _, paths in fake_hub.commits] == [
        ("me/demo", ["README.md", "config.yaml", "model.safetensors"])
    ]
    weights = fake_hub.files[("me/demo", "model.safetensors")]
    assert weights.lfs and weights.data == (ASSET / "model.safetensors").read_bytes()  # went through LFS
    assert not fake_hub.files[("me/demo", "README.md")].lfs
    card = fake_hub.files[("me/demo", "README.md")].data.decode()
    assert "Recipe `demo-recipe`" in card and weights.sha256 in card
    assert yaml.safe_load(fake_hub.files[("me/demo", "config.yaml")].data)["model"]["num_classes"] == 16
    methods = [(m, p.split("?")[0]) for m, p, _ in fake_hub.requests]
    assert ("POST", "/api/repos/create") in methods and ("PUT", f"/_lfs/{weights.sha256}") in methods

    frames = fixture_files["frames"]
    local = _segment(frames, str(ASSET / "model.safetensors"), tmp_path / "local", hub_env)
    remote = _segment(frames, "hf://me/demo/model.safetensors", tmp_path / "remote", hub_env)
    assert remote == local
    pred = json.loads(local["pred.json"])
    assert pred["annotations"][0]["annotations"]  # a real segmentation, not two empty outputs


def _refused(result_stderr: str) -> str:
    lines = result_stderr.strip().splitlines()
    assert "Traceback" not in result_stderr and lines, result_stderr
    return lines[-1]


def test_push_refused_without_token_or_write_access(
    fake_hub: FakeHub, hub_env: dict[str, str], tmp_path: Path
) -> None:
    run = _run_dir(tmp_path)
    no_token = run_vidpan(["push", str(run), "--repo", "me/demo"], hub_env)
    assert no_token.returncode == 2, no_token.stdout + no_token.stderr
    line = _refused(no_token.stderr)
    assert "HTTP 401" in line and "HF_TOKEN" in line and "hf auth login" in line and "me/demo" in line

    fake_hub.tokens[TOKEN] = {"me"}
    env = {**hub_env, "HF_TOKEN": TOKEN}
    fake_hub.add("other/model", "README.md", b"# someone else's", lfs=False)  # exists, not ours
    for repo in ("other/model", "other/new"):
        forbidden = run_vidpan(["push", str(run), "--repo", repo], env)
        assert forbidden.returncode == 2, forbidden.stdout + forbidden.stderr
        line = _refused(forbidden.stderr)
        assert "HTTP 403" in line and "'other'" in line and repo in line
    assert fake_hub.commits == [] and fake_hub.lfs_store == {}
