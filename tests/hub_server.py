"""A minimal local stand-in for the Hugging Face Hub HTTP API, for end-to-end push/load tests without network.

It implements only what `huggingface_hub` (2.x) calls to create a model repo, commit small files, resolve a revision
and download files: repos live in memory, every file is a "regular" (non-LFS, non-xet) git file, and each commit
gets a fresh 40-hex id. Start it with `FakeHub()` (a context manager) and point `HF_ENDPOINT` at `hub.url`.

Endpoints:

* `POST /api/repos/create` (409 when the repo exists)
* `POST /api/validate-yaml`
* `POST /api/models/{ns}/{name}/preupload/{revision}` (always `uploadMode: regular`)
* `POST /api/models/{ns}/{name}/commit/{revision}` (ndjson: header, base64 `file`, `deletedFile`)
* `GET  /api/models/{ns}/{name}[/revision/{revision}]` (model info with `sha` and `siblings`)
* `GET  /api/models/{ns}/{name}/tree/{revision}[/{path}]`
* `HEAD|GET /{ns}/{name}/resolve/{revision}/{path}` with `ETag`, `X-Repo-Commit`, `Content-Length`

Every request is recorded in `hub.requests` as `(method, path)`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


DEFAULT_USER = "user"
_REPO = r"([^/]+/[^/]+)"
# (path regex, HTTP method) -> handler method; GET routes also answer HEAD.
ROUTES: dict[tuple[str, str], str] = {
    (r"/api/repos/create", "POST"): "create_repo",
    (r"/api/validate-yaml", "POST"): "validate_yaml",
    (rf"/api/models/{_REPO}/preupload/([^/]+)", "POST"): "preupload",
    (rf"/api/models/{_REPO}/commit/([^/]+)", "POST"): "commit",
    (rf"/api/models/{_REPO}", "GET"): "model_info",
    (rf"/api/models/{_REPO}/revision/([^/]+)", "GET"): "model_info",
    (rf"/api/models/{_REPO}/tree/([^/]+)(?:/(.*))?", "GET"): "tree",
    (rf"/{_REPO}/resolve/([^/]+)/(.+)", "GET"): "resolve",
}


class _Repo:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.commits: list[str] = [hashlib.sha1(b"initial commit").hexdigest()]

    @property
    def head(self) -> str:
        return self.commits[-1]


class FakeHub:
    """In-memory Hub served on `127.0.0.1:<free port>` from a background thread."""

    def __init__(self):
        self.repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def repo(self, repo_id: str, revision: str | None) -> _Repo | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return None
        if revision in (None, "main") or revision in repo.commits:
            return repo
        return None


def _make_handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output clean
            pass

        # ---------------------------------------------------------------- helpers
        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, payload=None, headers: dict | None = None, body: bytes | None = None):
            if body is None:
                body = json.dumps(payload if payload is not None else {}).encode()
                headers = {"Content-Type": "application/json", **(headers or {})}
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str):
            self._send(status, {"error": message}, headers={"X-Error-Code": code, "X-Error-Message": message})

        def _route(self):
            path = urlsplit(self.path).path
            with hub._lock:
                hub.requests.append((self.command, path))
            for (pattern, method), handler in ROUTES.items():
                if method != self.command and not (method == "GET" and self.command == "HEAD"):
                    continue
                match = re.fullmatch(pattern, path)
                if match:
                    return getattr(self, handler)(*[unquote(g or "") for g in match.groups()])
            return self._error(404, "EntryNotFound", f"No route for {self.command} {path}")

        do_GET = do_POST = do_HEAD = _route

        # ---------------------------------------------------------------- endpoints
        def create_repo(self):
            data = json.loads(self._body() or b"{}")
            repo_id = f"{data.get('organization') or DEFAULT_USER}/{data['name']}"
            url = f"{hub.url}/{repo_id}"
            with hub._lock:
                if repo_id in hub.repos:
                    return self._send(409, {"error": "You already created this model repo", "url": url})
                hub.repos[repo_id] = _Repo()
            return self._send(200, {"url": url, "name": repo_id})

        def validate_yaml(self):
            self._body()
            return self._send(200, {"errors": [], "warnings": []})

        def preupload(self, repo_id, revision):
            data = json.loads(self._body())
            if hub.repo(repo_id, revision) is None:
                return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in data["files"]]
            return self._send(200, {"files": files})

        def commit(self, repo_id, revision):
            lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
            with hub._lock:
                repo = hub.repo(repo_id, revision)
                if repo is None:
                    return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
                for item in lines:
                    key, value = item["key"], item["value"]
                    if key == "file":
                        repo.files[value["path"]] = base64.b64decode(value["content"])
                    elif key == "deletedFile":
                        repo.files.pop(value["path"], None)
                    elif key not in ("header",):
                        return self._error(400, "BadRequest", f"Unsupported commit operation {key!r}")
                digest = hashlib.sha1(repo.head.encode() + json.dumps(lines, sort_keys=True).encode()).hexdigest()
                repo.commits.append(digest)
            return self._send(
                200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{digest}", "commitOid": digest, "pullRequestUrl": None}
            )

        def model_info(self, repo_id, revision=None):
            repo = hub.repo(repo_id, revision or None)
            if repo is None:
                return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            siblings = [{"rfilename": name} for name in sorted(repo.files)]
            sha = revision if revision and revision != "main" else repo.head
            return self._send(200, {"id": repo_id, "sha": sha, "siblings": siblings, "private": False, "tags": []})

        def tree(self, repo_id, revision, folder=""):
            repo = hub.repo(repo_id, revision)
            if repo is None:
                return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            prefix = folder.strip("/") + "/" if folder.strip("/") else ""
            entries = [
                {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                for name, data in sorted(repo.files.items())
                if name.startswith(prefix)
            ]
            if prefix and not entries:
                return self._error(404, "EntryNotFound", f"{folder} does not exist on {revision}")
            return self._send(200, entries)

        def resolve(self, repo_id, revision, filename):
            repo = hub.repo(repo_id, revision)
            if repo is None:
                return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            data = repo.files.get(filename)
            if data is None:
                return self._error(404, "EntryNotFound", f"{filename} does not exist on {revision}")
            sha = revision if revision in repo.commits and revision != "main" else repo.head
            headers = {
                "Content-Type": "application/octet-stream",
                "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                "X-Repo-Commit": sha,
            }
            return self._send(200, headers=headers, body=data)

    return Handler
