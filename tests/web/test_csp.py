"""The Content-Security-Policy in the browser: the app runs under it, injected inline code does not, every
violation reaches the tests (the check of conftest's ``watch_policies`` that fails any web test can fail), and no
other site can frame the app."""

from __future__ import annotations

from playwright.sync_api import Route

from opencall.api.headers import content_security_policy

# What an XSS would try: an inline script, an inline handler, a style attribute, a <style> block, and eval from a
# script file of the server's own origin (served here by the route below).
INJECTED = """<script>window.__inlineRan = true;</script>
<img src="/static/icon.svg" alt="" onload="window.__handlerRan = true">
<p id="styled" style="color: rgb(255, 0, 0)">styled</p>
<style>#styled { background: rgb(0, 0, 255); }</style>
<script src="/static/injected.js"></script>
</body>"""
INJECTED_JS = "try { eval('window.__evalRan = true'); } catch (err) { window.__evalRan = false; }"


def inject(route: Route) -> None:
    """The server's real page and headers, with the injected markup before ``</body>``."""
    response = route.fetch()
    route.fulfill(response=response, body=response.text().replace("</body>", INJECTED))


def test_injected_inline_code_is_blocked_and_reported(open_tab) -> None:
    tab = open_tab("/")
    page = tab.page
    page.route(f"{tab.base_url}/", inject)
    page.route(f"{tab.base_url}/static/injected.js",
               lambda route: route.fulfill(body=INJECTED_JS, content_type="text/javascript"))
    response = page.goto(f"{tab.base_url}/")
    assert response is not None
    host = tab.base_url.split("://", 1)[1]
    assert response.header_value("content-security-policy") == content_security_policy("http", host)
    tab.call_id()  # the app itself still runs

    ran = tab.js("() => [window.__inlineRan, window.__handlerRan, window.__evalRan]")
    assert ran == [None, None, False], f"injected code ran: inline, handler, eval = {ran}"
    styled = page.locator("#styled")
    assert styled.evaluate("el => getComputedStyle(el).color") != "rgb(255, 0, 0)"
    assert styled.evaluate("el => getComputedStyle(el).backgroundColor") != "rgb(0, 0, 255)"

    caught = "\n".join(tab.violations)
    for directive in ("script-src-elem", "script-src-attr", "style-src-attr", "style-src-elem", "script-src"):
        assert f"CSP violation: {directive} blocked" in caught, f"no {directive} violation reported in {caught}"
    assert "blocked eval" in caught, caught
    tab.violations.clear()  # expected here; any other test fails on them at teardown


def test_no_other_site_can_frame_the_app(open_tab) -> None:
    tab = open_tab("/")
    page = tab.page
    framer = "http://framer.test/"  # answered by the route, never the network
    page.route(framer, lambda route: route.fulfill(
        body=f'<!doctype html><iframe id="app" src="{tab.base_url}/"></iframe>', content_type="text/html"))
    page.goto(framer, wait_until="load")  # the framer's load waits for its iframe's
    (child,) = page.main_frame.child_frames
    # Chromium puts its error page in a frame refused by frame-ancestors (and reports it in no console).
    assert child.url == "chrome-error://chromewebdata/", f"the app loaded inside another site's frame: {child.url}"
