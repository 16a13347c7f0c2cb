"""The live preview server: the page, its JSON state, an SSE stream, and build/ media.

Routes:
    /                 the page (its first state inlined, so it draws before any request)
    /api/state        the page's data as JSON
    /events           Server-Sent Events: one `state` event per change, pings in between
    /media/<path>     files under build/, with HTTP Range (a <video> seeks with Range requests)
    /subtitles.vtt    WebVTT for the film being shown, made from its film.json

A stdlib ThreadingHTTPServer: one thread per connection, loopback by default; a preview
for one writer never needs more, and it adds no dependency.
"""

from __future__ import annotations

import ipaddress
import json
import mimetypes
import os
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from storybuild.preview import media
from storybuild.preview.livestate import LiveState
from storybuild.preview.page import render_page
from storybuild.preview.pagedata import page_data
from storybuild.projectpaths import STORE_DIR, within

# `storybuild watch --port` defaults to this too (cli/main.py repeats the number so that the CLI
# need not import this module to start; tests/test_readme.py checks that they agree).
DEFAULT_PORT = 8737
SSE_PING = 15.0  # seconds between keep-alive comments on an idle stream
SSE_MIN_INTERVAL = 0.1  # coalesce bursts of progress events into one push per interval
CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CUTS = ("film.json", "preview/film.json")  # the only files /subtitles.vtt will read
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}

mimetypes.add_type("text/vtt", ".vtt")
mimetypes.add_type("audio/wav", ".wav")
mimetypes.add_type("video/mp4", ".mp4")


class _ServerUrls:
    """URLs the live page uses: each carries a version tag so a rebuilt file reloads."""

    def __init__(self, build_dir: Path):
        self.build_dir = build_dir

    def media(self, rel: str) -> str | None:
        tag = media.stamp(self.build_dir / rel)
        return f"media/{quote(rel)}?v={tag}" if tag else None

    def subtitles(self, cut_rel: str, cut: dict, names: dict[str, str]) -> str | None:
        tag = media.stamp(self.build_dir / cut_rel)
        return f"subtitles.vtt?cut={quote(cut_rel)}&v={tag}" if tag else None


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `bytes=` range, clamped to size; None if unsatisfiable.

    Raises ValueError for a header we do not serve as a range (several ranges, other
    units): the caller answers those with the whole file, which RFC 9110 allows.
    """
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        raise ValueError(header)
    if not m.group(1):  # suffix range: the last N bytes
        length = int(m.group(2))
        if length == 0 or size == 0:
            return None
        return max(0, size - length), size - 1
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else size - 1
    if first >= size or last < first:
        return None
    return first, min(last, size - 1)


class PreviewHandler(BaseHTTPRequestHandler):
    """One request to the preview server."""

    protocol_version = "HTTP/1.1"
    server: "PreviewHTTPServer"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        return None  # the terminal belongs to the rebuild summaries

    # ------------------------------------------------------------------ dispatch

    def do_GET(self) -> None:
        self._dispatch(body=True)

    def do_HEAD(self) -> None:
        self._dispatch(body=False)

    def _dispatch(self, body: bool) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        if not self.server.host_allowed(self.headers.get("Host", "")):
            # A page elsewhere could point a name it controls at 127.0.0.1 (DNS rebinding)
            # and read the film through the victim's browser; a loopback server only
            # answers requests addressed to a loopback name.
            self._send_status(HTTPStatus.FORBIDDEN)
            return
        try:
            if path in ("/", "/index.html"):
                self._send_text(render_page(self._data(), live=True), "text/html; charset=utf-8", body)
            elif path == "/api/state":
                self._send_text(json.dumps(self._data()), "application/json", body)
            elif path == "/events":
                self._events()
            elif path.startswith("/media/"):
                self._media(path[len("/media/"):], body)
            elif path == "/subtitles.vtt":
                self._subtitles(parse_qs(url.query).get("cut", ["film.json"])[0], body)
            elif path == "/favicon.ico":
                self._send_status(HTTPStatus.NO_CONTENT)
            else:
                self._send_status(HTTPStatus.NOT_FOUND)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the browser moved on (a seek, a reload): not an error

    def _data(self) -> dict:
        return page_data(self.server.state.snapshot(), self.server.build_dir, self.server.urls)

    # ------------------------------------------------------------------ responses

    def _send_status(self, status: HTTPStatus, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if status not in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED):  # those have no body by definition
            self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_text(self, text: str, content_type: str, body: bool) -> None:
        data = text.encode("utf-8")
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _subtitles(self, cut_rel: str, body: bool) -> None:
        if cut_rel not in _CUTS:
            self._send_status(HTTPStatus.NOT_FOUND)
            return
        cut = media.load_cut(self.server.build_dir / cut_rel)
        if cut is None:
            self._send_status(HTTPStatus.NOT_FOUND)
            return
        manifest = self.server.state.snapshot().get("manifest") or {}
        names = {cid: c["name"] for cid, c in (manifest.get("characters") or {}).items()}
        self._send_text(media.webvtt(cut, names), "text/vtt; charset=utf-8", body)

    def _resolve_media(self, rel: str) -> Path | None:
        """The file build/<rel> names, or None if it is missing or would escape build/."""
        parts = rel.split("/")
        if not rel or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
            return None
        real = os.path.realpath(self.server.build_dir / rel)
        # build/ may hold links into the cache (.storybuild/cas); nothing else is served.
        if not any(within(real, root) for root in self.server.media_roots):
            return None
        return Path(real) if os.path.isfile(real) else None

    def _media(self, rel: str, body: bool) -> None:
        path = self._resolve_media(rel)
        if path is None:
            self._send_status(HTTPStatus.NOT_FOUND)
            return
        # Opened once: if a rebuild renames a new file into place mid-transfer, this
        # response still reads the old inode from start to end, never a mix of both.
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            size = st.st_size
            etag = f'"{st.st_mtime_ns:x}-{size:x}"'
            headers = {
                "Content-Type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                "Accept-Ranges": "bytes", "ETag": etag, "Cache-Control": "no-cache",
                "Last-Modified": self.date_time_string(int(st.st_mtime)),
            }
            if etag in (t.strip() for t in self.headers.get("If-None-Match", "").split(",")):
                # The page redraws its contact sheet often; unchanged thumbnails cost a 304.
                self._send_status(HTTPStatus.NOT_MODIFIED, {"ETag": etag, "Cache-Control": "no-cache"})
                return
            first, last, status = 0, size - 1, HTTPStatus.OK
            header = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if header and (if_range is None or if_range == etag):
                try:
                    chosen = parse_range(header, size)
                except ValueError:
                    chosen = (0, size - 1)
                else:
                    if chosen is None:
                        self._send_status(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                                          {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
                        return
                    status = HTTPStatus.PARTIAL_CONTENT
                    headers["Content-Range"] = f"bytes {chosen[0]}-{chosen[1]}/{size}"
                first, last = chosen
            length = max(0, last - first + 1)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if not body:
                return
            f.seek(first)
            while length > 0:
                chunk = f.read(min(CHUNK, length))
                if not chunk:
                    break  # the file shrank under us; the client sees a short body and retries
                self.wfile.write(chunk)
                length -= len(chunk)

    def _events(self) -> None:
        """Stream the page's data whenever the live state changes, until the client leaves."""
        state = self.server.state
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(b"retry: 1000\n\n")
        version = -1
        while not self.server.stopping.is_set():
            current = state.version if version == -1 else state.wait(version, SSE_PING)
            if current == version:
                self.wfile.write(b": ping\n\n")
                self.wfile.flush()
                continue
            version = current
            payload = json.dumps(self._data(), separators=(",", ":"))
            self.wfile.write(f"id: {version}\nevent: state\ndata: {payload}\n\n".encode("utf-8"))
            self.wfile.flush()
            time.sleep(SSE_MIN_INTERVAL)


class PreviewHTTPServer(ThreadingHTTPServer):
    """The HTTP server with the state and build directory its handlers read."""

    daemon_threads = True  # an open SSE stream must never keep the process alive
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], build_dir: Path, state: LiveState):
        self.build_dir = Path(build_dir).resolve()
        self.state = state
        self.urls = _ServerUrls(self.build_dir)
        self.media_roots = (str(self.build_dir), str((self.build_dir.parent / STORE_DIR).resolve()))
        self.stopping = threading.Event()
        self.loopback = address[0] in LOOPBACK_NAMES or _is_loopback_address(str(address[0]))
        super().__init__(address, PreviewHandler)

    def host_allowed(self, host: str) -> bool:
        """Whether a request's Host header may be answered (any, unless bound to loopback).

        Bound to loopback, only a loopback name or address, and this server's port, are
        answered: `127.0.0.1.evil.example` is a name its owner can point anywhere (DNS
        rebinding), so a name is never judged by how it starts.
        """
        if not self.loopback:
            return True  # the user chose to serve the network with --host
        try:
            parts = urlsplit(f"//{host}")
            name, port = parts.hostname or "", parts.port
        except ValueError:  # a port that is not a number
            return False
        if port is not None and port != self.server_address[1]:
            return False
        return name in LOOPBACK_NAMES or _is_loopback_address(name)


def _is_loopback_address(text: str) -> bool:
    """Whether `text` is an IP address on the loopback network (127.0.0.0/8, ::1), not a name."""
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


class PreviewServer:
    """The preview server running on a background thread."""

    def __init__(self, build_dir: Path, state: LiveState, host: str = "127.0.0.1", port: int = DEFAULT_PORT):
        self.httpd = PreviewHTTPServer((host, port), build_dir, state)
        # A short poll interval: stopping the server (Ctrl-C, tests) should not lag.
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="preview-server", daemon=True)

    @property
    def url(self) -> str:
        """The address a browser opens (the bound port, when 0 asked for any free one)."""
        host, port = self.httpd.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"

    def start(self) -> "PreviewServer":
        """Start serving on the background thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; open event streams end at their next wake-up."""
        self.httpd.stopping.set()
        self.httpd.state.poke()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
