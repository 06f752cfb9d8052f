"""The session API (``VideoPredictor.start``): frame by frame, the same results as ``predict``,
returned when they are decided; explicit state; per-stage progress.

Uses the DVIS++ fixture model (random weights whose queries form segments at its thresholds).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from vidpan.config import Config
from vidpan.errors import InputError
from vidpan.inference.modes.offline import OfflineState
from vidpan.inference.modes.online import OnlineState
from vidpan.inference.predictor import VideoPredictor
from vidpan.inference.progress import StageProgress
from vidpan.models.build import build_dvis
from vidpan.models.checkpoint import convert_dvis_plus, load_state_dict_strict, read_checkpoint
from vidpan.models.reference_config import inference_config_from_reference, model_config_from_reference
from vidpan.structures import PanopticFrame


@pytest.fixture(scope="module")
def setup(dvis_fixture: Path) -> tuple[VideoPredictor, np.ndarray]:
    meta = json.loads((dvis_fixture / "meta.json").read_text())
    config = Config(
        model=model_config_from_reference(
            meta["config"], num_things=int(meta["metadata"]["n_thing_classes"])
        ),
        inference=inference_config_from_reference(meta["config"]),
    )
    model = build_dvis(config.model)
    load_state_dict_strict(model, convert_dvis_plus(read_checkpoint(dvis_fixture / "weights.safetensors")))
    video = load_file(str(dvis_fixture / "inputs.safetensors"))["video_tchw_uint8"]
    return VideoPredictor(model.eval(), config), video.permute(0, 2, 3, 1).numpy()


def _same(a: list, b: list) -> bool:  # type: ignore[type-arg]
    return [f.index for f in a] == [f.index for f in b] and all(
        np.array_equal(x.segment_ids, y.segment_ids) and x.segments == y.segments
        for x, y in zip(a, b, strict=True)
    )


def test_online_session_returns_each_window_when_full(setup) -> None:  # type: ignore[no-untyped-def]
    predictor, frames = setup
    window = predictor.config.inference.window_size
    session = predictor.start(mode="online", task="vps")
    got, returned_at = [], []
    for t, frame in enumerate(frames):
        out = session.step(frame)
        returned_at += [t] * len(out)
        got += out
        assert len(session.state.pending) == (t + 1) % window
    got += list(session.close())
    full = len(frames) // window * window
    assert returned_at == [(i // window + 1) * window - 1 for i in range(full)]  # at the window's last frame
    state = session.state
    assert state.frames_in == state.frames_out == len(frames) and state.closed
    assert isinstance(state.mode_state, OnlineState) and state.mode_state.logit_sum is not None
    expected = predictor.predict(frames, mode="online", task="vps", postprocess="stream").frames
    assert _same(got, expected)


def test_offline_session_decides_at_close(setup) -> None:  # type: ignore[no-untyped-def]
    predictor, frames = setup
    seen: list[tuple[str, int]] = []
    with predictor.start(mode="offline", task="vps", height=frames.shape[1], width=frames.shape[2],
                         progress=lambda stage, n: seen.append((stage, n))) as session:  # fmt: skip
        assert all(session.step(f) == [] for f in frames)
        assert isinstance(session.state.mode_state, OfflineState)
        assert session.state.mode_state.frames == len(frames) - len(session.state.pending)
        got = list(session.close())
        assert list(session.close()) == []
        with pytest.raises(RuntimeError):
            session.step(frames[0])
    assert all(isinstance(f, PanopticFrame) for f in got)
    assert _same(got, predictor.predict(frames, mode="offline", task="vps").frames)
    totals = {s: sum(n for t, n in seen if t == s) for s in ("segment", "decide", "emit")}
    assert totals == {"segment": len(frames), "decide": len(frames), "emit": len(frames)}
    assert [s for s, _ in seen].index("emit") > [s for s, _ in seen].index("decide")


def test_session_refuses_bad_frames(setup) -> None:  # type: ignore[no-untyped-def]
    predictor, frames = setup
    session = predictor.start(mode="online")
    session.step(frames[0])
    with pytest.raises(InputError, match="frame 1"):
        session.step(frames[1][:-2])
    with pytest.raises(InputError, match="uint8"):
        session.step(frames[1].astype(np.float32))
    with pytest.raises(InputError, match="streaming"):
        predictor.start(mode="offline", postprocess="stream")


class _Bar:
    """Records what a tqdm bar would draw."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def update(self, n: int) -> None:
        self.events.append(("update", n))

    def reset(self, total: int | None = None) -> None:
        self.events.append(("reset", total))

    def set_description(self, text: str) -> None:
        self.events.append(("desc", text))

    def close(self) -> None:
        self.events.append(("close", None))


def test_stage_progress_restarts_per_stage() -> None:
    bar = _Bar()
    progress = StageProgress(bar, "clip", 4)
    progress.show(("segment", "decide", "emit"))
    for stage in ("segment", "decide", "emit"):
        progress(stage, 3)
        progress(stage, 1)
    descs = [v for k, v in bar.events if k == "desc"]
    assert descs == ["clip [1/3 segment]", "clip [2/3 decide]", "clip [3/3 emit]"]
    assert sum(v for k, v in bar.events if k == "update") == 12  # type: ignore[misc]
    progress.show(("emit",))  # incremental modes: only written frames move the bar
    progress("segment", 5)
    assert progress.counts["segment"] == 9 and bar.events[-1] == ("update", 1)
