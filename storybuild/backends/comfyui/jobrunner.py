"""Run one job on one server: upload, validate, queue, follow, fetch — the whole protocol.

    upload inputs (content-hash names) → bind their names → validate against this server's
    object_info → POST /prompt → follow the WebSocket → /history → GET /view each output

A job never trusts "one run = fresh files": an identical resubmission is served from
ComfyUI's cache and its outputs point at the files of the earlier run (T07). Save nodes
get a prefix derived from the job's content, so the same job finds the same files and
different jobs never share a counter. If a cached output file is gone from the server,
the job runs again with a fresh prefix, which re-executes only the save node (T09).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from storybuild.backends.comfyui.client import ComfyClient, FileRef, safe_ref
from storybuild.backends.comfyui.messages import describe_execution_error
from storybuild.backends.comfyui.validate import validate_workflow
from storybuild.backends.comfyui.websocket import EventStream, Outcome
from storybuild.backends.comfyui.workflow import find_node, upload_name
from storybuild.errors import BackendError, Cancelled, SourceLoc, TransientError
from storybuild.hashing import canonical_json, digest_bytes, digest_file

MEDIA = {".png": "image", ".jpg": "image", ".jpeg": "image", ".webp": "image", ".gif": "image",
         ".mp4": "video", ".webm": "video", ".mov": "video", ".mkv": "video",
         ".wav": "audio", ".flac": "audio", ".mp3": "audio", ".ogg": "audio", ".opus": "audio"}
MAGIC: dict[str, tuple[bytes, ...]] = {
    ".png": (b"\x89PNG",), ".jpg": (b"\xff\xd8",), ".jpeg": (b"\xff\xd8",), ".gif": (b"GIF8",),
    ".webm": (b"\x1aE\xdf\xa3",), ".mkv": (b"\x1aE\xdf\xa3",), ".flac": (b"fLaC",), ".ogg": (b"OggS",),
    ".opus": (b"OggS",), ".mp3": (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"),
}
REFERENCE_KEYS = ("images", "gifs", "videos", "video", "audio", "files")


class WrongServer(BackendError):
    """This server lacks a node class or model the job needs; another server may have it."""


@dataclass
class Job:
    """One prompt to run on whichever server takes it."""

    prompt: dict[str, Any]  # API format, file params bound to UPLOAD_PLACEHOLDER
    what: str  # how errors name it: "workflow 'wan_t2v' for clip/harbor-01"
    uploads: dict[str, Path] = field(default_factory=dict)  # input name → local file
    outputs: tuple[str, ...] = ()  # node ids/titles whose files are the result; () → every output
    workflow: str = "workflow"  # label for statistics
    capability: str | None = None
    models: frozenset[str] = frozenset()  # model files it loads (routing)
    custom_nodes: Mapping[str, str] = field(default_factory=dict)  # class → custom node pack
    loc: SourceLoc | None = None
    action_id: str = ""


@dataclass
class Fetched:
    """The files a job produced, downloaded and checked."""

    files: list[tuple[Path, str, str]] = field(default_factory=list)  # (path, kind, node id)
    texts: list[str] = field(default_factory=list)
    cached: bool = False  # served entirely from the server's cache
    prompt_id: str = ""
    server_seconds: float | None = None

    def of_kind(self, kind: str) -> list[Path]:
        return [path for path, file_kind, _ in self.files if file_kind == kind]


class Worker:
    """One farm slot on one server: a client, its WebSocket, and the server's object_info."""

    def __init__(self, client: ComfyClient, object_info: Callable[[bool], Mapping[str, Any]],
                 *, timeout: float = 600.0, poll_interval: float = 0.5):
        self.client = client
        self.object_info = object_info  # (refresh) → the server's object_info, cached by the farm
        self.events = EventStream(client)
        self.timeout = timeout
        self.poll_interval = poll_interval

    def close(self) -> None:
        self.events.close()
        self.client.close()

    def run(self, job: Job, out_dir: Path, progress: Callable[[float, str], None],
            cancel: threading.Event) -> Fetched:
        """Run `job` here and download its outputs into `out_dir`."""
        if cancel.is_set():
            raise Cancelled(f"{job.what}: cancelled")
        uploads = {name: self.client.upload(path, _upload_name(path)) for name, path in job.uploads.items()}
        prompt = _fill_uploads(job.prompt, uploads)
        self._validate(job, prompt)
        key = digest_bytes(canonical_json(prompt))  # same job, same save folder, same cached files
        for attempt in range(3):
            attempted = _with_prefixes(prompt, key, attempt)
            fetched = self._run_once(job, attempted, out_dir, progress, cancel)
            if fetched is not None:
                return fetched
        raise TransientError(f"{job.what}: {self.client.url} keeps losing its output files")

    def _validate(self, job: Job, prompt: Mapping[str, Any]) -> None:
        for refresh in (False, True):  # a model installed since the last look: look again
            problems = validate_workflow(prompt, self.object_info(refresh), job.loc, what="",
                                         custom_nodes=job.custom_nodes)
            if not problems:
                return
        lines = "\n  ".join(p.message + (f" ({p.hint})" if p.hint else "") for p in problems)
        message = f"{job.what} cannot run on {self.client.url}:\n  {lines}"
        server_specific = all(p.code == "missing_node_type" or "not installed" in p.message for p in problems)
        raise (WrongServer if server_specific else BackendError)(message, job.loc)

    def _run_once(self, job: Job, prompt: dict[str, Any], out_dir: Path, progress: Callable[[float, str], None],
                  cancel: threading.Event) -> Fetched | None:
        try:
            self.events.connect()  # before POST /prompt, so no event is missed
            socket_open = True
        except TransientError:
            socket_open = False  # the HTTP side may still work: then we poll
        submission = self.client.submit(prompt, what=job.what)
        prompt_id = submission.prompt_id

        def take_back() -> None:
            try:
                self.client.cancel(prompt_id)
            except BackendError:
                pass  # the server is gone; nothing to take back

        deadline = time.monotonic() + self.timeout
        try:
            if socket_open:
                outcome = self.events.follow(prompt_id, prompt, deadline=deadline, progress=progress, cancel=cancel,
                                             on_cancel=take_back)
            else:
                outcome = self.events.poll(prompt_id, deadline=deadline, interval=self.poll_interval,
                                           progress=progress, cancel=cancel, on_cancel=take_back)
        except TransientError:
            take_back()
            raise
        if outcome.status == "error":
            message = describe_execution_error(outcome.error or {}, prompt)
            transient = "OutOfMemory" in str((outcome.error or {}).get("exception_type", ""))
            raise (TransientError if transient else BackendError)(f"{job.what}: {message}", job.loc)
        if outcome.status == "interrupted":
            if cancel.is_set():
                raise Cancelled(f"{job.what}: cancelled")
            raise TransientError(f"{job.what}: interrupted on {self.client.url} by someone else")
        progress(1.0, "fetching outputs")
        return self._fetch(job, prompt, prompt_id, outcome, out_dir)

    def _fetch(self, job: Job, prompt: Mapping[str, Any], prompt_id: str, outcome: Outcome,
               out_dir: Path) -> Fetched | None:
        entry = self.client.history(prompt_id) or {}
        outputs = dict(outcome.outputs)
        outputs.update(entry.get("outputs") or {})  # history is authoritative (cached nodes included)
        wanted = [find_node(prompt, ref) for ref in job.outputs]
        missing = [ref for ref, node_id in zip(job.outputs, wanted) if node_id is None]
        if missing:
            raise BackendError(f"{job.what}: declared output node {missing[0]!r} is not in the workflow", job.loc)
        selected = [n for n in wanted if n] or list(outputs) or \
            [n for n, _ in outcome.images if n is not None]
        fetched = Fetched(prompt_id=prompt_id, server_seconds=outcome.server_seconds,
                          cached=bool(prompt) and len(outcome.cached) == len(prompt))
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            for node_id in selected:
                self._fetch_node(node_id, outputs.get(node_id) or {}, fetched, out_dir)
        except FileNotFoundError:
            return None  # a cached output's file was deleted on the server: run again
        for node_id, image in outcome.images:  # SaveImageWebsocket sends pictures, not files
            if node_id in selected and str(prompt.get(node_id, {}).get("class_type")) == "SaveImageWebsocket":
                path = out_dir / f"comfy-{len(fetched.files):04d}.png"
                _check_magic(image, ".png", job.what)
                path.write_bytes(image)
                fetched.files.append((path, "image", node_id))
        if not fetched.files and not fetched.texts:
            raise BackendError(f"{job.what}: the server finished but reported no output files "
                               f"(output nodes: {', '.join(selected) or 'none'})", job.loc)
        return fetched

    def _fetch_node(self, node_id: str, ui: Mapping[str, Any], fetched: Fetched, out_dir: Path) -> None:
        fetched.texts += [str(t) for t in ui.get("text") or []]
        for ref in _references(ui, self.client.url):
            ext = Path(ref.filename).suffix.lower()
            kind = MEDIA.get(ext)
            if kind is None:
                continue  # not a medium storybuild uses (latents, meshes, …)
            data = self.client.view(ref)
            _check_magic(data, ext, f"output {ref.filename!r} of node #{node_id}")
            path = out_dir / f"comfy-{len(fetched.files):04d}{ext}"  # never the server's name
            path.write_bytes(data)
            fetched.files.append((path, kind, node_id))


def _references(ui: Mapping[str, Any], server: str) -> list[FileRef]:
    refs: list[FileRef] = []
    for key, value in ui.items():
        for entry in value if isinstance(value, list) else []:
            if key in REFERENCE_KEYS and isinstance(entry, Mapping) and "filename" in entry:
                refs.append(safe_ref(entry, server))
            elif isinstance(entry, str) and Path(entry).suffix.lower() in MEDIA and key != "text":
                # Some custom nodes (SadTalker's ShowVideo) report a server path in output/: take
                # only its name, and only from the output folder.
                refs.append(safe_ref({"filename": Path(entry.replace("\\", "/")).name, "type": "output"}, server))
    return refs


def _check_magic(data: bytes, ext: str, what: str) -> None:
    if ext in (".webp", ".wav"):
        ok = data[:4] == b"RIFF" and data[8:12] == (b"WEBP" if ext == ".webp" else b"WAVE")
    elif ext in (".mp4", ".mov"):
        ok = data[4:8] == b"ftyp"
    else:
        ok = data.startswith(MAGIC.get(ext, (b"",)))
    if not ok:
        raise BackendError(f"{what}: the server sent something that is not a {ext} file")


def _upload_name(path: Path) -> str:
    # Content-addressed: identical bytes dedupe on the server; different bytes never collide.
    return f"sb-{digest_file(path)[:32]}{path.suffix.lower()}"


def _fill_uploads(prompt: Mapping[str, Any], uploads: Mapping[str, str]) -> dict[str, Any]:
    filled: dict[str, Any] = {}
    for node_id, node in prompt.items():
        inputs = {}
        for name, value in node.get("inputs", {}).items():
            input_name = upload_name(value)
            if input_name is not None:
                if input_name not in uploads:
                    raise BackendError(f"node #{node_id} needs the input file {input_name!r}, "
                                       "which the action does not have")
                value = uploads[input_name]
            inputs[name] = value
        filled[node_id] = {**node, "inputs": inputs}
    return filled


def _with_prefixes(prompt: Mapping[str, Any], key: str, attempt: int) -> dict[str, Any]:
    """Give every save node a prefix derived from the job (and the attempt, after a lost file)."""
    folder = f"storybuild/{key[:16]}" + (f"-r{attempt}" if attempt else "")
    result = {}
    for node_id, node in prompt.items():
        if isinstance(node.get("inputs", {}).get("filename_prefix"), str):
            safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", node_id)
            node = {**node, "inputs": {**node["inputs"], "filename_prefix": f"{folder}/{safe_id}"}}
        result[node_id] = node
    return result

