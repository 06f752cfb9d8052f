"""The ``vidpan serve`` page: a Gradio Blocks UI over :mod:`vidpan.serve.pipeline`.

Upload a video (or pick the sample), choose the mode and the task, optionally upload a VIPSeg
ground-truth zip, and get: the overlay video, the per-track table, the track timeline, the scores
(with a ground truth) and a zip of every output. A bad upload gets a one-line message on the page
(the status line and a toast), never a traceback. Runs are serialised (one video at a time: the
model is on one device) and each run's files live under the work directory, of which only the
last :data:`KEEP_RUNS` runs are kept.

Nothing reaches the internet: analytics are off (``GRADIO_ANALYTICS_ENABLED=False``), there is no
share link, server-side rendering (which would start Node) is off, the theme uses system fonts
(Gradio's default theme loads Google Fonts in the browser), the run history (which offers a
Hugging Face bucket) is off, and the endpoints are private to the page (an API client could pass
file URLs for the server to fetch).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidpan.errors import InputError
from vidpan.serve.pipeline import STAGES, TABLE_HEADERS, PageResult, segment_for_page
from vidpan.serve.uploads import Limits, check_video, read_ground_truth, sample_video

if TYPE_CHECKING:
    import gradio as gr

    from vidpan.inference.predictor import VideoPredictor
    from vidpan.inference.video_io import VideoSource

MODES = ("offline", "online", "long", "minvis")
TASKS = ("vps", "vss", "vis")
KEEP_RUNS = 8
STATUS_ID = "vidpan-status"  # element ids the browser test finds
OVERLAY_ID = "vidpan-overlay"
TABLE_ID = "vidpan-tracks"


def import_gradio() -> Any:
    """Gradio, with analytics off; a missing install is an :class:`InputError`."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("GRADIO_SERVER_NAME", "127.0.0.1")
    try:
        import gradio as gr
    except ImportError:
        raise InputError("vidpan serve needs gradio: pip install vidpan[serve]") from None
    return gr


@dataclass
class Server:
    """The state the page's callbacks share: the model, the limits, the work directory."""

    predictor: VideoPredictor
    limits: Limits
    work_dir: Path
    device_lock: threading.Lock

    def new_run_dir(self) -> Path:
        runs = self.work_dir / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        old = sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for path in old[: max(0, len(old) - KEEP_RUNS + 1)]:
            shutil.rmtree(path, ignore_errors=True)
        path = runs / uuid.uuid4().hex[:12]
        path.mkdir()
        return path

    def run(
        self, video: str | None, ground_truth: str | None, mode: str, task: str, progress: Any = None
    ) -> PageResult:
        """Check the inputs, then segment (raises :class:`InputError` on bad input)."""
        if mode not in MODES:
            raise InputError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        if task not in TASKS:
            raise InputError(f"task: expected one of {', '.join(TASKS)}, got {task!r}")
        if ground_truth and task != "vps":
            raise InputError("scores against a ground truth are for the vps task (VIPSeg format)")
        source = check_video(video, self.limits)
        run_dir = self.new_run_dir()
        try:
            return self._run_in(run_dir, source, ground_truth, mode, task, progress)
        except BaseException:  # a refused upload (or a failed run) leaves no run directory behind
            shutil.rmtree(run_dir, ignore_errors=True)
            raise

    def _run_in(
        self,
        run_dir: Path,
        source: VideoSource,
        ground_truth: str | None,
        mode: str,
        task: str,
        progress: Any,
    ) -> PageResult:
        gt = None
        if ground_truth:
            gt = read_ground_truth(ground_truth, video_name=source.name, num_frames=source.num_frames,
                                   dest=run_dir / "gt", limits=self.limits)  # fmt: skip

        def report(stage: str, done: int, total: int) -> None:
            if progress is not None:
                progress(done / total, desc=f"{STAGES[stage]}: frame {done} of {total}")

        if progress is not None:  # offline / long modes emit frames only once the video is refined
            progress(0.0, desc=f"segmenting {source.name} ({source.num_frames} frames)")
        with self.device_lock:
            return segment_for_page(self.predictor, source, mode=mode, task=task, run_dir=run_dir,
                                    ground_truth=gt, progress=report, max_frames=self.limits.max_frames)  # fmt: skip

    def run_sample(self, mode: str, task: str, progress: Any = None) -> PageResult:
        """The sample video (generated on first use), scored against its ground truth for vps."""
        files = sample_video(self.work_dir)
        gt = str(files.ground_truth) if task == "vps" else None
        return self.run(str(files.video), gt, mode, task, progress=progress)


def _summary(result: PageResult) -> str:
    rate = result.num_frames / result.seconds if result.seconds else 0.0
    return (
        f"**Done:** `{result.name}`: {result.num_frames} frames {result.width}x{result.height}, "
        f"{len(result.tracks)} tracks ({result.mode}, {result.task}) in {result.seconds:.1f} s "
        f"({rate:.2f} frames/s)."
    )


def _scores_markdown(scores: dict[str, float | None] | None, has_gt: bool) -> str:
    if scores is None:
        return "" if has_gt else "_Upload a VIPSeg ground-truth zip (or use the sample) to see scores._"
    keys = (
        "VPQ",
        "VPQ_1246",
        "VPQ1",
        "VPQ2",
        "VPQ4",
        "VPQ6",
        "VPQ8",
        "VPQ_thing",
        "VPQ_stuff",
        "STQ",
        "AQ",
        "SQ",
    )
    cells = [(k, scores.get(k)) for k in keys if k in scores]
    head = "| " + " | ".join(k for k, _ in cells) + " |"
    rule = "|" + "---|" * len(cells)
    values = "| " + " | ".join("n/a" if v is None else f"{v:.2f}" if k.startswith("VPQ") else f"{v:.3f}"
                               for k, v in cells) + " |"  # fmt: skip
    return "**Scores against the ground truth** (VPQ in percent):\n\n" + "\n".join([head, rule, values])


def build_app(server: Server) -> gr.Blocks:
    """The Gradio page (not launched)."""
    gr = import_gradio()
    with gr.Blocks(
        title="vidpan: video panoptic segmentation", analytics_enabled=False, delete_cache=(600, 3600)
    ) as page:  # Gradio's copies of uploads/outputs: 1 h
        gr.Markdown(
            "# vidpan\nVideo panoptic / semantic / instance segmentation with stable track ids. "
            f"Upload a video (at most {server.limits.max_megabytes:g} MB and {server.limits.max_frames} "
            "frames) or use the sample."
        )
        with gr.Row():
            with gr.Column():
                video = gr.File(label="Video", type="filepath", elem_id="vidpan-video")
                ground_truth = gr.File(
                    label="Ground truth (optional): VIPSeg zip, panoptic_gt*.json + panomasksRGB/<video>/*.png",
                    type="filepath",
                    elem_id="vidpan-gt",
                )
                with gr.Row():
                    mode = gr.Dropdown(list(MODES), value="offline", label="Mode")
                    task = gr.Dropdown(list(TASKS), value="vps", label="Task")
                with gr.Row():
                    run = gr.Button("Segment", variant="primary", elem_id="vidpan-run")
                    sample = gr.Button("Segment the sample video", elem_id="vidpan-sample")
                status = gr.Markdown("", elem_id=STATUS_ID)
            with gr.Column():
                overlay = gr.Video(label="Overlay", elem_id=OVERLAY_ID, interactive=False)
                download = gr.File(label="All outputs (zip)", elem_id="vidpan-zip", interactive=False)
        scores = gr.Markdown("", elem_id="vidpan-scores")
        table = gr.Dataframe(headers=TABLE_HEADERS, label="Tracks", elem_id=TABLE_ID, interactive=False)
        timeline = gr.Plot(label="Track timeline", elem_id="vidpan-timeline")
        outputs = [status, overlay, table, timeline, scores, download]

        def respond(call: Any, has_gt: bool) -> tuple[Any, ...]:
            try:
                result = call()
            except InputError as exc:
                gr.Warning(str(exc))
                return (f"**Error:** {exc}", None, None, None, "", None)
            except Exception as exc:  # the page shows one line; the traceback goes to the server log
                traceback.print_exc(file=sys.stderr)
                message = f"internal error ({type(exc).__name__}): {exc}".splitlines()[0]
                gr.Warning(message)
                return (f"**Error:** {message}", None, None, None, "", None)
            return (_summary(result), str(result.overlay), result.rows, result.figure,
                    _scores_markdown(result.scores, has_gt), str(result.zip))  # fmt: skip

        def on_upload(
            video_path: str | None, gt_path: str | None, mode_value: str, task_value: str,
            progress: Any = gr.Progress(),  # noqa: B008 - Gradio's way to ask for progress
        ) -> tuple[Any, ...]:  # fmt: skip
            return respond(
                lambda: server.run(video_path, gt_path, mode_value, task_value, progress), gt_path is not None
            )

        def on_sample(mode_value: str, task_value: str, progress: Any = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
            return respond(lambda: server.run_sample(mode_value, task_value, progress), task_value == "vps")

        # Private endpoints: the page calls them, API clients cannot (they could pass file URLs
        # that the server would fetch).
        run.click(on_upload, [video, ground_truth, mode, task], outputs, concurrency_limit=1,
                  api_visibility="private")  # fmt: skip
        sample.click(on_sample, [mode, task], outputs, concurrency_limit=1, api_visibility="private")
    return page


def launch(server: Server, *, host: str = "127.0.0.1", port: int = 7860, quiet: bool = False) -> None:
    """Build the page and serve it until interrupted (no share link, nothing external)."""
    gr = import_gradio()
    page = build_app(server)
    font = ["ui-sans-serif", "system-ui", "sans-serif"]
    theme = gr.themes.Default(font=font, font_mono=["ui-monospace", "monospace"])
    page.queue(default_concurrency_limit=1)
    max_bytes = int((server.limits.max_megabytes * 2 + 1) * 2**20)  # ours gives the message first
    page.launch(server_name=host, server_port=port, share=False, inbrowser=False, quiet=quiet, ssr_mode=False,
                allowed_paths=[str(server.work_dir)], max_file_size=max(max_bytes, int(server.limits.max_gt_megabytes * 2**20)),
                theme=theme, show_error=False, footer_links=[], run_history=False)  # fmt: skip
