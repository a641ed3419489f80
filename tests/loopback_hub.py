"""A tiny hub on 127.0.0.1 for download tests: Hugging Face's resolve endpoint and plain files.

It answers the requests huggingface_hub's `hf_hub_download` makes (`HEAD` and
`GET /{org}/{model}/resolve/{revision}/{file}`, with the `X-Repo-Commit`,
`ETag` and `X-Error-Code` headers it reads; a `Range: bytes=N-` request, as
huggingface_hub sends to resume a download, gets the rest of the file) and
`GET /files/{name}` for `keras.utils.get_file`. Every request is logged; files
can be made to arrive truncated. `guard_loopback` makes any connection to
another address fail.
"""

import hashlib
import http.server
import os
import socket
import threading
import urllib.parse

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class LoopbackHub:
    def __init__(self):
        self.repos = {}  # "org/model" -> directory
        self.files = {}  # name -> bytes
        # File names sent with their full Content-Length but half the body, then (on a retry) refused with 503.
        self.truncate = set()
        self._truncated = set()
        self.log = []  # (method, path)
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub._answer(self, body=False)

            def do_GET(self):
                hub._answer(self, body=True)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def serve_whole(self):
        """Files made to arrive truncated arrive whole from now on."""
        self.truncate.clear()
        self._truncated.clear()

    def gets(self):
        return [path for method, path in self.log if method == "GET"]

    def _answer(self, request, body):
        path = urllib.parse.unquote(urllib.parse.urlparse(request.path).path)
        self.log.append((request.command, path))
        parts = path.strip("/").split("/")
        data, error = None, ("EntryNotFound", 404)
        if len(parts) >= 5 and parts[2] == "resolve":
            directory = self.repos.get("/".join(parts[:2]))
            if directory is None:
                error = ("RepositoryNotFound", 401)
            else:
                file = os.path.join(directory, *parts[4:])
                if os.path.isfile(file):
                    with open(file, "rb") as f:
                        data = f.read()
        elif len(parts) == 2 and parts[0] == "files":
            data = self.files.get(parts[1])
        if body and parts[-1] in self._truncated:
            data, error = None, ("", 503)
        if data is None:
            request.send_response(error[1])
            if error[0]:
                request.send_header("X-Error-Code", error[0])
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        etag, size = hashlib.sha256(data).hexdigest(), len(data)
        start = _range_start(request.headers.get("Range"), size) if body else 0
        request.send_response(206 if start else 200)
        if start:
            request.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            data = data[start:]
        request.send_header("Content-Length", str(len(data)))
        request.send_header("ETag", f'"{etag}"')
        request.send_header("X-Repo-Commit", COMMIT)
        request.end_headers()
        if body:
            truncated = parts[-1] in self.truncate
            if truncated:
                self._truncated.add(parts[-1])
            request.wfile.write(data[: len(data) // 2] if truncated else data)
            if truncated:
                request.close_connection = True


def _range_start(header, size):
    """The first byte asked for by `Range: bytes=N-` (0 for none, or one this hub does not serve)."""
    if not header or not header.startswith("bytes=") or not header.endswith("-"):
        return 0
    start = header[len("bytes="):-1]
    return int(start) if start.isdigit() and int(start) < size else 0


def guard_loopback(monkeypatch):
    """Makes every connection or name lookup for anything but 127.0.0.1 / ::1 / localhost fail at once."""
    connect, lookup = socket.socket.connect, socket.getaddrinfo

    def checked_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOOPBACK:
            raise ConnectionRefusedError(f"test guard: no connections outside loopback ({address[0]})")
        return connect(sock, address)

    def checked_lookup(host, *args, **kwargs):
        if host not in _LOOPBACK and host is not None:
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: no lookups outside loopback ({host})")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", checked_connect)
    monkeypatch.setattr(socket, "getaddrinfo", checked_lookup)


def point_huggingface_hub_at(monkeypatch, url, cache):
    """huggingface_hub downloads from `url` into `cache`, online (it read HF_ENDPOINT when imported, so both are set)."""
    from huggingface_hub import constants
    for name, value in {"HF_ENDPOINT": url, "HF_HUB_CACHE": str(cache), "HF_HUB_DISABLE_TELEMETRY": "1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TFPTM_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    # Older huggingface_hub (0.30, for one) builds download URLs from its own copy of the template, bound when
    # file_download was first imported (`from .constants import HUGGINGFACE_CO_URL_TEMPLATE`).
    from huggingface_hub import file_download

    if hasattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE"):
        monkeypatch.setattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
