"""A local Hugging Face Hub endpoint for tests: the real ``huggingface_hub`` client talks to it via ``HF_ENDPOINT``.

It implements the handful of Hub routes that ``create_repo``, ``upload_folder`` (regular, inline uploads only: no
LFS, no Xet), ``create_tag`` / ``delete_tag``, ``list_repo_refs``, ``model_info`` / ``repo_info``,
``list_repo_tree``, ``hf_hub_download`` and ``snapshot_download`` call, with the Hub's semantics:

- every commit gets a new 40-hex sha and a full file listing (files are versioned per commit);
- branches and tags are names pointing at commits; commits go to branches only;
- files are identified by their git blob sha1 (the ``ETag`` / tree ``oid`` the Hub reports for regular files);
- an unknown repo answers 404 with ``X-Error-Code: RepoNotFound``, an unknown revision 404 with
  ``RevisionNotFound``, a missing file 404 with ``EntryNotFound`` (so the client raises its own exception types);
- writes need a token the server knows (``Authorization: Bearer …``); private repos need one to be read.

Bounded on purpose: it binds 127.0.0.1 on an ephemeral port, refuses non-loopback peers, caps request bodies and
the number of requests, counts every request (``requests``), records routes it does not implement
(``unhandled``, which a test should find empty), and closes its open connections when stopped.

State (repos, commits, refs) lives in a JSON file per repo and blobs under ``root``; a new server on the same folder
serves the same repos.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

TEST_TOKEN = "hf_local_test_token"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
MAX_BODY = 64 * 1024 * 1024


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob: what the Hub reports as a regular file's ``oid`` and ``ETag``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class Repo:
    """One model repository: commits (sha → parent, files, message, date), branches and tags."""

    def __init__(self, path: Path, data: dict):
        self.path, self.data = path, data

    @property
    def commits(self) -> dict:
        return self.data["commits"]

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)

    def resolve(self, revision: str) -> str:
        """Branch, tag or full commit sha → commit sha; anything else is a RevisionNotFound."""
        if revision in self.data["branches"]:
            return self.data["branches"][revision]
        if revision in self.data["tags"]:
            return self.data["tags"][revision]
        if revision in self.commits:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


class HubState:
    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._counter = 0

    def _repo_file(self, repo_id: str) -> Path:
        owner, name = repo_id.split("/")
        return self.root / "repos" / owner / f"{name}.json"

    def get(self, repo_id: str) -> Repo | None:
        path = self._repo_file(repo_id)
        if not path.is_file():
            return None
        return Repo(path, json.loads(path.read_text()))

    def put_blob(self, data: bytes) -> str:
        sha = git_blob_sha1(data)
        path = self.root / "blobs" / sha
        if not path.exists():
            path.write_bytes(data)
        return sha

    def blob(self, sha: str) -> bytes:
        return (self.root / "blobs" / sha).read_bytes()

    def new_commit(self, repo: Repo, parent: str | None, files: dict, message: str) -> str:
        self._counter += 1
        seed = json.dumps([repo.path.name, parent, sorted(files.items()), message, time.time_ns(), self._counter])
        sha = hashlib.sha1(seed.encode()).hexdigest()
        repo.commits[sha] = {"parent": parent, "files": files, "message": message,
                             "date": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")}
        return sha

    def create(self, repo_id: str, private: bool) -> Repo:
        path = self._repo_file(repo_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        repo = Repo(path, {"id": repo_id, "private": private, "commits": {}, "branches": {}, "tags": {},
                           "created": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")})
        # As on the Hub, a new repo starts with one commit holding a .gitattributes file.
        gitattributes = self.put_blob(b"*.onnx filter=lfs diff=lfs merge=lfs -text\n")
        repo.data["branches"]["main"] = self.new_commit(repo, None, {".gitattributes": gitattributes},
                                                        "initial commit")
        repo.save()
        return repo


def front_matter(text: str) -> dict | None:
    """The YAML metadata block at the top of a model card, or None when there is none."""
    m = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if m is None:
        return None
    data = yaml.safe_load(m.group(1))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("the metadata block must be a YAML mapping")
    return data


def check_metadata(data: dict) -> list[str]:
    """A few of the checks the Hub runs on model card metadata (``/api/validate-yaml``)."""
    errors = []
    for key in ("tags", "datasets", "metrics"):
        if key in data and not (isinstance(data[key], list) and all(isinstance(v, str) for v in data[key])):
            errors.append(f'"{key}" must be a list of strings')
    if "pipeline_tag" in data and not isinstance(data["pipeline_tag"], str):
        errors.append('"pipeline_tag" must be a string')
    index = data.get("model-index")
    if index is not None:
        if not isinstance(index, list) or not index:
            errors.append('"model-index" must be a non-empty list')
        else:
            for entry in index:
                if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                    errors.append('"model-index[].name" is required')
                    continue
                for result in entry.get("results") or []:
                    task, ds, metrics = result.get("task") or {}, result.get("dataset") or {}, result.get("metrics")
                    if not isinstance(task.get("type"), str):
                        errors.append('"model-index[].results[].task.type" is required')
                    if not (isinstance(ds.get("type"), str) and isinstance(ds.get("name"), str)):
                        errors.append('"model-index[].results[].dataset" needs "type" and "name"')
                    if not isinstance(metrics, list) or not all(
                            isinstance(m, dict) and isinstance(m.get("type"), str) and "value" in m for m in metrics):
                        errors.append('"model-index[].results[].metrics" must be a list of {type, value}')
    return errors


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"
    timeout = 30  # idle keep-alive connections are closed after this

    server: "_Server"

    def log_message(self, format, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        with self.server.hub.conn_lock:
            self.server.hub.connections.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.server.hub.conn_lock:
                self.server.hub.connections.discard(self.connection)

    # -- plumbing ---------------------------------------------------------------------------------------------------

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PUT(self):
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        hub = self.server.hub
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        with hub.conn_lock:
            hub.requests.append((method, split.path))
            n = len(hub.requests)
        self._body_cache = None
        try:
            if self.client_address[0] not in ("127.0.0.1", "::1"):
                raise HubError(403, "loopback only")
            if n > hub.max_requests:
                raise HubError(403, f"request limit of this test server reached ({hub.max_requests})")
            # Segments are unquoted one by one: a revision such as "refs%2Fpr%2F1" stays one segment.
            segments = [unquote(s) for s in split.path.split("/")[1:]]
            self._route(method, segments)
        except HubError as e:
            headers = dict(e.headers)
            if e.code:
                headers["X-Error-Code"] = e.code
            headers["X-Error-Message"] = e.message
            self._json({"error": e.message}, status=e.status, headers=headers, method=method)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _body(self) -> bytes:
        if self._body_cache is None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                raise HubError(413, f"request body over {MAX_BODY} bytes")
            self._body_cache = self.rfile.read(length) if length else b""
        return self._body_cache

    def _json_body(self) -> dict:
        try:
            return json.loads(self._body() or b"{}")
        except json.JSONDecodeError:
            raise HubError(400, "the request body is not JSON") from None

    def _send(self, status: int, body: bytes, headers: dict, method: str, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def _json(self, data, status: int = 200, headers: dict | None = None, method: str = "GET") -> None:
        self._send(status, json.dumps(data).encode(), headers or {}, method, "application/json; charset=utf-8")

    # -- auth -------------------------------------------------------------------------------------------------------

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        if not auth:
            return None
        if not auth.startswith("Bearer ") or auth[7:] not in self.server.hub.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return auth[7:]

    def _need_write(self) -> None:
        if self._token() is None:
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo(self, repo_id: str) -> Repo:
        self._check_repo_id(repo_id)
        repo = self.server.hub.state.get(repo_id)
        token = self._token()
        if repo is None or (repo.data["private"] and token is None):
            raise HubError(404 if repo is None else 401, "Repository not found", "RepoNotFound")
        return repo

    @staticmethod
    def _check_repo_id(repo_id: str) -> None:
        parts = repo_id.split("/")
        if len(parts) != 2 or not all(_NAME.match(p) for p in parts) or "--" in repo_id or ".." in repo_id:
            raise HubError(400, f"Invalid repo id: {repo_id!r}")

    # -- routes -----------------------------------------------------------------------------------------------------

    def _route(self, method: str, s: list[str]) -> None:
        hub = self.server.hub
        with hub.state.lock:
            if s[:1] == ["api"]:
                if method == "POST" and s[1:] == ["repos", "create"]:
                    return self._create_repo()
                if method == "POST" and s[1:] == ["validate-yaml"]:
                    return self._validate_yaml()
                if len(s) >= 4 and s[1] == "models":
                    repo_id, rest = f"{s[2]}/{s[3]}", s[4:]
                    if method == "GET" and rest == []:
                        return self._model_info(repo_id, None)
                    if method == "GET" and len(rest) == 2 and rest[0] == "revision":
                        return self._model_info(repo_id, rest[1])
                    if method == "GET" and rest == ["refs"]:
                        return self._refs(repo_id)
                    if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                        return self._tree(repo_id, rest[1], "/".join(rest[2:]))
                    if method == "POST" and len(rest) == 2 and rest[0] == "preupload":
                        return self._preupload(repo_id, rest[1])
                    if method == "POST" and len(rest) == 2 and rest[0] == "commit":
                        return self._commit(repo_id, rest[1])
                    if method == "POST" and len(rest) == 2 and rest[0] == "tag":
                        return self._create_tag(repo_id, rest[1])
                    if method == "DELETE" and len(rest) == 2 and rest[0] == "tag":
                        return self._delete_tag(repo_id, rest[1])
            elif method in ("GET", "HEAD") and len(s) >= 5 and s[2] == "resolve":
                return self._resolve(method, f"{s[0]}/{s[1]}", s[3], "/".join(s[4:]))
            hub.unhandled.append((method, self.path))
            raise HubError(404, f"this test Hub does not implement {method} {urlsplit(self.path).path}")

    def _url(self, repo_id: str) -> str:
        return f"{self.server.hub.endpoint}/{repo_id}"

    def _create_repo(self) -> None:
        self._need_write()
        body = self._json_body()
        if body.get("type", "model") != "model":
            raise HubError(400, "this test Hub only holds model repos")
        name, org = body.get("name"), body.get("organization")
        repo_id = f"{org}/{name}" if org else f"user/{name}"
        self._check_repo_id(repo_id)
        state = self.server.hub.state
        if state.get(repo_id) is not None:
            # The Hub answers 409 with the repo's url in the body; `create_repo(exist_ok=True)` reads it.
            message = "You already created this model repo"
            return self._json({"error": message, "url": self._url(repo_id)}, status=409,
                              headers={"X-Error-Message": message})
        private = body.get("visibility", "public") == "private" or bool(body.get("private"))
        state.create(repo_id, private)
        self._json({"url": self._url(repo_id), "name": repo_id, "id": repo_id})

    def _validate_yaml(self) -> None:
        body = self._json_body()
        try:
            data = front_matter(body.get("content") or "")
        except (yaml.YAMLError, ValueError) as e:
            return self._json({"errors": [{"message": f"invalid YAML metadata: {e}"}]}, status=400)
        if data is None:
            return self._json({"errors": [], "warnings": [{"message": "empty or missing yaml metadata in repo card"}]})
        errors = check_metadata(data)
        if errors:
            return self._json({"errors": [{"message": m} for m in errors]}, status=400)
        self._json({"errors": [], "warnings": []})

    def _model_info(self, repo_id: str, revision: str | None) -> None:
        repo = self._repo(repo_id)
        sha = repo.resolve(revision or "main")
        commit = repo.commits[sha]
        card = {}
        if "README.md" in commit["files"]:
            try:
                card = front_matter(self.server.hub.state.blob(commit["files"]["README.md"]).decode()) or {}
            except (yaml.YAMLError, ValueError, UnicodeDecodeError):
                card = {}
        info = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
            "author": repo_id.split("/")[0], "sha": sha, "private": repo.data["private"], "disabled": False,
            "gated": False, "downloads": 0, "likes": 0, "lastModified": commit["date"],
            "createdAt": repo.data["created"], "tags": list(card.get("tags") or []),
            "pipeline_tag": card.get("pipeline_tag"), "library_name": card.get("library_name"),
            "siblings": [{"rfilename": p} for p in sorted(commit["files"])],
        }
        if card:
            info["cardData"] = card
        self._json(info)

    def _refs(self, repo_id: str) -> None:
        repo = self._repo(repo_id)

        def refs(kind: str, prefix: str) -> list:
            return [{"name": n, "ref": f"{prefix}{n}", "targetCommit": c} for n, c in sorted(repo.data[kind].items())]

        self._json({"branches": refs("branches", "refs/heads/"), "tags": refs("tags", "refs/tags/"),
                    "converts": [], "pullRequests": []})

    def _tree(self, repo_id: str, revision: str, path: str) -> None:
        repo = self._repo(repo_id)
        sha = repo.resolve(revision)
        files = repo.commits[sha]["files"]
        recursive = (self.query.get("recursive") or ["false"])[0].lower() in ("1", "true")
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in files):
            raise HubError(404, f"{path} does not exist on {revision}", "EntryNotFound",
                           {"X-Repo-Commit": sha})
        entries, folders = [], set()
        for p, blob in sorted(files.items()):
            if not p.startswith(prefix):
                continue
            rel = p[len(prefix):]
            if not recursive and "/" in rel:
                folders.add(prefix + rel.split("/")[0])
                continue
            if recursive:
                parts = rel.split("/")[:-1]
                folders.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
            size = (self.server.hub.state.root / "blobs" / blob).stat().st_size
            entries.append({"type": "file", "oid": blob, "size": size, "path": p})
        for f in sorted(folders):
            entries.append({"type": "directory", "oid": hashlib.sha1(f"{sha}:{f}".encode()).hexdigest(), "size": 0,
                            "path": f})
        self._json(entries)

    def _preupload(self, repo_id: str, revision: str) -> None:
        self._need_write()
        repo = self._repo(repo_id)
        files = repo.commits[repo.resolve(revision)]["files"]
        body = self._json_body()
        out = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": files.get(f["path"])}
               for f in body.get("files") or []]
        self._json({"files": out, "commitOid": repo.resolve(revision)})

    def _commit(self, repo_id: str, revision: str) -> None:
        self._need_write()
        repo = self._repo(repo_id)
        if revision not in repo.data["branches"]:
            repo.resolve(revision)  # RevisionNotFound for a name that is nothing
            raise HubError(400, f"commits go to a branch; {revision!r} is not one")
        head = repo.data["branches"][revision]
        files = dict(repo.commits[head]["files"])
        header = None
        state = self.server.hub.state
        for line in self._body().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value") or {}
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, "file content must be base64")
                files[value["path"]] = state.put_blob(base64.b64decode(value["content"]))
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                for p in [p for p in files if p.startswith(prefix)]:
                    del files[p]
            elif key == "lfsFile":
                raise HubError(400, "this test Hub asked for regular uploads only (no LFS, no Xet)")
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        if header is None or not header.get("summary"):
            raise HubError(400, "the commit needs a header with a summary")
        parent = header.get("parentCommit")
        if parent and not head.startswith(parent):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        sha = state.new_commit(repo, head, files, header["summary"])
        repo.data["branches"][revision] = sha
        repo.save()
        self._json({"success": True, "commitOid": sha, "commitUrl": f"{self._url(repo_id)}/commit/{sha}",
                    "hookOutput": ""})

    def _create_tag(self, repo_id: str, revision: str) -> None:
        self._need_write()
        repo = self._repo(repo_id)
        sha = repo.resolve(revision)
        tag = self._json_body().get("tag") or ""
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$", tag) or ".." in tag or _SHA.match(tag):
            raise HubError(400, f"Invalid tag name {tag!r}")
        if tag in repo.data["tags"] or tag in repo.data["branches"]:
            raise HubError(409, f"Reference already exists: refs/tags/{tag}")
        repo.data["tags"][tag] = sha
        repo.save()
        self._json({"name": tag, "ref": f"refs/tags/{tag}", "targetCommit": sha})

    def _delete_tag(self, repo_id: str, tag: str) -> None:
        self._need_write()
        repo = self._repo(repo_id)
        if repo.data["tags"].pop(tag, None) is None:
            raise HubError(404, f"Invalid rev id: {tag}", "RevisionNotFound")
        repo.save()
        self._json({})

    def _resolve(self, method: str, repo_id: str, revision: str, path: str) -> None:
        repo = self._repo(repo_id)
        sha = repo.resolve(revision)
        blob = repo.commits[sha]["files"].get(path)
        if blob is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": sha})
        data = self.server.hub.state.blob(blob)
        headers = {"X-Repo-Commit": sha, "ETag": f'"{blob}"', "Accept-Ranges": "bytes",
                   "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}"'}
        status = 200
        rng = self.headers.get("Range")
        if method == "GET" and rng:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if not m or int(m.group(1)) >= len(data):
                raise HubError(416, "Requested range not satisfiable",
                               headers={"Content-Range": f"bytes */{len(data)}"})
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start: end + 1], 206
        self._send(status, data, headers, method, "application/octet-stream")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    hub: "LocalHub"


class LocalHub:
    """A running local Hub. ``endpoint`` is what ``HF_ENDPOINT`` should be set to.

    Use as a context manager (or ``start()`` / ``stop()``); ``requests`` lists ``(method, path)`` of every request,
    ``unhandled`` the ones this server does not implement.
    """

    def __init__(self, root: Path, tokens: tuple[str, ...] = (TEST_TOKEN,), max_requests: int = 5000):
        self.state = HubState(root)
        self.tokens = set(tokens)
        self.max_requests = max_requests
        self.requests: list[tuple[str, str]] = []
        self.unhandled: list[tuple[str, str]] = []
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.endpoint = ""

    def start(self) -> "LocalHub":
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        host, port = self._server.server_address[:2]
        self.endpoint = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self.conn_lock:
            for conn in list(self.connections):  # kept-alive client connections: end them too
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join(timeout=5)
        self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> "LocalHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers for tests ------------------------------------------------------------------------------------------

    def refs(self, repo_id: str) -> dict:
        repo = self.state.get(repo_id)
        return {"branches": dict(repo.data["branches"]), "tags": dict(repo.data["tags"])}

    def files_at(self, repo_id: str, revision: str) -> dict[str, bytes]:
        repo = self.state.get(repo_id)
        files = repo.commits[repo.resolve(revision)]["files"]
        return {p: self.state.blob(b) for p, b in files.items()}


def point_client_at(mp, endpoint: str, home: Path) -> None:
    """Point the real huggingface_hub client (environment and import-time constants) at a local Hub, telemetry off."""
    from huggingface_hub import constants

    env = {"HF_ENDPOINT": endpoint, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
           "HF_TOKEN": TEST_TOKEN, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    for k, v in env.items():
        mp.setenv(k, v)
    mp.delenv("HF_HUB_OFFLINE", raising=False)
    mp.delenv("TRANSFORMERS_OFFLINE", raising=False)
    # The client reads these at import time; another test module may have imported it already.
    for name, value in {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"), "HF_XET_CACHE": str(home / "xet"),
        "AGENT_HARNESSES_PATH": str(home / "agent_harnesses.json"),
        "HF_HUB_DISABLE_TELEMETRY": True, "HF_HUB_DISABLE_UPDATE_CHECK": True, "HF_HUB_OFFLINE": False,
    }.items():
        mp.setattr(constants, name, value)
