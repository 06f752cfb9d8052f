"""Video input: every container/codec this PyAV build writes, frame folders, bad input, resizing."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vidpan.errors import InputError
from vidpan.inference import video_io
from vidpan.inference.video_io import FrameFolderSource, VideoFileSource, open_video, resize_frames

H, W, N, FPS = 48, 64, 10, 25
BACKGROUND = (40, 80, 120)


def square_frame(i: int, h: int = H, w: int = W) -> np.ndarray:
    """Frame i of the synthetic clip: a white 10x10 square moving right by 4 px per frame."""
    img = np.empty((h, w, 3), np.uint8)
    img[:] = BACKGROUND
    img[10:20, 4 + 4 * i : 14 + 4 * i] = 255
    return img


def encode(
    path: Path, frames: list[np.ndarray], codec: str, *, pix_fmt: str = "yuv420p", rotation: int | None = None
) -> Path:
    try:
        av.codec.Codec(codec, "w")
    except Exception:
        pytest.skip(f"encoder {codec} is not in this PyAV build")
    h, w = frames[0].shape[:2] if frames else (H, W)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if not frames:
            container.start_encoding()  # header only: a container with zero frames
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


FORMATS = [
    ("mp4", "libx264", "yuv420p"),
    ("mov", "libx264", "yuv420p"),
    ("mkv", "libx264", "yuv420p"),
    ("mkv", "ffv1", "yuv420p"),
    ("webm", "libvpx", "yuv420p"),  # VP8
    ("webm", "libvpx-vp9", "yuv420p"),
    ("avi", "mpeg4", "yuv420p"),
    ("avi", "mjpeg", "yuvj420p"),
]


@pytest.mark.parametrize(("ext", "codec", "pix_fmt"), FORMATS)
def test_read_back_every_format(tmp_path: Path, ext: str, codec: str, pix_fmt: str) -> None:
    frames = [square_frame(i) for i in range(N)]
    path = encode(tmp_path / f"clip.{ext}", frames, codec, pix_fmt=pix_fmt)
    src = open_video(path)
    assert isinstance(src, VideoFileSource)
    assert (src.height, src.width, src.name) == (H, W, "clip")
    assert src.fps == pytest.approx(FPS)
    assert not src.num_frames_exact and abs(src.num_frames - N) <= 1
    assert src.frame_names is None
    decoded = list(src)
    assert len(decoded) == N
    for i, (got, want) in enumerate(zip(decoded, frames, strict=True)):
        assert got.shape == (H, W, 3) and got.dtype == np.uint8
        diff = np.abs(got.astype(int) - want.astype(int))
        assert diff.mean() < 4, (i, diff.mean())  # lossy codecs, chroma subsampling
        assert got[12:18, 6 + 4 * i : 12 + 4 * i].mean() > 200  # the square moved as encoded
        assert np.abs(got[35:, :].reshape(-1, 3).mean(0) - BACKGROUND).max() < 6


def test_iteration_restarts_and_windows(tmp_path: Path) -> None:
    path = encode(tmp_path / "clip.mp4", [square_frame(i) for i in range(N)], "libx264")
    src = open_video(path)
    first, second = list(src), list(src)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    windows = list(src.iter_windows(4))
    assert [[i for i, _ in w] for w in windows] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert all(np.array_equal(f, first[i]) for w in windows for i, f in w)
    with pytest.raises(ValueError):
        next(src.iter_windows(0))


def test_rotation_metadata_is_applied(tmp_path: Path) -> None:
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:8, :16] = 255  # top-left marker
    path = encode(tmp_path / "rot.mp4", [frame], "libx264", pix_fmt="yuv444p", rotation=90)
    src = open_video(path)
    assert (src.height, src.width) == (W, H)
    got = next(iter(src))
    # 90 degrees counter-clockwise (ffmpeg's autorotate for this display matrix): marker bottom-left.
    assert np.abs(got.astype(int) - np.rot90(frame).astype(int)).max() <= 8


def write_frames(folder: Path, names: list[str], frames: list[np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in zip(names, frames, strict=True):
        Image.fromarray(frame).save(folder / name)


def test_frame_folder_natural_order(tmp_path: Path) -> None:
    names = ["frame10.png", "frame2.png", "frame1.png", "frame0.bmp", "frame3.webp"]
    index = {"frame0.bmp": 0, "frame1.png": 1, "frame2.png": 2, "frame3.webp": 3, "frame10.png": 4}
    folder = tmp_path / "myvideo"
    write_frames(folder, names, [square_frame(index[n]) for n in names])
    (folder / "notes.txt").write_text("ignored")
    (folder / ".hidden.png").write_bytes(b"not an image")
    (folder / "sub").mkdir()
    src = open_video(folder)
    assert isinstance(src, FrameFolderSource)
    assert src.frame_names == ["frame0.bmp", "frame1.png", "frame2.png", "frame3.webp", "frame10.png"]
    assert (src.num_frames, src.num_frames_exact, src.height, src.width, src.name) == (
        5,
        True,
        H,
        W,
        "myvideo",
    )
    assert src.fps == video_io.DEFAULT_FOLDER_FPS == 24.0
    assert open_video(folder, folder_fps=30).fps == 30.0
    got = list(src)
    # png/bmp are lossless; webp is lossy by default.
    for i in (0, 1, 2, 4):
        assert np.array_equal(got[i], square_frame(i))
    assert np.abs(got[3].astype(int) - square_frame(3).astype(int)).mean() < 4


def test_frame_folder_jpeg_exif_orientation(tmp_path: Path) -> None:
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:8, :16] = 255
    folder = tmp_path / "exif"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(frame).save(folder / "0.jpg", exif=exif, quality=95)
    src = open_video(folder)
    assert (src.height, src.width) == (W, H)
    got = next(iter(src))
    assert np.abs(got.astype(int) - np.rot90(frame, -1).astype(int)).mean() < 4


def test_frame_folder_mixed_sizes_names_the_frame(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    frames = [square_frame(0), square_frame(1), square_frame(2, h=H + 2)]
    write_frames(folder, ["a1.png", "a2.png", "a10.png"], frames)
    it = iter(open_video(folder))
    next(it)
    next(it)  # frames before the odd one are delivered
    with pytest.raises(InputError, match=r"a10\.png.*differs from the first frame a1\.png"):
        next(it)


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.mp4: no such"):
        open_video(tmp_path / "missing.mp4")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(InputError, match="empty_dir: no frame images"):
        open_video(empty)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"notes\.txt: unsupported extension '\.txt'"):
        open_video(tmp_path / "notes.txt")
    Image.fromarray(square_frame(0)).save(tmp_path / "one.png")
    with pytest.raises(InputError, match=r"one\.png: is a single image"):
        open_video(tmp_path / "one.png")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match=r"garbage\.mp4: cannot open as a video"):
        open_video(garbage)
    (tmp_path / "zero_bytes.mkv").write_bytes(b"")
    with pytest.raises(InputError, match=r"zero_bytes\.mkv"):
        open_video(tmp_path / "zero_bytes.mkv")


def test_folder_of_videos_hints(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    encode(folder / "clip.mp4", [square_frame(0)], "libx264")
    with pytest.raises(InputError, match=r"it holds video files \(clip\.mp4\)"):
        open_video(folder)


def test_truncated_file(tmp_path: Path) -> None:
    # PyAV writes the mp4 index (moov) at the end: cutting the file loses it.
    path = encode(tmp_path / "clip.mp4", [square_frame(i) for i in range(N)], "libx264")
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.mp4: cannot open as a video"):
        open_video(cut)


def test_corruption_mid_stream_is_an_input_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(20)]  # big packets
    path = encode(tmp_path / "noise.mp4", noise, "libx264")
    data = bytearray(path.read_bytes())
    start = int(len(data) * 0.3)
    data[start : start + 2000] = np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    src = open_video(bad)  # the header and the first frame are intact
    with pytest.raises(InputError, match=r"bad\.mp4: decoding failed at frame \d+"):
        for _ in src:
            pass


def test_zero_frames_and_no_video_stream(tmp_path: Path) -> None:
    zero = encode(tmp_path / "zero.avi", [], "mpeg4")
    with pytest.raises(InputError, match=r"zero\.avi: the video stream has no frames"):
        open_video(zero)
    audio = tmp_path / "audio.mkv"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(InputError, match=r"audio\.mkv: no video stream"):
        open_video(audio)


# Hand-computed with detectron2's rule: short side -> S, long side capped at M, int(x + 0.5).
TEST_SIZES = [
    # (h, w, S, M) -> (h', w')
    ((720, 1280, 720, 1333), (720, 1280)),
    ((1080, 1920, 720, 1333), (720, 1280)),
    ((1920, 1080, 720, 1333), (1280, 720)),  # portrait
    ((480, 854, 720, 1333), (720, 1281)),  # 854 * 1.5 = 1281
    ((500, 500, 720, 1333), (720, 720)),
    ((333, 500, 720, 1333), (720, 1081)),  # 500 * 720/333 = 1081.08
    ((360, 1280, 720, 1333), (375, 1333)),  # 2560 > 1333: 720 * 1333/2560 = 374.9
    ((100, 1000, 720, 1333), (133, 1333)),  # 720 * 1333/7200 = 133.3
    ((481, 640, 480, 1333), (480, 639)),  # 640 * 480/481 = 638.67
    ((4, 5, 2, 1333), (2, 3)),  # 2.5 rounds half up (Python's round() would give 2)
    ((123, 457, 0, 1333), (123, 457)),  # short side 0 keeps the size
]


@pytest.mark.parametrize(("args", "expected"), TEST_SIZES)
def test_test_size_matches_detectron2(args: tuple[int, int, int, int], expected: tuple[int, int]) -> None:
    assert video_io.test_size(*args) == expected


def test_resize_frames_is_pil_bilinear() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 45, 61, 3), dtype=np.uint8)
    out = resize_frames(frames, short_side=30, max_size=1333)
    h, w = video_io.test_size(45, 61, 30, 1333)
    assert out.dtype == torch.uint8 and out.shape == (3, 3, h, w)
    for t in range(3):
        pil = np.asarray(Image.fromarray(frames[t]).resize((w, h), Image.Resampling.BILINEAR))
        assert np.array_equal(out[t].permute(1, 2, 0).numpy(), pil)
    # Independent check: PIL's bilinear is an antialiased triangle filter (fixed point, off by <= 1).
    ref = F.interpolate(
        torch.from_numpy(frames).permute(0, 3, 1, 2).float(), size=(h, w), mode="bilinear", antialias=True
    )
    assert (out.float() - ref.round()).abs().max() <= 1
    up = resize_frames(list(frames), short_side=90)
    ref_up = F.interpolate(
        torch.from_numpy(frames).permute(0, 3, 1, 2).float(), size=up.shape[-2:], mode="bilinear"
    )
    assert (up.float() - ref_up.round()).abs().max() <= 1
    same = resize_frames(frames, short_side=0)
    assert torch.equal(same, torch.from_numpy(frames).permute(0, 3, 1, 2))
    with pytest.raises(ValueError, match="like frame 0"):
        resize_frames([frames[0], frames[1, :40]])


def test_truncated_stream_without_index_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # mkv has no frame index: a cut file decodes up to the cut, and the shortfall against the
    # duration estimate is reported.
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(30)]
    data = encode(tmp_path / "noise.mkv", noise, "libx264").read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    src = open_video(cut)
    assert src.num_frames == 30
    with caplog.at_level("WARNING", logger="vidpan.inference.video_io"):
        n = sum(1 for _ in src)
    assert 0 < n < 30
    assert f"decoded {n} frames, expected 30 (estimated from the duration)" in caplog.text
