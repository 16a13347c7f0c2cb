"""The HTTP and WebSocket routes of the ComfyUI test double (state lives in comfyui_server).

Every route is served bare and under /api, as the real server does (T01). Responses are
written with TCP_NODELAY like aiohttp's, bodies of refused requests are read first so a
keep-alive connection stays in step, and failures can be injected per route.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import socket
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from comfyui_data import FIXTURES
from comfyui_ws import Closed, Connection, handshake_response

from storybuild.backends.comfyui.nodespec import MODEL_INPUTS


class Handler(BaseHTTPRequestHandler):
    """One connection to the fake server; `self.fake` is the FakeComfyUI."""

    protocol_version = "HTTP/1.1"
    server_version = "Python/3.11 aiohttp/3.14.5"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def setup(self) -> None:
        super().setup()
        # As aiohttp does: no Nagle delay between a response's headers and its body.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fake = self.server.fake
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
        if self.headers.get("Upgrade", "").lower() != "websocket" or not key or not self.fake.websocket_enabled:
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
                    connection.wants_metadata = bool((message.get("data") or {}).get("supports_preview_metadata"))
                    connection.send_text(json.dumps({"type": "feature_flags", "data": {
                        "supports_preview_metadata": True, "max_upload_size": 104857600}}))
        except (Closed, ValueError):
            pass
        finally:
            if self.fake.clients.get(client_id) is connection:
                del self.fake.clients[client_id]
