"""Accessibility and screenshots, in Debian's Chromium through Playwright.

axe-core (from the npm registry, vendored under tests/vendor for the tests
only; it is never served) runs on every page in every language, including
the form showing its errors and the form offering its choice after a failed
encrypted send, the thank-you page with its receipt, and every follow-up
page (the receipt form, with a malformed receipt, a wrong one, a mailbox
with a reply, sending, confirming a deletion, an expired page), and fails on
serious or critical violations. The same run renders the safety page, the
form, the thank-you page (with a receipt) and a mailbox in each language at
phone and desktop widths into docs/screenshots/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_support import AXE, fill_report, minimal_answers, serious_violations
from conftest import require_tool
from followup_support import csrf_of
from helpers import Deployment, gunicorn, receipt_from, server_env, submit

from intake.web.i18n import LANGUAGES

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
WIDTHS = {"phone": (360, 780), "desktop": (1280, 900)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("a11y")
    deployment = Deployment(tmp / "keys").setup(recipients=2)
    (tmp / "tmp").mkdir()
    with gunicorn(server_env(tmp / "var", deployment, tmp / "tmp"), tmp / "logs") as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    chromium = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        yield browser
        browser.close()


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_axe_finds_no_serious_violation_on_any_page(server, browser, lang):
    # bypass_csp lets the test inject axe; the pages themselves run under the real CSP.
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    problems = {}
    for path in (f"/{lang}/", f"/{lang}/report", f"/{lang}/thanks", f"/{lang}/no-such-page"):
        page.goto(server + path)
        problems[path] = serious_violations(page)
    # The form as the server shows it after errors (the browser path is blocked so the
    # form posts the standard way). Each routed scenario has a page of its own that is
    # closed, never unrouted: changing the interception patterns while the encryption
    # worker lives can leave Playwright waiting on Chromium for ever.
    errors = context.new_page()
    errors.route("**/static/js/report.js", lambda route: route.abort())
    errors.goto(f"{server}/{lang}/report")
    errors.click("button[type=submit]")
    errors.wait_for_selector("#error-summary")
    problems["form with errors"] = serious_violations(errors)
    errors.close()
    # The choice the page offers when the encrypted path fails after "send" (here the
    # API answers 503 busy; tests/test_browser.py makes a real server busy).
    busy = context.new_page()
    busy.route("**/api/v1/uploads", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body='{"error": "busy", "message": "The intake is busy; try again in a few minutes."}'))
    busy.goto(f"{server}/{lang}/report")
    fill_report(busy, minimal_answers("axe"))
    busy.click("button[type=submit]")
    busy.wait_for_selector("#js-choice", state="visible")
    problems["form offering a choice"] = serious_violations(busy)
    busy.close()
    problems.update(follow_up_violations(server, page, lang))
    context.close()
    assert {k: v for k, v in problems.items() if v} == {}


def post_form(page, action: str, fields: dict[str, str]) -> None:
    """Navigate as a form post would (the receipt never goes in a URL)."""
    page.evaluate("""([action, fields]) => {
        const form = document.createElement("form");
        form.method = "post";
        form.action = action;
        for (const [name, value] of Object.entries(fields)) {
            const input = document.createElement("input");
            input.type = "hidden"; input.name = name; input.value = value;
            form.appendChild(input);
        }
        const button = document.createElement("button");
        button.type = "submit"; button.id = "test-post"; button.textContent = "post";
        form.appendChild(button);
        document.body.appendChild(form);
    }""", [action, fields])
    with page.expect_navigation():
        page.click("#test-post")


def follow_up_violations(server: str, page, lang: str) -> dict[str, list[str]]:
    """axe on each follow-up page, reached the way a source reaches it."""
    problems = {}
    receipt = receipt_from(submit(server, lang=lang).text)
    page.goto(f"{server}/{lang}/follow-up")
    problems["follow-up"] = serious_violations(page)
    token = csrf_of(page.content())
    post_form(page, f"{server}/{lang}/thanks", {"csrf_token": token, "receipt": receipt})
    problems["thanks with its receipt"] = serious_violations(page)
    for label, typed in (("a malformed receipt", "12 34"), ("a wrong receipt", "1" * 20),
                         ("a mailbox", receipt)):
        page.goto(f"{server}/{lang}/follow-up")
        page.fill("#receipt-input", typed)
        page.click("#receipt-form button[type=submit]")
        page.wait_for_load_state()
        problems[label] = serious_violations(page)
    page.click("#delete-mailbox")
    page.wait_for_selector("#confirm-delete")
    problems["confirming a deletion"] = serious_violations(page)
    post_form(page, f"{server}/{lang}/follow-up/send",
              {"csrf_token": token, "mailbox": "A" * 60, "message": "x"})
    problems["an expired mailbox page"] = serious_violations(page)
    page.goto(f"{server}/{lang}/follow-up/sent")
    problems["sent"] = serious_violations(page)
    return problems


#: The receipt the screenshots show: an example, never a real one.
EXAMPLE_RECEIPT = "40271985361274058816"


def test_screenshots_of_every_language_at_phone_and_desktop_widths(server, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    made = []
    for lang in LANGUAGES:
        receipt = receipt_from(submit(server, lang=lang).text)
        for name, (width, height) in WIDTHS.items():
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            for label, path in (("safety", "/"), ("form", "/report"), ("thanks", None),
                                ("mailbox", None)):
                if path is not None:
                    page.goto(f"{server}/{lang}{path}")
                elif label == "thanks":
                    page.goto(f"{server}/{lang}/follow-up")
                    post_form(page, f"{server}/{lang}/thanks",
                              {"csrf_token": csrf_of(page.content()), "receipt": EXAMPLE_RECEIPT})
                else:
                    page.goto(f"{server}/{lang}/follow-up")
                    page.fill("#receipt-input", receipt)
                    page.click("#receipt-form button[type=submit]")
                    page.wait_for_selector("#statuses")
                target = SHOTS / f"{lang}-{label}-{name}.png"
                page.screenshot(path=str(target), full_page=label != "form")
                made.append(target)
            context.close()
    assert all(p.stat().st_size > 1000 for p in made)
    assert len(made) == len(LANGUAGES) * len(WIDTHS) * 4


def test_nothing_scrolls_sideways_at_320_px_or_at_200_percent_zoom(server, browser):
    for viewport, scale in (({"width": 320, "height": 640}, 1), ({"width": 640, "height": 800}, 2)):
        context = browser.new_context(viewport=viewport, device_scale_factor=scale)
        page = context.new_page()
        for lang in ("ar", "en"):
            page.goto(f"{server}/{lang}/report")
            if scale == 2:
                page.evaluate("document.body.style.zoom = '200%'")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, (lang, viewport, scale, overflow)
        context.close()


def test_quick_exit_leaves_at_once_and_sits_top_left_in_rtl(server, browser):
    context = browser.new_context()
    page = context.new_page()
    page.route("https://www.wikipedia.org/**", lambda route: route.fulfill(body="neutral"))
    page.goto(f"{server}/ar/report")
    box = page.locator("#quick-exit").bounding_box()
    assert box["x"] < 200 and box["y"] < 60  # top-left in right-to-left
    page.goto(f"{server}/en/report")
    box = page.locator("#quick-exit").bounding_box()
    assert box["x"] > page.viewport_size["width"] - 300  # top-right in left-to-right
    page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    page.wait_for_url("https://www.wikipedia.org/**")
    assert page.evaluate("history.length") >= 1
    page.go_back()
    assert "/en/report" not in page.url  # replace(): Back does not return to the intake
    context.close()


def test_the_vendored_axe_is_never_served(server):
    import requests

    assert requests.get(f"{server}/static/{AXE.name}", timeout=10).status_code == 404
