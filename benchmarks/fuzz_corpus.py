"""The hostile-input corpus of ``benchmarks/fuzz.py``: files generated into a temp dir, nothing
binary committed.

Each :class:`Case` is one ``vidpan`` command line on one generated input, with what must happen:
``reject`` (exit 2, one line naming the file / key, no traceback, nothing left that looks like
output), ``work`` (exit 0 and a valid output, checked by ``check``), ``partial`` (exit 3: a
truncated download processed up to the damage) or ``any`` (reject or work: a bit flip in tensor
data is a valid, different checkpoint). Categories: containers and streams, frame folders,
weights, ``--set`` overrides, training data, output locations.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import vidpan

WEIGHTS = Path(vidpan.__file__).parent / "assets" / "synthetic_tiny" / "model.safetensors"
# Fast settings for the shipped model: no resize (inputs are tiny), online mode.
FAST = ["--no-progress", "--mode", "online", "--set", "inference.short_side=0"]


@dataclass
class Case:
    category: str
    name: str
    argv: list[str]
    expect: str  # reject | work | partial | any
    out: Path | None = None  # output folder to inspect for leftovers
    check: Callable[[Path], str | None] | None = None  # on success: None or what is wrong
    cwd: Path | None = None
    before: list[str] = field(default_factory=list)  # names in ``out`` before the run (user files)


# ---------------------------------------------------------------------------------------------
# Input makers
# ---------------------------------------------------------------------------------------------


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


def png_chunks(width: int, height: int, *, bit_depth: int = 8, color: int = 0, data: bytes | None = None) -> bytes:
    """A PNG written by hand (for 16-bit RGB and for bombs: any declared size, little data)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color, 0, 0, 0)
    raw = data if data is not None else b"\0" * 64
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


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


# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------


class Corpus:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cases: list[Case] = []
        self._n = 0

    def _out(self) -> Path:
        self._n += 1
        return self.root / "outs" / f"out{self._n:04d}"

    def segment(self, category: str, name: str, inp: Path | str | list[Path], expect: str, *extra: str,
                check: Callable[[Path], str | None] | None = None, out: Path | None = None,
                weights: Path | str = WEIGHTS, cwd: Path | None = None) -> None:  # fmt: skip
        out = out or self._out()
        before = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        inputs = [str(i) for i in inp] if isinstance(inp, list) else [str(inp)]
        argv = ["segment", *inputs, "--weights", str(weights), "--out", str(out), *FAST, *extra]
        self.cases.append(Case(category, name, argv, expect, out, check, cwd, before))

    def build(self) -> list[Case]:
        (self.root / "in").mkdir(parents=True, exist_ok=True)
        (self.root / "outs").mkdir(exist_ok=True)
        self._containers(self.root / "in" / "containers")
        self._folders(self.root / "in" / "folders")
        self._weights(self.root / "in" / "weights")
        self._overrides(self.root / "in" / "overrides")
        self._training(self.root / "in" / "training")
        self._outputs(self.root / "in" / "outputs")
        return self.cases

    # -- containers and streams -----------------------------------------------------------

    def _containers(self, d: Path) -> None:
        d.mkdir(parents=True)
        cat = "containers"
        exts = [".mp4", ".mkv", ".webm", ".avi", ".mov", ".y4m", ".gif", ".ts", ".flv", ".mpg"]
        for ext in exts:
            (d / f"zero{ext}").write_bytes(b"")
            self.segment(cat, f"zero-byte {ext}", d / f"zero{ext}", "reject")
        for ext, codec, opts in [(".mp4", "libx264", {"movflags": "faststart"}), (".mp4", "libx264", {}),
                                 (".mkv", "libx264", {}), (".webm", "libvpx-vp9", {}), (".avi", "mpeg4", {})]:  # fmt: skip
            full = video(d / f"full_{codec}_{len(opts)}{ext}", n=12, size=(32, 48), codec=codec, options=opts)
            data = full.read_bytes()
            for frac in (0.05, 0.3, 0.6, 0.9):
                cut = d / f"cut{int(frac * 100)}_{codec}_{len(opts)}{ext}"
                cut.write_bytes(data[: int(len(data) * frac)])
                self.segment(cat, f"truncated {frac:.0%} {codec}{ext}{' faststart' if opts else ''}", cut, "any")
            self.segment(cat, f"complete {codec}{ext}", full, "work", check=frames_are(12))
            tail = d / f"garbage_{codec}{ext}"
            tail.write_bytes(data + _rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
            self.segment(cat, f"garbage after frames {codec}{ext}", tail, "any")
            flipped = bytearray(data)
            for k in range(0, len(flipped), max(1, len(flipped) // 40)):
                flipped[k] ^= 0x5A
            (d / f"flipped_{codec}{ext}").write_bytes(bytes(flipped))
            self.segment(cat, f"bit flips {codec}{ext}", d / f"flipped_{codec}{ext}", "any")
        mp4 = d / "full_libx264_1.mp4"
        for wrong in (".avi", ".mkv", ".webm", ".mov"):
            (d / f"is_mp4{wrong}").write_bytes(mp4.read_bytes())
            self.segment(cat, f"mp4 named {wrong}", d / f"is_mp4{wrong}", "work", check=frames_are(12))
        for name, data in [("text.mp4", b"hello, I am not a video\n" * 50), ("random.mkv", _rng(2).bytes(20000)),
                           ("html.mp4", b"<html><body>404 Not Found</body></html>"), ("noext", b"\0" * 100),
                           ("clip.txt", b"video"), ("png.mp4", png_chunks(16, 16))]:  # fmt: skip
            (d / name).write_bytes(data)
            self.segment(cat, f"not a video: {name}", d / name, "reject")
        # A coded-size change mid-stream: two MPEG-TS files of different sizes, concatenated.
        a = video(d / "a.ts", n=3, size=(32, 48), codec="mpeg2video")
        b = video(d / "b.ts", n=3, size=(48, 64), codec="mpeg2video")
        (d / "size_change.ts").write_bytes(a.read_bytes() + b.read_bytes())
        self.segment(cat, "frame size change mid-stream", d / "size_change.ts", "work")
        for h, w, codec, fmt in [(1, 1, "ffv1", "yuv444p"), (3, 5, "ffv1", "yuv444p"), (33, 17, "libx264", "yuv444p"),
                                 (2, 2, "libx264", "yuv420p"), (1, 640, "ffv1", "yuv444p")]:  # fmt: skip
            p = video(d / f"size_{h}x{w}.mkv", n=2, size=(h, w), codec=codec, pix_fmt=fmt)
            self.segment(cat, f"{h}x{w} frames", p, "work", check=frames_are(2, h, w))
        for w, h in [(16000, 16000), (100000, 2), (8000, 8000), (65535, 65535)]:
            p = d / f"bomb_{w}x{h}.y4m"
            p.write_bytes(f"YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg\nFRAME\n".encode() + b"\0" * 2000)
            self.segment(cat, f"declared {w}x{h} (y4m bomb)", p, "reject")
        big = video(d / "big.mkv", n=1, size=(64, 96), codec="ffv1", pix_fmt="yuv444p")
        self.segment(cat, "frame above a lowered pixel limit", big, "reject", "--set", "inference.max_input_pixels=1000")
        for rot, hw in [(90, (48, 32)), (180, (32, 48)), (270, (48, 32)), (-90, (48, 32))]:
            p = video(d / f"rot{rot}.mp4", n=2, size=(32, 48), rotation=rot)
            self.segment(cat, f"rotation {rot}", p, "work", check=frames_are(2, *hw))
        pts = [0, 40, 200, 240, 900]
        for ext in (".mkv", ".mp4", ".mov"):
            p = video(d / f"vfr{ext}", n=5, pts=pts)
            self.segment(cat, f"variable frame rate {ext}", p, "work", check=times_are([t / 1000 for t in pts]))
        for codec, fmt, ext in [("libx264", "yuv420p10le", ".mkv"), ("libx264", "yuv444p", ".mp4"),
                                ("libx264", "gray", ".mkv"), ("ffv1", "yuva420p", ".mkv"),
                                ("png", "rgba", ".mov"), ("libvpx-vp9", "yuva420p", ".webm"),
                                ("ffv1", "yuv420p16le", ".mkv"), ("mjpeg", "yuvj422p", ".avi")]:  # fmt: skip
            p = video(d / f"fmt_{fmt}_{codec}{ext}", n=2, codec=codec, pix_fmt=fmt)
            self.segment(cat, f"pixel format {fmt} ({codec})", p, "work", check=frames_are(2))
        self.segment(cat, "audio-only mkv", audio_only(d / "audio.mkv"), "reject")
        self.segment(cat, "audio-only wav named .mp4", audio_only(d / "audio.wav").rename(d / "audio_wav.mp4"), "reject")
        self.segment(cat, "two video streams", video(d / "two.mkv", n=2, streams=2), "work", check=frames_are(2))
        self.segment(cat, "video + audio", video(d / "av.mkv", n=2, audio=True), "work", check=frames_are(2))
        for name in ("with space.mp4", "naïve-vidéo.mkv", "日本語の動画.mp4", "emoji 🎬.mkv", "-dash.mp4"):
            p = video(d / name, n=2)
            self.segment(cat, f"path {name!r}", p, "work", check=frames_are(2))
        zero = d / "zero_frames.avi"
        with av.open(str(zero), "w") as c:
            s = c.add_stream("mpeg4", rate=25)
            s.width, s.height = 48, 32
            c.start_encoding()
        self.segment(cat, "zero frames", zero, "reject")
        self.segment(cat, "missing file", d / "nope.mp4", "reject")
        if hasattr(os, "mkfifo"):
            os.mkfifo(d / "fifo.mp4")
            self.segment(cat, "named pipe", d / "fifo.mp4", "reject")

    # -- frame folders ----------------------------------------------------------------------

    def _folders(self, d: Path) -> None:
        d.mkdir(parents=True)
        cat = "frame folders"
        rgb = Image.fromarray(frame(24, 32))
        g16 = Image.fromarray((np.arange(24 * 32).reshape(24, 32) * 80).astype(np.uint16))
        ok: dict[str, dict[str, Callable[[Path], object]]] = {
            "mixed formats": {"0.png": save(rgb), "1.jpg": save(rgb), "2.bmp": save(rgb), "3.webp": save(rgb)},
            "16-bit gray": {"0.png": save(g16), "1.png": save(g16)},
            "16-bit rgb": {"0.png": png_rgb48, "1.png": png_rgb48},
            "grayscale": {"0.png": save(rgb.convert("L")), "1.jpg": save(rgb.convert("L"))},
            "palette": {"0.png": save(rgb.convert("P")), "1.png": save(rgb.convert("P"))},
            "cmyk jpeg": {"0.jpg": save(rgb.convert("CMYK")), "1.jpg": save(rgb.convert("CMYK"))},
            "rgba + la": {"0.png": save(rgb.convert("RGBA")), "1.png": save(rgb.convert("LA"))},
            "bilevel": {"0.png": save(rgb.convert("1")), "1.bmp": save(rgb.convert("1"))},
            "stray files": {"0.jpg": save(rgb), "1.jpg": save(rgb), ".DS_Store": lambda p: p.write_bytes(b"\0\0\0\1Bud1"),
                            "Thumbs.db": lambda p: p.write_bytes(b"\xd0\xcf"), "notes.txt": lambda p: p.write_text("hi"),
                            "sub": lambda p: p.mkdir()},  # fmt: skip
            "upper-case extensions": {"0.JPG": save(rgb), "1.PNG": save(rgb)},
            "odd names": {"frame 1.png": save(rgb), "frame 10.png": save(rgb), "frame 2.png": save(rgb)},
            "1x1 frames": {"0.png": save(Image.new("RGB", (1, 1))), "1.png": save(Image.new("RGB", (1, 1)))},
            "odd size": {"0.png": save(Image.new("RGB", (7, 3))), "1.png": save(Image.new("RGB", (7, 3)))},
        }
        for name, images in ok.items():
            p = folder(d / name.replace(" ", "_"), images)
            self.segment(cat, name, p, "work", check=frames_are(sum(1 for n in images if n[0] != "." and "." in n[1:] and not n.endswith((".txt", ".db")))))  # fmt: skip
        p = folder(d / "exif", {"0.jpg": exif_rotated(24, 32), "1.jpg": exif_rotated(24, 32)})
        self.segment(cat, "EXIF orientation", p, "work", check=frames_are(2, 32, 24))
        bad: dict[str, dict[str, Callable[[Path], object]]] = {
            "mixed sizes": {"0.png": save(rgb), "1.png": save(Image.new("RGB", (33, 24)))},
            "only non-images": {"a.txt": lambda p: p.write_text("x"), ".DS_Store": lambda p: p.write_bytes(b"x")},
            "empty": {},
            "truncated png": {"0.png": save(rgb), "1.png": lambda p: p.write_bytes(png_chunks(32, 24)[:40])},
            "zero-byte jpg": {"0.jpg": save(rgb), "1.jpg": lambda p: p.write_bytes(b"")},
            "text named .jpg": {"0.jpg": lambda p: p.write_text("not an image")},
            "png bomb 12000x12000": {"0.png": lambda p: p.write_bytes(png_chunks(12000, 12000))},
            "png bomb 2 frames": {"0.png": lambda p: p.write_bytes(png_chunks(12000, 12000)),
                                  "1.png": lambda p: p.write_bytes(png_chunks(12000, 12000))},  # fmt: skip
            "png bomb 100000x1": {"0.png": lambda p: p.write_bytes(png_chunks(100000, 500))},
            "jpeg bomb 60000x60000": {"0.jpg": lambda p: jpeg_bomb(p, 60000, 60000)},
            "jpeg bomb 9000x9000": {"0.jpg": lambda p: jpeg_bomb(p, 9000, 9000)},
            "bomb after good frames": {"0.png": save(rgb), "1.png": lambda p: p.write_bytes(png_chunks(12000, 12000))},
            "png with bad crc": {"0.png": lambda p: p.write_bytes(png_chunks(32, 24)[:-5] + b"XXXXX")},
            "only sub-folders": {"a": lambda p: p.mkdir(), "b.png": lambda p: p.mkdir()},
            "video files only": {"clip.mp4": lambda p: video(p, n=1)},
        }
        for name, images in bad.items():
            self.segment(cat, name, folder(d / name.replace(" ", "_"), images), "reject")
        single = d / "single.png"
        rgb.save(single)
        self.segment(cat, "a single image", single, "reject")
        loop = d / "loop"
        loop.mkdir()
        (loop / "0.png").symlink_to(loop / "0.png")
        self.segment(cat, "symlink loop frame", loop, "reject")

    # -- weights ----------------------------------------------------------------------------

    def _weights(self, d: Path) -> None:
        d.mkdir(parents=True)
        cat = "weights"
        clip = folder(d / "clip", {"0.png": save(Image.fromarray(frame(24, 32)))})
        data = WEIGHTS.read_bytes()
        for frac in (0.0, 0.0001, 0.001, 0.01, 0.3, 0.7, 0.999):
            p = d / f"cut{frac}.safetensors"
            p.write_bytes(data[: int(len(data) * frac)])
            self.segment(cat, f"safetensors truncated at {frac:.2%}", clip, "reject", weights=p)
        header = struct.unpack("<Q", data[:8])[0]
        for k, off in enumerate([0, 3, 8, 20, 100, header // 2, header + 2, header + 7]):
            b = bytearray(data)
            b[off] ^= 0xFF
            p = d / f"flip{k}.safetensors"
            p.write_bytes(bytes(b))
            self.segment(cat, f"safetensors bit flip at byte {off}", clip, "reject" if off < header + 8 else "any", weights=p)
        for k, off in enumerate([header + 5000, len(data) // 2, len(data) - 3]):
            b = bytearray(data)
            b[off] ^= 0x40
            p = d / f"dataflip{k}.safetensors"
            p.write_bytes(bytes(b))
            self.segment(cat, f"tensor data bit flip at byte {off}", clip, "any", weights=p)
        with safe_open(str(WEIGHTS), "pt") as f:
            metadata = f.metadata()
        state = load_file(str(WEIGHTS))
        key = sorted(k for k in state if k.startswith("segmenter.decoder.") and state[k].ndim == 2)[0]

        def variant(name: str, change: Callable[[dict[str, torch.Tensor]], None], meta: dict[str, str] | None = metadata) -> Path:  # fmt: skip
            s = dict(state)
            change(s)
            p = d / f"{name}.safetensors"
            save_file(s, str(p), metadata=meta)
            return p

        variants = {
            "NaN tensor": lambda s: s.__setitem__(key, torch.full_like(s[key], float("nan"))),
            "Inf tensor": lambda s: s.__setitem__(key, torch.full_like(s[key], float("inf"))),
            "wrong shape": lambda s: s.__setitem__(key, torch.zeros(3, 3)),
            "missing key": lambda s: s.pop(key),
            "extra key": lambda s: s.__setitem__("segmenter.surprise.weight", torch.zeros(2)),
            "wrong dtype": lambda s: s.__setitem__(key, s[key].to(torch.int64)),
            "no decoder": lambda s: [s.pop(k) for k in list(s) if k.startswith("segmenter.decoder.")],
        }
        for name, change in variants.items():
            self.segment(cat, name, clip, "reject", weights=variant(name.replace(" ", "_"), change))
        self.segment(cat, "no vidpan metadata", clip, "reject", weights=variant("nometa", lambda s: None, None))
        bad_cfg = {**metadata, "vidpan_config": '{"model": {"num_classes": "many"}}'}
        self.segment(cat, "bad embedded config", clip, "reject", weights=variant("badcfg", lambda s: None, bad_cfg))
        not_json = {**metadata, "vidpan_config": "{not json"}
        self.segment(cat, "embedded config not JSON", clip, "reject", weights=variant("notjson", lambda s: None, not_json))
        self.segment(cat, "wrong preset", clip, "reject", "--preset", "vits")
        self.segment(cat, "unknown preset", clip, "reject", "--preset", "vit-huge")

        class RunsCode:
            def __reduce__(self):  # type: ignore[no-untyped-def]
                return (os.system, (f"touch {d / 'PWNED'}",))

        torch.save({"model": RunsCode()}, d / "evil.pth")
        self.segment(cat, "pickle that runs code (.pth)", clip, "reject", "--preset", "tiny", weights=d / "evil.pth")
        import pickle

        (d / "evil.pkl").write_bytes(pickle.dumps({"model": RunsCode()}))
        self.segment(cat, "pickle that runs code (.pkl)", clip, "reject", "--preset", "tiny", weights=d / "evil.pkl")
        torch.save(torch.zeros(3), d / "tensor.pth")
        self.segment(cat, ".pth holding one tensor", clip, "reject", "--preset", "tiny", weights=d / "tensor.pth")
        torch.save({"model": {"a": 1, "b": "x"}}, d / "values.pth")
        self.segment(cat, ".pth with non-tensor values", clip, "reject", "--preset", "tiny", weights=d / "values.pth")
        torch.save({"model": {"w": torch.zeros(2)}}, d / "cut.pth")
        (d / "cut2.pth").write_bytes((d / "cut.pth").read_bytes()[:200])
        self.segment(cat, "truncated .pth", clip, "reject", "--preset", "tiny", weights=d / "cut2.pth")
        (d / "text.safetensors").write_text("hello")
        self.segment(cat, "text named .safetensors", clip, "reject", weights=d / "text.safetensors")
        (d / "dir.safetensors").mkdir()
        self.segment(cat, "folder named .safetensors", clip, "reject", weights=d / "dir.safetensors")
        self.segment(cat, "missing weights", clip, "reject", weights=d / "nope.safetensors")
        (d / "weights.onnx").write_bytes(b"\0" * 10)
        self.segment(cat, "unknown weights type", clip, "reject", "--preset", "tiny", weights=d / "weights.onnx")

    # -- --set overrides ----------------------------------------------------------------------

    def _overrides(self, d: Path) -> None:
        clip = folder(d / "clip", {"0.png": save(Image.fromarray(frame(24, 32)))})
        sets = [
            "inference.window_size=0", "inference.window_size=-3", "inference.window_size=1.5", "inference.window_size=abc",
            "inference.short_side=-5", "inference.max_size=0", "inference.segmenter_batch=-1",
            "inference.object_mask_threshold=2", "inference.object_mask_threshold=-0.1", "inference.object_mask_threshold=.nan",
            "inference.overlap_threshold=1.5", "inference.max_instances=0", "inference.chunk_length=0",
            "inference.chunk_overlap=-1", "inference.chunk_overlap=100", "inference.max_input_pixels=-1",
            "inference.mode=fast", "inference.task=panoptic", "inference.window_size=[1, 2]", "inference.window_size={a: 1}",
            "inference.window_size=", "inference.window_size=true", "inference.window_size=99999999999999999999999",
            "inference.nope=1", "inferencee.window_size=3", "inference=3", "inference.window_size.x=1",
            "model.decoder.num_queries=0", "model.num_classes=0", "model.num_things=-1", "model.pixel_std=[0, 1, 1]",
            "model.pixel_std=[1, 1]", "model.vit.depth=x", "name=[1]", "window_size=3", "=3", "inference.window_size",
            ".window_size=3", "inference..window_size=3", "inference.window_size=!!python/object/apply:os.system ['true']",
            "inference.window_size=[", "model.class_names=5",
        ]  # fmt: skip
        for text in sets:
            self.segment("--set overrides", text, clip, "reject", "--set", text)
        for text in ("inference.segmenter_batch=0", "inference.window_size=1", "inference.object_mask_threshold=0",
                     "inference.max_input_pixels=0", "inference.window_size=1000"):  # fmt: skip
            self.segment("--set overrides", f"{text} (valid)", clip, "work", "--set", text, check=frames_are(1))
        for bad in (["--mode", "turbo"], ["--task", "vps,vis,vss,x"], ["--precision", "fp8"], ["--device", "tpu"],
                    ["--device", "cpu:99"], ["--categories", str(d / "nope.json")]):  # fmt: skip
            self.segment("--set overrides", " ".join(bad), clip, "reject", *bad)

    # -- training data ----------------------------------------------------------------------

    def _training(self, d: Path) -> None:
        from vidpan.data.synthetic import generate

        cat = "training data"
        synth = generate(d / "synth", videos=3, frames=4, size=(32, 48), seed=0)
        vip, vspw = synth.vipseg_root, synth.vspw_root

        def train(name: str, root: Path, *extra: str, expect: str = "reject") -> None:
            out = self._out()
            argv = ["train", "--config", "smoke_tiny", "--stage", "segmenter", "--set", f"data.vipseg_root={root}",
                    "--set", f"data.vspw_root={vspw}", "--out", str(out), *extra]  # fmt: skip
            self.cases.append(Case(cat, name, argv, expect, None))

        def broken(name: str, edit: Callable[[Path], None]) -> Path:
            import shutil

            root = d / name
            shutil.copytree(vip, root)
            edit(root)
            return root

        gt = "panoptic_gt_VIPSeg_train.json"
        train("missing root", d / "nope")
        train("malformed JSON", broken("malformed", lambda r: (r / gt).write_text("{not json")))
        train("JSON of the wrong shape", broken("shape", lambda r: (r / gt).write_text("[1, 2, 3]")))
        train("empty split", broken("empty", lambda r: (r / "train.txt").write_text("")))
        train("empty annotations", broken("noann", lambda r: (r / gt).write_text(json.dumps({"videos": [], "annotations": [], "categories": []}))))  # fmt: skip

        def drop_frame(r: Path) -> None:
            next(iter(sorted((r / "images").rglob("*.jpg")))).unlink()

        def drop_mask(r: Path) -> None:
            next(iter(sorted((r / "panomasksRGB").rglob("*.png")))).unlink()

        def corrupt_mask(r: Path) -> None:
            next(iter(sorted((r / "panomasksRGB").rglob("*.png")))).write_bytes(b"junk")

        train("missing frame", broken("noframe", drop_frame))
        train("missing mask", broken("nomask", drop_mask))
        train("corrupt mask", broken("badmask", corrupt_mask))
        train("unknown key", vip, "--set", "solver.base_lrr=1")
        train("base_lr=0", vip, "--set", "solver.base_lr=0")
        train("max_iter=0", vip, "--set", "solver.max_iter=0")
        train("diverging: base_lr=1e9", vip, "--set", "solver.base_lr=1e9")
        train("unknown stage", vip, "--stage", "nope")
        train("missing init", vip, "--set", f"stage.init={d / 'nope.safetensors'}")

    # -- output locations -------------------------------------------------------------------

    def _outputs(self, d: Path) -> None:
        cat = "output locations"
        frames = folder(d / "frames", {"0.png": save(Image.fromarray(frame(24, 32)))})
        clip = video(d / "clip.mp4", n=1)
        self.segment(cat, "--out = the input frame folder", frames, "reject", out=frames)
        self.segment(cat, "--out contains the input video", clip, "reject", out=d)
        self.segment(cat, "--out contains the input folder", frames, "reject", out=d)
        self.segment(cat, "--out /proc/x", frames, "reject", out=Path("/proc/x"))
        self.segment(cat, "--out /proc/self/x/y", frames, "reject", out=Path("/proc/self/x/y"))
        (d / "a_file").write_text("x")
        self.segment(cat, "--out is a file", frames, "reject", out=d / "a_file")
        self.segment(cat, "--out below a file", frames, "reject", out=d / "a_file" / "sub")

        def user_folder(name: str, files: dict[str, str], manifest: list[str] | None = None) -> Path:
            out = d / name
            out.mkdir()
            for n, text in files.items():
                (out / n).write_text(text)
            if manifest is not None:
                (out / ".vidpan-output.json").write_text(json.dumps({"writer": "vidpan", "outputs": manifest}))
            return out

        keep = {"notes.txt": "the user's notes"}
        self.segment(cat, "--out holds user files", frames, "work", out=user_folder("user", keep),
                     check=lambda o: None if (o / "notes.txt").read_text() == keep["notes.txt"] else "notes.txt changed")  # fmt: skip
        earlier = user_folder("earlier", {**keep, "pred.json": "{}", "frames.jsonl": ""}, ["pred.json", "frames.jsonl"])
        self.segment(cat, "earlier output, no --overwrite", frames, "reject", out=earlier)
        earlier2 = user_folder("earlier2", {**keep, "pred.json": "{}", "frames.jsonl": ""}, ["pred.json", "frames.jsonl"])
        self.segment(cat, "earlier output, --overwrite", frames, "work", "--overwrite", out=earlier2,
                     check=lambda o: None if (o / "notes.txt").exists() else "notes.txt deleted")  # fmt: skip
        clash = user_folder("clash", {"frames.jsonl": "the user's own file"})
        self.segment(cat, "user file named frames.jsonl", frames, "reject", out=clash)
        clash2 = user_folder("clash2", {"config.yaml": "mine"})
        self.segment(cat, "user config.yaml, --overwrite", frames, "reject", "--overwrite", out=clash2)
        damaged = user_folder("damaged", {}, None)
        (damaged / ".vidpan-output.json").write_text("{broken")
        self.segment(cat, "damaged manifest", frames, "reject", out=damaged)
        work = d / "cwd"
        work.mkdir()
        (work / "mine.txt").write_text("x")
        self.segment(cat, "--out . (input elsewhere)", frames, "work", out=Path("."), cwd=work, check=frames_are(1))
        cwd2 = d / "cwd2"
        cwd2.mkdir()
        video(cwd2 / "here.mp4", n=1)
        self.segment(cat, "--out . holding the input", Path("here.mp4"), "reject", out=Path("."), cwd=cwd2)
        self.segment(cat, "--out $PWD holding the input", cwd2 / "here.mp4", "reject", out=cwd2, cwd=cwd2)
        self.segment(cat, "--out nested new folders", frames, "work", out=d / "n" / "e" / "s" / "t", check=frames_are(1))
        self.segment(cat, "--out inside the input folder", frames, "work", out=frames / "results", check=frames_are(1))
        twin = folder(d / "x" / "frames", {"0.png": save(Image.fromarray(frame(24, 32)))})
        self.segment(cat, "two inputs, same name", [frames, twin], "reject")
