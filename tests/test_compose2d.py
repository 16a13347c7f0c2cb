"""2D pictures: Unicode text, Ken Burns moves, title cards, captions, character cards."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from storybuild.backends.embedded.cards import CardStage
from storybuild.backends.embedded.compose2d import KenBurns, TitleCard, draw_caption, font, wrap_text
from storybuild.backends.embedded.mouths import MouthSet
from storybuild.errors import BackendError


def glyph(text: str) -> np.ndarray:
    return np.asarray(font(32).getmask(text), dtype=np.uint8)


def test_bundled_font_draws_beyond_ascii():
    missing = glyph("\ue000")  # a private-use code point: no glyph in any font we ship
    for text in ("é", "Ж", "Ω", "ß"):
        g = glyph(text)
        assert g.max() > 0
        assert g.shape != missing.shape or not np.array_equal(g, missing)
    assert not np.array_equal(glyph("é"), glyph("e"))


def test_wrap_keeps_lines_within_width_and_words_whole():
    text = "Then tonight the light matters most. Pip, full beam."
    lines = wrap_text(text, 20, 150)
    assert len(lines) > 1 and " ".join(lines) == text
    assert all(font(20).getlength(line) <= 150 for line in lines)
    long_word = wrap_text("x" * 80, 20, 100)
    assert "".join(long_word) == "x" * 80 and all(font(20).getlength(p) <= 100 for p in long_word)


def _still(tmp_path, size=(400, 300)):
    y, x = np.mgrid[0:size[1], 0:size[0]]
    img = np.stack([x * 255 // size[0], y * 255 // size[1], (x // 20 + y // 20) % 2 * 255], axis=2).astype(np.uint8)
    path = tmp_path / "still"
    Image.fromarray(img).save(path, format="PNG")
    return path


def test_ken_burns_zooms_and_drifts_smoothly(tmp_path):
    kb = KenBurns(_still(tmp_path), 160, 90, {"zoom_from": 1.0, "zoom_to": 2.0, "center_from": [0.5, 0.5],
                                              "center_to": [0.5, 0.5], "easing": "linear"})
    first, last = kb.frame(0.0), kb.frame(1.0)
    assert first.shape == (90, 160, 3)
    # Zoomed 2× on the centre: the last frame's middle column spans half the gradient.
    span = lambda f: int(f[45, -1, 0]) - int(f[45, 0, 0])  # noqa: E731
    assert span(last) == pytest.approx(span(first) / 2, abs=4)
    steps = [kb.frame(p) for p in np.linspace(0.40, 0.42, 5)]
    diffs = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(steps, steps[1:])]
    assert all(0 < d < 6 for d in diffs)  # moves every frame, never jumps


def test_ken_burns_stays_inside_the_image(tmp_path):
    kb = KenBurns(_still(tmp_path), 160, 90, {"zoom_from": 1.5, "zoom_to": 1.5, "center_from": [0.0, 0.0],
                                              "center_to": [1.0, 1.0]})
    assert kb.frame(0.0)[0, 0, 0] < 10 and kb.frame(1.0)[-1, -1, 0] > 240


def test_ken_burns_rejects_unreadable_images(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(BackendError, match="cannot read image"):
        KenBurns(bad, 160, 90)


def test_title_card_fades_in_centred_text():
    card = TitleCard("Der Leuchtturmwärter — 灯台守", 320, 180, "#202830", duration=4.0)
    start, middle = card.frame(0.0), card.frame(2.0)
    assert np.array_equal(start, card.background)
    ink = np.argwhere(np.abs(middle.astype(int) - card.background.astype(int)).max(axis=2) > 60)
    assert ink.size
    assert abs(ink[:, 1].mean() - 160) < 25 and abs(ink[:, 0].mean() - 90) < 25


def test_caption_goes_at_the_bottom_only():
    frame = np.full((180, 320, 3), 90, np.uint8)
    draw_caption(frame, "A storm? Tonight? — Ça va, Théo.")
    changed = np.argwhere((frame != 90).any(axis=2))
    assert changed.size and changed[:, 0].min() > 120
    untouched = np.full((180, 320, 3), 90, np.uint8)
    draw_caption(untouched, "   ")
    assert (untouched == 90).all()


CAST = [{"character": "theo", "name": "Theo", "color": "#3a6ee0", "position": [0.7, 0, 0]},
        {"character": "mara", "name": "Mara", "color": "#e8b820", "position": [-0.6, 0, 0]}]


def stage(seed=0):
    return CardStage(CAST, 320, 180, {"theo": MouthSet(), "mara": MouthSet()}, "day", None, None, seed)


def test_cards_stand_left_to_right_by_position():
    s = stage()
    assert s.pan("mara") < 0 < s.pan("theo") and s.pan("nobody") == 0.0


def test_card_mouth_moves_with_the_shape():
    s = stage()
    fig = s.figures["mara"]
    x, y = int(fig.mouth[0]), int(fig.mouth[1])
    region = (slice(y - 8, y + 8), slice(x - 12, x + 12))
    talking = s.frame(0.0, {"mara": "D"})[region]
    resting = s.frame(0.0, {})[region]
    closed = s.frame(0.0, {"mara": "A"})[region]
    assert np.abs(talking.astype(int) - resting.astype(int)).sum() > 500
    assert not np.array_equal(talking, closed)
    other = s.figures["theo"]
    ox, oy = int(other.mouth[0]), int(other.mouth[1])
    assert np.array_equal(s.frame(0.0, {"mara": "D"})[oy - 8:oy + 8, ox - 12:ox + 12],
                          s.frame(0.0, {})[oy - 8:oy + 8, ox - 12:ox + 12])


def test_cards_blink_deterministically():
    a, b = stage(seed=3), stage(seed=3)
    frames = [a.frame(t / 10, {}) for t in range(60)]
    assert all(np.array_equal(f, b.frame(t / 10, {})) for t, f in enumerate(frames))
    assert len({f.tobytes() for f in frames}) > 1  # someone blinked within six seconds
