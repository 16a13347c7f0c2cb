"""`storybuild report`: the preview page as static HTML in build/report/, for sharing.

The report is the live page's document with its data inlined and its media copied next
to it (build/report/media/…, linked relatively), so the folder can be zipped, mailed or
served from anywhere. It is written into a fresh folder and swapped into place, so a
reader never sees half a report.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import quote

from storybuild.model import Manifest
from storybuild.preview import media
from storybuild.preview.page import render_page
from storybuild.preview.pagedata import describe_manifest, page_data


class _CopyingUrls:
    """Copies each file the page refers to into the report and links it relatively."""

    def __init__(self, build_dir: Path, out: Path):
        self.build_dir, self.out = build_dir, out
        self.copied: list[str] = []

    def _place(self, rel: str) -> Path:
        target = self.out / "media" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def media(self, rel: str) -> str | None:
        source = self.build_dir / rel
        if not source.is_file():
            return None
        target = self._place(rel)
        if not target.exists():
            try:
                os.link(source, target)  # the build view's files are immutable: share the bytes
            except OSError:
                shutil.copyfile(source, target)
            self.copied.append(rel)
        return "media/" + quote(rel)

    def subtitles(self, cut_rel: str, cut: dict, names: dict[str, str]) -> str | None:
        rel = cut_rel[: -len(".json")] + ".vtt"
        self._place(rel).write_text(media.webvtt(cut, names), encoding="utf-8")
        self.copied.append(rel)
        return "media/" + quote(rel)


def engine_records(session: Any) -> tuple[dict[str, dict], list[dict]]:
    """What the store remembers for the report: failed actions and each action's run time.

    `session` is a storybuild.engine.session.Session. Returns (action id → status entry, a one-item
    list of timings in the page's rebuild format); both empty before any build.
    """
    actions = {f.action: {"state": "failed", "error": f.error, "progress": 0.0} for f in session.failures()}
    timings: dict[str, float] = {}
    db_path = Path(session.store_dir) / "state.sqlite"
    if db_path.exists():
        from storybuild.store.state import StateDB

        db = StateDB(db_path)
        try:
            for action, run in db.runs().items():
                meta = db.cached_meta(run.key) or {}
                if meta.get("seconds") is not None:
                    timings[action] = float(meta["seconds"])
        finally:
            db.close()
    if not timings and not actions:
        return actions, []
    record = {"number": 0, "label": "time each action took when it last ran", "quality": "full",
              "changed": [], "started": None, "seconds": round(sum(timings.values()), 3),
              "ran": sorted(timings), "cached": 0, "up_to_date": 0, "total": len(timings),
              "failed": sorted(actions), "outcome": "failed" if actions else "ok",
              "timings": dict(sorted(timings.items(), key=lambda kv: -kv[1]))}
    return actions, [record]


def write_report(manifest: Manifest, build_dir: Path, out_dir: Path | None = None,
                 actions: Mapping[str, dict] | None = None, rebuilds: Iterable[dict] = ()) -> Path:
    """Write the report for `manifest`'s build into out_dir (build/report); return index.html.

    `actions` (action id → {"state", "error", "loc", "seconds"}) and `rebuilds` add what the
    engine recorded about the last builds: failures with their locations, and timings.
    """
    build_dir = Path(build_dir)
    out_dir = Path(out_dir) if out_dir is not None else build_dir / "report"
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    snapshot = {
        "version": 0, "phase": "idle", "manifest": describe_manifest(manifest), "diagnostics": [],
        "actions": dict(actions or {}), "rebuilds": list(rebuilds),
    }
    staging = Path(tempfile.mkdtemp(prefix=".report-", dir=out_dir.parent))
    try:
        urls = _CopyingUrls(build_dir, staging)
        html = render_page(page_data(snapshot, build_dir, urls), live=False)
        (staging / "index.html").write_text(html, encoding="utf-8")
        os.chmod(staging, 0o755)  # mkdtemp makes it private; a report is for sharing
        _swap(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir / "index.html"


def _swap(new: Path, dest: Path) -> None:
    """Put the folder `new` at `dest`, replacing what was there, never leaving it absent long."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}-old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(dest, old)
    os.rename(new, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
