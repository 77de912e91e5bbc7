"""A Git server on loopback: `git http-backend` behind a small WSGI server, serving bare repositories.

Flux's GitRepository accepts only http(s) and ssh URLs, so the GitOps test needs a real smart-HTTP
server; `git http-backend` (part of git) is one, and wsgiref runs it as CGI without another
dependency. It serves both `git push` from the test and Flux's Go git client.

Rules:
- Listens on 127.0.0.1 only, on a port chosen free at start; repositories live in a temp directory
  removed on `stop()`.
- Pushing is allowed (`http.receivepack`); there is no authentication, so it is for local use only.
- Each request runs one `git http-backend` process; request and response bodies are small here, so
  they are passed whole rather than streamed.
"""

from __future__ import annotations

import os
import shutil
import socketserver
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

# CGI variables `git http-backend` reads, copied from the WSGI environ when present.
CGI_VARIABLES = (
    "REQUEST_METHOD",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "PATH_INFO",
    "REMOTE_ADDR",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "HTTP_CONTENT_ENCODING",
    "HTTP_GIT_PROTOCOL",
    "HTTP_ACCEPT",
)
COMMITTER = {
    "GIT_AUTHOR_NAME": "modelrollout test",
    "GIT_AUTHOR_EMAIL": "test@modelrollout.invalid",
    "GIT_COMMITTER_NAME": "modelrollout test",
    "GIT_COMMITTER_EMAIL": "test@modelrollout.invalid",
}


def _git(*args: str, cwd: Path | None = None) -> str:
    """Run git without the user's or system's configuration; the error names the command and its output."""
    env = {
        **os.environ,
        **COMMITTER,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed (exit {result.returncode}):\n{result.stderr}{result.stdout}")
    return result.stdout


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, whether sent with Content-Length or chunked (git sends big pushes chunked)."""
    stream = environ["wsgi.input"]
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int(stream.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while stream.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(body)
            body += stream.read(size)
            stream.readline()  # the CRLF after each chunk
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return stream.read(length) if length else b""


def _split_cgi_output(output: bytes) -> tuple[bytes, bytes]:
    """CGI output is headers, an empty line (CRLF or LF), then the body."""
    ends = [(output.find(mark), mark) for mark in (b"\r\n\r\n", b"\n\n") if mark in output]
    if not ends:
        return output, b""
    index, mark = min(ends)
    return output[:index], output[index + len(mark) :]


def http_backend_app(root: Path):
    """A WSGI application running `git http-backend` for repositories under `root`."""

    def application(environ: dict[str, Any], start_response) -> Iterable[bytes]:
        body = _read_body(environ)
        env = {key: str(environ[key]) for key in CGI_VARIABLES if environ.get(key)}
        env.update(
            {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GATEWAY_INTERFACE": "CGI/1.1",
                "CONTENT_LENGTH": str(len(body)),
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_CONFIG_NOSYSTEM": "1",
            }
        )
        if "HTTP_GIT_PROTOCOL" in env:
            env["GIT_PROTOCOL"] = env["HTTP_GIT_PROTOCOL"]  # protocol v2, as a web server's CGI would pass it
        result = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60)
        if result.returncode != 0 and not result.stdout:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [result.stderr or b"git http-backend failed\n"]
        head, payload = _split_cgi_output(result.stdout)
        status = "200 OK"
        headers = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = value.strip()
            elif name:
                headers.append((name.strip(), value.strip()))
        headers.append(("Content-Length", str(len(payload))))
        start_response(status, headers)
        return [payload]

    return application


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: Flux polls often and the test output should stay readable."""


@dataclass
class GitServer:
    """A running Git server. `url(name)` is what `git clone` and a Flux GitRepository use."""

    root: Path
    port: int
    _server: WSGIServer
    _thread: threading.Thread
    _stopped: bool = field(default=False)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def create_repository(self, name: str, branch: str = "main") -> str:
        """An empty bare repository that accepts pushes; returns its URL."""
        path = self.root / f"{name}.git"
        _git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(path))
        _git("config", "http.receivepack", "true", cwd=path)
        return self.url(name)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> GitServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start(root: Path | None = None) -> GitServer:
    """Serve the bare repositories under `root` (a new temp directory by default) on 127.0.0.1."""
    root = root or Path(tempfile.mkdtemp(prefix="modelrollout-git-"))
    root.mkdir(parents=True, exist_ok=True)
    server = make_server(
        "127.0.0.1", 0, http_backend_app(root), server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="git-http-backend", daemon=True)
    thread.start()
    return GitServer(root, server.server_address[1], server, thread)


@dataclass
class WorkingCopy:
    """A clone of one repository on the server, for committing and pushing files as a person would."""

    path: Path
    branch: str = "main"

    @classmethod
    def clone(cls, url: str, path: Path, branch: str = "main") -> WorkingCopy:
        _git("clone", "--quiet", url, str(path))
        _git("checkout", "--quiet", "-B", branch, cwd=path)
        return cls(path, branch)

    def commit(self, files: dict[str, str], message: str) -> str:
        """Write `files` (relative path -> text), commit and push them; returns the new commit's SHA."""
        for relative, text in files.items():
            target = self.path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        _git("add", "--all", cwd=self.path)
        _git("commit", "--quiet", "-m", message, cwd=self.path)
        _git("push", "--quiet", "origin", f"HEAD:refs/heads/{self.branch}", cwd=self.path)
        return _git("rev-parse", "HEAD", cwd=self.path).strip()
