"""Opens the console's template studio in headless Chromium (Debian's, driven
by Playwright) against a local server and prints what it saw as one JSON
object: the browser walk's own studio check (tests/tests/support/
console_browser.py, run here without Keycloak), and the same page with the
WebAssembly module blocked, where the service renders instead.

Usage: python studio_browser.py CONSOLE_URL SCREENSHOTS_DIR
"""

import json
import pathlib
import sys

from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "tests" / "support"))
import console_browser  # noqa: E402  (the walk's own check, one copy)

STUDIO = "/console/templates?tenant=acme&template=password-reset&locale=de"


def link_clicked(page) -> dict:
    """The email's button clicked in the preview: the frame stays the studio's."""
    preview = page.frame(name="preview")
    preview.click("a[href]")
    page.wait_for_timeout(500)
    return {"frame_url": preview.url}


def blocked(browser, console: str) -> dict:
    """The studio with the module's download refused."""
    page = browser.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.route("**/mailbridge_render.wasm", lambda route: route.abort())
    page.goto(console + STUDIO)
    page.wait_for_function("() => document.getElementById('subject').textContent.length > 0")
    return {
        "renderer": page.get_attribute("#renderer", "data-renderer"),
        "notice": page.inner_text("#renderer"),
        "subject": page.inner_text("#subject"),
        "server_renders": [u for u in requests if "/console/templates/render" in u],
    }


def main() -> None:
    console, shots = sys.argv[1], pathlib.Path(sys.argv[2])
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        seen = {"studio": console_browser.studio(page, console, shots)}
        seen["link_clicked"] = link_clicked(page)
        seen["blocked"] = blocked(browser, console)
        browser.close()
    sys.stdout.write(json.dumps(seen) + "\n")


if __name__ == "__main__":
    main()
