"""Following a prompt over ComfyUI's WebSocket (`/ws?clientId=…`), as transcripts 06–21 show.

The socket is opened before the prompt is posted so no event is missed, and reused for
the next prompt of the same worker. Lifecycle events are filtered by `prompt_id`:
execution_start → execution_cached → (executing → progress… → executed)… → one of
execution_success / execution_error / execution_interrupted → `executing {node: null}`.
Binary frames are previews (type 1: format + image; type 4: JSON metadata + image).

Progress goes to the callback per node and per sampler step. A stalled socket (big
binary frames can stall the server, API_NOTES §8.10) falls back to asking /history, and
where no WebSocket can be opened at all, /history is polled every `poll_interval`.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import websocket

from storybuild.backends.comfyui.client import ComfyClient
from storybuild.errors import Cancelled, TransientError

RECV_SLICE = 0.25  # seconds between cancellation/deadline checks
HISTORY_POLL = 5.0  # seconds of WebSocket silence before asking /history


@dataclass
class Outcome:
    """How a prompt ended, and what the socket said on the way."""

    status: str = "running"  # success | error | interrupted
    outputs: dict[str, Any] = field(default_factory=dict)  # node id → `executed` ui dict
    cached: list[str] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None  # the execution_error / execution_interrupted payload
    started_ms: int | None = None  # server timestamps
    finished_ms: int | None = None
    images: list[tuple[str | None, bytes]] = field(default_factory=list)  # binary previews (node, bytes)

    @property
    def server_seconds(self) -> float | None:
        if self.started_ms is None or self.finished_ms is None:
            return None
        return max(0.0, (self.finished_ms - self.started_ms) / 1000.0)


def decode_binary(data: bytes) -> tuple[int, dict[str, Any], bytes]:
    """(event type, metadata, image bytes) of a binary frame; unknown types give empty metadata."""
    if len(data) < 4:
        return -1, {}, b""
    event = struct.unpack(">I", data[:4])[0]
    if event == 1 and len(data) >= 8:
        return event, {"image_format": {1: "JPEG", 2: "PNG"}.get(struct.unpack(">I", data[4:8])[0])}, data[8:]
    if event == 4 and len(data) >= 8:
        size = struct.unpack(">I", data[4:8])[0]
        try:
            meta = json.loads(data[8:8 + size])
        except ValueError:
            meta = {}
        return event, meta, data[8 + size:]
    return event, {}, data[4:]


class EventStream:
    """The WebSocket of one worker's client."""

    def __init__(self, client: ComfyClient, *, connect_timeout: float = 10.0):
        self.client = client
        self.connect_timeout = connect_timeout
        self.ws: websocket.WebSocket | None = None

    def connect(self) -> None:
        """(Re)open the socket if needed; the server greets with a `status` message."""
        if self.ws is not None and self.ws.connected:
            return
        try:
            self.ws = websocket.create_connection(self.client.ws_url(), timeout=self.connect_timeout,
                                                  enable_multithread=True)
            # Previews then carry their prompt_id (type 4), so broadcast previews of other
            # people's prompts (sent to every socket, T21) are never taken for ours.
            self.ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        except (OSError, websocket.WebSocketException) as exc:
            self.ws = None
            raise TransientError(f"{self.client.url}: cannot open the WebSocket ({type(exc).__name__})") from exc

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close(timeout=0.5)
            except (OSError, websocket.WebSocketException):
                pass
            self.ws = None

    def follow(self, prompt_id: str, prompt: Mapping[str, Any], *, deadline: float,
               progress: Callable[[float, str], None], cancel: threading.Event,
               on_cancel: Callable[[], None]) -> Outcome:
        """Read events until the prompt ends; Cancelled (after `on_cancel`) or TransientError otherwise."""
        if self.ws is None:
            raise TransientError(f"{self.client.url}: the WebSocket is not open")
        outcome = Outcome()
        tracker = _Progress(prompt, progress)
        self.ws.settimeout(RECV_SLICE)
        silent = 0.0
        while True:
            if cancel.is_set():
                on_cancel()
                raise Cancelled(f"{self.client.url}: prompt {prompt_id} cancelled")
            if time.monotonic() > deadline:
                raise TransientError(f"{self.client.url}: prompt {prompt_id} did not finish in time")
            try:
                opcode, data = self.ws.recv_data()
            except websocket.WebSocketTimeoutException:
                silent += RECV_SLICE
                if silent >= HISTORY_POLL:
                    silent = 0.0
                    if self._finished_in_history(prompt_id, outcome):
                        return outcome
                continue
            except (OSError, websocket.WebSocketException) as exc:
                self.close()
                raise TransientError(f"{self.client.url}: lost the WebSocket while prompt {prompt_id} ran") from exc
            silent = 0.0
            if opcode == websocket.ABNF.OPCODE_BINARY:
                event, meta, image = decode_binary(data)
                if event in (1, 4) and meta.get("prompt_id", prompt_id) == prompt_id:
                    outcome.images.append((meta.get("node_id") or tracker.node, image))
                continue
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            try:
                message = json.loads(data)
            except ValueError:
                continue
            if self._handle(message, prompt_id, outcome, tracker):
                return outcome

    @staticmethod
    def _handle(message: Mapping[str, Any], prompt_id: str, outcome: Outcome, tracker: "_Progress") -> bool:
        kind = message.get("type")
        data = message.get("data") or {}
        if not isinstance(data, Mapping) or data.get("prompt_id") != prompt_id:
            return False
        if kind == "execution_start":
            outcome.started_ms = data.get("timestamp")
        elif kind == "execution_cached":
            outcome.cached = [str(n) for n in data.get("nodes", [])]
            tracker.cached(outcome.cached)
        elif kind == "executing":
            if data.get("node") is None:
                if outcome.status == "running":
                    outcome.status = "success"
                return True
            tracker.node_started(str(data["node"]))
        elif kind == "progress":
            tracker.step(str(data.get("node")), data.get("value", 0), data.get("max", 1))
        elif kind == "executed":
            outcome.outputs[str(data.get("node"))] = data.get("output") or {}
            outcome.executed.append(str(data.get("node")))
        elif kind in ("execution_success", "execution_error", "execution_interrupted"):
            outcome.status = {"execution_success": "success", "execution_error": "error",
                              "execution_interrupted": "interrupted"}[kind]
            outcome.finished_ms = data.get("timestamp")
            if kind != "execution_success":
                outcome.error = dict(data)
            return True
        return False

    def poll(self, prompt_id: str, *, deadline: float, interval: float, progress: Callable[[float, str], None],
             cancel: threading.Event, on_cancel: Callable[[], None]) -> Outcome:
        """Without a WebSocket (a proxy that refuses upgrades): ask /history until the prompt ends."""
        outcome = Outcome()
        progress(0.0, "waiting (no WebSocket: polling)")
        while True:
            if cancel.wait(max(0.05, interval)):
                on_cancel()
                raise Cancelled(f"{self.client.url}: prompt {prompt_id} cancelled")
            if time.monotonic() > deadline:
                raise TransientError(f"{self.client.url}: prompt {prompt_id} did not finish in time")
            if self._finished_in_history(prompt_id, outcome):
                return outcome

    def _finished_in_history(self, prompt_id: str, outcome: Outcome) -> bool:
        entry = self.client.history(prompt_id)
        if not entry:
            return False
        status = entry.get("status") or {}
        for name, data in status.get("messages") or []:
            if name == "execution_start":
                outcome.started_ms = data.get("timestamp")
            elif name in ("execution_success", "execution_error", "execution_interrupted"):
                outcome.finished_ms = data.get("timestamp")
                if name != "execution_success":
                    outcome.error = dict(data)
                outcome.status = {"execution_success": "success", "execution_error": "error",
                                  "execution_interrupted": "interrupted"}[name]
        outcome.outputs.update(entry.get("outputs") or {})
        return outcome.status != "running"


class _Progress:
    """Turns node and step events into a 0..1 fraction over the nodes that will run."""

    def __init__(self, prompt: Mapping[str, Any], report: Callable[[float, str], None]):
        self.prompt = prompt
        self.report = report
        self.total = max(1, len(prompt))
        self.done = 0
        self.node: str | None = None

    def cached(self, nodes: list[str]) -> None:
        self.total = max(1, len(self.prompt) - len(nodes))
        self.report(0.0, f"{len(nodes)} nodes cached" if nodes else "started")

    def node_started(self, node_id: str) -> None:
        if self.node is not None:
            self.done += 1
        self.node = node_id
        self.report(min(1.0, self.done / self.total), self._label(node_id))

    def step(self, node_id: str, value: float, maximum: float) -> None:
        within = (float(value) + 1) / float(maximum or 1)
        fraction = min(1.0, (self.done + min(1.0, within)) / self.total)
        self.report(fraction, f"{self._label(node_id)} {int(value) + 1}/{int(maximum)}")

    def _label(self, node_id: str) -> str:
        node = self.prompt.get(node_id) or {}
        meta = node.get("_meta") if isinstance(node.get("_meta"), Mapping) else {}
        return str(meta.get("title") or node.get("class_type") or node_id)
