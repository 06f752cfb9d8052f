"""Input makers and output checks of the fuzz corpus (``benchmarks/fuzz.py``): videos encoded
with PyAV, images with Pillow, and hand-made headers (PNG / JPEG / Y4M declaring huge sizes)."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    img = np.full((h, w, 3), (40, 110, 190), np.uint8)
    img[h // 4 : h // 2, w // 4 : w // 2] = _rng(seed).integers(0, 255, 3, dtype=np.uint8)
    return img


def video(path: Path, n: int = 2, size: tuple[int, int] = (32, 48), *, codec: str = "libx264",
          pix_fmt: str = "yuv420p", rotation: int | None = None, pts: list[int] | None = None,
          options: dict[str, str] | None = None, streams: int = 1, audio: bool = False) -> Path:  # fmt: skip
    """Encode ``n`` frames of ``size`` (h, w) with PyAV."""
    with av.open(str(path), "w", options=options or {}) as c:
        vs = []
        for _ in range(streams):
            s = c.add_stream(codec, rate=25)
            s.height, s.width = size
            s.pix_fmt = pix_fmt
            if rotation is not None:
                s.set_display_rotation(rotation)
            if pts is not None:
                s.codec_context.time_base = Fraction(1, 1000)
            vs.append(s)
        a = c.add_stream("pcm_s16le", rate=8000, layout="mono") if audio else None
        for i in range(n):
            for s in vs:
                f = av.VideoFrame.from_ndarray(frame(*size, seed=i), format="rgb24")
                if pts is not None:
                    f.pts, f.time_base = pts[i], Fraction(1, 1000)
                for p in s.encode(f):
                    c.mux(p)
        for s in vs:
            for p in s.encode():
                c.mux(p)
        if a is not None:
            af = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            af.sample_rate = 8000
            for p in [*a.encode(af), *a.encode()]:
                c.mux(p)
    return path


def audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as c:
        a = c.add_stream("pcm_s16le", rate=8000, layout="mono")
        af = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        af.sample_rate = 8000
        for p in [*a.encode(af), *a.encode()]:
            c.mux(p)
    return path


def png_chunks(
    width: int, height: int, *, bit_depth: int = 8, color: int = 0, data: bytes | None = None
) -> bytes:
    """A PNG written by hand (for 16-bit RGB and for bombs: any declared size, little data)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color, 0, 0, 0)
    raw = data if data is not None else b"\0" * 64
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def png_rgb48(path: Path, h: int = 16, w: int = 16) -> Path:
    rows = b"".join(b"\0" + np.full((w, 3), 40000, ">u2").tobytes() for _ in range(h))
    path.write_bytes(png_chunks(w, h, bit_depth=16, color=2, data=rows))
    return path


def jpeg_bomb(path: Path, width: int, height: int) -> Path:
    """A JPEG header (SOI + SOF0) declaring width x height, then nothing useful."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    path.write_bytes(b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9")
    return path


def folder(path: Path, images: dict[str, Callable[[Path], object]]) -> Path:
    path.mkdir(parents=True)
    for name, make in images.items():
        make(path / name)
    return path


def save(img: Image.Image, **kw: object) -> Callable[[Path], object]:
    return lambda p: img.save(p, **kw)


def exif_rotated(h: int, w: int) -> Callable[[Path], object]:
    def make(p: Path) -> None:
        im = Image.fromarray(frame(h, w))
        exif = im.getexif()
        exif[0x0112] = 6  # rotate 90 CW to display
        im.save(p, exif=exif)

    return make


# ---------------------------------------------------------------------------------------------
# Output checks
# ---------------------------------------------------------------------------------------------


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]


def frames_are(n: int, h: int | None = None, w: int | None = None) -> Callable[[Path], str | None]:
    def check(out: Path) -> str | None:
        recs = records(out)
        if len(recs) != n:
            return f"{len(recs)} frames in frames.jsonl, expected {n}"
        if h is not None and (recs[0]["height"], recs[0]["width"]) != (h, w):
            return f"output {recs[0]['height']}x{recs[0]['width']}, expected {h}x{w} (rotation?)"
        return None

    return check


def times_are(expected: list[float]) -> Callable[[Path], str | None]:
    def check(out: Path) -> str | None:
        got = [r.get("time") for r in records(out)]
        if got != [round(t, 6) for t in expected]:
            return f"frames.jsonl times {got}, expected {expected}"
        return None

    return check
