"""The preview page as one HTML document: shell, style and script inlined, data embedded.

The same document serves the live page (which then follows Server-Sent Events) and the
static report (which only has the data it was written with), so sharing a report shows
exactly what the writer saw.
"""

from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from pathlib import Path

STATIC = Path(__file__).with_name("static")
_PLACEHOLDER = re.compile(r"@@(?:TITLE|MODE|CSS|JS|DATA)@@")


@lru_cache(maxsize=None)
def _asset(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def embed_json(data: dict) -> str:
    """JSON that is safe inside a <script> element: no `</script>`, no `<!--`, no U+2028."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render_page(data: dict, live: bool) -> str:
    """The whole page for `data` (pagedata.page_data); `live` turns on the event stream."""
    replacements = {
        "@@TITLE@@": html.escape(str(data.get("title") or "storybuild")),
        "@@MODE@@": "live" if live else "static",
        "@@CSS@@": _asset("page.css"),
        "@@JS@@": _asset("page.js"),
        "@@DATA@@": embed_json(data),
    }
    # One pass over the template, so text inside a replacement is never replaced again.
    return _PLACEHOLDER.sub(lambda m: replacements[m.group(0)], _asset("page.html"))
