"""Unusual but valid inputs work (16-bit, CMYK, palette, VFR timing); bombs and truncation are
named before or after decoding, never a crash."""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vidpan.errors import InputError
from vidpan.inference.video_io import open_video


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height (8-bit gray) with a few bytes of data: a bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def test_png_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    folder = tmp_path / "bomb"
    folder.mkdir()
    png_header_only(folder / "0.png", 12000, 12000)
    with pytest.raises(
        InputError,
        match=r"12000x12000 \(144\.0 MP\) is above the limit of 40,000,000 pixels.*max_input_pixels",
    ):
        open_video(folder)
    with pytest.raises(InputError, match="above the limit of 100 pixels"):
        open_video(folder, max_pixels=100)
    # With vidpan's limit off, PIL's own hard limit (2 x MAX_IMAGE_PIXELS) still refuses 400 MP.
    png_header_only(folder / "0.png", 20000, 20000)
    with pytest.raises(InputError, match="decompression bomb"):
        open_video(folder, max_pixels=0)


def test_y4m_declaring_a_huge_size_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.y4m"
    path.write_bytes(b"YUV4MPEG2 W16000 H16000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\0" * 1000)
    with pytest.raises(InputError, match=r"declared frame size 16000x16000 \(256\.0 MP\)"):
        open_video(path)


def test_unusual_image_modes_read_as_rgb(tmp_path: Path) -> None:
    folder = tmp_path / "modes"
    folder.mkdir()
    gray16 = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 256).astype(np.uint16)
    Image.fromarray(gray16).save(folder / "0_gray16.png")
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :8] = (200, 30, 60)
    Image.fromarray(rgb).convert("CMYK").save(folder / "1_cmyk.jpg", quality=95)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "2_palette.png")
    Image.fromarray(rgb).convert("LA").save(folder / "3_la.png")
    Image.fromarray(np.dstack([rgb, np.full((16, 16), 7, np.uint8)])).save(
        folder / "4_rgba.webp", lossless=True
    )
    Image.fromarray(rgb).convert("1").save(folder / "5_bilevel.bmp")
    frames = list(open_video(folder))
    assert all(f.shape == (16, 16, 3) and f.dtype == np.uint8 for f in frames)
    assert np.array_equal(frames[0][..., 0], (gray16 >> 8).astype(np.uint8))  # not clipped to white
    assert abs(int(frames[1][0, 0, 0]) - 200) < 12 and abs(int(frames[1][0, 0, 1]) - 30) < 12
    assert np.array_equal(frames[2][0, 0], [200, 30, 60]) and np.array_equal(frames[4], rgb)


def _encode(
    path: Path, pts: list[int], *, time_base: Fraction, pix_fmt: str = "yuv420p", codec: str = "libx264"
) -> Path:
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, pix_fmt
        stream.codec_context.time_base = time_base
        for p in pts:
            frame = av.VideoFrame.from_ndarray(
                rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), format="rgb24"
            )
            frame.pts, frame.time_base = p, time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_variable_frame_rate_keeps_timestamps(tmp_path: Path) -> None:
    pts = [0, 40, 80, 200, 240, 600]  # ms: gaps of 40, 120, 360
    source = open_video(_encode(tmp_path / "vfr.mkv", pts, time_base=Fraction(1, 1000)))
    assert len(list(source)) == len(pts)
    assert source.timestamps == pytest.approx([p / 1000 for p in pts], abs=1e-3)
    assert source.incomplete is None


@pytest.mark.parametrize(
    ("codec", "pix_fmt"),
    [("libx264", "yuv420p10le"), ("libx264", "yuv444p"), ("libx264", "gray"), ("ffv1", "yuva420p")],
)
def test_high_bit_depth_and_alpha_streams_decode(tmp_path: Path, codec: str, pix_fmt: str) -> None:
    try:
        source = open_video(
            _encode(tmp_path / "v.mkv", [0, 1, 2], time_base=Fraction(1, 25), pix_fmt=pix_fmt, codec=codec)
        )
    except (av.error.FFmpegError, ValueError) as exc:  # encoder without that format in this build
        pytest.skip(f"{codec} {pix_fmt}: {exc}")
    frames = list(source)
    assert len(frames) == 3 and frames[0].shape == (32, 32, 3) and frames[0].dtype == np.uint8


def test_truncated_download_is_marked_incomplete(tmp_path: Path) -> None:
    full = tmp_path / "full.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(full), "w", options={"movflags": "faststart"}) as container:  # index first
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(20):
            frame = av.VideoFrame.from_ndarray(
                rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), format="rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    source = open_video(full)
    assert len(list(source)) == 20 and source.incomplete is None
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    source = open_video(cut)
    n = len(list(source))
    assert 0 < n < 20
    assert (
        source.incomplete
        == f"decoded {n} of 20 frames (the container header's count): truncated or damaged file"
    )
