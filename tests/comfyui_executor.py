"""The test server's prompt queue and executor, behaving as transcripts 06–24 recorded.

One worker runs prompts in `number` order. Node results are cached by a signature of
(class, input values, upstream signatures, IS_CHANGED) — not by node id — so an identical
resubmission executes nothing, writes no file and re-sends the cached output node's
`executed` (T07); a changed save prefix re-runs only the save node (T09); a changed input
file re-runs its loader (T10). Events go to the prompt's client; progress and previews
are broadcast when a prompt has no client_id (T21).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import os
import threading
import time
from typing import Any

from comfyui_nodes import NODES, NodeFailure, RunContext, generic

from storybuild.backends.comfyui.nodespec import node_class


class Interrupted(Exception):
    """POST /interrupt reached the running prompt."""


class Dead(Exception):
    """The server was killed while this prompt ran."""


def now_ms() -> int:
    return int(time.time() * 1000)


class Executor:
    """Queue, history, cache and the worker thread of one fake server."""

    def __init__(self, server):
        self.server = server
        self.lock = threading.Condition(threading.RLock())
        self.pending: list[tuple[int, int, list]] = []
        self.sequence = itertools.count()
        self.running: list | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self.cache: dict[str, tuple[tuple, dict | None]] = {}
        self.interrupt_requested = False
        self.stopped = False
        self.steps_done = 0
        self.thread = threading.Thread(target=self._loop, name="fake-comfy-worker", daemon=True)

    # ------------------------------------------------------------------ queue API

    def enqueue(self, item: list) -> None:
        with self.lock:
            heapq.heappush(self.pending, (item[0], next(self.sequence), item))
            self.lock.notify_all()
        self.server.broadcast_status()

    def queue_remaining(self) -> int:
        with self.lock:
            return len(self.pending) + (1 if self.running else 0)

    def snapshot(self) -> dict[str, list]:
        with self.lock:
            # The raw heap order, as the real server returns it (API_NOTES §8.6).
            return {"queue_running": [self.running] if self.running else [],
                    "queue_pending": [entry[2] for entry in self.pending]}

    def delete(self, prompt_ids: list[str]) -> None:
        with self.lock:
            self.pending = [e for e in self.pending if e[2][1] not in prompt_ids]
            heapq.heapify(self.pending)

    def clear(self) -> None:
        with self.lock:
            self.pending = []

    def interrupt(self, prompt_id: str | None) -> None:
        with self.lock:
            if self.running and (prompt_id is None or self.running[1] == prompt_id):
                self.interrupt_requested = True

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            self.lock.notify_all()

    # ------------------------------------------------------------------ worker

    def _loop(self) -> None:
        while True:
            with self.lock:
                while not self.pending and not self.stopped:
                    self.lock.wait(0.2)
                if self.stopped:
                    return
                _, _, item = heapq.heappop(self.pending)
                self.running = item
                self.interrupt_requested = False
            self.server.broadcast_status()
            try:
                entry = self._execute(item)
            except Dead:
                return
            with self.lock:
                self.history[item[1]] = entry
                self.running = None
            self.server.broadcast_status()
            self._emit(item, "executing", {"node": None, "prompt_id": item[1]})

    def _emit(self, item: list, kind: str, data: dict, lifecycle: bool = True) -> None:
        client = item[3].get("client_id")
        if client:
            self.server.send(client, {"type": kind, "data": data})
        elif not lifecycle:
            self.server.broadcast({"type": kind, "data": data})

    def _signatures(self, prompt: dict[str, Any], order: list[str]) -> dict[str, str]:
        signatures: dict[str, str] = {}
        for node_id in order:
            node = prompt[node_id]
            parts = [node["class_type"], self._is_changed(node)]
            for name, value in sorted(node["inputs"].items()):
                if isinstance(value, list):
                    parts.append((name, signatures[str(value[0])], value[1]))
                else:
                    parts.append((name, json.dumps(value, sort_keys=True, default=str)))
            signatures[node_id] = hashlib.sha256(repr(parts).encode()).hexdigest()
        return signatures

    def _is_changed(self, node: dict[str, Any]) -> str:
        class_type = node["class_type"]
        if class_type == "SaveImageWebsocket":
            return str(time.monotonic_ns())  # always runs
        for key in ("image", "audio", "file"):
            if class_type.startswith("Load") and isinstance(node["inputs"].get(key), str):
                try:
                    with open(self.server.input_path(node["inputs"][key]), "rb") as handle:
                        return hashlib.sha256(handle.read()).hexdigest()
                except OSError:
                    return "missing"
        return ""

    @staticmethod
    def _order(prompt: dict[str, Any], outputs: list[str]) -> list[str]:
        order: list[str] = []
        seen: set[str] = set()

        def visit(node_id: str) -> None:
            if node_id in seen:
                return
            seen.add(node_id)
            for value in prompt[node_id]["inputs"].values():
                if isinstance(value, list):
                    visit(str(value[0]))
            order.append(node_id)

        for output in outputs:
            visit(output)
        return order

    def _execute(self, item: list) -> dict[str, Any]:
        number, prompt_id, prompt, extra, outputs_to_run = item
        messages: list[list] = []

        def lifecycle(kind: str, data: dict) -> None:
            messages.append([kind, data])
            self._emit(item, kind, data)

        lifecycle("execution_start", {"prompt_id": prompt_id, "timestamp": now_ms()})
        order = self._order(prompt, outputs_to_run)
        signatures = self._signatures(prompt, order)
        with self.lock:
            cached = [n for n in order if signatures[n] in self.cache]
        lifecycle("execution_cached", {"nodes": cached, "prompt_id": prompt_id, "timestamp": now_ms()})
        results: dict[str, tuple] = {}
        ui_outputs: dict[str, dict] = {}
        for node_id in cached:
            results[node_id], ui = self.cache[signatures[node_id]]
            if ui is not None and node_id in outputs_to_run:
                ui_outputs[node_id] = ui
                self._emit(item, "executed", {"node": node_id, "display_node": node_id, "output": ui,
                                              "prompt_id": prompt_id})
        executed: list[str] = []
        for node_id in order:
            if node_id in results:
                continue
            node = prompt[node_id]
            self._emit(item, "executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id})
            ctx = RunContext(self.server, prompt_id, node_id, node["class_type"])
            try:
                self._check_interrupt()
                inputs = {name: (results[str(v[0])][v[1]] if isinstance(v, list) else
                                 v["__value__"] if isinstance(v, dict) and "__value__" in v else v)
                          for name, v in node["inputs"].items()}
                self.server.simulate_node(ctx)
                function = NODES.get(node["class_type"])
                if function is not None:
                    values, ui = function(ctx, inputs)
                else:
                    values, ui = generic(node_class(self.server.object_info(), node["class_type"]), inputs), None
            except Interrupted:
                lifecycle("execution_interrupted", {"prompt_id": prompt_id, "node_id": node_id,
                                                    "node_type": node["class_type"], "executed": executed,
                                                    "timestamp": now_ms()})
                return self._entry(item, {}, messages, "error")
            except Dead:
                raise
            except Exception as exc:  # noqa: BLE001 - any node failure becomes an execution_error
                lifecycle("execution_error", self._error_event(prompt_id, node_id, node, executed, exc))
                return self._entry(item, {}, messages, "error")
            results[node_id] = values
            with self.lock:
                self.cache[signatures[node_id]] = (values, ui)
            if ui is not None:
                ui_outputs[node_id] = ui
                self._emit(item, "executed", {"node": node_id, "display_node": node_id, "output": ui,
                                              "prompt_id": prompt_id})
            executed.append(node_id)
        lifecycle("execution_success", {"prompt_id": prompt_id, "timestamp": now_ms()})
        return self._entry(item, ui_outputs, messages, "success")

    def _check_interrupt(self) -> None:
        if self.server.dead:
            raise Dead()
        with self.lock:
            if self.interrupt_requested:
                self.interrupt_requested = False
                raise Interrupted()

    @staticmethod
    def _error_event(prompt_id: str, node_id: str, node: dict, executed: list[str], exc: Exception) -> dict:
        root = os.path.dirname(os.path.abspath(__file__))
        return {"prompt_id": prompt_id, "node_id": node_id, "node_type": node["class_type"], "executed": executed,
                "exception_message": str(exc),
                "exception_type": "Exception" if isinstance(exc, NodeFailure) else type(exc).__name__,
                "traceback": [f'  File "{root}/execution.py", line 545, in execute\n',
                              f'  File "{root}/nodes.py", line 1694, in save_images\n'],
                "current_inputs": {name: ["tensor([[[[0., 0., 0.],\n          [0., 0., 0.]" + " ..." * 200]
                                   for name in node["inputs"]},
                "current_outputs": list(node["inputs"]), "timestamp": now_ms()}

    def _entry(self, item: list, outputs: dict, messages: list, status: str) -> dict[str, Any]:
        return {"prompt": item, "outputs": outputs,
                "status": {"status_str": status, "completed": status == "success", "messages": messages},
                "meta": {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n}
                         for n in outputs}}

    def step_tick(self, ctx: RunContext, value: int, total: int) -> None:
        """Called by nodes for each unit of work: progress, interrupts, injected death."""
        with self.lock:
            self.steps_done += 1
            die = self.server.die_after_steps is not None and self.steps_done >= self.server.die_after_steps
        if die:
            self.server.kill()
            raise Dead()
        item = self.running
        if item is not None:
            self._emit(item, "progress", {"value": value, "max": total, "prompt_id": ctx.prompt_id,
                                          "node": ctx.node_id}, lifecycle=False)
        self._check_interrupt()
