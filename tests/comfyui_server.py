"""A faithful test double of a ComfyUI v0.33 server, built from the recorded transcripts.

HTTP and WebSocket on 127.0.0.1 with an ephemeral port, in threads. It serves the recorded
object_info (plus the custom nodes the templates use, when asked, and the models it is
given in the loaders' lists), answers POST /prompt with ComfyUI's own error bodies (the
validation is checked against transcript 19 in test_comfyui_validate), runs prompts with
real pixels (comfyui_nodes), caches like the real executor (comfyui_executor), and can be
told to be slow or fast, to fail with 500s, or to die in the middle of a job.

    server = FakeComfyUI(tmp_path, speed=4.0, models={"checkpoints": ["sd_xl_base_1.0.safetensors"]})
    server.start(); ... server.url ...; server.stop()
"""

from __future__ import annotations

import copy
import email.parser
import email.policy
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import comfyui_media_nodes  # noqa: F401  (registers the video, audio and custom nodes)
from comfyui_data import FIXTURES, object_info as recorded_object_info
from comfyui_executor import Executor
from comfyui_ws import Closed, Connection, handshake_response

from storybuild.backends.comfyui.nodespec import MODEL_INPUTS
from storybuild.backends.comfyui.validate import check_prompt

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FILE_COMBOS = {("LoadImage", "image"), ("LoadImageMask", "image"), ("LoadAudio", "audio"), ("LoadVideo", "file")}
_BASE_INFO: dict[str, Any] = {}


def _error_body(kind: str, message: str, details: str = "") -> dict:
    return {"error": {"type": kind, "message": message, "details": details, "extra_info": {}}, "node_errors": {}}


class FakeComfyUI:
    """One simulated ComfyUI server; `speed` divides every simulated duration."""

    def __init__(self, root: str | Path, *, speed: float = 1.0, step_seconds: float = 0.002,
                 node_seconds: float = 0.0005, models: dict[str, list[str]] | None = None,
                 custom_nodes: bool = False):
        self.root = Path(root)
        for folder in ("input", "output", "temp"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self.speed = speed
        self.step_seconds = step_seconds
        self.node_seconds = node_seconds
        self.models = {k: list(v) for k, v in (models or {}).items()}
        self.custom_nodes = custom_nodes
        self.http_failures: dict[str, int] = {}  # "POST /prompt" → how many 500s to answer
        self.die_after_steps: int | None = None
        self.dead = False
        self.number = 0
        self.clients: dict[str, Connection] = {}
        self.connections: set[socket.socket] = set()
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for assertions
        self.lock = threading.RLock()
        self._info_cache: tuple[tuple, dict[str, Any]] | None = None
        self.executor = Executor(self)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self
        self._serve = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> "FakeComfyUI":
        self._serve.start()
        self.executor.thread.start()
        return self

    def stop(self) -> None:
        """A clean shutdown (end of a test)."""
        if self.dead:
            return
        self.dead = True
        self.executor.stop()
        self.httpd.shutdown()
        self._close_everything()

    def kill(self) -> None:
        """Die abruptly: the port closes, sockets drop without goodbyes, the job is lost."""
        with self.lock:
            if self.dead:
                return
            self.dead = True
        self.executor.stop()
        threading.Thread(target=self.httpd.shutdown, daemon=True).start()
        self._close_everything()

    def _close_everything(self) -> None:
        try:
            self.httpd.socket.close()
        except OSError:
            pass
        for connection in list(self.clients.values()):
            connection.close(abrupt=True)
        for sock in list(self.connections):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # ------------------------------------------------------------------ state the nodes use

    def folder(self, kind: str) -> str:
        return str(self.root / kind)

    def input_path(self, name: str) -> str:
        name = name.split(" [")[0]
        path = os.path.realpath(self.root / "input" / name)
        if not path.startswith(os.path.realpath(self.root / "input") + os.sep):
            raise ValueError(f"Invalid input file: {name}")
        return path

    def input_files(self) -> list[str]:
        base = self.root / "input"
        return sorted(str(p.relative_to(base)).replace(os.sep, "/") for p in base.rglob("*") if p.is_file())

    def object_info(self) -> dict[str, Any]:
        """What GET /object_info answers now: loader lists show this server's models and inputs."""
        files = self.input_files()
        state = (tuple(files), json.dumps(self.models, sort_keys=True), self.custom_nodes)
        if self._info_cache is not None and self._info_cache[0] == state:
            return self._info_cache[1]
        if not _BASE_INFO:
            _BASE_INFO.update(recorded_object_info())
            _BASE_INFO["__custom__"] = json.loads((FIXTURES / "custom_nodes.json").read_text())
        info = {k: v for k, v in _BASE_INFO.items() if k != "__custom__"}
        if self.custom_nodes:
            info.update(_BASE_INFO["__custom__"])
        lists = {key: self.models.get(folder, []) for key, folder in MODEL_INPUTS.items()}
        lists.update({key: files for key in FILE_COMBOS})
        for (class_type, name), values in lists.items():
            if class_type not in info:
                continue
            entry = copy.deepcopy(info[class_type])
            for section in ("required", "optional"):
                spec = entry["input"].get(section, {}).get(name)
                if spec is None:
                    continue
                if isinstance(spec[0], list):
                    spec[0] = sorted(set(spec[0]) | set(values)) if class_type == "VAELoader" else list(values)
                else:
                    spec[1]["options"] = list(values)
            info[class_type] = entry
        self._info_cache = (state, info)
        return info

    def simulate_node(self, ctx) -> None:
        time.sleep(self.node_seconds / self.speed)

    def simulate_step(self, ctx, value: int, total: int) -> None:
        time.sleep(self.step_seconds / self.speed)
        self.executor.step_tick(ctx, value, total)

    # ------------------------------------------------------------------ WebSocket fan-out

    def send(self, client_id: str, message: dict) -> None:
        connection = self.clients.get(client_id)
        if connection is not None:
            try:
                connection.send_text(json.dumps(message))
            except Closed:
                self.clients.pop(client_id, None)

    def broadcast(self, message: dict) -> None:
        for client_id in list(self.clients):
            self.send(client_id, message)

    def broadcast_status(self) -> None:
        self.broadcast({"type": "status", "data": {"status": {"exec_info": {
            "queue_remaining": self.executor.queue_remaining()}}}})

    def preview(self, ctx, png: bytes) -> None:
        """A binary PREVIEW_IMAGE frame (type 1, format 2 = PNG), as SaveImageWebsocket sends."""
        item = self.executor.running
        client = item[3].get("client_id") if item else None
        frame = (1).to_bytes(4, "big") + (2).to_bytes(4, "big") + png
        targets = [client] if client else list(self.clients)
        for client_id in targets:
            connection = self.clients.get(client_id)
            if connection is not None:
                try:
                    connection.send_binary(frame)
                except Closed:
                    self.clients.pop(client_id, None)

    # ------------------------------------------------------------------ POST /prompt

    def submit(self, body: Any) -> tuple[int, dict]:
        with self.lock:
            number = self.number
            self.number += 1  # every POST counts, rejected ones too (API_NOTES §2)
        if not isinstance(body, dict) or "prompt" not in body:
            return 400, _error_body("no_prompt", "No prompt provided", "No prompt provided")
        prompt_id = body.get("prompt_id") or str(uuid.uuid4())
        if not isinstance(prompt_id, str) or not UUID_RE.match(prompt_id):
            return 400, _error_body("invalid_prompt_id", "prompt_id must be a valid UUID",
                                    "prompt_id must be a UUID string in canonical lowercase hyphenated form; "
                                    "omit it to let the server generate one")
        if "number" in body:
            number = int(body["number"])
        if body.get("front"):
            number = -number
        check = check_prompt(body["prompt"], self.object_info(), input_files=self.input_files(),
                             targets=body.get("partial_execution_targets"))
        if not check.accepted:
            return 400, check.body()
        extra = dict(body.get("extra_data") or {})
        if body.get("client_id"):
            extra["client_id"] = body["client_id"]
        extra["create_time"] = int(time.time() * 1000)
        self.executor.enqueue([number, prompt_id, check.prompt, extra, check.good_outputs])
        return 200, {"prompt_id": prompt_id, "number": number, "node_errors": check.node_errors}

    def upload(self, fields: dict[str, Any]) -> tuple[int, Any]:
        image = fields.get("image")
        if not isinstance(image, tuple):
            return 400, None
        filename, data = image
        kind = fields.get("type") or "input"
        if kind not in ("input", "temp", "output"):
            return 400, None
        subfolder = fields.get("subfolder") or ""
        base = os.path.realpath(self.root / kind)
        folder = os.path.realpath(os.path.join(base, subfolder))
        if os.path.commonpath([folder, base]) != base:
            return 400, None
        os.makedirs(folder, exist_ok=True)
        name = os.path.basename(filename)
        overwrite = str(fields.get("overwrite", "")).lower() in ("true", "1")
        stem, ext = os.path.splitext(name)
        counter = 1
        while os.path.exists(os.path.join(folder, name)) and not overwrite:
            with open(os.path.join(folder, name), "rb") as handle:
                if handle.read() == data:
                    break  # same bytes: dedupe, nothing rewritten
            name = f"{stem} ({counter}){ext}"
            counter += 1
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(data)
        return 200, {"name": name, "subfolder": subfolder, "type": kind}

    def view(self, query: dict[str, str]) -> tuple[int, bytes | None, str]:
        filename = query.get("filename", "")
        kind = query.get("type", "output")
        if filename.endswith("]") and " [" in filename:
            filename, _, annotated = filename[:-1].rpartition(" [")
            kind = annotated
        if kind not in ("output", "input", "temp"):
            return 400, None, ""
        if ".." in filename:
            return 400, None, ""
        base = os.path.realpath(self.root / kind)
        folder = os.path.realpath(os.path.join(base, query.get("subfolder", "")))
        if os.path.commonpath([folder, base]) != base:
            return 403, None, ""
        path = os.path.join(folder, filename)
        if "/" in filename or not os.path.isfile(path):
            return 404, None, ""
        with open(path, "rb") as handle:
            data = handle.read()
        types = {".png": "image/png", ".webp": "image/webp", ".webm": "video/webm", ".mp4": "video/mp4",
                 ".flac": "audio/flac", ".wav": "audio/wav", ".gif": "image/gif"}
        return 200, data, types.get(os.path.splitext(filename)[1].lower(), "application/octet-stream")

    def wipe_outputs(self) -> None:
        """Delete the output folder's files (as a server admin cleaning up would)."""
        shutil.rmtree(self.root / "output")
        (self.root / "output").mkdir()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Python/3.11 aiohttp/3.14.5"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def setup(self) -> None:
        super().setup()
        # As aiohttp does: no Nagle delay between a response's headers and its body.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fake: FakeComfyUI = self.server.fake
        self.fake.connections.add(self.connection)

    def finish(self) -> None:
        self.fake.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def _reply(self, status: int, body: Any = None, content_type: str = "application/json; charset=utf-8") -> None:
        data = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _route(self, method: str) -> tuple[str, dict[str, str]] | None:
        parts = urlsplit(self.path)
        path = parts.path[4:] if parts.path.startswith("/api/") else parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.fake.requests.append((method, path))
        origin = self.headers.get("Origin")
        if origin and urlsplit(origin).netloc != self.headers.get("Host"):
            self._reply(403)
            return None
        remaining = self.fake.http_failures.get(f"{method} {path}", 0)
        if remaining > 0:
            self.fake.http_failures[f"{method} {path}"] = remaining - 1
            self._reply(500, b"500 Internal Server Error\n\nServer got itself in trouble", "text/plain; charset=utf-8")
            return None
        return path, query

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        routed = self._route("GET")
        if routed is None:
            return
        path, query = routed
        fake = self.fake
        if path == "/ws":
            return self._websocket(query)
        if path == "/system_stats":
            return self._reply(200, json.loads((FIXTURES / "system_stats.json").read_text()))
        if path == "/object_info":
            return self._reply(200, fake.object_info())
        if path.startswith("/object_info/"):
            return self._reply(200, {k: v for k, v in fake.object_info().items() if k == path.split("/", 2)[2]})
        if path == "/models":
            return self._reply(200, sorted(set(MODEL_INPUTS.values())))
        if path.startswith("/models/"):
            folder = path.split("/", 2)[2]
            return self._reply(200, fake.models.get(folder, [])) if folder in set(MODEL_INPUTS.values()) \
                else self._reply(404)
        if path == "/prompt":
            return self._reply(200, {"exec_info": {"queue_remaining": fake.executor.queue_remaining()}})
        if path == "/queue":
            return self._reply(200, fake.executor.snapshot())
        if path == "/history":
            items = list(fake.executor.history.items())
            limit = int(query.get("max_items", len(items)) or len(items))
            return self._reply(200, dict(items[-limit:] if limit else []))
        if path.startswith("/history/"):
            prompt_id = path.split("/", 2)[2]
            entry = fake.executor.history.get(prompt_id)
            return self._reply(200, {prompt_id: entry} if entry else {})
        if path == "/view":
            status, data, content_type = fake.view(query)
            return self._reply(status, data, content_type)
        if path == "/features":
            return self._reply(200, {"supports_preview_metadata": True, "max_upload_size": 104857600})
        self._reply(404)

    def do_POST(self) -> None:
        raw = self._body()  # read first: a refused request must not leave its body on the connection
        routed = self._route("POST")
        if routed is None:
            return
        path, _ = routed
        fake = self.fake
        if path == "/upload/image":
            status, body = fake.upload(self._multipart(raw))
            return self._reply(status, body)
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return self._reply(500, b"500 Internal Server Error\n\nServer got itself in trouble",
                               "text/plain; charset=utf-8")
        if path == "/prompt":
            status, answer = fake.submit(body)
            return self._reply(status, answer)
        if path == "/interrupt":
            fake.executor.interrupt((body or {}).get("prompt_id"))
        elif path == "/queue":
            if body.get("clear"):
                fake.executor.clear()
            if body.get("delete"):
                fake.executor.delete(list(body["delete"]))
        elif path == "/free":
            if body.get("free_memory"):
                fake.executor.cache.clear()
        elif path != "/history":
            return self._reply(404)
        self._reply(200)

    def _multipart(self, raw: bytes) -> dict[str, Any]:
        header = f"Content-Type: {self.headers.get('Content-Type', '')}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + raw)
        fields: dict[str, Any] = {}
        for part in message.iter_parts() if message.is_multipart() else []:
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            fields[name] = (filename, payload) if filename is not None else payload.decode("utf-8", "replace")
        return fields

    def _websocket(self, query: dict[str, str]) -> None:
        key = self.headers.get("Sec-WebSocket-Key")
        if self.headers.get("Upgrade", "").lower() != "websocket" or not key:
            return self._reply(400)
        self.wfile.write(handshake_response(key))
        self.wfile.flush()
        self.close_connection = True
        client_id = query.get("clientId") or uuid.uuid4().hex
        connection = Connection(self.connection, self.rfile)
        self.fake.clients[client_id] = connection  # a reconnect with the same id replaces the old socket
        try:
            connection.send_text(json.dumps({"type": "status", "data": {"status": {"exec_info": {
                "queue_remaining": self.fake.executor.queue_remaining()}}, "sid": client_id}}))
            while True:
                opcode, payload = connection.receive()
                message = json.loads(payload) if opcode == 1 else {}
                if message.get("type") == "feature_flags":
                    connection.send_text(json.dumps({"type": "feature_flags", "data": {
                        "supports_preview_metadata": True, "max_upload_size": 104857600}}))
        except (Closed, ValueError):
            pass
        finally:
            if self.fake.clients.get(client_id) is connection:
                del self.fake.clients[client_id]
