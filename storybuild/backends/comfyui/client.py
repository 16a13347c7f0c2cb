"""One ComfyUI server over HTTP: stats, object_info, models, uploads, prompts, history, files.

Failures are sorted the way the build needs them: connection refused or reset, timeouts,
HTTP 5xx and 429 are TransientError (retry, maybe elsewhere); a 4xx is permanent. A POST
/prompt rejection becomes a BackendError naming every broken node (messages.py); a 200
with node_errors — ComfyUI's partial acceptance, which would run the valid branches and
silently skip the rest — is treated as the same error after taking the prompt back off
the queue. Every file name a server returns is confined before it is used (`safe_ref`).

`requests` is imported here, and this module is imported only when ComfyUI is used.
"""

from __future__ import annotations

import mimetypes
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import requests

from storybuild.backends.comfyui.messages import describe_prompt_error
from storybuild.errors import BackendError, TransientError

FOLDER_TYPES = frozenset({"output", "temp", "input"})
UPLOAD_SUBFOLDER = "storybuild"


@dataclass(frozen=True)
class FileRef:
    """A confined reference to a file on the server (safe to put in a /view query)."""

    filename: str
    subfolder: str
    type: str

    def query(self) -> dict[str, str]:
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.type}


def safe_ref(entry: Mapping[str, Any], server: str = "server") -> FileRef:
    """Check a server-given `{filename, subfolder, type}`: a plain name, a relative folder, a known type."""
    filename = str(entry.get("filename", ""))
    subfolder = str(entry.get("subfolder") or "")
    kind = str(entry.get("type") or "output")
    bad_name = (not filename or filename in (".", "..") or any(c in filename for c in "/\\\x00")
                or filename.startswith(".."))
    parts = subfolder.split("/") if subfolder else []
    bad_folder = (subfolder.startswith("/") or any(c in subfolder for c in "\\\x00:")
                  or any(part in ("", ".", "..") for part in parts))
    if bad_name or bad_folder or kind not in FOLDER_TYPES:
        raise BackendError(f"{server} named an output file outside its folders "
                           f"(filename={filename!r}, subfolder={subfolder!r}, type={kind!r}); refusing it")
    return FileRef(filename, subfolder, kind)


@dataclass(frozen=True)
class Submission:
    prompt_id: str
    number: int


class ComfyClient:
    """HTTP calls to one server; one instance per worker thread (a requests.Session each)."""

    def __init__(self, url: str, *, timeout: float = 30.0, client_id: str | None = None,
                 session: requests.Session | None = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.client_id = client_id or f"storybuild-{uuid.uuid4().hex[:12]}"
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": "storybuild"})

    def __repr__(self) -> str:
        return f"ComfyClient({self.url})"

    # ------------------------------------------------------------------ plumbing

    def _request(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.url + path, timeout=timeout or self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise TransientError(f"{self.url}: {method} {path} timed out") from exc
        except requests.RequestException as exc:
            raise TransientError(f"{self.url}: cannot reach the server ({type(exc).__name__})") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"{self.url}: {method} {path} answered HTTP {response.status_code}")
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code != 200:
            raise BackendError(f"{self.url}: {method} {path} answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise TransientError(f"{self.url}: {method} {path} answered something that is not JSON") from exc

    # ------------------------------------------------------------------ read-only endpoints

    def system_stats(self) -> dict[str, Any]:
        """GET /system_stats: versions, RAM and devices (health probe)."""
        return self._json("GET", "/system_stats", timeout=min(self.timeout, 10.0))

    def object_info(self) -> dict[str, Any]:
        """GET /object_info: every node class, with model lists as of now."""
        return self._json("GET", "/object_info", timeout=max(self.timeout, 60.0))

    def queue(self) -> tuple[list[str], list[str]]:
        """(running prompt ids, pending prompt ids in run order); the server's list is a heap."""
        data = self._json("GET", "/queue")
        running = [item[1] for item in data.get("queue_running", [])]
        pending = [item[1] for item in sorted(data.get("queue_pending", []), key=lambda item: item[0])]
        return running, pending

    def model_folders(self) -> list[str]:
        return list(self._json("GET", "/models"))

    def models(self, folder: str) -> list[str]:
        """GET /models/<folder>; an unknown folder (404) has no models."""
        response = self._request("GET", f"/models/{folder}")
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            raise BackendError(f"{self.url}: GET /models/{folder} answered HTTP {response.status_code}")
        return list(response.json())

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The history entry of a prompt, or None while unknown (queued, or forgotten by a restart)."""
        return self._json("GET", f"/history/{prompt_id}").get(prompt_id)

    # ------------------------------------------------------------------ files

    def upload(self, path: Path, name: str) -> str:
        """Upload a file as `name` into input/storybuild/; returns the value a loader node takes.

        Callers name files by content hash, so identical bytes dedupe on the server and
        different bytes never meet an existing name; `overwrite` is never sent because
        replacing an input would change what other queued prompts read.
        """
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        with open(path, "rb") as handle:
            response = self._request("POST", "/upload/image", files={"image": (name, handle, content_type)},
                                     data={"type": "input", "subfolder": UPLOAD_SUBFOLDER},
                                     timeout=max(self.timeout, 120.0))
        if response.status_code != 200:
            raise BackendError(f"{self.url}: uploading {path.name} failed with HTTP {response.status_code}")
        stored = response.json()
        ref = safe_ref({"filename": stored.get("name"), "subfolder": stored.get("subfolder"),
                        "type": stored.get("type", "input")}, self.url)
        return f"{ref.subfolder}/{ref.filename}" if ref.subfolder else ref.filename

    def view(self, ref: FileRef) -> bytes:
        """GET /view of a confined file reference."""
        response = self._request("GET", "/view", params=ref.query(), timeout=max(self.timeout, 120.0))
        if response.status_code == 404:
            raise FileNotFoundError(f"{ref.subfolder}/{ref.filename}")
        if response.status_code != 200:
            raise BackendError(f"{self.url}: GET /view {ref.filename} answered HTTP {response.status_code}")
        return response.content

    # ------------------------------------------------------------------ prompts

    def submit(self, prompt: Mapping[str, Any], *, what: str = "workflow") -> Submission:
        """POST /prompt with our client_id; rejections and partial acceptance raise BackendError."""
        response = self._request("POST", "/prompt", json={"prompt": prompt, "client_id": self.client_id})
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code == 400 and isinstance(body, Mapping) and ("error" in body or "node_errors" in body):
            raise BackendError(self._rejection(what, body, prompt))
        if response.status_code != 200 or not isinstance(body, Mapping) or "prompt_id" not in body:
            raise BackendError(f"{self.url}: POST /prompt answered HTTP {response.status_code}")
        submission = Submission(str(body["prompt_id"]), int(body.get("number", 0)))
        if body.get("node_errors"):
            # Queued anyway, minus the broken branches: take it back and report the errors.
            self.cancel(submission.prompt_id)
            raise BackendError(self._rejection(what, {"node_errors": body["node_errors"]}, prompt))
        return submission

    def _rejection(self, what: str, body: Mapping[str, Any], prompt: Mapping[str, Any]) -> str:
        lines = describe_prompt_error(body, prompt)
        head = f"{what} was rejected by {self.url}"
        return head + (":\n  " + "\n  ".join(lines) if lines else "")

    def cancel(self, prompt_id: str) -> None:
        """Take a prompt back: dequeue it if pending, interrupt it if running (both are no-ops otherwise)."""
        self._request("POST", "/queue", json={"delete": [prompt_id]})
        self._request("POST", "/interrupt", json={"prompt_id": prompt_id})

    def ws_url(self) -> str:
        base = "wss://" + self.url[len("https://"):] if self.url.startswith("https://") else \
            "ws://" + self.url[len("http://"):]
        return f"{base}/ws?clientId={self.client_id}"

    def close(self) -> None:
        self.session.close()
