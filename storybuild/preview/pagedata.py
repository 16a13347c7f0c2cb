"""The page's data: the manifest's structure joined with build/ outputs and live statuses.

One JSON document drives both the live page and the static report, so they can never
disagree. Media are referred to through `urls` (the server adds a version tag so a rebuilt
film reloads; the report copies files and links them relatively).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from storybuild.actionids import parse, split_quality
from storybuild.model import Manifest
from storybuild.preview import media
from storybuild.preview.livestate import BUILT, CACHED, CANCELLED, FAILED, QUEUED, RUNNING, SKIPPED

SCENE_KINDS = ("mix", "scene")  # a scene's own actions, when a shot and a scene share an id



class Urls(Protocol):
    """How the page refers to files: the live server and the static report differ."""

    def media(self, rel: str) -> str | None:
        """A URL for build/<rel>, or None when the file does not exist."""
        ...

    def subtitles(self, cut_rel: str, cut: dict, names: dict[str, str]) -> str | None:
        """A URL for WebVTT subtitles of the cut at build/<cut_rel>."""
        ...


def describe_manifest(manifest: Manifest) -> dict:
    """The parts of a manifest the page shows: scenes, shots, lines and where each is written."""
    return {
        "title": manifest.project.title,
        "file": manifest.file,
        "size": [manifest.project.width, manifest.project.height],
        "fps": manifest.project.fps,
        "characters": {cid: {"name": c.name, "color": c.color} for cid, c in manifest.characters.items()},
        "scenes": [
            {
                "id": scene.id, "location": scene.location, "time": scene.time, "loc": str(scene.loc),
                "shots": [
                    {
                        "id": shot.id, "loc": str(shot.loc), "source": shot.picture.source.value,
                        "lines": [
                            {"index": i, "character": line.character, "text": line.text,
                             "emotion": line.emotion, "loc": str(line.loc)}
                            for i, line in enumerate(shot.dialogue)
                        ],
                    }
                    for shot in scene.shots
                ],
            }
            for scene in manifest.scenes
        ],
    }


def _owners(actions: dict[str, dict], described: dict) -> tuple[dict, dict]:
    """Group action entries by (quality, shot id) and (quality, scene id).

    An action belongs to the shot or scene its id names as owner (storybuild.actionids),
    whatever its kind: a kind a backend adds shows under its shot like the built-in ones.
    """
    shot_ids = {shot["id"] for scene in described.get("scenes", []) for shot in scene["shots"]}
    scene_ids = {scene["id"] for scene in described.get("scenes", [])}
    shots: dict[tuple[str, str], list[tuple[str, dict, int | None]]] = {}
    scenes: dict[tuple[str, str], list[tuple[str, dict, int | None]]] = {}
    for full_id, entry in actions.items():
        parsed = parse(full_id)
        base = split_quality(full_id)[1]
        if parsed.owner in shot_ids and parsed.kind not in SCENE_KINDS:
            shots.setdefault((parsed.quality, parsed.owner), []).append((base, entry, parsed.line))
        elif parsed.owner in scene_ids:
            scenes.setdefault((parsed.quality, parsed.owner), []).append((base, entry, None))
    return shots, scenes


def _aggregate(entries: list[tuple[str, dict, int | None]], main: str) -> dict:
    """One status for a group of actions: failed > running > skipped > cancelled > queued > built > cached."""
    states = [e["state"] for _, e, _ in entries]
    out: dict[str, Any] = {"state": CACHED}
    for state in (FAILED, RUNNING, SKIPPED, CANCELLED, QUEUED, BUILT):
        if state in states:
            out["state"] = state
            break
    if out["state"] in (FAILED, SKIPPED):
        base, entry, line = next(x for x in entries if x[1]["state"] == out["state"])
        out.update(action=base, error=entry.get("error"), loc=entry.get("loc"), line=line)
    elif out["state"] == RUNNING:
        running = [(b, e) for b, e, _ in entries if e["state"] == RUNNING]
        base, entry = next(((b, e) for b, e in running if b == main), running[0])
        out.update(action=base, progress=entry.get("progress", 0.0), message=entry.get("message", ""))
    seconds = [e.get("seconds") for _, e, _ in entries if e["state"] == BUILT and e.get("seconds")]
    if seconds:
        out["seconds"] = round(sum(seconds), 3)
    return out


def _status(groups: dict, ident: str, main: str, prefer: str, exists: bool) -> dict:
    """The status shown for a shot or scene in the latest pass (`prefer`: its quality).

    An output that pass never mentioned is up to date: served from the cache ("cached").
    What the other quality's pass did is history, not the shot's state now.
    """
    entries = groups.get((prefer, ident))
    if entries:
        return {**_aggregate(entries, main), "quality": prefer}
    return {"state": CACHED if exists else "missing"}


def _film_cut(build_dir: Path) -> tuple[str | None, str | None, dict]:
    """The newest film under build/ (its path there), its cut's path, and the cut ({} when none)."""
    film_rel = media.current(build_dir, "film.mp4")
    cut_rel = (film_rel[: -len("film.mp4")] + "film.json") if film_rel else None
    cut = media.load_cut(build_dir / cut_rel) if cut_rel else None
    return film_rel, cut_rel, cut or {}


def _shot_status(groups: dict, shot: dict, prefer: str, exists: bool) -> dict:
    """A shot's status; a failure that names no place points at its line, or else at the shot."""
    status = _status(groups, shot["id"], f"shot/{shot['id']}", prefer, exists)
    if status.get("state") in (FAILED, SKIPPED) and not status.get("loc"):
        line = status.get("line")
        lines = shot["lines"]
        status["loc"] = lines[line]["loc"] if line is not None and line < len(lines) else shot["loc"]
    return status


def _timed_lines(shot: dict, timed: list[dict], names: dict[str, str]) -> list[dict]:
    """The shot's lines with the speaker's name and, where the cut has them, their times in the film."""
    return [{**line, "name": names.get(line["character"], line["character"]),
             "start": timed[i].get("start") if i < len(timed) else None,
             "end": timed[i].get("end") if i < len(timed) else None}
            for i, line in enumerate(shot["lines"])]


def _scenes(described: dict, build_dir: Path, urls: Urls, groups: tuple[dict, dict], prefer: str,
            names: dict[str, str], cut: dict) -> list[dict]:
    """Each scene and its shots with their statuses, media and times in the cut."""
    shot_groups, scene_groups = groups
    shot_times = {s.get("id"): s for s in cut.get("shots") or []}
    scene_times = {s.get("id"): s for s in cut.get("scenes") or []}
    cut_lines: dict[str, list[dict]] = {}
    for line in cut.get("lines") or []:
        cut_lines.setdefault(str(line.get("shot")), []).append(line)

    scenes = []
    for scene in described.get("scenes", []):
        shots = []
        for shot in scene["shots"]:
            thumb = media.current(build_dir, f"shots/{shot['id']}.png")
            status = _shot_status(shot_groups, shot, prefer, thumb is not None)
            lines = _timed_lines(shot, cut_lines.get(shot["id"], []), names)
            times = shot_times.get(shot["id"], {})
            shots.append({**shot, "lines": lines, "status": status,
                          "thumb": urls.media(thumb) if thumb else None,
                          "start": times.get("start"), "end": times.get("end")})
        wav = media.current(build_dir, f"scenes/{scene['id']}.wav")
        times = scene_times.get(scene["id"], {})
        scenes.append({**scene, "shots": shots,
                       "status": _status(scene_groups, scene["id"], f"scene/{scene['id']}", prefer, wav is not None),
                       "waveform": media.waveform(build_dir / wav) if wav else None,
                       "audio": urls.media(wav) if wav else None,
                       "start": times.get("start"), "end": times.get("end")})
    return scenes


def _running(actions: dict[str, dict]) -> list[dict]:
    """The actions running now, with their progress, by id."""
    return sorted(
        ({"action": aid, "progress": e.get("progress", 0.0), "message": e.get("message", "")}
         for aid, e in actions.items() if e["state"] == RUNNING),
        key=lambda r: r["action"])


def page_data(snapshot: dict, build_dir: Path, urls: Urls) -> dict:
    """Everything the page draws, as JSON, from a LiveState snapshot and build/."""
    described = snapshot.get("manifest") or {"title": "storybuild", "characters": {}, "scenes": []}
    names = {cid: c["name"] for cid, c in described.get("characters", {}).items()}
    rebuilds = snapshot.get("rebuilds") or []
    prefer = rebuilds[-1]["quality"] if rebuilds else "full"
    groups = _owners(snapshot.get("actions") or {}, described)
    film_rel, cut_rel, cut = _film_cut(build_dir)
    scenes = _scenes(described, build_dir, urls, groups, prefer, names, cut)

    film = None
    if film_rel:
        film = {"url": urls.media(film_rel), "quality": "preview" if film_rel.startswith("preview/") else "full",
                "duration": cut.get("duration"),
                "subtitles": urls.subtitles(cut_rel, cut, names) if cut.get("lines") else None}
    return {
        "version": snapshot.get("version", 0),
        "phase": snapshot.get("phase", "idle"),
        "title": described.get("title", "storybuild"),
        "file": described.get("file"),
        "size": described.get("size"),
        "fps": described.get("fps"),
        "characters": described.get("characters", {}),
        "film": film,
        "scenes": scenes,
        "diagnostics": snapshot.get("diagnostics") or [],
        "running": _running(snapshot.get("actions") or {}),
        "rebuilds": list(reversed(rebuilds)),
    }
