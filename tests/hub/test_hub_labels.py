"""Zoo entries carry their label space: ``vidpan segment --weights dvis++/vipseg-vitl-offline`` writes
VIPSeg's class names and dataset ids with no ``--categories`` flag.

The shipped list is ``vidpan/hub/labels/vipseg_categories.json`` (source in its ``source`` field).
End to end, the fake hub serves the DVIS++ parity fixture (a VIPSeg-space model: 124 classes,
58 things) under the zoo entry's repository, so the pattern lookup, download, conversion and the
label space all run as for the real file; only ``--preset`` names the fixture's small architecture.
"""

from __future__ import annotations

import json
from pathlib import Path

from hubtools import FakeHub, run_vidpan

from vidpan.data.categories import CategoryMapping
from vidpan.hub.resolve import target_config
from vidpan.hub.spec import parse_spec
from vidpan.hub.zoo import load_zoo
from vidpan.models.checkpoint import load_native

LABELS = Path(__file__).resolve().parents[2] / "src/vidpan/hub/labels/vipseg_categories.json"


def test_vipseg_list_counts_and_a_few_names() -> None:
    mapping = CategoryMapping.from_file(LABELS)
    assert (mapping.num_classes, mapping.num_things) == (124, 58)
    by_id = {c.id: c for c in mapping.categories()}
    assert sorted(by_id) == list(range(124))
    assert (by_id[0].name, by_id[0].isthing) == ("wall", False)
    assert (by_id[2].name, by_id[2].isthing) == ("door", True)
    assert (by_id[62].name, by_id[62].isthing) == ("dog", True)
    assert (by_id[123].name, by_id[123].isthing) == ("train", True)
    # Model order: things by id, then stuff by id (DVIS++'s VPS mapper).
    assert mapping.to_model(2) == 0 and mapping.to_model(0) == 58
    assert "DVIS_Plus/dvis_Plus/data_video/datasets/vps.py" in json.loads(LABELS.read_text())["source"]


def test_vipseg_zoo_entries_embed_the_label_space() -> None:
    for name in ("dvis++/vipseg-vitl-online", "dvis++/vipseg-vitl-offline"):
        assert load_zoo()[name].categories == "hub/labels/vipseg_categories.json"
        model = target_config(parse_spec(name), preset=None, overrides=(), config=None).model
        assert len(model.class_names) == 124 and model.num_things == 58
        assert (model.class_names[0], model.dataset_category_ids[0]) == ("door", 2)
        assert (model.class_names[58], model.dataset_category_ids[58]) == ("wall", 0)


def test_segment_with_the_zoo_name_writes_vipseg_names_and_ids(
    fake_hub: FakeHub, hub_env: dict[str, str], fixture_files: dict, tmp_path: Path
) -> None:
    entry = load_zoo()["dvis++/vipseg-vitl-offline"]
    # A test file (not the real hub name) that the entry's pattern matches at its pinned revision.
    fake_hub.add(entry.repo, "DVIS++/weights/offline_vitl_vipseg_fixture.pth", fixture_files["pth"])
    out = tmp_path / "out"
    args = ["segment", str(fixture_files["frames"]), "--weights", entry.name, "--preset",
            str(fixture_files["preset"]), "--out", str(out), "--no-progress"]  # fmt: skip
    result = run_vidpan(args, hub_env)
    assert result.returncode == 0, result.stdout + result.stderr
    mapping = CategoryMapping.from_file(LABELS)
    pred = json.loads((out / "pred.json").read_text())
    segments = [s for frame in pred["annotations"][0]["annotations"] for s in frame["segments_info"]]
    ref_labels = {int(c) for _, _, c in fixture_files["outputs"]["final_offline.segments"].tolist()}
    assert {s["category_id"] for s in segments} == {mapping.to_dataset(k) for k in ref_labels}
    # Per-frame records name each segment's class by its VIPSeg name.
    names = {c.id: (c.name, c.isthing) for c in mapping.categories()}
    records = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    seen = [s for r in records for s in r["segments"]]
    assert seen and all((s["category_name"], s["isthing"]) == names[s["category_id"]] for s in seen)
    # `vidpan convert` of the zoo name embeds the same label space (from the cached download).
    converted = tmp_path / "vipseg.safetensors"
    args = ["convert", entry.name, "--preset", str(fixture_files["preset"]), "--out", str(converted)]
    result = run_vidpan(args, hub_env)
    assert result.returncode == 0, result.stdout + result.stderr
    model = load_native(converted)[0].model
    assert model.class_names == mapping.names and model.dataset_category_ids == mapping.dataset_ids
