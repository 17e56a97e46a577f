#!/usr/bin/env python3
"""A headless "browser" for the interop and conformance scripts (standard library only).

It opens an authorization URL and does what a person in a browser would: follows redirects,
keeps cookies, and submits the HTML forms it is shown (our consent page, an identity
provider's login page) with their hidden fields and the approving submit button, until the
browser is sent to the client's redirect URI. It relies on the standard structure of a form
(its `action` and `method`, its `<input>`s, the submit button's `name`/`value`), never on the
page's wording.

Only loopback URLs are ever fetched: anything else is an error, so a misconfigured run can
never reach another host.

Used as a module (`complete_login`) by the Python SDK client, and as a command by the shell
scripts:

    browser.py AUTHORIZATION_URL REDIRECT_PREFIX [--deliver]

prints the final redirect URL (the one starting with REDIRECT_PREFIX) on stdout. With
`--deliver` it also requests that URL, as a browser would, so that a client's local callback
server receives it.
"""

from __future__ import annotations

import html.parser
import http.cookiejar
import ipaddress
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# A login takes a handful of hops (authorize, consent, submit, identity provider, callback);
# more means a redirect loop.
MAX_STEPS = 20
TIMEOUT_SECONDS = 15
# Values of a submit button that approves (lower-case); a button whose value says the
# opposite is never pressed.
APPROVING = ("approve", "allow", "accept", "consent", "authorize", "continue", "sign in", "login")
REFUSING = ("deny", "cancel", "reject", "decline")


class BrowserError(Exception):
    """The login did not reach the redirect URI."""


def _require_loopback(url: str) -> None:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise BrowserError(f"refusing to leave loopback: {url}")


class _Forms(html.parser.HTMLParser):
    """Collects the forms of a page: action, method, fields and submit buttons."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._current: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: (value or "") for name, value in attrs}
        if tag == "form":
            self._current = {
                "action": a.get("action", ""),
                "method": a.get("method", "get").lower(),
                "fields": [],
                "buttons": [],
            }
            self.forms.append(self._current)
            return
        if self._current is None:
            return
        kind = a.get("type", "submit" if tag == "button" else "text").lower()
        if tag == "button" or (tag == "input" and kind in ("submit", "image")):
            if kind == "submit" or kind == "image":
                self._current["buttons"].append((a.get("name", ""), a.get("value", "")))
        elif tag == "input" and "name" in a:
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._current["fields"].append((a["name"], a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _pick_button(buttons: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The approving submit button: one whose value or name approves, else the first one that
    does not refuse. `None` when the form has no usable button (submitted without one)."""
    for name, value in buttons:
        if value.strip().lower() in APPROVING or name.strip().lower() in APPROVING:
            return (name, value)
    for name, value in buttons:
        if value.strip().lower() not in REFUSING and name.strip().lower() not in REFUSING:
            return (name, value)
    return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: D102 - we follow redirects ourselves
        return None


def _deliver(opener, url: str) -> None:
    """Requests the redirect URI, retrying briefly while the client's callback server is not
    listening yet (a client may print its URL before its server is up)."""
    _require_loopback(url)
    for attempt in range(50):
        try:
            with opener.open(url, timeout=TIMEOUT_SECONDS) as response:
                response.read()
            return
        except urllib.error.URLError as error:
            if attempt == 49 or not isinstance(error.reason, ConnectionRefusedError):
                raise BrowserError(f"cannot deliver the redirect to {url}: {error}") from error
            time.sleep(0.1)


def complete_login(url: str, redirect_prefix: str, deliver: bool = False, log=None) -> str:
    """Runs the browser part of a login from `url` until a redirect to `redirect_prefix`;
    returns that redirect URL. With `deliver`, also requests it (a local callback server)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(jar),
        _NoRedirect(),
        urllib.request.ProxyHandler({}),
    )
    say = log or (lambda message: None)
    method, body = "GET", None
    for _ in range(MAX_STEPS):
        if url.startswith(redirect_prefix):
            say(f"redirected to the client: {url.split('?')[0]}")
            if deliver:
                _deliver(opener, url)
            return url
        _require_loopback(url)
        request = urllib.request.Request(url, data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        request.add_header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        try:
            response = opener.open(request, timeout=TIMEOUT_SECONDS)
        except urllib.error.HTTPError as error:
            response = error
        status = response.status if hasattr(response, "status") else response.code
        page = response.read().decode("utf-8", "replace")
        say(f"{method} {url.split('?')[0]} -> {status}")
        if status in (301, 302, 303, 307, 308):
            location = response.headers.get("Location")
            if not location:
                raise BrowserError(f"{status} without Location from {url}")
            url = urllib.parse.urljoin(url, location)
            if status in (307, 308) and method == "POST":
                continue  # same method and body
            method, body = "GET", None
            continue
        if status != 200:
            raise BrowserError(f"{method} {url} answered {status}: {page[:500]}")
        parser = _Forms()
        parser.feed(page)
        forms = [form for form in parser.forms if form["buttons"] or form["fields"]]
        if not forms:
            raise BrowserError(f"page without a form at {url}: {page[:500]}")
        form = forms[0]
        fields = list(form["fields"])
        button = _pick_button(form["buttons"])
        if button and button[0]:
            fields.append(button)
        say(
            f"form {form['method'].upper()} {form['action'] or '(same URL)'}: "
            f"fields {[name for name, _ in fields]}"
        )
        target = urllib.parse.urljoin(url, form["action"] or url)
        encoded = urllib.parse.urlencode(fields)
        if form["method"] == "post":
            url, method, body = target, "POST", encoded.encode()
        else:
            url, method, body = f"{target.split('?')[0]}?{encoded}", "GET", None
    raise BrowserError(f"no redirect to {redirect_prefix} after {MAX_STEPS} steps")


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    verbose = "--verbose" in argv
    try:
        final = complete_login(
            args[0],
            args[1],
            deliver="--deliver" in argv,
            log=(lambda m: print(f"browser: {m}", file=sys.stderr)) if verbose else None,
        )
    except (BrowserError, OSError) as error:
        print(f"browser: {error}", file=sys.stderr)
        return 1
    print(final)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
