"""A loopback fake of the Hugging Face Hub for the hub tests (no network); fixtures in conftest.py.

``fake_hub`` starts an ``http.server`` on 127.0.0.1 answering the requests ``huggingface_hub``
makes for a download — ``HEAD``/``GET /{repo}/resolve/{revision}/{path}`` with ``X-Repo-Commit``,
``X-Linked-Etag``, ``X-Linked-Size``, ``ETag``, ``Content-Length`` and ``Range`` support — and the
tree listing ``GET /api/models/{repo}/tree/{revision}[/{dir}]`` — and, for ``vidpan push``, the
upload side (create repo, preupload, LFS batch/upload/verify, commit; see hubupload.py).
``hub_env`` is the environment a subprocess needs to use it (``HF_ENDPOINT``, a private ``HF_HOME``).

Per-file fault modes: ``corrupt`` (the bytes do not match the advertised hash), ``short`` (fewer
bytes than the advertised size), ``cut_once`` (the first GET stops half-way and drops the
connection; later GETs answer ranges normally). Every request is logged in ``requests``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from hubupload import serve_repo_info, serve_upload

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class HubFile:
    data: bytes
    lfs: bool = True
    mode: str = ""  # "", "corrupt", "short", "cut_once"
    gets: int = 0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else hashlib.sha1(self.data).hexdigest()

    def body(self) -> bytes:
        if self.mode == "corrupt":
            return bytes(b ^ 0xFF for b in self.data[:64]) + self.data[64:]
        if self.mode == "short":
            return self.data[: len(self.data) // 2]
        return self.data


@dataclass
class FakeHub:
    url: str = ""
    commit: str = COMMIT  # what X-Repo-Commit says (change it to simulate a new hub commit)
    files: dict[tuple[str, str], HubFile] = field(default_factory=dict)  # (repo, path) -> file
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, Range)
    tokens: dict[str, set[str]] = field(default_factory=dict)  # token -> namespaces it may write
    created: set[str] = field(default_factory=set)  # repos made by create_repo
    lfs_store: dict[str, bytes] = field(default_factory=dict)  # uploaded LFS objects by sha256
    commits: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (repo, summary, paths)

    def repos(self) -> set[str]:
        return self.created | {r for r, _ in self.files}

    def add(self, repo: str, path: str, data: bytes, **kw: object) -> HubFile:
        f = HubFile(data=data, **kw)  # type: ignore[arg-type]
        self.files[(repo, path)] = f
        return f


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _not_found(self) -> None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _route(self) -> tuple[str, str, str, str] | None:
            path = unquote(urlsplit(self.path).path)
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 5 and parts[4] == "tree":
                return (
                    "tree",
                    f"{parts[2]}/{parts[3]}",
                    parts[5] if len(parts) > 5 else "main",
                    "/".join(parts[6:]),
                )
            if len(parts) >= 5 and parts[2] == "resolve":
                return "resolve", f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
            return None

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def do_POST(self) -> None:
            self._upload()

        def do_PUT(self) -> None:
            self._upload()

        def _upload(self) -> None:
            hub.requests.append((self.command, unquote(self.path), ""))
            parts = unquote(urlsplit(self.path).path).strip("/").split("/")
            if not serve_upload(self, hub, parts):
                self._not_found()

        def _serve(self, *, head: bool) -> None:
            hub.requests.append((self.command, unquote(self.path), self.headers.get("Range", "")))
            parts = unquote(urlsplit(self.path).path).strip("/").split("/")
            if parts[:2] == ["api", "models"] and (
                len(parts) == 4 or (len(parts) > 4 and parts[4] == "revision")
            ):
                return serve_repo_info(self, hub, f"{parts[2]}/{parts[3]}")
            route = self._route()
            if route is None:
                return self._not_found()
            kind, repo, rev, rest = route
            if kind == "tree":
                listing = [
                    {
                        "type": "file",
                        "path": p,
                        "size": len(f.data),
                        "oid": hashlib.sha1(f.data).hexdigest(),
                        **(
                            {"lfs": {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}}
                            if f.lfs
                            else {}
                        ),
                    }
                    for (r, p), f in hub.files.items()
                    if r == repo and (not rest or p.startswith(rest.rstrip("/") + "/"))
                ]
                body = json.dumps(listing).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return None
            f = hub.files.get((repo, rest))
            if f is None:
                return self._not_found()
            body = f.body()
            start = 0
            rng = self.headers.get("Range", "")
            if rng.startswith("bytes=") and not head:
                start = int(rng[len("bytes=") :].split("-")[0] or 0)
            self.send_response(206 if start else 200)
            # A commit-hash revision resolves to itself, a branch to the hub's current commit.
            commit = rev if len(rev) == 40 and all(c in "0123456789abcdef" for c in rev) else hub.commit
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{f.etag}"')
            if f.lfs:
                self.send_header("X-Linked-Etag", f'"{f.etag}"')
                self.send_header("X-Linked-Size", str(len(f.data)))
            self.send_header("Accept-Ranges", "bytes")
            advertised = len(body) - start
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(advertised))
            self.end_headers()
            if head:
                return None
            f.gets += 1
            if f.mode == "cut_once" and f.gets == 1:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return None
            self.wfile.write(body[start:])
            return None

    return Handler


def run_py(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def run_vidpan(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m vidpan ARGS`` with ``env`` (empty: this process's environment + our sources)."""
    if not env:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
    return subprocess.run(
        [sys.executable, "-m", "vidpan", *args], env=env, capture_output=True, text=True, timeout=300
    )


def start_server(hub: FakeHub) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def make_env(hub: FakeHub, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE"):
        env.pop(key, None)
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        PYTHONPATH=str(REPO_ROOT / "src") + os.pathsep + env.get("PYTHONPATH", ""),
        NO_PROXY="127.0.0.1,localhost",
    )
    return env
