"""Model cards, save_pretrained and ``vidpan models`` (no network)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vidpan.errors import InputError
from vidpan.hub.card import card_inputs, render_card
from vidpan.hub.publish import save_pretrained

ASSET = Path(__file__).resolve().parents[2] / "src/vidpan/assets/synthetic_tiny"
SRC = Path(__file__).resolve().parents[2] / "src"


def test_card_has_architecture_recipe_scores_with_command_and_licence_chain() -> None:
    inputs = card_inputs(
        ASSET / "model.safetensors",
        name="synthetic-tiny",
        recipe="synthetic_tiny",
        scores=ASSET / "scores.json",
        scores_command="python benchmarks/embedded_model_scores.py --json scores.json",
        licence="Apache-2.0",
    )
    card = render_card(inputs)
    for section in (
        "## Architecture",
        "## Recipe and stage",
        "## Data",
        "## Scores",
        "## Licence chain",
        "## Files",
    ):
        assert section in card
    assert "- classes: 16 (8 things, 8 stuff)" in card
    assert "| refiner | refiner | `stage:tracker` | 1100 |" in card
    offline = json.loads((ASSET / "scores.json").read_text())["scores"]["offline"]["VPQ"]
    assert f"| offline | {offline:.1f} |" in card
    assert "python benchmarks/embedded_model_scores.py --json scores.json" in card
    assert inputs.weights_sha256 in card
    assert "--weights synthetic-tiny" in card


def test_scores_without_command_are_refused(tmp_path: Path) -> None:
    scores = tmp_path / "s.json"
    scores.write_text(json.dumps({"VPQ": 50.0, "STQ": 0.4}))  # a `vidpan eval vps --json` file
    inputs = card_inputs(ASSET / "model.safetensors", scores=scores)
    with pytest.raises(InputError, match="scores-command"):
        render_card(inputs)


def test_shipped_card_is_the_generators_output() -> None:
    inputs = card_inputs(
        ASSET / "model.safetensors",
        name="synthetic-tiny",
        recipe="synthetic_tiny",
        scores=ASSET / "scores.json",
        scores_command="python benchmarks/embedded_model_scores.py --json src/vidpan/assets/synthetic_tiny/scores.json",
        licence="Apache-2.0 (trained by vidpan from random initialisation)",
        notes=(ASSET / "NOTES.md").read_text(),
    )
    inputs = type(inputs)(**{**inputs.__dict__, "weights_name": "model.safetensors"})
    assert (ASSET / "README.md").read_text() == render_card(inputs)


def test_save_pretrained_writes_weights_config_card(tmp_path: Path) -> None:
    out = save_pretrained(tmp_path / "m", ASSET / "model.safetensors", name="demo")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.yaml", "model.safetensors"]
    assert (out / "model.safetensors").read_bytes() == (ASSET / "model.safetensors").read_bytes()
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["num_classes"] == 16
    assert "None measured yet" in (out / "README.md").read_text()
    with pytest.raises(InputError, match="not empty"):
        save_pretrained(out, ASSET / "model.safetensors")


def test_save_pretrained_from_a_run_dir(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "model_final.safetensors").write_bytes((ASSET / "model.safetensors").read_bytes())
    (run / "config.yaml").write_text(yaml.safe_dump({"name": "myrecipe", "stage": {"kind": "refiner", "init": "dinov2/vitl14"},
                                                     "solver": {"max_iter": 7}, "data": {"dataset": "vspw"}}))  # fmt: skip
    card = (save_pretrained(tmp_path / "m", run) / "README.md").read_text()
    assert "Recipe `myrecipe`" in card and "| 7 |" in card and "dataset: `vspw`" in card
    assert "dinov2/vitl14: Apache-2.0" in card  # licence chain follows the init weights
    with pytest.raises(InputError, match="no such weights file"):
        save_pretrained(tmp_path / "n", tmp_path / "missing")
    (tmp_path / "multi" / "a").mkdir(parents=True)
    (tmp_path / "multi" / "a" / "model_final.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match="several stages"):
        save_pretrained(tmp_path / "n", tmp_path / "multi")


def test_vidpan_models_lists_the_zoo() -> None:
    env = {"PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-m", "vidpan", "models"], capture_output=True, text=True, env=env,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TASK", "BACKBONE", "SIZE", "REPORTED", "SCORES", "LICENCE", "CACHED"]
    row = next(line for line in lines if line.startswith("dvis++/vipseg-vitl-offline"))
    assert "VPQ 58.0" in row and "MIT" in row and row.rstrip().endswith("no")
    assert next(line for line in lines if line.startswith("synthetic-tiny")).rstrip().endswith("shipped")
    as_json = subprocess.run([sys.executable, "-m", "vidpan", "models", "--json"], capture_output=True, text=True,
                             env=env, timeout=60)  # fmt: skip
    table = json.loads(as_json.stdout)
    assert (
        table["dinov2/vitg14"]["sha256"] == "917d3c470db999d32a312f8542149be91c7cbac61ee8fb4b67ae3d82b79ce21f"
    )
