"""SIGKILL of real ``vidpan convert`` and ``vidpan train`` processes leaves outputs complete or absent.

``vidpan convert`` is killed while its output's temporary file is being written and after fixed
delays: the ``.safetensors`` is then either absent or loads with exactly the tensors of an
uninterrupted convert, and any temporary left behind is pid-named (``.<name>.<pid>.*.tmp``) so the
next write removes it. ``vidpan train`` is killed while it writes a checkpoint: every checkpoint
file present loads, ``last`` names one of them, and ``--resume`` logs exactly the losses of an
uninterrupted run (the in-process crash-and-resume test is tests/training/test_resume.py; this one
kills a real process, so nothing gets to run a ``finally``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import vidpan
from vidpan.cli.main import main
from vidpan.config import Config, save_yaml
from vidpan.data.synthetic import SyntheticDataset, generate
from vidpan.models.reference_config import inference_config_from_reference, model_config_from_reference
from vidpan.training.checkpoints import LAST_POINTER, latest_checkpoint, list_checkpoints, load_checkpoint
from vidpan.training.metrics import read_metrics

SRC = Path(vidpan.__file__).resolve().parent.parent
NOT_LOGGED_EXACTLY = {"time", "data_time"}  # wall-clock measurements


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"  # the same in every run: the losses are compared bit for bit
    return env


def _vidpan(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "vidpan", *args],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], limit: float = 90) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()`` (polled every millisecond) or when it has run
    ``limit`` s; True if it was still running when killed."""
    start = time.monotonic()
    while proc.poll() is None and not ready() and time.monotonic() - start < limit:
        time.sleep(0.001)
    alive = proc.poll() is None
    proc.kill()
    proc.communicate(timeout=30)
    return alive


def _temps(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------------------------
# vidpan convert
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def convert_args(dvis_fixture: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    tmp = tmp_path_factory.mktemp("convert")
    meta = json.loads((dvis_fixture / "meta.json").read_text())
    preset = tmp / "fixture.yaml"
    model = model_config_from_reference(meta["config"], num_things=int(meta["metadata"]["n_thing_classes"]))
    save_yaml(
        Config(name="fixture", model=model, inference=inference_config_from_reference(meta["config"])), preset
    )
    return [
        "convert",
        str(dvis_fixture / "weights.safetensors"),
        "--format",
        "dvis-plus",
        "--preset",
        str(preset),
    ]


@pytest.fixture(scope="module")
def reference(convert_args: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "model.safetensors"
    assert main([*convert_args, "--out", str(out)]) == 0
    return out


def _same_file(out: Path, reference: Path) -> None:
    """``out`` is complete: safetensors opens it and it holds the reference's tensors and metadata."""
    with safe_open(str(out), "pt") as f, safe_open(str(reference), "pt") as g:
        assert f.metadata() == g.metadata()
        assert sorted(f.keys()) == sorted(g.keys())
    got, want = load_file(str(out)), load_file(str(reference))
    assert all(torch.equal(got[k], want[k]) for k in want)


def _check_after_kill(out: Path, reference: Path) -> None:
    if out.exists():
        _same_file(out, reference)
    for tmp in _temps(out):  # only temporaries of dead writers, which the next write removes
        pid = tmp.name[len(f".{out.name}.") :].split(".", 1)[0]
        assert pid.isdigit(), tmp.name
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)


def test_convert_killed_while_writing(convert_args: list[str], reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.safetensors"
    # Killed the moment its temporary file appears (mid-write, or just after the rename).
    alive = _kill_when(_vidpan(*convert_args, "--out", str(out)), lambda: bool(_temps(out)) or out.exists())
    assert alive
    _check_after_kill(out, reference)
    # A convert killed after loading but before writing leaves nothing.
    alive = _kill_when(
        _vidpan(*convert_args, "--out", str(tmp_path / "early.safetensors")), lambda: False, 1.0
    )
    assert alive and not list(tmp_path.glob("early*")) and not list(tmp_path.glob(".early*"))
    # The next (uninterrupted) convert to the same path writes the complete file and removes
    # what the killed one left.
    _finish(_vidpan(*convert_args, "--out", str(out)))
    _same_file(out, reference)
    assert _temps(out) == []


def test_convert_removes_a_dead_writers_temporary(
    convert_args: list[str], reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model.safetensors"
    stale = tmp_path / f".{out.name}.{_dead_pid()}.abc123.tmp"
    stale.write_bytes(b"\x00" * 100)  # what a SIGKILL mid-write leaves: never loadable, never used
    live = tmp_path / f".{out.name}.{os.getpid()}.def456.tmp"  # a live writer's: kept
    live.write_bytes(b"")
    assert main([*convert_args, "--out", str(out)]) == 0
    _same_file(out, reference)
    assert _temps(out) == [live]


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.2, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0])
def test_convert_killed_after_a_delay(
    delay: float, convert_args: list[str], reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model.safetensors"
    _kill_when(_vidpan(*convert_args, "--out", str(out)), lambda: False, delay)
    _check_after_kill(out, reference)


# --------------------------------------------------------------------------------------------
# vidpan train
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return generate(tmp_path_factory.mktemp("synth") / "bench", videos=6, frames=8, size=(64, 96), seed=0)


def _train(synth: SyntheticDataset, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    sets = [
        f"data.vipseg_root={synth.vipseg_root}",
        f"data.vspw_root={synth.vspw_root}",
        "solver.max_iter=6",
        "solver.steps=[4]",
        "output.checkpoint_period=1",
        "output.log_period=1",
    ]
    args = ["train", "--config", "smoke_tiny", "--stage", "segmenter", "--out", str(out), "--no-progress"]
    return _vidpan(*args, *(a for s in sets for a in ("--set", s)), *extra)


def _losses(run_dir: Path) -> list[dict[str, object]]:
    return [{k: v for k, v in r.items() if k not in NOT_LOGGED_EXACTLY} for r in read_metrics(run_dir)]


def _check_checkpoints(run_dir: Path) -> int:
    """Every checkpoint present is complete; ``last`` (missing when the kill came between a
    checkpoint's rename and the pointer's) names one. -> the iteration a resume starts from."""
    found = list_checkpoints(run_dir)
    assert found
    for path in found:
        assert load_checkpoint(path)["iteration"] == int(path.stem.split("_")[1])
    pointer = run_dir / "checkpoints" / LAST_POINTER
    if pointer.exists():
        assert pointer.read_text().strip() in {p.name for p in found}
    resume = latest_checkpoint(run_dir)
    assert resume in found
    return int(load_checkpoint(resume)["iteration"])


@pytest.fixture(scope="module")
def straight(synth: SyntheticDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("straight")
    _finish(_train(synth, out))
    return out / "segmenter"


def _kill_and_resume(
    synth: SyntheticDataset, straight: Path, out: Path, ready: Callable[[Path], bool]
) -> int:
    run = out / "segmenter"
    assert _kill_when(_train(synth, out), lambda: ready(run))
    assert not (run / "model_final.safetensors").exists()  # really interrupted
    resumed_from = _check_checkpoints(run)
    _finish(_train(synth, out, "--resume"))
    assert _check_checkpoints(run) == 6
    assert list((run / "checkpoints").glob(".*.tmp")) == []
    want, got = _losses(straight), _losses(run)
    assert [r["iteration"] for r in got] == [1, 2, 3, 4, 5, 6]
    assert got == want  # bit-identical losses, learning rates and gradient norms
    return resumed_from


def test_train_killed_while_writing_a_checkpoint_resumes_exactly(
    synth: SyntheticDataset, straight: Path, tmp_path: Path
) -> None:
    def writing_third(run: Path) -> bool:  # the temporary of checkpoint 3 exists, or the file
        directory = run / "checkpoints"
        return (
            bool(list(directory.glob(".iter_0000003.pt.*.tmp"))) or (directory / "iter_0000003.pt").exists()
        )

    resumed_from = _kill_and_resume(synth, straight, tmp_path, writing_third)
    assert resumed_from in (2, 3)


@pytest.mark.slow
@pytest.mark.parametrize(("iteration", "delay"), [(1, 0.0), (2, 0.02), (4, 0.0), (4, 0.1), (5, 0.05)])
def test_train_killed_around_other_checkpoints_resumes_exactly(
    iteration: int, delay: float, synth: SyntheticDataset, straight: Path, tmp_path: Path
) -> None:
    seen: list[float] = []

    def around(run: Path) -> bool:  # ``delay`` s after checkpoint ``iteration``'s temporary / file appears
        directory = run / "checkpoints"
        name = f"iter_{iteration:07d}.pt"
        if not seen and (list(directory.glob(f".{name}.*.tmp")) or (directory / name).exists()):
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] >= delay and bool(list_checkpoints(run))

    _kill_and_resume(synth, straight, tmp_path, around)
