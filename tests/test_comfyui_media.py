"""What a workflow returns → the files an action promises (fixed encoder settings)."""

from __future__ import annotations

import pytest
from PIL import Image

from storybuild.backends.comfyui.jobrunner import Fetched
from storybuild.backends.comfyui.mediafiles import write_clip, write_keyframe
from storybuild.backends.shared.ffmpeg import count_frames, probe
from storybuild.errors import BackendError


def frames(tmp_path, count, size=(33, 21), mode="RGB"):
    paths = []
    for index in range(count):
        path = tmp_path / f"f{index:03d}.png"
        Image.new(mode, size, (20 * index, 100, 150) + ((255 - 40 * index,) if mode == "RGBA" else ())).save(path)
        paths.append(path)
    return paths


def test_an_animated_gif_becomes_an_even_sized_clip_at_its_own_rate(tmp_path):
    pictures = [Image.new("RGB", (33, 21), (30 * k, 0, 0)) for k in range(5)]
    gif = tmp_path / "anim.gif"
    pictures[0].save(gif, save_all=True, append_images=pictures[1:], duration=100, loop=0)  # GIF delays are centiseconds
    out = tmp_path / "clip.mp4"
    write_clip(Fetched(files=[(gif, "image", "9")]), out, None, "test")
    info = probe(out)
    assert (info.width, info.height, info.fps) == (32, 20, 10.0) and count_frames(out) == 5


def test_frames_with_alpha_also_give_a_matte_and_the_same_bytes_twice(tmp_path):
    fetched = Fetched(files=[(p, "image", "7") for p in frames(tmp_path, 4, mode="RGBA")])
    first = write_clip(fetched, tmp_path / "clip.mp4", 12.0, "test", matte=tmp_path / "matte.mp4")
    assert set(first) == {"clip.mp4", "matte.mp4"} and count_frames(first["matte.mp4"]) == 4
    (tmp_path / "again").mkdir()
    second = write_clip(fetched, tmp_path / "again" / "clip.mp4", 12.0, "test")
    assert second["clip.mp4"].read_bytes() == first["clip.mp4"].read_bytes()  # deterministic encode


def test_opaque_frames_give_no_matte(tmp_path):
    fetched = Fetched(files=[(p, "image", "7") for p in frames(tmp_path, 2)])
    assert set(write_clip(fetched, tmp_path / "clip.mp4", 12.0, "t", matte=tmp_path / "m.mp4")) == {"clip.mp4"}


def test_outputs_of_the_wrong_kind_are_refused(tmp_path):
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF")
    with pytest.raises(BackendError, match="expected a video or frames, the workflow produced 1 audio file"):
        write_clip(Fetched(files=[(wav, "audio", "3")]), tmp_path / "clip.mp4", 12.0, "workflow 'x'")
    with pytest.raises(BackendError, match="expected an image, the workflow produced text only"):
        write_keyframe(Fetched(texts=["hello"]), tmp_path / "k.png", "workflow 'x'")
    Image.new("RGB", (40, 40)).save(tmp_path / "big.png")
    with pytest.raises(BackendError, match="frame sizes differ"):
        write_clip(Fetched(files=[(p, "image", "1") for p in [*frames(tmp_path, 1), tmp_path / "big.png"]]),
                   tmp_path / "c.mp4", 12.0, "t")
