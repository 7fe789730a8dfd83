"""Drives the console in headless Chromium (Debian's, through Playwright) and
prints what it saw as one JSON object; the Rust test compares it with the API.

Usage: python console_browser.py < plan.json
The plan names the console's base URL, two Keycloak users (an admin and a
`tenant:acme` viewer), the ids of messages to look at, and where to save
screenshots.
"""

import json
import pathlib
import sys

from playwright.sync_api import sync_playwright


def sign_in(page, console: str, user: dict) -> None:
    """From the console to Keycloak's login form and back, signed in."""
    page.goto(f"{console}/console/")
    page.fill("input[name=username]", user["username"])
    page.fill("input[name=password]", user["password"])
    page.click("[type=submit]")
    page.wait_for_url(f"{console}/console/")


def fits(page, width: int) -> bool:
    """No horizontal scroll: nothing wider than the viewport."""
    return page.evaluate("() => document.documentElement.scrollWidth") <= width


def attempts(page) -> int:
    return page.locator("li[data-entry=attempt]").count()


# Keeps what the studio posts to its preview frame (the frame's shell shows it),
# in every frame of the page: the test compares it with /v1/render byte for byte.
KEEP_PREVIEW = """window.addEventListener("message", (event) => {
  if (event.data && typeof event.data.html === "string") { window.__preview = event.data.html; }
});"""

# Requests that would mean the server rendered instead of the page.
SERVER_RENDERS = ("/v1/render", "/console/templates/render", "/console/templates/preview")


def studio(page, console: str, shots: pathlib.Path) -> dict:
    """The studio renders password-reset in German for acme on its own, in the
    page with the WebAssembly renderer: what the frame was given, the subject
    and the text shown beside it, and every request made meanwhile (no render
    may go to the server, neither on load nor while editing)."""
    seen, requests = {}, []
    page.add_init_script(KEEP_PREVIEW)
    def keep(request):
        requests.append(request.url)
    page.on("request", keep)
    url = f"{console}/console/templates?tenant=acme&template=password-reset&locale=de"
    page.goto(url)
    seen["renderer"] = page.get_attribute("#renderer", "data-renderer")
    page.wait_for_function("() => document.getElementById('subject').textContent.length > 0")
    preview = page.frame(name="preview")
    # Polled by time: an offscreen frame of another origin gets no animation frames.
    preview.wait_for_function("() => typeof window.__preview === 'string'", polling=100)
    seen["html"] = preview.evaluate("() => window.__preview")
    seen["subject"] = page.inner_text("#subject")
    seen["text"] = page.eval_on_selector("#text", "e => e.textContent")
    seen["data"] = page.input_value("textarea[name=data]")
    page.fill("textarea[name=data]", "{ not json")
    seen["invalid_data"] = page.get_attribute("textarea[name=data]", "aria-invalid")
    edited = json.loads(seen["data"])
    edited["realmName"] = "Edited Realm"
    page.fill("textarea[name=data]", json.dumps(edited))
    preview.wait_for_function("() => window.__preview.includes('Edited Realm')", polling=100)
    seen["edited_subject"] = page.inner_text("#subject")
    # Data without the link: the page lists it as missing (the renderer in the page says so).
    del edited["link"]
    page.fill("textarea[name=data]", json.dumps(edited))
    page.wait_for_function("() => document.getElementById('missing-variables').textContent.includes('link')")
    seen["missing_variables"] = page.eval_on_selector_all("#missing-variables code", "c => c.map(e => e.textContent)")
    page.fill("textarea[name=data]", seen["data"])
    # The frame shows the sample again before the picture is taken.
    preview.wait_for_function("(html) => window.__preview === html", arg=seen["html"], polling=100)
    # An offscreen frame of another origin is painted only once it is in view.
    page.locator("#preview").scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "templates.png"), full_page=True)
    seen["server_renders"] = [u for u in requests if any(p in u for p in SERVER_RENDERS)]
    # The browser's own record agrees (resource timing of the page).
    seen["server_renders"] += page.evaluate(
        "(paths) => performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => paths.some(p => n.includes(p)))",
        list(SERVER_RENDERS),
    )
    page.remove_listener("request", keep)
    return seen


def admin_walk(browser, plan: dict, shots: pathlib.Path) -> dict:
    console, seen = plan["console"], {}
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, console, plan["admin"])
    seen["signed_in_as"] = page.inner_text(".who")
    tiles = {}
    for status in ["queued", "sending", "retrying", "sent", "failed"]:
        tiles[status] = int(page.inner_text(f"#figures dd[data-status={status}]"))
    seen["overview"] = tiles
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    page.goto(f"{console}/console/messages?to={plan['recipient']}")
    seen["by_recipient"] = page.eval_on_selector_all(
        "tr[data-message-id]", "rows => rows.map(r => r.dataset.messageId)"
    )
    page.screenshot(path=str(shots / "messages.png"), full_page=True)

    failed = plan["retry"]
    page.goto(f"{console}/console/messages/{failed}")
    seen["attempts_before"] = attempts(page)
    seen["shows_delete"] = page.locator("button[name=delete]").count() == 1
    page.screenshot(path=str(shots / "message.png"), full_page=True)
    # Without the session's token, the same form changes nothing.
    forged = page.request.post(
        f"{console}/console/messages/{failed}", form={"retry": "1"}, max_redirects=0
    )
    seen["post_without_csrf"] = forged.status
    page.click("button[name=retry]")
    page.wait_for_url(f"{console}/console/messages/{failed}")
    for _ in range(100):
        if attempts(page) > seen["attempts_before"] and page.locator(".now .status-failed").count():
            break
        page.wait_for_timeout(150)
        page.reload()
    seen["attempts_after"] = attempts(page)

    seen["studio"] = studio(page, console, shots)
    page.goto(f"{console}/console/transports")
    seen["transport_failures"] = page.inner_text("tr[data-transport=default] [data-figure=consecutive-failures]")
    page.screenshot(path=str(shots / "transports.png"), full_page=True)

    phone = browser.new_page(viewport={"width": 375, "height": 800})
    phone.context.add_cookies(page.context.cookies())
    seen["phone_fits"] = {}
    for name, path in [("overview", "/console/"), ("messages", "/console/messages"),
                       ("message", f"/console/messages/{failed}"),
                       ("templates", "/console/templates?template=password-reset"),
                       ("transports", "/console/transports")]:
        phone.goto(f"{console}{path}")
        seen["phone_fits"][name] = fits(phone, 375)
        phone.screenshot(path=str(shots / f"phone-{name}.png"), full_page=True)

    # Signed out here and at Keycloak: back at Keycloak's login form.
    page.click(".signout button")
    try:
        page.wait_for_selector("input[name=username]", timeout=15000)
    except Exception:
        sys.stderr.write(f"after sign-out at {page.url}:\n{page.content()[:3000]}\n")
        raise
    seen["after_sign_out"] = page.url
    page.goto(f"{console}/console/messages")
    seen["after_sign_out_messages"] = page.url
    return seen


def tenant_walk(browser, plan: dict) -> dict:
    console, seen = plan["console"], {}
    page = browser.new_page()
    sign_in(page, console, plan["viewer"])
    seen["rows"] = page.goto(f"{console}/console/messages") and page.eval_on_selector_all(
        "tr[data-message-id]", "rows => rows.map(r => r.dataset.messageId)"
    )
    seen["shows_bulk_retry"] = page.locator("button[name=bulk_retry]").count() > 0
    other = plan["other_tenant"]
    seen["other_tenant_page"] = page.goto(f"{console}/console/messages/{other}").status
    seen["other_tenant_filter"] = page.goto(f"{console}/console/messages?tenant=globex").status
    own = plan["own_tenant"]
    page.goto(f"{console}/console/messages/{own}")
    seen["own_shows_retry"] = page.locator("button[name=retry]").count() > 0
    token = page.get_attribute("input[name=csrf]", "value")
    posts = {}
    for target in [own, other]:
        for action in ["retry", "delete"]:
            answer = page.request.post(
                f"{console}/console/messages/{target}",
                form={"csrf": token, action: "1"},
                max_redirects=0,
            )
            posts[f"{action} {target}"] = answer.status
    bulk = page.request.post(
        f"{console}/console/messages/retry",
        form={"csrf": token, "tenant": "globex"},
        max_redirects=0,
    )
    posts["bulk globex"] = bulk.status
    seen["forged_posts"] = posts
    return seen


def main() -> None:
    plan = json.load(sys.stdin)
    shots = pathlib.Path(plan["screenshots"])
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        seen = {"admin": admin_walk(browser, plan, shots), "tenant": tenant_walk(browser, plan)}
        browser.close()
    sys.stdout.write(json.dumps(seen) + "\n")


if __name__ == "__main__":
    main()
