"""The recorded ComfyUI material the ComfyUI tests use (copied from the shared captures).

`comfyui_fixtures/` holds a subset of `../shared/comfyui/`: the v0.33 object_info dump
(gzipped), the workflows, and the transcripts the tests replay or compare against.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

FIXTURES = Path(__file__).parent / "comfyui_fixtures"
WORKFLOWS = FIXTURES / "workflows"
TRANSCRIPTS = FIXTURES / "transcripts"


@lru_cache(maxsize=1)
def _object_info_text() -> str:
    with gzip.open(FIXTURES / "object_info.json.gz", "rt", encoding="utf-8") as handle:
        return handle.read()


def object_info() -> dict[str, Any]:
    """A fresh copy of the recorded `GET /object_info` (887 classes)."""
    return json.loads(_object_info_text())


def workflow(relative: str) -> dict[str, Any]:
    """A recorded workflow JSON, e.g. `invalid/dependency_cycle.json`."""
    return json.loads((WORKFLOWS / relative).read_text())


def transcript(prefix: str) -> dict[str, Any]:
    """The transcript whose file name starts with `prefix` (e.g. "19")."""
    path = next(p for p in sorted(TRANSCRIPTS.glob(f"{prefix}_*.json")))
    return json.loads(path.read_text())


def ws_events(prefix: str) -> list[dict[str, Any]]:
    """The recorded WebSocket lines of a transcript."""
    path = next(p for p in sorted(TRANSCRIPTS.glob(f"{prefix}_*.ws.jsonl")))
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def prompt_exchanges() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every recorded POST /prompt with a prompt body: (label, request json, response)."""
    for path in sorted(TRANSCRIPTS.glob("*.json")):
        for step in json.loads(path.read_text()).get("steps", []):
            request = step["request"]
            body = request.get("json")
            if request["method"] == "POST" and request["path"].endswith("/prompt") \
                    and isinstance(body, dict) and "prompt" in body and "json" in step["response"]:
                yield f"{path.stem}:{step.get('label')}", body, step["response"]


def without_tracebacks(value: Any) -> Any:
    """A JSON value with server tracebacks removed (they hold the capture machine's paths)."""
    if isinstance(value, dict):
        return {k: without_tracebacks(v) for k, v in value.items() if k != "traceback"}
    if isinstance(value, list):
        return [without_tracebacks(v) for v in value]
    return value
