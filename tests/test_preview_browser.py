"""The live preview in a real browser: Debian's headless Chromium, driven by Playwright.

`storybuild watch` runs on a tiny project; the page must show the shots and a playable
film, and after the test edits the manifest it must update by itself (no reload).
"""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install chromium; .ci/run does this)")


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")
    with sync_api.sync_playwright() as p:
        # Playwright's own browser downloads are never used: the system Chromium is.
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def test_page_shows_the_film_and_updates_itself(tmp_path, browser):
    from watchproject import WatchProcess, set_line, write_project

    manifest = write_project(tmp_path, "Hello there.")
    watch = WatchProcess(tmp_path)
    try:
        watch.wait_for_rebuild(1, timeout=300)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(watch.url)

        # The shots, with thumbnails and dialogue, and a film the player can load.
        page.wait_for_selector('.shot[data-shot="one"] img', timeout=10_000)
        page.wait_for_selector('.shot[data-shot="two"] img', timeout=10_000)
        assert "Hello there." in page.inner_text('.shot[data-shot="one"]')
        page.wait_for_function("document.getElementById('film').readyState >= 1", timeout=20_000)
        assert page.evaluate("document.getElementById('film').duration") > 0.5
        page.wait_for_function("document.querySelector('#connection').textContent === 'live'", timeout=10_000)
        film_src = page.evaluate("document.getElementById('film').dataset.src")
        thumb_two = page.get_attribute('.shot[data-shot="two"] img', "src")
        page.evaluate("window.__sameDocument = true")  # gone if the page reloaded

        set_line(manifest, "Hello there.", "Good evening, Ben.")

        page.wait_for_function(
            "document.querySelector('.shot[data-shot=\"one\"]').innerText.includes('Good evening, Ben.')",
            timeout=60_000)
        page.wait_for_function(f"document.getElementById('film').dataset.src !== {film_src!r}", timeout=120_000)
        page.wait_for_function("document.body.dataset.phase === 'idle'", timeout=120_000)
        page.wait_for_function("document.getElementById('film').readyState >= 1", timeout=20_000)
        assert page.evaluate("window.__sameDocument === true")
        assert page.get_attribute('.shot[data-shot="two"] img', "src") == thumb_two  # untouched shot, same image
        assert page.get_attribute('.shot[data-shot="one"]', "data-state") == "built"
        assert page.get_attribute('.shot[data-shot="two"]', "data-state") == "cached"
        assert page.locator("tr.rebuild").count() >= 2  # the timings list the new pass
        assert errors == []
    finally:
        watch.stop()
