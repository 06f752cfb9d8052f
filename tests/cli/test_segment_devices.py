"""``vidpan segment /dev/videoN`` without a usable camera: exit 2, one line on stderr naming the
device, nothing written. No machine here has a camera and v4l2loopback cannot be loaded, so
reading frames from a real device is not tested (docs/video_io.md says what is).

Cases: a missing device (any machine); and, inside a private mount namespace whose ``/dev`` is
an overlay of the real one (root only; the real ``/dev`` is never changed), a regular file, a
character device that is not a video device (``/dev/null``'s numbers) and a V4L2 node with no
driver behind it (major 81, an unused minor: the kernel answers ENXIO, as for an unplugged
camera)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vidpan.demo import SHIPPED_WEIGHTS

ARGS = ["--weights", str(SHIPPED_WEIGHTS), "--no-progress"]


def _vidpan_cmd(device: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vidpan", "segment", device, "--out", str(out), *ARGS, *extra]


def _free_device() -> str:
    return next(f"/dev/video{n}" for n in range(90, 200) if not os.path.lexists(f"/dev/video{n}"))


def _one_line_naming(stderr: str, device: str, words: str) -> None:
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith(f"vidpan segment: error: {device}: ") and words in stderr, stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("tasks", [[], ["--task", "vps,vss"]])
def test_missing_device(tmp_path: Path, tasks: list[str]) -> None:
    device = _free_device()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(_vidpan_cmd(device, tmp_path / "o", *tasks), capture_output=True, text=True,
                         env=env, timeout=120)  # fmt: skip
    assert run.returncode == 2
    _one_line_naming(run.stderr, device, "no such capture device")
    assert not (tmp_path / "o").exists()


def test_existing_devices_that_are_not_cameras(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to make /dev/video* nodes in a private mount namespace")
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    cases = {  # device -> (how it is made, what the error says)
        _free_device(): ("touch {d}", "not a capture device (a regular file"),
        "/dev/video-null": ("mknod {d} c 1 3", "not a V4L2 video capture device"),
        "/dev/video-gone": (
            "mknod {d} c 81 250",
            "cannot open the capture device (No such device or address)",
        ),
    }
    lines = ["set -e", "mount --make-rprivate /",
             f"mount -t overlay overlay -o lowerdir=/dev,upperdir={upper},workdir={work} /dev"]  # fmt: skip
    for k, (device, (make, _)) in enumerate(cases.items()):
        lines.append(make.format(d=device))
        cmd = shlex.join(_vidpan_cmd(device, tmp_path / f"o{k}"))
        lines.append(f"{cmd} >{tmp_path}/{k}.out 2>{tmp_path}/{k}.err && echo 0 >{tmp_path}/{k}.rc "
                     f"|| echo $? >{tmp_path}/{k}.rc")  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    setup = subprocess.run(["unshare", "-m", "sh", "-c", "\n".join(lines)], capture_output=True, text=True,
                           env=env, timeout=300)  # fmt: skip
    if setup.returncode != 0 and not (tmp_path / "0.rc").exists():
        pytest.skip(f"cannot overlay /dev in a mount namespace here: {setup.stderr.strip()}")
    assert setup.returncode == 0, setup.stderr
    for k, (device, (_, words)) in enumerate(cases.items()):
        assert (tmp_path / f"{k}.rc").read_text().strip() == "2", (
            device,
            (tmp_path / f"{k}.err").read_text(),
        )
        _one_line_naming((tmp_path / f"{k}.err").read_text(), device, words)
        assert not (tmp_path / f"o{k}").exists()
    assert not any(os.path.lexists(d) for d in cases)  # the real /dev was not touched
