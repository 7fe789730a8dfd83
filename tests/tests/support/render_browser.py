"""Renders one request per stdin line with render/wasm/render.js in headless
Chromium (Debian's, driven by Playwright) and prints one answer per line, as
`render --lines` of the jar does. A render that throws (a trap in the module)
answers {"thrown": the error's name, "message": …}, and the next line renders on.

Usage: python render_browser.py REPO_ROOT TEMPLATES_DIR < requests
The page loads render.js and target/wasm/mailbridge_render.wasm over HTTP from
REPO_ROOT, as the console's page would from the service.
"""

import functools
import http.server
import json
import pathlib
import sys
import threading

from playwright.sync_api import sync_playwright

RENDER_ALL = """async ([templates, lines]) => {
  const { Renderer } = await import("/render/wasm/render.js");
  const renderer = await Renderer.load("/target/wasm/mailbridge_render.wasm", templates);
  return lines.map((line) => {
    try {
      return renderer.renderJson(line);
    } catch (error) {
      return JSON.stringify({ thrown: error.name, message: error.message });
    }
  });
}"""


def templates_of(directory: pathlib.Path) -> dict:
    return {
        path.relative_to(directory).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.suffix in (".j2", ".ftl", ".json")
    }


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main() -> None:
    root, directory = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    lines = [line for line in sys.stdin.read().split("\n") if line.strip()]
    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/render/wasm/")
            answers = page.evaluate(RENDER_ALL, [templates_of(directory), lines])
            browser.close()
    finally:
        server.shutdown()
    sys.stdout.write("\n".join(answers) + "\n")


if __name__ == "__main__":
    main()
