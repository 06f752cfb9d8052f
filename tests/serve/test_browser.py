"""``vidpan serve`` in a real browser: the server as a subprocess on loopback, Debian's Chromium
driven by Playwright (never a downloaded browser).

Bad uploads show their message on the page; a synthetic video with its ground-truth zip gives
the overlay video (which Chromium decodes), the per-track table, the timeline, the scores and the
zip; the sample button works; the page makes no request outside 127.0.0.1. A screenshot goes to ``$VIDPAN_SCREENSHOT`` (default: the test's tmp directory).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from vidpan.serve.uploads import Sample, sample_video

CHROMIUM = Path(os.environ.get("VIDPAN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
SRC = Path(__file__).resolve().parents[2] / "src"

pytestmark = pytest.mark.browser

if not CHROMIUM.is_file():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium; .ci/run does) "
        "or set VIDPAN_CHROMIUM",
        allow_module_level=True,
    )
pytest.importorskip("gradio", reason="vidpan[serve] is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def sample(work: Path) -> Sample:
    """The page's sample, made small (6 frames) before the server starts, which then uses it."""
    return sample_video(work / "runs", frames=6, size=(64, 112))


@pytest.fixture(scope="module")
def server(work: Path, sample: Sample) -> Iterator[str]:
    """``vidpan serve`` on a free loopback port (a 1 MB upload limit, to test the message)."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidpan", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--max-upload-mb", "1", "--work-dir", str(work / "runs"), "--quiet"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"vidpan serve exited with {proc.returncode}:\n{(work / 'server.log').read_text()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vidpan serve did not answer in 60 s:\n{(work / 'server.log').read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_page_segments_an_upload_and_reports_bad_ones(server: str, sample: Sample, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(sample.video.read_bytes())
    not_a_video = tmp_path / "holiday.mp4"
    not_a_video.write_text("this is not a video\n")
    too_large = tmp_path / "large.mp4"
    too_large.write_bytes(os.urandom(int(1.5 * 2**20)))
    screenshot = Path(os.environ.get("VIDPAN_SCREENSHOT", tmp_path / "serve.png"))
    external: list[str] = []

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.on("request", lambda r: None if r.url.startswith(server) else external.append(r.url))
            page.goto(server, wait_until="networkidle")
            status = page.locator("#vidpan-status")

            def upload(path: Path, box: str = "#vidpan-video") -> None:
                clear = page.locator(f"{box} button[aria-label='Clear']")
                if clear.count():  # a file is there: the input comes back once it is cleared
                    clear.click()
                page.locator(f"{box} input[type=file]").set_input_files(str(path))
                # The file's name is on the page once the upload is done (stem and suffix apart).
                page.wait_for_function(f"document.querySelector('{box}').innerText.includes('{path.stem}')")

            for path, message in [(not_a_video, "not a video"), (too_large, "too large")]:
                upload(path)
                page.click("#vidpan-run")
                page.wait_for_selector(f"#vidpan-status :text('{message}')", timeout=30_000)
                assert "Error" in status.inner_text() and "Traceback" not in page.content()

            upload(video)
            upload(sample.ground_truth, "#vidpan-gt")
            page.click("#vidpan-run")
            page.wait_for_selector("#vidpan-status :text('Done')", timeout=60_000)
            text = status.inner_text()
            assert "6 frames" in text, text

            player = page.locator("#vidpan-overlay video")
            assert player.count() == 1 and player.get_attribute("src")
            # Chromium decodes the H.264 overlay (readyState >= HAVE_CURRENT_DATA).
            page.wait_for_function("document.querySelector('#vidpan-overlay video').readyState >= 2",
                                   timeout=20_000)  # fmt: skip
            ids = page.locator("#vidpan-tracks [role=gridcell][data-col='0']").all_inner_texts()
            assert ids, "the track table is empty"
            assert all(i.strip().isdigit() for i in ids), ids
            assert f"{len(ids)} tracks" in text, (ids, text)
            assert page.locator("#vidpan-timeline").count() == 1
            assert "vidpan_clip" in page.locator("#vidpan-zip").inner_text()
            scores = page.locator("#vidpan-scores").inner_text()
            assert "VPQ1" in scores and "STQ" in scores, scores

            page.click("#vidpan-sample")
            page.wait_for_selector("#vidpan-status :text('sample')", timeout=60_000)
            assert "Done" in status.inner_text() and "VPQ1" in page.locator("#vidpan-scores").inner_text()
            for close in page.locator(".toast-close").all():  # the warnings of the bad uploads
                close.click()
            page.wait_for_function("document.querySelectorAll('.toast-body').length == 0", timeout=5_000)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert not external, f"the page requested outside 127.0.0.1: {external[:5]}"
    assert screenshot.stat().st_size > 10_000
