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
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import comfyui_media_nodes  # noqa: F401  (registers the video, audio and custom nodes)
from comfyui_data import FIXTURES, object_info as recorded_object_info
from comfyui_executor import Executor
from comfyui_http import Handler
from comfyui_ws import Closed, Connection

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
        self.websocket_enabled = True  # False: refuse upgrades, as some proxies do
        self.dead = False
        self.number = 0
        self.clients: dict[str, Connection] = {}
        self.connections: set[socket.socket] = set()
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for assertions
        self.lock = threading.RLock()
        self._info_cache: tuple[tuple, dict[str, Any]] | None = None
        self.executor = Executor(self)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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
        """A binary preview as SaveImageWebsocket sends it: PREVIEW_IMAGE (type 1, format 2 = PNG),
        or PREVIEW_IMAGE_WITH_METADATA (type 4) to sockets that asked for metadata (T14, T15)."""
        item = self.executor.running
        client = item[3].get("client_id") if item else None
        legacy = (1).to_bytes(4, "big") + (2).to_bytes(4, "big") + png
        meta = json.dumps({"node_id": ctx.node_id, "prompt_id": ctx.prompt_id, "display_node_id": ctx.node_id,
                           "parent_node_id": None, "real_node_id": ctx.node_id, "image_type": "image/png"}).encode()
        with_meta = (4).to_bytes(4, "big") + len(meta).to_bytes(4, "big") + meta + png
        targets = [client] if client else list(self.clients)
        for client_id in targets:
            connection = self.clients.get(client_id)
            if connection is not None:
                try:
                    connection.send_binary(with_meta if connection.wants_metadata else legacy)
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
