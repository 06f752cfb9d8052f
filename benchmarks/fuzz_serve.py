"""The "serve uploads" category of ``benchmarks/fuzz.py``: hostile uploads to ``vidpan serve``.

No browser: each case calls :meth:`vidpan.serve.app.Server.run` (what the page's upload button
calls: the upload checks of :mod:`vidpan.serve.uploads`, then :func:`vidpan.serve.pipeline.segment_for_page`)
with the shipped model, on a fresh work directory of its own. ``fuzz.py`` classifies it as
rejected (an :class:`~vidpan.errors.InputError` with a one-line message: what the page shows),
worked, crash (any other exception) or leftovers (a rejected upload changed the work directory,
or a ``*.partial`` file remained in it).
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fuzz_inputs import video

if TYPE_CHECKING:
    from fuzz_corpus import Corpus

    from vidpan.serve.app import Server
    from vidpan.serve.uploads import Limits


@cache
def _predictor() -> Any:
    from vidpan.demo import SHIPPED_WEIGHTS
    from vidpan.inference.predictor import VideoPredictor

    return VideoPredictor.from_pretrained(SHIPPED_WEIGHTS)


def _server(work: Path, limits: Limits) -> Server:
    from vidpan.serve.app import Server

    return Server(predictor=_predictor(), limits=limits, work_dir=work, device_lock=threading.Lock())


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def serve_uploads(c: Corpus, d: Path) -> None:
    from vidpan.serve.uploads import Limits, sample_video

    d.mkdir(parents=True)
    cat = "serve uploads"
    sample = sample_video(d / "sample", frames=4, size=(64, 112))
    good = sample.video.read_bytes()
    gt_zip = zipfile.ZipFile(io.BytesIO(sample.ground_truth.read_bytes()))
    gt = {i.filename: gt_zip.read(i) for i in gt_zip.infolist()}
    gt_json = next(n for n in gt if n.endswith(".json"))
    n = 0

    def case(name: str, expect: str, vid: Path | str | None, truth: Path | None = None, *,
             mode: str = "online", task: str = "vps", limits: Limits | None = None) -> None:  # fmt: skip
        nonlocal n
        n += 1
        work = d / "work" / f"w{n:02d}"
        work.mkdir(parents=True)
        lim = limits or Limits()

        def call() -> object:
            return _server(work, lim).run(None if vid is None else str(vid),
                                          None if truth is None else str(truth), mode, task)  # fmt: skip

        c.call(cat, name, call, expect, work=work)

    def file(name: str, data: bytes) -> Path:
        p = d / name
        p.write_bytes(data)
        return p

    case("no video", "reject", None)
    case("zero-byte .mp4", "reject", file("empty.mp4", b""))
    case("text renamed .mp4", "reject", file("notes.mp4", b"just some notes\n" * 20))
    case("mp4 truncated to 200 bytes", "reject", file("cut200.mp4", good[:200]))
    case("mp4 truncated at 60%", "any", file("cut60.mp4", good[: int(len(good) * 0.6)]))
    fast = video(d / "faststart.mp4", n=6, size=(32, 48), options={"movflags": "+faststart"}).read_bytes()
    case("faststart mp4 truncated at 90%", "any", file("cut90fs.mp4", fast[: int(len(fast) * 0.9)]))
    case("over the size limit", "reject", sample.video, limits=Limits(max_megabytes=0.001))
    bomb = file("bomb.y4m", b"YUV4MPEG2 W16000 H16000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\0" * 2000)
    case("declared 16000x16000 (y4m bomb)", "reject", bomb)
    case("too many frames", "reject", sample.video, limits=Limits(max_frames=3))
    case("unknown mode", "reject", sample.video, mode="fast")
    case("ground truth with task vss", "reject", sample.video, sample.ground_truth, task="vss")
    case("ground truth not a zip", "reject", sample.video, file("gt.zip", b"PK not really"))
    case("ground truth: path traversal", "reject", sample.video,
         _zip(d / "traversal.zip", {**gt, "../../evil.txt": b"x"}))  # fmt: skip
    case(
        "ground truth: absolute path", "reject", sample.video, _zip(d / "abs.zip", {**gt, "/tmp/evil": b"x"})
    )
    case("ground truth: zip bomb (5 MB of zeros, limit 1 MB)", "reject", sample.video,
         _zip(d / "bomb.zip", {**gt, "zeros.bin": b"\0" * (5 << 20)}), limits=Limits(max_gt_megabytes=1))  # fmt: skip
    case("ground truth: malformed JSON", "reject", sample.video,
         _zip(d / "badjson.zip", {**gt, gt_json: b"{not json"}))  # fmt: skip
    fewer = json.loads(gt[gt_json])
    fewer["videos"][0]["images"] = fewer["videos"][0]["images"][:2]
    case("ground truth: 2 frames for 4", "reject", sample.video,
         _zip(d / "fewer.zip", {**gt, gt_json: json.dumps(fewer).encode()}))  # fmt: skip
    masks = {k: v for k, v in gt.items() if not k.endswith(".png")}
    case("ground truth: masks missing", "reject", sample.video, _zip(d / "nomasks.zip", masks))
    exotic = d / "vidéo 日本 clip.mp4"
    exotic.write_bytes(good)
    case("non-ASCII name, with ground truth", "work", exotic, _zip(d / "vérité.zip", gt))
    case("sample, offline", "work", sample.video, mode="offline")
    long = video(d / "long.mp4", n=6, size=(32, 48))
    case("6 frames, offline, inference.max_frames above", "work", long, mode="offline")


def frame_limit_case(c: Corpus, d: Path) -> None:
    """``inference.max_frames`` from the CLI: a 3-frame video, offline, a limit of 2."""
    d.mkdir(parents=True)
    clip = video(d / "three.mp4", n=3, size=(32, 48))
    c.segment("--set overrides", "video longer than inference.max_frames (offline)", clip, "reject",
              "--mode", "offline", "--set", "inference.max_frames=2")  # fmt: skip
