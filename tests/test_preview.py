"""The preview: page data from build/ and live events, the HTTP server (state, SSE, media
with Range), waveforms and subtitles, and the static report."""

from __future__ import annotations

import http.client
import json
import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from storybuild.errors import Diagnostic, SourceLoc
from storybuild.model import Character, Line, Manifest, Project, Scene, Shot
from storybuild.preview import media
from storybuild.preview.livestate import LiveState
from storybuild.preview.page import embed_json, render_page
from storybuild.preview.pagedata import describe_manifest, page_data
from storybuild.preview.report import write_report
from storybuild.preview.server import PreviewServer, parse_range

FILM = bytes(range(256)) * 400  # 102,400 bytes with a recognisable pattern


def make_manifest(root: Path, title: str = "The Lighthouse Keeper") -> Manifest:
    lines = (
        Line("mara", "One night, one ship will.", loc=SourceLoc("storybuild.yaml", 12, 11)),
        Line("theo", "Will it?", emotion="excited", loc=SourceLoc("storybuild.yaml", 13, 11)),
    )
    shots = (Shot("s1", dialogue=lines, loc=SourceLoc("storybuild.yaml", 9, 9)),
             Shot("s2", loc=SourceLoc("storybuild.yaml", 15, 9)))
    return Manifest(
        root=str(root), file="storybuild.yaml", files=("storybuild.yaml",), version=1,
        project=Project(title=title), presets={},
        characters={"mara": Character("mara", "Mara", color="#e8b820"), "theo": Character("theo", "Theo")},
        assets={}, scenes=(Scene("harbour", location="the harbour", shots=shots, loc=SourceLoc("storybuild.yaml", 7, 5)),),
        workflows={}, exports=(), steps=(),
    )


def write_build(build: Path, prefix: str = "", film: bytes = FILM) -> None:
    base = build / prefix
    (base / "shots").mkdir(parents=True, exist_ok=True)
    (base / "scenes").mkdir(parents=True, exist_ok=True)
    (base / "film.mp4").write_bytes(film)
    cut = {"duration": 4.0, "fps": 8,
           "scenes": [{"id": "harbour", "start": 0.0, "end": 4.0}],
           "shots": [{"id": "s1", "scene": "harbour", "start": 0.0, "end": 3.0},
                     {"id": "s2", "scene": "harbour", "start": 3.0, "end": 4.0}],
           "lines": [{"shot": "s1", "character": "mara", "text": "One night, one ship will.", "start": 0.2, "end": 1.5},
                     {"shot": "s1", "character": "theo", "text": "Will it?", "start": 1.7, "end": 2.4}]}
    (base / "film.json").write_text(json.dumps(cut))
    for shot in ("s1", "s2"):
        Image.new("RGB", (16, 9), (200, 100, 50)).save(base / "shots" / f"{shot}.png")
        (base / "shots" / f"{shot}.mp4").write_bytes(b"\0" * 64)
    t = np.linspace(0, 4, 4 * 8000, endpoint=False)
    tone = (0.5 * np.sin(2 * np.pi * 220 * t) * (t < 2)).astype(np.float32)
    sf.write(base / "scenes" / "harbour.wav", np.stack([tone, tone], axis=1), 8000)


@pytest.fixture
def site(tmp_path):
    build = tmp_path / "build"
    write_build(build)
    state = LiveState()
    state.set_manifest(describe_manifest(make_manifest(tmp_path)))
    server = PreviewServer(build, state, port=0).start()
    yield server, state, build
    server.stop()


def request(server, path, headers=None, method="GET"):
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request(method, "/" + path.lstrip("/"), headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


# --------------------------------------------------------------------------- the server


def test_server_binds_loopback_and_serves_page_and_state(site):
    server, state, _ = site
    assert server.url.startswith("http://127.0.0.1:")
    resp, body = request(server, "/")
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/html")
    page = body.decode()
    assert "<video id=\"film\"" in page and "The Lighthouse Keeper" in page
    resp, body = request(server, "/api/state")
    data = json.loads(body)
    assert data["title"] == "The Lighthouse Keeper"
    assert data["film"]["quality"] == "full" and re.fullmatch(r"media/film\.mp4\?v=[0-9a-f]+-[0-9a-f]+", data["film"]["url"])
    [scene] = data["scenes"]
    assert [s["id"] for s in scene["shots"]] == ["s1", "s2"]
    s1 = scene["shots"][0]
    assert s1["status"]["state"] == "cached" and s1["thumb"].startswith("media/shots/s1.png?v=")
    assert [(l["name"], l["start"], l["end"]) for l in s1["lines"]] == [("Mara", 0.2, 1.5), ("Theo", 1.7, 2.4)]
    assert scene["waveform"]["width"] == media.WAVE_POINTS and scene["waveform"]["path"].startswith("M0,")
    assert request(server, "/nope")[0].status == 404


def test_loopback_server_refuses_foreign_host_names(site):
    server, _, _ = site
    port = urlsplit(server.url).port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert request(server, "/api/state", {"Host": host})[0].status == 200, host
    for host in (f"evil.example:{port}", "attacker.test", "",
                 # DNS rebinding: names that only start like a loopback address, another port
                 f"127.0.0.1.evil.example:{port}", f"127.attacker.test:{port}", f"localhost:{port + 1}",
                 f"localhost.evil.example:{port}", f"127.0.0.1:{port}x"):
        resp, body = request(server, "/media/film.mp4", {"Host": host})
        assert resp.status == 403 and body == b"", host
    assert request(server, "/api/state", {"Host": f"127.0.0.2:{port}"})[0].status == 200  # all of 127/8 is loopback


def test_media_full_and_range_requests(site):
    server, _, _ = site
    size = len(FILM)
    resp, body = request(server, "/media/film.mp4")
    assert resp.status == 200 and body == FILM
    assert resp.getheader("Accept-Ranges") == "bytes" and resp.getheader("Content-Type") == "video/mp4"
    etag = resp.getheader("ETag")

    resp, body = request(server, "/media/film.mp4", {"Range": "bytes=1000-1999"})
    assert resp.status == 206 and body == FILM[1000:2000]
    assert resp.getheader("Content-Range") == f"bytes 1000-1999/{size}"
    assert resp.getheader("Content-Length") == "1000"

    resp, body = request(server, "/media/film.mp4", {"Range": "bytes=100000-"})
    assert resp.status == 206 and body == FILM[100000:]
    resp, body = request(server, "/media/film.mp4", {"Range": "bytes=-10"})
    assert resp.status == 206 and body == FILM[-10:]
    resp, body = request(server, "/media/film.mp4", {"Range": "bytes=5-999999999"})
    assert resp.status == 206 and body == FILM[5:] and resp.getheader("Content-Range") == f"bytes 5-{size - 1}/{size}"

    resp, body = request(server, "/media/film.mp4", {"Range": f"bytes={size}-"})
    assert resp.status == 416 and resp.getheader("Content-Range") == f"bytes */{size}" and body == b""
    resp, body = request(server, "/media/film.mp4", {"Range": "bytes=0-1,5-6"})
    assert resp.status == 200 and body == FILM  # several ranges: the whole file is a valid answer
    resp, body = request(server, "/media/film.mp4", {"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert resp.status == 200 and body == FILM
    resp, body = request(server, "/media/film.mp4", {"Range": "bytes=0-9", "If-Range": etag})
    assert resp.status == 206 and body == FILM[:10]
    resp, body = request(server, "/media/film.mp4", {"If-None-Match": etag})
    assert resp.status == 304 and body == b"" and resp.getheader("ETag") == etag
    resp, body = request(server, "/media/film.mp4", {"If-None-Match": '"older"'})
    assert resp.status == 200 and body == FILM
    resp, body = request(server, "/media/film.mp4", method="HEAD")
    assert resp.status == 200 and resp.getheader("Content-Length") == str(size) and body == b""


def test_parse_range_edge_cases():
    assert parse_range("bytes=0-0", 10) == (0, 0)
    assert parse_range("bytes=-20", 10) == (0, 9)
    assert parse_range("bytes=9-", 10) == (9, 9)
    assert parse_range("bytes=10-", 10) is None
    assert parse_range("bytes=5-4", 10) is None
    assert parse_range("bytes=-0", 10) is None
    for bad in ("bytes=-", "items=0-1", "bytes=0-1,3-4", "bytes=a-b"):
        with pytest.raises(ValueError):
            parse_range(bad, 10)


def test_media_never_leaves_build(site, tmp_path):
    server, _, build = site
    (tmp_path / "secret.txt").write_text("manifest credentials")
    os.symlink(tmp_path / "secret.txt", build / "link.txt")
    (tmp_path / ".storybuild" / "cas").mkdir(parents=True)
    (tmp_path / ".storybuild" / "cas" / "obj").write_bytes(b"cached bytes")
    os.symlink(tmp_path / ".storybuild" / "cas" / "obj", build / "cached.bin")
    for path in ("/media/../secret.txt", "/media/%2e%2e/secret.txt", "/media/shots/..%2f..%2fsecret.txt",
                 "/media//etc/passwd", "/media/link.txt", "/media/shots", "/media/"):
        resp, body = request(server, path)
        assert resp.status == 404, path
        assert b"credentials" not in body
    # A build view made of links into the cache is served.
    assert request(server, "/media/cached.bin")[1] == b"cached bytes"


def test_subtitles_are_webvtt_with_speaker_names(site):
    server, _, _ = site
    url = json.loads(request(server, "/api/state")[1])["film"]["subtitles"]
    resp, body = request(server, url)
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/vtt")
    assert body.decode() == ("WEBVTT\n\n1\n00:00:00.200 --> 00:00:01.500\n<v Mara>One night, one ship will.\n\n"
                             "2\n00:00:01.700 --> 00:00:02.400\n<v Theo>Will it?\n")
    assert request(server, "/subtitles.vtt?cut=../storybuild.yaml")[0].status == 404


def read_event(resp) -> dict:
    """The next `state` event of an SSE stream, skipping comments and retry lines."""
    fields: dict[str, str] = {}
    while True:
        line = resp.fp.readline().decode()
        assert line, "stream closed"
        line = line.rstrip("\n")
        if not line:
            if fields.get("event") == "state":
                return {"id": int(fields["id"]), **json.loads(fields["data"])}
            fields = {}
        elif not line.startswith(":") and ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.lstrip(" ")


def test_events_stream_pushes_each_change(site):
    server, state, _ = site
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "/events")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
    first = read_event(resp)
    assert first["phase"] == "starting" and first["id"] == state.version

    state.rebuild_started("full", ["storybuild.yaml"])
    state.on_event({"event": "started", "action": "shot/s1"})
    state.on_event({"event": "progress", "action": "shot/s1", "fraction": 0.5, "message": "frame 12/24"})
    pushed = read_event(resp)
    while pushed["scenes"][0]["shots"][0]["status"].get("progress") != 0.5:
        pushed = read_event(resp)  # pushes may coalesce; the latest one carries the progress
    status = pushed["scenes"][0]["shots"][0]["status"]
    assert status["state"] == "running" and status["message"] == "frame 12/24"
    assert pushed["phase"] == "building" and pushed["running"][0]["action"] == "shot/s1"

    state.on_event({"event": "failed", "action": "shot/s1", "error": "mouth set 'x' missing"})
    state.rebuild_finished("failed", 1.5)
    pushed = read_event(resp)
    while pushed["phase"] != "idle":
        pushed = read_event(resp)
    status = pushed["scenes"][0]["shots"][0]["status"]
    assert status == {"state": "failed", "action": "shot/s1", "error": "mouth set 'x' missing",
                      "loc": "storybuild.yaml:9:9", "line": None, "quality": "full"}
    assert pushed["rebuilds"][0]["outcome"] == "failed" and pushed["rebuilds"][0]["failed"] == ["shot/s1"]
    conn.close()


# --------------------------------------------------------------------------- page data


class PlainUrls:
    def media(self, rel):
        return rel

    def subtitles(self, cut_rel, cut, names):
        return cut_rel + ".vtt"


def test_statuses_from_events(tmp_path):
    build = tmp_path / "build"
    write_build(build)
    state = LiveState()
    state.set_manifest(describe_manifest(make_manifest(tmp_path)))
    state.rebuild_started("full", [])
    state.on_event({"event": "finished", "action": "shot/s1", "seconds": 2.0})
    state.rebuild_started("full", ["storybuild.yaml"])  # a new pass forgets the last one's statuses
    state.on_event({"event": "plan", "total": 4, "cached": 7})
    state.on_event({"event": "failed", "action": "speech/s1/1", "error": "espeak: unknown voice",
                    "loc": None})
    state.on_event({"event": "skipped", "action": "visemes/s1/1", "because": "speech/s1/1"})
    state.on_event({"event": "cached", "action": "shot/s2"})
    state.on_event({"event": "cached", "action": "mix/harbour"})
    state.on_event({"event": "finished", "action": "scene/harbour", "seconds": 0.8})
    data = page_data(state.snapshot(), build, PlainUrls())
    s1, s2 = data["scenes"][0]["shots"]
    # A failed line points at the line in the manifest, not just the shot.
    assert s1["status"]["state"] == "failed" and s1["status"]["loc"] == "storybuild.yaml:13:11"
    assert s1["status"]["error"] == "espeak: unknown voice"
    assert s2["status"] == {"state": "cached", "quality": "full"}
    assert data["scenes"][0]["status"] == {"state": "built", "seconds": 0.8, "quality": "full"}
    assert data["rebuilds"][0]["timings"] == {"scene/harbour": 0.8}
    assert (data["rebuilds"][0]["total"], data["rebuilds"][0]["up_to_date"]) == (4, 7)
    state.on_event({"event": "failed", "action": "speech/s1/1", "error": "x"})  # only the skip is left
    snap = state.snapshot()
    snap["actions"] = {k: v for k, v in snap["actions"].items() if k != "speech/s1/1"}
    skipped = page_data(snap, build, PlainUrls())["scenes"][0]["shots"][0]["status"]
    assert skipped["state"] == "skipped" and skipped["error"] == "not built: speech/s1/1 failed"
    assert skipped["loc"] == "storybuild.yaml:13:11"


def test_planned_actions_show_as_queued_until_they_run(tmp_path):
    build = tmp_path / "build"
    write_build(build)
    state = LiveState()
    state.set_manifest(describe_manifest(make_manifest(tmp_path)))
    state.rebuild_started("full", ["storybuild.yaml"])
    state.on_event({"event": "plan", "total": 3, "cached": 0, "steps": ["shot/s1", "shot/s2", "scene/harbour"]})
    state.on_event({"event": "started", "action": "shot/s1"})

    def statuses():
        data = page_data(state.snapshot(), build, PlainUrls())
        return [s["status"]["state"] for s in data["scenes"][0]["shots"]], data["scenes"][0]["status"]["state"]

    assert statuses() == (["running", "queued"], "queued")
    state.on_event({"event": "finished", "action": "shot/s1", "seconds": 1.0})
    state.on_event({"event": "cached", "action": "shot/s2"})
    assert statuses() == (["built", "cached"], "queued")
    state.rebuild_finished("cancelled", 2.0)  # what never started was stopped with the pass
    assert statuses() == (["built", "cached"], "cancelled")


def test_newest_quality_wins_and_preview_statuses(tmp_path):
    build = tmp_path / "build"
    write_build(build)
    time.sleep(0.01)
    write_build(build, "preview/", film=b"preview film")
    state = LiveState()
    state.set_manifest(describe_manifest(make_manifest(tmp_path)))
    state.rebuild_started("preview", ["storybuild.yaml"])
    state.on_event({"event": "finished", "action": "preview/shot/s1", "seconds": 0.2})
    state.on_event({"event": "cached", "action": "shot/s1"})
    data = page_data(state.snapshot(), build, PlainUrls())
    assert data["film"]["url"] == "preview/film.mp4" and data["film"]["quality"] == "preview"
    assert data["film"]["subtitles"] == "preview/film.json.vtt"
    s1 = data["scenes"][0]["shots"][0]
    assert s1["thumb"] == "preview/shots/s1.png"
    assert s1["status"] == {"state": "built", "seconds": 0.2, "quality": "preview"}
    # The next preview pass: what the full pass did before is history, not s1's state now.
    state.rebuild_started("full", [])
    state.on_event({"event": "finished", "action": "shot/s2", "seconds": 0.5})
    state.rebuild_started("preview", ["storybuild.yaml"])
    s1, s2 = page_data(state.snapshot(), build, PlainUrls())["scenes"][0]["shots"]
    assert s1["status"] == {"state": "cached"} and s2["status"] == {"state": "cached"}
    # When the full-quality film lands later, it takes over.
    time.sleep(0.01)
    (build / "film.mp4").write_bytes(b"full film")
    assert page_data(state.snapshot(), build, PlainUrls())["film"]["url"] == "film.mp4"


def test_diagnostics_keep_the_last_film(tmp_path):
    build = tmp_path / "build"
    write_build(build)
    state = LiveState()
    state.set_manifest(describe_manifest(make_manifest(tmp_path)))
    state.set_diagnostics([Diagnostic("unknown character 'marra'", SourceLoc("storybuild.yaml", 12, 22), "did you mean 'mara'?")])
    data = page_data(state.snapshot(), build, PlainUrls())
    assert data["phase"] == "error" and data["film"]["url"] == "film.mp4"
    assert data["diagnostics"] == [{"severity": "error", "code": "invalid", "message": "unknown character 'marra'",
                                    "file": "storybuild.yaml", "line": 12, "col": 22, "hint": "did you mean 'mara'?"}]


def test_waveform_follows_the_sound(tmp_path):
    wav = tmp_path / "a.wav"
    t = np.linspace(0, 2, 16000, endpoint=False)
    sf.write(wav, (0.8 * np.sin(2 * np.pi * 100 * t) * (t < 1)).astype(np.float32), 8000)
    w = media.waveform(wav, points=100, height=40)
    assert w["duration"] == pytest.approx(2.0)
    ys = [float(p.split(",")[1]) for p in re.findall(r"[\d.]+,[\d.]+", w["path"])]
    top = ys[:100]
    assert max(top[:50]) - min(top[:50]) < 1 and min(top[:50]) <= 1.5  # loud first second reaches the top
    assert all(abs(y - 19.5) < 0.01 for y in top[50:])  # silence is a hairline
    assert media.waveform(tmp_path / "missing.wav") is None
    (tmp_path / "junk.wav").write_bytes(b"not a wav")
    assert media.waveform(tmp_path / "junk.wav") is None


def test_page_embeds_untrusted_text_safely(tmp_path):
    hostile = "</script><script>alert(1)</script>"
    data = page_data({"manifest": describe_manifest(make_manifest(tmp_path, title=hostile))}, tmp_path / "build", PlainUrls())
    page = render_page(data, live=True)
    assert page.count("</script>") == 2  # the data block's and the page script's, nothing injected
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in page  # the <title> is escaped
    assert json.loads(embed_json({"t": hostile, "u": "\u2028"})) == {"t": hostile, "u": "\u2028"}


# --------------------------------------------------------------------------- the report


def test_report_is_static_with_relative_media(tmp_path):
    build = tmp_path / "build"
    write_build(build)
    index = write_report(make_manifest(tmp_path), build,
                         actions={"shot/s2": {"state": "failed", "error": "boom", "loc": "storybuild.yaml:15:9"}},
                         rebuilds=[{"number": 1, "quality": "full", "changed": [], "started": 0, "seconds": 3.5,
                                    "ran": ["film"], "cached": 9, "failed": [], "outcome": "ok", "timings": {"film": 3.1}}])
    assert index == build / "report" / "index.html"
    html = index.read_text()
    data = json.loads(re.search(r'id="initial-data">(.*?)</script>', html, re.S).group(1))
    assert 'data-mode="static"' in html
    referenced = [data["film"]["url"], data["film"]["subtitles"], data["scenes"][0]["audio"]] + \
        [s["thumb"] for s in data["scenes"][0]["shots"]]
    for url in referenced:
        assert not url.startswith(("/", "http")) and "?" not in url
        assert (index.parent / url).is_file(), url
    assert (index.parent / "media" / "film.mp4").read_bytes() == FILM
    assert (index.parent / "media" / "film.vtt").read_text().startswith("WEBVTT")
    assert data["scenes"][0]["shots"][1]["status"]["error"] == "boom"
    # Written again after a rebuild: replaced whole, nothing stale left behind.
    (build / "film.mp4").write_bytes(b"new cut")
    (build / "shots" / "s2.png").unlink()
    write_report(make_manifest(tmp_path), build)
    assert (index.parent / "media" / "film.mp4").read_bytes() == b"new cut"
    assert not (index.parent / "media" / "shots" / "s2.png").exists()
    assert [p.name for p in build.iterdir() if p.name.startswith(".report")] == []


def test_an_action_kind_the_page_has_never_heard_of_shows_under_its_shot(tmp_path):
    # A backend may add kinds of its own (upscale/<shot>, a take of a keyframe): the page
    # reads the owner from the id (storybuild.actionids), not from a list of kinds.
    build = tmp_path / "build"
    write_build(build)
    state = LiveState()
    state.set_manifest(describe_manifest(make_manifest(tmp_path)))
    state.rebuild_started("full", ["storybuild.yaml"])
    state.on_event({"event": "failed", "action": "upscale/s2", "error": "out of memory", "loc": None})
    state.on_event({"event": "started", "action": "keyframe/s1/take2"})
    s1, s2 = page_data(state.snapshot(), build, PlainUrls())["scenes"][0]["shots"]
    assert s1["status"]["state"] == "running" and s1["status"]["action"] == "keyframe/s1/take2"
    assert s2["status"]["state"] == "failed" and s2["status"]["error"] == "out of memory"
