"""Open a self-contained HTML file in a real headless Chromium (Debian's package) and
report what a reader's browser would see: console errors, images that did not load,
requests that tried to leave the file, clipped boxes when printed, and a screenshot."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: Debian's chromium; CI installs it (.ci/run), elsewhere the browser tests skip
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: flags for a headless root run on a machine with no network
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


@dataclass
class PageCheck:
    """What the browser saw."""

    console_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    clipped_when_printed: list[str] = field(default_factory=list)
    text: str = ""


def chromium_or_skip():
    """The playwright module, or skip the test with the reason."""
    if not Path(CHROMIUM).is_file():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium); .ci/run installs it")
    return pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra: pip install -e '.[test]'")


def open_page(html: Path, screenshot: Path) -> PageCheck:
    """Load ``html`` from disk, wait for it, check it and write ``screenshot``."""
    api = chromium_or_skip()
    seen = PageCheck()
    url = html.resolve().as_uri()
    with api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: seen.console_errors.append(str(e)))

            def route(r):  # the file itself and data: URIs only; anything else is recorded and blocked
                if r.request.url == url or r.request.url.startswith("data:"):
                    return r.continue_()
                seen.outside_requests.append(r.request.url)
                return r.abort()

            page.route("**/*", route)
            page.goto(url, wait_until="load")
            seen.images = page.evaluate("document.images.length")
            seen.broken_images = page.evaluate(
                "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)")
            seen.text = page.inner_text("body")
            page.screenshot(path=str(screenshot), full_page=False)
            page.emulate_media(media="print")
            seen.clipped_when_printed = page.evaluate(
                "Array.from(document.querySelectorAll('.scroll, table, figure')).filter(e => "
                "e.scrollHeight > e.clientHeight + 2 && getComputedStyle(e).overflowY !== 'visible')"
                ".map(e => e.className || e.tagName)")
        finally:
            browser.close()
    return seen
