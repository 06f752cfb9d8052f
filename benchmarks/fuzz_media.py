"""Fuzz corpus, media half: containers and streams, frame folders (``benchmarks/fuzz.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
from fuzz_inputs import (
    _rng,
    audio_only,
    exif_rotated,
    folder,
    frame,
    frames_are,
    jpeg_bomb,
    png_chunks,
    png_rgb48,
    save,
    times_are,
    video,
)
from PIL import Image

if TYPE_CHECKING:
    from collections.abc import Callable

    from fuzz_corpus import Corpus


def containers(c: Corpus, d: Path) -> None:
    d.mkdir(parents=True)
    cat = "containers"
    exts = [".mp4", ".mkv", ".webm", ".avi", ".mov", ".y4m", ".gif", ".ts", ".flv", ".mpg"]
    for ext in exts:
        (d / f"zero{ext}").write_bytes(b"")
        c.segment(cat, f"zero-byte {ext}", d / f"zero{ext}", "reject")
    for ext, codec, opts in [(".mp4", "libx264", {"movflags": "faststart"}), (".mp4", "libx264", {}),
                             (".mkv", "libx264", {}), (".webm", "libvpx-vp9", {}), (".avi", "mpeg4", {})]:  # fmt: skip
        full = video(d / f"full_{codec}_{len(opts)}{ext}", n=12, size=(32, 48), codec=codec, options=opts)
        data = full.read_bytes()
        for frac in (0.05, 0.3, 0.6, 0.9):
            cut = d / f"cut{int(frac * 100)}_{codec}_{len(opts)}{ext}"
            cut.write_bytes(data[: int(len(data) * frac)])
            c.segment(cat, f"truncated {frac:.0%} {codec}{ext}{' faststart' if opts else ''}", cut, "any")
        c.segment(cat, f"complete {codec}{ext}", full, "work", check=frames_are(12))
        tail = d / f"garbage_{codec}{ext}"
        tail.write_bytes(data + _rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
        c.segment(cat, f"garbage after frames {codec}{ext}", tail, "any")
        flipped = bytearray(data)
        for k in range(0, len(flipped), max(1, len(flipped) // 40)):
            flipped[k] ^= 0x5A
        (d / f"flipped_{codec}{ext}").write_bytes(bytes(flipped))
        c.segment(cat, f"bit flips {codec}{ext}", d / f"flipped_{codec}{ext}", "any")
    mp4 = d / "full_libx264_1.mp4"
    for wrong in (".avi", ".mkv", ".webm", ".mov"):
        (d / f"is_mp4{wrong}").write_bytes(mp4.read_bytes())
        c.segment(cat, f"mp4 named {wrong}", d / f"is_mp4{wrong}", "work", check=frames_are(12))
    for name, data in [("text.mp4", b"hello, I am not a video\n" * 50), ("random.mkv", _rng(2).bytes(20000)),
                       ("html.mp4", b"<html><body>404 Not Found</body></html>"), ("noext", b"\0" * 100),
                       ("clip.txt", b"video")]:  # fmt: skip
        (d / name).write_bytes(data)
        c.segment(cat, f"not a video: {name}", d / name, "reject")
    (d / "png.mp4").write_bytes(png_chunks(16, 16))  # FFmpeg probes it as a one-frame image video
    c.segment(cat, "a PNG named .mp4", d / "png.mp4", "any")
    # A coded-size change mid-stream: two MPEG-TS files of different sizes, concatenated.
    a = video(d / "a.ts", n=3, size=(32, 48), codec="mpeg2video")
    b = video(d / "b.ts", n=3, size=(48, 64), codec="mpeg2video")
    (d / "size_change.ts").write_bytes(a.read_bytes() + b.read_bytes())
    c.segment(cat, "frame size change mid-stream", d / "size_change.ts", "work")
    for h, w, codec, fmt in [(1, 1, "ffv1", "yuv444p"), (3, 5, "ffv1", "yuv444p"), (33, 17, "libx264", "yuv444p"),
                             (2, 2, "libx264", "yuv420p"), (1, 640, "ffv1", "yuv444p")]:  # fmt: skip
        p = video(d / f"size_{h}x{w}.mkv", n=2, size=(h, w), codec=codec, pix_fmt=fmt)
        c.segment(cat, f"{h}x{w} frames", p, "work", check=frames_are(2, h, w))
    for w, h in [(16000, 16000), (100000, 2), (8000, 8000), (65535, 65535)]:
        p = d / f"bomb_{w}x{h}.y4m"
        p.write_bytes(f"YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg\nFRAME\n".encode() + b"\0" * 2000)
        c.segment(cat, f"declared {w}x{h} (y4m bomb)", p, "reject")
    big = video(d / "big.mkv", n=1, size=(64, 96), codec="ffv1", pix_fmt="yuv444p")
    c.segment(
        cat, "frame above a lowered pixel limit", big, "reject", "--set", "inference.max_input_pixels=1000"
    )
    for rot, hw in [(90, (48, 32)), (180, (32, 48)), (270, (48, 32)), (-90, (48, 32))]:
        p = video(d / f"rot{rot}.mp4", n=2, size=(32, 48), rotation=rot)
        c.segment(cat, f"rotation {rot}", p, "work", check=frames_are(2, *hw))
    pts = [0, 40, 200, 240, 900]
    for ext in (".mkv", ".mp4", ".mov"):
        p = video(d / f"vfr{ext}", n=5, pts=pts)
        c.segment(cat, f"variable frame rate {ext}", p, "work", check=times_are([t / 1000 for t in pts]))
    for codec, fmt, ext in [("libx264", "yuv420p10le", ".mkv"), ("libx264", "yuv444p", ".mp4"),
                            ("libx264", "gray", ".mkv"), ("ffv1", "yuva420p", ".mkv"),
                            ("png", "rgba", ".mov"), ("libvpx-vp9", "yuva420p", ".webm"),
                            ("ffv1", "yuv420p16le", ".mkv"), ("mjpeg", "yuvj422p", ".avi")]:  # fmt: skip
        p = video(d / f"fmt_{fmt}_{codec}{ext}", n=2, codec=codec, pix_fmt=fmt)
        c.segment(cat, f"pixel format {fmt} ({codec})", p, "work", check=frames_are(2))
    c.segment(cat, "audio-only mkv", audio_only(d / "audio.mkv"), "reject")
    c.segment(
        cat, "audio-only wav named .mp4", audio_only(d / "audio.wav").rename(d / "audio_wav.mp4"), "reject"
    )
    c.segment(cat, "two video streams", video(d / "two.mkv", n=2, streams=2), "work", check=frames_are(2))
    c.segment(cat, "video + audio", video(d / "av.mkv", n=2, audio=True), "work", check=frames_are(2))
    for name in ("with space.mp4", "naïve-vidéo.mkv", "日本語の動画.mp4", "emoji 🎬.mkv", "-dash.mp4"):
        p = video(d / name, n=2)
        c.segment(cat, f"path {name!r}", p, "work", check=frames_are(2))
    zero = d / "zero_frames.avi"
    with av.open(str(zero), "w") as container:
        s = container.add_stream("mpeg4", rate=25)
        s.width, s.height = 48, 32
        container.start_encoding()
    c.segment(cat, "zero frames", zero, "reject")
    c.segment(cat, "missing file", d / "nope.mp4", "reject")
    if hasattr(os, "mkfifo"):
        os.mkfifo(d / "fifo.mp4")
        c.segment(cat, "named pipe", d / "fifo.mp4", "reject")


# -- frame folders ----------------------------------------------------------------------


def folders(c: Corpus, d: Path) -> None:
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
        "stray files": {
            "0.jpg": save(rgb),
            "1.jpg": save(rgb),
            ".DS_Store": lambda p: p.write_bytes(b"\0\0\0\1Bud1"),
            "Thumbs.db": lambda p: p.write_bytes(b"\xd0\xcf"),
            "notes.txt": lambda p: p.write_text("hi"),
            "sub": lambda p: p.mkdir(),
        },
        "upper-case extensions": {"0.JPG": save(rgb), "1.PNG": save(rgb)},
        "odd names": {"frame 1.png": save(rgb), "frame 10.png": save(rgb), "frame 2.png": save(rgb)},
        "1x1 frames": {"0.png": save(Image.new("RGB", (1, 1))), "1.png": save(Image.new("RGB", (1, 1)))},
        "odd size": {"0.png": save(Image.new("RGB", (7, 3))), "1.png": save(Image.new("RGB", (7, 3)))},
    }
    for name, images in ok.items():
        p = folder(d / name.replace(" ", "_"), images)
        c.segment(cat, name, p, "work", check=frames_are(sum(1 for n in images if n[0] != "." and "." in n[1:] and not n.endswith((".txt", ".db")))))  # fmt: skip
    p = folder(d / "exif", {"0.jpg": exif_rotated(24, 32), "1.jpg": exif_rotated(24, 32)})
    c.segment(cat, "EXIF orientation", p, "work", check=frames_are(2, 32, 24))
    bad: dict[str, dict[str, Callable[[Path], object]]] = {
        "mixed sizes": {"0.png": save(rgb), "1.png": save(Image.new("RGB", (33, 24)))},
        "only non-images": {"a.txt": lambda p: p.write_text("x"), ".DS_Store": lambda p: p.write_bytes(b"x")},
        "empty": {},
        "truncated png": {"0.png": save(rgb), "1.png": lambda p: p.write_bytes(png_chunks(32, 24)[:40])},
        "zero-byte jpg": {"0.jpg": save(rgb), "1.jpg": lambda p: p.write_bytes(b"")},
        "text named .jpg": {"0.jpg": lambda p: p.write_text("not an image")},
        "png bomb 12000x12000": {"0.png": lambda p: p.write_bytes(png_chunks(12000, 12000))},
        "png bomb 2 frames": {
            "0.png": lambda p: p.write_bytes(png_chunks(12000, 12000)),
            "1.png": lambda p: p.write_bytes(png_chunks(12000, 12000)),
        },
        "png bomb 100000x1": {"0.png": lambda p: p.write_bytes(png_chunks(100000, 500))},
        "jpeg bomb 60000x60000": {"0.jpg": lambda p: jpeg_bomb(p, 60000, 60000)},
        "jpeg bomb 9000x9000": {"0.jpg": lambda p: jpeg_bomb(p, 9000, 9000)},
        "bomb after good frames": {
            "0.png": save(rgb),
            "1.png": lambda p: p.write_bytes(png_chunks(12000, 12000)),
        },
        "png with bad crc": {"0.png": lambda p: p.write_bytes(png_chunks(32, 24)[:-5] + b"XXXXX")},
        "only sub-folders": {"a": lambda p: p.mkdir(), "b.png": lambda p: p.mkdir()},
        "video files only": {"clip.mp4": lambda p: video(p, n=1)},
    }
    for name, images in bad.items():
        c.segment(cat, name, folder(d / name.replace(" ", "_"), images), "reject")
    single = d / "single.png"
    rgb.save(single)
    c.segment(cat, "a single image", single, "reject")
    loop = d / "loop"
    loop.mkdir()
    (loop / "0.png").symlink_to(loop / "0.png")
    c.segment(cat, "symlink loop frame", loop, "reject")


# -- weights ----------------------------------------------------------------------------
