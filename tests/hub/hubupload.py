"""The upload side of the fake hub (hubtools.py): what ``HfApi.create_repo`` + ``upload_folder`` send.

Read from huggingface_hub 2.4's own code (``hf_api.py``, ``_commit_api.py``, ``lfs.py``) with
``HF_HUB_DISABLE_XET=1`` (the legacy LFS path; the Xet protocol is not simulated):

1. ``POST /api/repos/create`` ``{"name", "organization"}`` -> ``{"url"}``; 409 if it exists (then
   ``exist_ok`` is fine); on 401/403 with ``exist_ok`` the client asks ``GET /api/models/{repo}``.
2. ``POST /api/validate-yaml`` (README.md front matter) -> ``{"errors": [], "warnings": []}``.
3. ``POST /api/models/{repo}/preupload/{rev}`` ``{"files": [{path, sample, size}]}`` -> each file's
   ``uploadMode`` (``lfs`` for weights / large files, else ``regular``) and ``oid`` if present.
4. ``POST /{repo}.git/info/lfs/objects/batch`` -> per object an ``upload`` href (and ``verify``),
   none when the object is already stored; ``PUT`` the bytes there (no auth, as to S3), then
   ``POST`` verify.
5. ``POST /api/models/{repo}/commit/{rev}`` (ndjson: header, ``file`` base64, ``lfsFile`` oid) ->
   ``{"commitUrl", "commitOid"}``; committed files are then served by the download endpoints.

Authorisation: ``Authorization: Bearer <token>``; ``FakeHub.tokens`` maps a token to the namespaces it
may write. No or an unknown token -> 401; a namespace the token may not write -> 403.
"""

from __future__ import annotations

import base64
import hashlib
import json
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hubtools import FakeHub

LFS_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".pkl")
LFS_MIN_SIZE = 10 * 1024 * 1024


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body (``Content-Length`` or chunked transfer encoding)."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            size = int(handler.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                handler.rfile.readline()
                return bytes(out)
            out += handler.rfile.read(size)
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def send_json(handler: BaseHTTPRequestHandler, status: int, data: Any, error: str = "") -> None:
    body = json.dumps(data).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    if error:
        handler.send_header("X-Error-Message", error)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _refuse(handler: BaseHTTPRequestHandler, hub: FakeHub, namespace: str) -> bool:
    """Send 401/403 unless the request's token may write ``namespace``; True when refused."""
    auth = handler.headers.get("Authorization", "")
    token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
    if token not in hub.tokens:
        msg = "Invalid credentials in Authorization header" if token else "You must be authenticated"
        send_json(handler, 401, {"error": msg}, msg)
        return True
    if namespace not in hub.tokens[token]:
        msg = f"You don't have the rights to write to {namespace}"
        send_json(handler, 403, {"error": msg}, msg)
        return True
    return False


def _repo_missing(handler: BaseHTTPRequestHandler, hub: FakeHub, repo: str) -> bool:
    if repo in hub.repos():
        return False
    handler.send_response(404)
    handler.send_header("X-Error-Code", "RepoNotFound")
    handler.send_header("Content-Length", "0")
    handler.end_headers()
    return True


def serve_repo_info(handler: BaseHTTPRequestHandler, hub: FakeHub, repo: str) -> None:
    """``GET /api/models/{repo}[/revision/{rev}]`` (``HfApi.repo_info``; public repos need no token)."""
    if _repo_missing(handler, hub, repo):
        return
    siblings = [{"rfilename": p} for (r, p) in hub.files if r == repo]
    send_json(handler, 200, {"id": repo, "sha": hub.commit, "private": False, "siblings": siblings})


def serve_upload(handler: BaseHTTPRequestHandler, hub: FakeHub, parts: list[str]) -> bool:
    """Answer one upload-side request (``parts``: the URL path split on '/'); False if not one."""
    method = handler.command
    if method == "POST" and parts == ["api", "repos", "create"]:
        payload = json.loads(read_body(handler))
        namespace, name = payload.get("organization") or "", payload["name"]
        repo = f"{namespace}/{name}"
        if _refuse(handler, hub, namespace):
            return True
        if repo in hub.repos():
            send_json(handler, 409, {"error": "You already created this model repo"}, "repo exists")
            return True
        hub.created.add(repo)
        send_json(handler, 200, {"url": f"{hub.url}/{repo}", "name": repo})
        return True
    if method == "POST" and parts == ["api", "validate-yaml"]:
        read_body(handler)
        send_json(handler, 200, {"errors": [], "warnings": []})
        return True
    if method == "POST" and len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "preupload":
        payload = json.loads(read_body(handler))
        repo = f"{parts[2]}/{parts[3]}"
        if _refuse(handler, hub, parts[2]) or _repo_missing(handler, hub, repo):
            return True
        files = []
        for f in payload["files"]:
            lfs = f["path"].endswith(LFS_SUFFIXES) or int(f["size"]) >= LFS_MIN_SIZE
            have = hub.files.get((repo, f["path"]))
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": have.etag if have is not None else None})  # fmt: skip
        send_json(handler, 200, {"files": files, "commitOid": hub.commit})
        return True
    if (
        method == "POST"
        and len(parts) == 6
        and parts[1].endswith(".git")
        and parts[2:] == ["info", "lfs", "objects", "batch"]
    ):
        payload = json.loads(read_body(handler))
        if _refuse(handler, hub, parts[0]):
            return True
        objects = []
        for obj in payload["objects"]:
            entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in hub.lfs_store:
                entry["actions"] = {"upload": {"href": f"{hub.url}/_lfs/{obj['oid']}"},
                                    "verify": {"href": f"{hub.url}/_lfs_verify"}}  # fmt: skip
            objects.append(entry)
        send_json(handler, 200, {"transfer": "basic", "objects": objects})
        return True
    if method == "PUT" and len(parts) == 2 and parts[0] == "_lfs":
        data = read_body(handler)
        if hashlib.sha256(data).hexdigest() != parts[1]:
            send_json(handler, 400, {"error": "sha256 mismatch"}, "sha256 mismatch")
            return True
        hub.lfs_store[parts[1]] = data
        send_json(handler, 200, {})
        return True
    if method == "POST" and parts == ["_lfs_verify"]:
        payload = json.loads(read_body(handler))
        ok = payload["oid"] in hub.lfs_store and len(hub.lfs_store[payload["oid"]]) == payload["size"]
        send_json(handler, 200 if ok else 404, {} if ok else {"error": "object not found"})
        return True
    if method == "POST" and len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "commit":
        body = read_body(handler)
        repo = f"{parts[2]}/{parts[3]}"
        if _refuse(handler, hub, parts[2]) or _repo_missing(handler, hub, repo):
            return True
        _commit(handler, hub, repo, body)
        return True
    return False


def _commit(handler: BaseHTTPRequestHandler, hub: FakeHub, repo: str, body: bytes) -> None:
    from hubtools import HubFile

    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    added: dict[str, HubFile] = {}
    for item in lines:
        key, value = item["key"], item["value"]
        if key == "file":
            added[value["path"]] = HubFile(data=base64.b64decode(value["content"]), lfs=False)
        elif key == "lfsFile":
            if value["oid"] not in hub.lfs_store:
                send_json(
                    handler, 400, {"error": f"LFS object {value['oid']} was not uploaded"}, "missing LFS"
                )
                return
            added[value["path"]] = HubFile(data=hub.lfs_store[value["oid"]], lfs=True)
    for path, f in added.items():
        hub.files[(repo, path)] = f
    hub.commit = hashlib.sha1(body).hexdigest()
    hub.commits.append((repo, lines[0]["value"]["summary"], sorted(added)))
    send_json(handler, 200, {"commitUrl": f"{hub.url}/{repo}/commit/{hub.commit}", "commitOid": hub.commit,
                             "success": True})  # fmt: skip
