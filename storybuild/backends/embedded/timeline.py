"""Editorial timelines of the cut through OpenTimelineIO: .otio, FCP 7 XML, FCPXML, CMX 3600 EDL.

One video track of the shots' own media (build/shots/<id>.mp4, project-relative),
trimmed to what the film shows, with an OTIO Transition (SMPTE dissolve, or a wipe)
where scenes cross. A transition sits centred on its cut point, and OTIO reads the
media on both sides of the cut as handles:

    film:      scene a ======|xxxxxx|                  (xxxxxx: the overlap, 2h frames)
                             |xxxxxx|====== scene b
    track:     [ last shot of a ][ first shot of b ]   cut at the middle of the overlap
                          <h>|<h>                      in_offset = out_offset = h

The film's overlap is real picture in both shots, so those handles exist in the media
(shot a runs h frames past the cut, shot b starts h frames before it) unless a shot at
the scene edge is shorter than h; then the dissolve is shortened and the log says so.

OpenTimelineIO and the adapter packages are optional; they are imported only here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from storybuild.errors import BackendError

# format name (as in exports' `timeline`) → (OTIO adapter, file extension, pip package)
FORMATS: dict[str, tuple[str, str, str]] = {
    "otio": ("otio_json", "otio", "opentimelineio"),
    "fcpxml": ("fcpx_xml", "fcpxml", "otio-fcpx-xml-adapter"),
    "fcp7xml": ("fcp_xml", "xml", "otio-fcp-adapter"),
    "xml": ("fcp_xml", "xml", "otio-fcp-adapter"),
    "edl": ("cmx_3600", "edl", "otio-cmx3600-adapter"),
}
MEDIA = "build/shots/{id}.mp4"  # where the build view shows each shot.mp4


def _otio():
    try:
        import opentimelineio
    except ImportError as exc:
        raise BackendError("timeline exports need OpenTimelineIO, which is not installed",
                           hint="pip install 'storybuild[timeline]'") from exc
    return opentimelineio


def available_formats() -> list[str]:
    """The timeline formats whose OTIO adapters are installed here."""
    try:
        otio = _otio()
    except BackendError:
        return []
    names = set(otio.adapters.available_adapter_names())
    return sorted(fmt for fmt, (adapter, _ext, _pkg) in FORMATS.items() if adapter in names)


@dataclass(frozen=True)
class _Piece:
    shot: Mapping[str, Any]
    first: int  # first media frame shown
    count: int  # frames shown


def _reel(shot_id: str, used: set[str]) -> str:
    """An EDL reel name: up to 8 letters/digits from the shot id, unique in the timeline."""
    base = re.sub(r"[^A-Za-z0-9]", "", shot_id).upper()[:8] or "SHOT"
    reel, n = base, 1
    while reel in used:
        n += 1
        reel = f"{base[:8 - len(str(n))]}{n}"
    used.add(reel)
    return reel


def build(cut: Mapping[str, Any], name: str, media: str = MEDIA, log: Callable[[str], None] = lambda s: None):
    """An otio Timeline of the cut: shots as clips, scene transitions as Transitions."""
    otio = _otio()
    fps = float(cut["fps"])

    def frame(t: float) -> int:
        return int(round(float(t) * fps))

    def rt(frames: int):
        return otio.opentime.RationalTime(frames, fps)

    scenes = list(cut["scenes"])
    # Cut points between scenes and the (in, out) halves of each transition.
    cuts: list[tuple[int, int, int]] = []
    for a, b in zip(scenes, scenes[1:]):
        overlap = frame(a["end"]) - frame(b["start"])
        if a.get("transition", {}).get("type", "cut") == "cut" or overlap <= 0:
            cuts.append((frame(b["start"]), 0, 0))
        else:
            half = overlap // 2
            cuts.append((frame(b["start"]) + half, half, overlap - half))

    timeline = otio.schema.Timeline(name=name)
    timeline.global_start_time = rt(0)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    reels: set[str] = set()
    for i, scene in enumerate(scenes):
        shown_from = cuts[i - 1][0] if i > 0 else frame(scene["start"])
        shown_to = cuts[i][0] if i < len(cuts) else frame(scene["end"])
        pieces = []
        for shot in (s for s in cut["shots"] if s["scene"] == scene["id"]):
            start, end = frame(shot["start"]), frame(shot["end"])
            lo, hi = max(start, shown_from), min(end, shown_to)
            if hi > lo:
                pieces.append(_Piece(shot, lo - start, hi - lo))
        if i > 0 and cuts[i - 1][1] and pieces and track:
            _transition(otio, track, pieces[0], scenes[i - 1], cuts[i - 1], rt, log)
        for piece in pieces:
            shot_frames = frame(piece.shot["end"]) - frame(piece.shot["start"])
            ref = otio.schema.ExternalReference(target_url=media.format(id=piece.shot["id"]),
                                                available_range=otio.opentime.TimeRange(rt(0), rt(shot_frames)))
            ref.name = piece.shot["id"]
            clip = otio.schema.Clip(name=piece.shot["id"], media_reference=ref,
                                    source_range=otio.opentime.TimeRange(rt(piece.first), rt(piece.count)))
            clip.metadata["storybuild"] = {"scene": scene["id"]}
            clip.metadata["cmx_3600"] = {"reel": _reel(piece.shot["id"], reels)}
            track.append(clip)
    return timeline


def _transition(otio, track, incoming: _Piece, previous: Mapping[str, Any], cut_point: tuple[int, int, int],
                rt, log: Callable[[str], None]) -> None:
    """Append the Transition before `incoming`, trimmed to the handles the media really has."""
    outgoing = track[-1]
    _at, before, after = cut_point
    tail = outgoing.available_range().end_time_exclusive().value - outgoing.source_range.end_time_exclusive().value
    head = incoming.first
    use_in, use_out = min(before, head), min(after, int(round(tail)))
    if (use_in, use_out) != (before, after):
        log(f"the {previous['transition']['type']} from {outgoing.name} into {incoming.shot['id']} needs "
            f"{before}+{after} frames of handles; the shots have {use_in}+{use_out}, so the timeline's is shorter")
    if use_in + use_out == 0:
        return
    kind = previous["transition"]["type"]
    # Every kind is written as a dissolve, the one transition all the adapters and EDLs
    # understand; the name and metadata keep what it was (an editor re-picks the wipe).
    transition = otio.schema.Transition(name=kind, transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                                        in_offset=rt(use_in), out_offset=rt(use_out))
    transition.metadata["storybuild"] = {"type": kind}
    track.append(transition)


def write(timeline, path: Path, fmt: str) -> Path:
    """Write `timeline` as `fmt` (a key of FORMATS); raise a clear error when its adapter is missing."""
    otio = _otio()
    if fmt not in FORMATS:
        raise BackendError(f"unknown timeline format {fmt!r}", hint=f"use one of: {', '.join(sorted(FORMATS))}")
    adapter, _ext, package = FORMATS[fmt]
    if adapter not in otio.adapters.available_adapter_names():
        raise BackendError(f"the {fmt!r} timeline needs the OpenTimelineIO adapter {adapter!r}, which is not installed",
                           hint=f"pip install {package}")
    options: dict[str, Any] = {}
    if adapter == "cmx_3600":
        options["rate"] = float(timeline.tracks[0][0].source_range.duration.rate) if len(timeline.tracks[0]) else 24.0
    # Some adapters (cmx_3600) rewrite the timeline they are given; each gets its own copy.
    otio.adapters.write_to_file(timeline.deepcopy(), str(path), adapter_name=adapter, **options)
    return Path(path)
