"""OutputDirectory never deletes what vidpan did not write; stale work folders are removed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vidpan.errors import InputError
from vidpan.inference.output import MANIFEST, OutputDirectory
from vidpan.inference.spill import TensorSpill


def _write(out: OutputDirectory, name: str, text: str) -> None:
    out.file(name).write_text(text)


def test_writes_into_a_folder_with_user_files_and_keeps_them(tmp_path: Path) -> None:
    target = tmp_path / "results"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    (target / "sub").mkdir()
    with OutputDirectory(target) as out:
        _write(out, "pred.json", "{}")
        _write(out, "pan_pred/v/0.png", "png")
    assert (target / "notes.txt").read_text() == "mine" and (target / "sub").is_dir()
    assert (target / "pred.json").read_text() == "{}"
    assert json.loads((target / MANIFEST).read_text())["outputs"] == ["pan_pred", "pred.json"]
    assert out.written == ["pan_pred", "pred.json"]
    assert not list(target.glob(".vidpan-partial-*"))


def test_earlier_output_needs_overwrite_and_only_vidpan_files_are_replaced(tmp_path: Path) -> None:
    target = tmp_path / "results"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with OutputDirectory(target) as out:
        _write(out, "pred.json", "1")
        _write(out, "pan_pred/v/0.png", "1")
    with pytest.raises(InputError, match=r"earlier vidpan run.*--overwrite"):
        OutputDirectory(target)
    with OutputDirectory(target, overwrite=True) as out:
        _write(out, "sem_pred/v/0.png", "2")
    # The earlier output is replaced as a whole; the user's file stays.
    assert sorted(p.name for p in target.iterdir()) == [MANIFEST, "notes.txt", "sem_pred"]
    assert (target / "notes.txt").read_text() == "mine"


def test_a_user_file_with_an_output_name_is_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "results"
    target.mkdir()
    (target / "config.yaml").write_text("the user's own config")
    for overwrite in (False, True):
        with (
            pytest.raises(InputError, match=r"config\.yaml already exists and was not written by vidpan"),
            OutputDirectory(target, overwrite=overwrite) as out,
        ):
            out.file("config.yaml")
        assert (target / "config.yaml").read_text() == "the user's own config"
        assert sorted(p.name for p in target.iterdir()) == ["config.yaml"]


def test_failed_run_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "new"
    with pytest.raises(RuntimeError), OutputDirectory(target) as out:
        _write(out, "pred.json", "{}")
        raise RuntimeError("boom")
    assert not target.exists()  # created by the run, removed again
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "a").write_text("a")
    with pytest.raises(KeyboardInterrupt), OutputDirectory(tmp_path / "kept") as out:
        _write(out, "pred.json", "{}")
        raise KeyboardInterrupt
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["a"]


def test_output_equal_to_or_containing_an_input_is_refused(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    with pytest.raises(InputError, match="is the input"):
        OutputDirectory(frames, inputs=[frames])
    with pytest.raises(InputError, match="contains the input"):
        OutputDirectory(tmp_path, inputs=[video])
    with pytest.raises(InputError, match="contains the input"):
        OutputDirectory(tmp_path, inputs=[frames])
    OutputDirectory(frames / "out", inputs=[frames])  # inside an input folder: allowed


def test_out_dot_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.txt").write_text("x")
    with OutputDirectory(".") as out:
        _write(out, "frames.jsonl", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "frames.jsonl", "mine.txt"]
    with pytest.raises(InputError, match="earlier vidpan run"):
        OutputDirectory(str(tmp_path))


@pytest.mark.parametrize("where", ["/proc/x", "/proc/self/x/y"])
def test_unwritable_location_is_a_one_line_error(where: str) -> None:
    with pytest.raises(InputError, match=where), OutputDirectory(where):
        pass


def test_file_in_place_of_the_folder(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match="not a directory"):
        OutputDirectory(tmp_path / "f")


def test_spilled_tensors_live_in_the_work_folder(tmp_path: Path) -> None:
    with OutputDirectory(tmp_path / "out") as out:
        spill = TensorSpill(ram_budget=0)
        spill.append(torch.ones(3))
        assert spill.path is not None and out.root.parent in spill.path.parents
        assert torch.equal(spill[0][0], torch.ones(3))
        spill.close()
        _write(out, "frames.jsonl", "")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MANIFEST, "frames.jsonl"]


_KILLED_RUN = """
import sys, time, torch
from vidpan.inference.output import OutputDirectory
from vidpan.inference.spill import TensorSpill
tmp = sys.argv[1]
out = OutputDirectory(tmp + "/out").__enter__()
out.file("pred.json").write_text("half")
TensorSpill(ram_budget=0).append(torch.ones(2))       # under the work folder
TensorSpill(ram_budget=0, directory=tmp + "/spills").append(torch.ones(2))
print("ready", flush=True)
time.sleep(60)
"""


def test_work_folders_of_a_sigkilled_run_are_removed_by_the_next_run(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, str(tmp_path)], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    live = list((tmp_path / "out").glob(".vidpan-partial-*"))
    assert len(live) == 1
    with OutputDirectory(tmp_path / "out"):
        assert live[0].exists()  # the owner is alive: not touched
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert live[0].exists() and list((tmp_path / "spills").glob("vidpan-spill-*"))
    with OutputDirectory(tmp_path / "out") as out:
        _write(out, "frames.jsonl", "")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MANIFEST, "frames.jsonl"]
    TensorSpill(ram_budget=0, directory=tmp_path / "spills").append(torch.ones(1))
    assert len(list((tmp_path / "spills").glob("vidpan-spill-*"))) == 1  # only the new one
