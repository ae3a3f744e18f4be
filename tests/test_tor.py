"""The intake reached over Tor for real: the whole stack as an onion service.

One private Tor network per test session (tests/tor_network.py: three
directory authorities, two relays, an onion-service node running the shipped
deploy/torrc, clients), in front of nginx with deploy/nginx.conf and gunicorn
with deploy/gunicorn.conf.py, all on loopback and offline. Through it:

- the onion service runs deploy/torrc changed only where a test must;
- Chromium files a report at each of Tor Browser's three security levels, and
  each one decrypts with the `age` tool to exactly what was typed and chosen;
- every page in every language, its redirects, links, form actions and assets
  work on the onion address and point at no loopback address, port or https;
- the descriptor a client fetches carries the proof-of-work defence (and a
  control service without it does not);
- an upload survives the source's tor dying mid-upload, in the page and in
  the API, and a finish whose answer died with the circuit files once;
- last, no file of any Tor node, nginx or the intake holds a report's marker,
  and the source's address (127.0.0.2) is in no file of the intake or nginx.

**Chromium only imitates Tor Browser.** The levels are imitated with the
switches that have the same effect on this page: Standard is JavaScript with
its JIT, Safer is `--js-flags=--jitless` (no JIT and no WebAssembly: the test
checks that WebAssembly is gone), Safest is JavaScript off. Tor Browser treats
an http onion address as a secure context; Chromium does not, so it is told
to (`--unsafely-treat-insecure-origin-as-secure`); without that the page
would take the server path. Tor Browser's other defences (letterboxing, fonts,
its NoScript rules) are not imitated and are not what these tests are about.

Every report carries MARKER; the last test looks for it everywhere on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from browser_support import (
    CHROMIUM_ARGS,
    CHUNK_URL,
    PAGE_RECORDER,
    TEXTS,
    MiB,
    Traffic,
    assert_report,
    chosen_file_types,
    chunk_offsets,
    expected_fields,
    fill_report,
    full_answers,
    minimal_answers,
    random_file_with_marker,
    recorded_js_path,
    stored_blobs,
    submission_rows,
    text_file_with_marker,
)
from conftest import require_tool
from helpers import Deployment, gunicorn, receipt_from, server_env, valid_report
from reliability_support import client_ciphertext
from test_nginx import run_nginx
from tor_network import (
    CLIENT_ADDRESS,
    SERVICE_REWRITES,
    SHIPPED_TORRC,
    PrivateTorNetwork,
    TorClient,
    network_lines,
    private_tor_network,
    torrc_options,
    wait_for,
)
from tor_support import (
    OnionSession,
    PageLinks,
    css_urls,
    files_containing,
    new_blobs,
    open_with_age,
    uploads,
)

from intake.config import QUICK_EXIT_URL
from intake.crypto.receipt import format_receipt, new_receipt, normalise_receipt
from intake.web.api import CHUNK_SIZE
from intake.web.i18n import LANGUAGES

pytestmark = pytest.mark.slow

MARKER = f"CANARY-{secrets.token_hex(12)}"
PAGE_TIMEOUT_MS = 180_000
#: The source's link during the broken-circuit test: a chunk takes about four seconds.
SLOW_LINK = 1 * MiB
UPLOADS = r"/api/v1/uploads$"
STATUS = r"/api/v1/uploads/[A-Za-z0-9_-]+$"
POW_IN_DESCRIPTOR = re.compile(r"PoW params present in descriptor, suggested_effort=[0-9]+")


# -- The stack behind the onion address -----------------------------------------------------------


@dataclass
class OnionStack:
    deployment: Deployment
    data: Path  # INTAKE_DATA_DIR
    tmpdir: Path  # gunicorn's TMPDIR
    gunicorn_logs: Path
    nginx_prefix: Path
    nginx_address: str
    network: PrivateTorNetwork
    identity_file: Path  # reviewer 1's identity, as age-keygen writes it

    @property
    def onion(self) -> str:
        return self.network.onion

    @property
    def base(self) -> str:
        return f"http://{self.network.onion}"

    def intake_roots(self) -> list[Path]:
        """Every directory the intake and nginx write to."""
        return [self.data, self.tmpdir, self.gunicorn_logs, self.nginx_prefix]


@pytest.fixture(scope="module")
def onion_stack(tmp_path_factory, request) -> Iterator[OnionStack]:
    """gunicorn, nginx in front, and the private Tor network's onion service in front
    of nginx; all stopped at the end of the module, also after a failure."""
    for tool in ("tor", "tor-gencert", "nginx", "age"):
        require_tool(tool)
    root = tmp_path_factory.mktemp("onion")
    deployment = Deployment(root / "keys").setup(recipients=2)
    data, tmpdir, logs = root / "var", root / "tmp", root / "gunicorn-logs"
    tmpdir.mkdir()
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(gunicorn(server_env(data, deployment, tmpdir), logs))
        nginx = stack.enter_context(run_nginx(root / "nginx", int(upstream.rsplit(":", 1)[1])))
        address = nginx.removeprefix("http://")
        network = stack.enter_context(private_tor_network(root / "tor", address))
        yield OnionStack(deployment, data, tmpdir, logs, root / "nginx", address, network,
                         deployment.identity_file(root / "reviewer-1.key", index=1))
        network.stop()
        report_figures(request, network)


def report_figures(request, network: PrivateTorNetwork) -> None:
    """Say how long the network took and how much memory its tor processes used
    (figures for the reader of the CI log, not a pass/fail check)."""
    ready = network.readiness
    line = (f"private Tor network: consensus after {ready.consensus:.0f} s, first page through "
            f"the onion after {ready.first_fetch:.0f} s; peak memory of its "
            f"{len(network.all_nodes())} tor processes, summed: {network.peak_rss_mib():.0f} MiB")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line, file=sys.stderr)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


def tor_browser_imitation(playwright, client: TorClient, onion: str, *, jit: bool):
    """Debian's Chromium, as close to Tor Browser as this page can tell: every request
    through the client's SOCKS port (host names resolved by tor, none locally), the
    onion address a secure context, and the JIT off for the Safer level."""
    args = [
        *CHROMIUM_ARGS,
        f"--proxy-server=socks5://127.0.0.1:{client.socks_port}",
        # socks5 hands host names to tor; this makes sure nothing else is looked up
        # here (the rules apply to the proxy's own address too, hence the exclusion).
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--unsafely-treat-insecure-origin-as-secure=http://{onion}",
    ]
    if not jit:
        args.append("--js-flags=--jitless")
    return playwright.chromium.launch(executable_path=require_tool("chromium"), args=args)


@pytest.fixture(scope="module")
def playwright():
    require_tool("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browsers(playwright, onion_stack):
    """One Chromium with the JIT, one without, both through the shared client."""
    launched = {jit: tor_browser_imitation(playwright, onion_stack.network.client,
                                           onion_stack.onion, jit=jit) for jit in (True, False)}
    yield launched
    for browser in launched.values():
        with contextlib.suppress(Exception):
            browser.close()


def new_page(browser, *, javascript: bool = True):
    context = browser.new_context(java_script_enabled=javascript)
    context.set_default_timeout(60_000)
    context.add_init_script(PAGE_RECORDER)
    return context, context.new_page()


@pytest.fixture(scope="module")
def breakable_client(onion_stack) -> TorClient:
    """A second client, for the tests that kill the source's tor."""
    network = onion_stack.network
    client = network.add_client("breakable")
    network.wait_bootstrapped(client)
    network.wait_reachable(client, network.onion)
    return client


@pytest.fixture
def breakable(onion_stack, breakable_client) -> Iterator[TorClient]:
    """The breakable client, running and on a fast link at the start of each test."""
    network = onion_stack.network
    if not breakable_client.alive():
        network.restart_client(breakable_client)
    breakable_client.link.rate = None
    yield breakable_client
    breakable_client.link.rate = None


def send_and_wait_for_thanks(page, base: str, lang: str, traffic: Traffic,
                             network: PrivateTorNetwork, client: TorClient) -> None:
    """Press send; fail with what the page showed and the client's tor log if the
    thanks page does not come."""
    page.locator("#report-form button[type=submit]").click()
    wait_for_thanks(page, base, lang, traffic, network, client)


def wait_for_thanks(page, base: str, lang: str, traffic: Traffic,
                    network: PrivateTorNetwork, client: TorClient) -> None:
    try:
        page.locator("#receipt").wait_for(state="visible", timeout=PAGE_TIMEOUT_MS)
    except Exception as exc:  # Playwright's timeout: say what the page and tor saw
        status = "?"
        with contextlib.suppress(Exception):
            status = page.locator("#progress-status").inner_text(timeout=1000)
        raise AssertionError(
            f"the thanks page never came: url={page.url} status={status!r} "
            f"page errors={traffic.errors[-5:]} requests={traffic.requests[-8:]}\n"
            f"{client.log_tail()}\n{network.service.node.log_tail()}") from exc


def the_source_is_thanked(page, base: str, lang: str) -> str:
    """The thanks page at the end of either path: what the source sees once the report
    is in, with its receipt. Returns the receipt (20 ASCII digits).

    Without JavaScript it is the answer to the form's POST (the address stays
    .../report); with JavaScript the page posts the receipt it drew to .../thanks.
    Either way the receipt is in no address the browser asked for.
    """
    assert page.url in (f"{base}/{lang}/thanks", f"{base}/{lang}/report"), page.url
    assert page.locator("h1").inner_text().strip()
    receipt = normalise_receipt(page.locator("#receipt").inner_text())
    assert receipt is not None, page.locator("main").inner_text()
    return receipt


def onion_only(traffic: Traffic, base: str) -> list[str]:
    """Requests that went anywhere but the onion address."""
    return [url for _, url in traffic.requests if not url.startswith(f"{base}/")]


# -- The shipped torrc ----------------------------------------------------------------------------


def test_the_onion_service_runs_the_shipped_torrc_changed_only_where_a_test_must(onion_stack):
    network = onion_stack.network
    shipped = torrc_options(SHIPPED_TORRC.read_text())
    running = torrc_options(network.service.node.torrc.read_text())
    head, added = running[: len(shipped)], running[len(shipped):]
    # The shipped options, in their order, the proof-of-work defence among them...
    assert [k for k, _ in head] == [k for k, _ in shipped]
    assert ("HiddenServicePoWDefensesEnabled", "1") in head
    changed = {key: (old, new) for (key, old), (_, new) in zip(shipped, head, strict=True)
               if old != new}
    # ...changed only in the three places the module names, and only as it says.
    assert set(changed) == set(SERVICE_REWRITES)
    assert changed["HiddenServiceDir"] == (
        "/var/lib/tor/intake/", f"{network.service.hidden_service_dir}/")
    assert changed["HiddenServicePort"] == ("80 127.0.0.1:8080", f"80 {onion_stack.nginx_address}")
    assert changed["Log"] == ("notice syslog", f"notice file {network.service.node.notice_log}")
    # What follows is the private network's own lines (and an info log), overriding nothing.
    network_keys = {k for k, _ in torrc_options("\n".join(network_lines(network.service.node, [])))}
    assert {k for k, _ in added} <= network_keys | {"DirAuthority"}
    assert not {k for k, _ in added} & ({k for k, _ in shipped} - {"Log"})
    # And the service really is that file at work: its keys are where the copy says.
    assert (network.service.hidden_service_dir / "hostname").read_text().strip() == network.onion


# -- Tor Browser's security levels ----------------------------------------------------------------


@dataclass(frozen=True)
class SecurityLevel:
    javascript: bool
    jit: bool
    #: What the page marks on <body data-js-path>: "encrypted" for the browser path,
    #: None where the form is posted and the server encrypts.
    path: str | None


LEVELS = {
    "standard": SecurityLevel(javascript=True, jit=True, path="encrypted"),
    "safer": SecurityLevel(javascript=True, jit=False, path="encrypted"),
    "safest": SecurityLevel(javascript=False, jit=False, path=None),
}


@pytest.mark.parametrize("level_name", LEVELS)
def test_each_security_level_files_a_report_that_the_age_tool_decrypts_to_what_was_sent(
    onion_stack, browsers, tmp_path, level_name
):
    level, lang = LEVELS[level_name], "ar"
    base, data = onion_stack.base, onion_stack.data
    answers = full_answers(lang, MARKER)
    files = [
        random_file_with_marker(tmp_path / "files" / TEXTS[lang]["big"], 2 * MiB, MARKER,
                                [100, MiB, 2 * MiB - 200]),
        text_file_with_marker(tmp_path / "files" / TEXTS[lang]["small"], MARKER),
    ]
    context, page = new_page(browsers[level.jit], javascript=level.javascript)
    try:
        traffic = Traffic().attach(page)
        page.goto(f"{base}/{lang}/report")
        if level.javascript:
            # The imitation holds: WebAssembly exists with the JIT and not without it.
            webassembly = page.evaluate("typeof WebAssembly")
            assert webassembly == ("object" if level.jit else "undefined")
        fill_report(page, answers)
        page.locator("#attachments").set_input_files([f.path for f in files])
        types = chosen_file_types(page)
        before = set(stored_blobs(data))
        send_and_wait_for_thanks(page, base, lang, traffic, onion_stack.network,
                                 onion_stack.network.client)
        receipt = the_source_is_thanked(page, base, lang)
        # What the page marked on <body> (kept across the move to the thanks page); with
        # JavaScript off nothing runs to mark it, and the requests below tell the path.
        path = recorded_js_path(page)
    finally:
        context.close()
    assert not any(receipt in url for _, url in traffic.requests)
    # The receipt, typed back through the onion in the page's digits, opens the mailbox
    # the report was filed in.
    session = OnionSession(onion_stack.network.client, onion_stack.onion)
    mailbox = session.open_mailbox(format_receipt(receipt, "arabic"), lang)
    assert re.findall(r'<li data-status="([a-z]+)">', mailbox) == ["received"]

    assert path == level.path
    if level.path == "encrypted":
        assert traffic.made("POST", rf"/{lang}/report$") == []
        assert traffic.answered("POST", UPLOADS) == [201]
        assert traffic.answered("POST", r"/finish$") == [201]
    else:
        assert len(traffic.made("POST", rf"/{lang}/report$")) == 1
        assert [u for _, u in traffic.requests if "/api/" in u] == []
    assert onion_only(traffic, base) == []

    [blob] = new_blobs(data, before)
    opened = open_with_age(data, blob, onion_stack.identity_file, tmp_path / "opened")
    assert_report(opened, lang=lang, fields=expected_fields(answers), files=files, types=types)


# -- Every URL on the onion address ---------------------------------------------------------------


def points_only_at_the_onion(url: str, onion: str) -> bool:
    """A relative URL, or one to the onion itself; never loopback, a port or https."""
    parts = urlsplit(url)
    if "127.0.0.1" in url or "localhost" in url.lower() or parts.scheme == "https":
        return False
    if ":" in parts.netloc:
        return False
    if not parts.scheme and not parts.netloc:
        return True
    return parts.scheme == "http" and parts.netloc == onion


def test_every_page_in_every_language_works_on_the_onion_and_points_at_nothing_else(onion_stack):
    onion = onion_stack.onion
    session = OnionSession(onion_stack.network.client, onion)
    origin = f"http://{onion}"
    # The way in, an unknown page, and each language without its slash (a redirect).
    queue = ["/", "/en/no-such-page", "/favicon.ico", *(f"/{code}" for code in LANGUAGES)]
    status: dict[str, int] = {}
    pointers: list[tuple[str, str, str]] = []  # (page, where, URL)
    while queue:
        path = queue.pop(0)
        if path in status:
            continue
        answer = session.request("GET", path)
        status[path] = answer.status
        found = []
        if answer.headers.get("Location"):
            found.append(("Location", answer.headers["Location"]))
        kind = answer.headers.get_content_type()
        if kind == "text/html":
            links = PageLinks()
            links.feed(answer.body.decode())
            found += links.urls
        elif kind == "text/css":
            found += css_urls(answer.body.decode())
        for where, url in found:
            pointers.append((path, where, url))
            target = urlsplit(urljoin(origin + path, url))
            if (target.netloc == onion and target.path != "/api/v1"
                    and points_only_at_the_onion(url, onion)):
                queue.append(target.path + (f"?{target.query}" if target.query else ""))

    # The one link off the site, on purpose: quick exit, to a neutral site.
    elsewhere = [p for p in pointers if not points_only_at_the_onion(p[2], onion)]
    assert elsewhere and {url for _, _, url in elsewhere} == {QUICK_EXIT_URL}
    assert all(where == "<a href>" for _, where, _ in elsewhere), elsewhere
    # Every page there is, in every language, answered through the onion address.
    for code in LANGUAGES:
        for page in ("/", "/report", "/thanks"):
            assert status.get(f"/{code}{page}") == 200, (code, page, status.get(f"/{code}{page}"))
    assert status["/"] == 302 and status["/en/no-such-page"] == 404
    failed = {p: s for p, s in status.items() if s >= 400 and p != "/en/no-such-page"}
    assert failed == {}
    redirects = [p for p in pointers if p[1] == "Location"]
    assert len(redirects) >= 1 + len(LANGUAGES), redirects
    kinds = {where for _, where, _ in pointers}
    assert {"<form action>", "<link href>", "<script src>", "intake-config worker",
            "intake-config vendor"} <= kinds, kinds


# -- The proof-of-work defence --------------------------------------------------------------------


def test_the_descriptor_a_client_fetches_carries_the_proof_of_work_defence(onion_stack):
    """Seen by a client, in the descriptor it fetched and decrypted (its debug log of
    onion-service client work says when that descriptor has pow-params), and by the
    service. Control: the same torrc with the defence off, on a second onion service,
    gives a descriptor without it."""
    network = onion_stack.network
    shipped = SHIPPED_TORRC.read_text()
    assert re.search(r"^HiddenServicePoWDefensesEnabled 1$", shipped, re.M)
    without = re.sub(r"^HiddenServicePoWDefensesEnabled 1$", "HiddenServicePoWDefensesEnabled 0",
                     shipped, flags=re.M)
    control = network.add_onion_service("onion-service-without-pow", without)
    probe_log = network.root / "pow-probe" / "rend-debug.log"
    probe = network.add_client("pow-probe", extra=[f"Log [rend]debug file {probe_log}"])
    try:
        network.wait_published(control)
        network.wait_bootstrapped(probe)
        network.wait_reachable(probe, control.onion)
        assert not POW_IN_DESCRIPTOR.search(probe_log.read_text())
        seen_before = probe_log.stat().st_size
        network.wait_reachable(probe, network.onion)
        with probe_log.open() as fh:
            fh.seek(seen_before)
            assert POW_IN_DESCRIPTOR.search(fh.read()), "no pow-params in the fetched descriptor"
    finally:
        probe.stop()
        control.node.stop()
    service_log = network.service.node.log_text(info=True)
    assert "Service PoW defenses are enabled" in service_log
    assert "Initializing pow_params in descriptor" in service_log
    control_log = control.node.log_text(info=True)
    assert "Service PoW defenses are disabled" in control_log
    assert "pow_params" not in control_log


# -- A broken circuit -----------------------------------------------------------------------------


def test_the_page_resumes_an_upload_after_the_sources_tor_dies_mid_upload(
    onion_stack, breakable, playwright, tmp_path
):
    """The source's tor is killed while the second chunk is on its way (a slow link
    makes "on its way" last seconds), then started again: the page asks how much
    arrived, sends the rest, and the report is filed once."""
    network, data, base = onion_stack.network, onion_stack.data, onion_stack.base
    breakable.link.rate = SLOW_LINK
    answers = minimal_answers(f"The circuit broke while this was sent {MARKER}")
    evidence = random_file_with_marker(tmp_path / "files" / "screen recording.mp4",
                                       2 * CHUNK_SIZE + MiB, MARKER, [5000, CHUNK_SIZE + 77])
    browser = tor_browser_imitation(playwright, breakable, onion_stack.onion, jit=True)
    try:
        context, page = new_page(browser)
        traffic = Traffic().attach(page)
        page.goto(f"{base}/en/report")
        fill_report(page, answers)
        page.locator("#attachments").set_input_files([evidence.path])
        types = chosen_file_types(page)
        blobs_before, uploads_before = set(stored_blobs(data)), set(uploads(data))
        page.locator("#report-form button[type=submit]").click()

        def first_chunk_stored() -> str | None:
            fresh = [u for i, u in uploads(data).items() if i not in uploads_before]
            return fresh[0].id if fresh and fresh[0].received >= CHUNK_SIZE else None

        upload_id = wait_for("the server to store the first chunk", first_chunk_stored,
                             timeout=120, watch=network.all_nodes())
        sent = breakable.link.bytes_up
        wait_for("a quarter of the second chunk to leave the source's computer",
                 lambda: breakable.link.bytes_up >= sent + CHUNK_SIZE // 4,
                 timeout=60, watch=network.all_nodes())
        breakable.kill()
        at_break = uploads(data)[upload_id]
        assert CHUNK_SIZE <= at_break.received < at_break.size, "the break was not mid-upload"
        network.restart_client(breakable)
        wait_for_thanks(page, base, "en", traffic, network, breakable)
        the_source_is_thanked(page, base, "en")
        assert recorded_js_path(page) == "encrypted"
        context.close()
    finally:
        browser.close()

    puts = Counter(chunk_offsets(traffic.made("PUT", CHUNK_URL.pattern)))
    assert traffic.answered("POST", UPLOADS) == [201], "the upload was started over"
    assert traffic.made("POST", r"/en/report$") == []
    assert traffic.made("GET", STATUS), "the page never asked how much had arrived"
    # Nothing the server held was sent again; what was on its way was.
    assert all(puts[o] == 1 for o in puts if o < at_break.received), puts
    assert puts[at_break.received] >= 2, puts
    assert sorted(puts) == list(range(0, at_break.size, CHUNK_SIZE))
    assert onion_only(traffic, base) == []
    [blob] = new_blobs(data, blobs_before)
    opened = open_with_age(data, blob, onion_stack.identity_file, tmp_path / "opened")
    assert_report(opened, lang="en", fields=expected_fields(answers), files=[evidence],
                  types=types)


def test_an_api_upload_cut_mid_chunk_resumes_from_the_offset_the_server_stored(
    onion_stack, breakable
):
    network, data = onion_stack.network, onion_stack.data
    session = OnionSession(breakable, onion_stack.onion)
    session.open_form("en")
    ciphertext = client_ciphertext(onion_stack.deployment, MARKER, os.urandom(2 * CHUNK_SIZE))
    blobs_before, rows_before = set(stored_blobs(data)), len(submission_rows(data))
    upload_id = session.create_upload(len(ciphertext))
    assert session.put_chunk(upload_id, 0, ciphertext[:CHUNK_SIZE]).status == 200

    # Half of the second chunk leaves the source's computer, then its tor dies.
    second = ciphertext[CHUNK_SIZE: 2 * CHUNK_SIZE]
    sent = breakable.link.bytes_up
    cut = session.send_without_reading(
        "PUT", f"/api/v1/uploads/{upload_id}?offset={CHUNK_SIZE}", second,
        content_type="application/octet-stream", send=len(second) // 2)
    wait_for("half of the second chunk to leave", lambda: breakable.link.bytes_up
             >= sent + len(second) // 2, timeout=60, watch=network.all_nodes())
    breakable.kill()
    cut.close()
    network.restart_client(breakable)

    resume_at = session.stored_offset(upload_id)
    assert resume_at == CHUNK_SIZE, "a cut-off chunk was kept, or a stored one was lost"
    for offset in range(resume_at, len(ciphertext), CHUNK_SIZE):
        put = session.put_chunk(upload_id, offset, ciphertext[offset: offset + CHUNK_SIZE])
        assert put.status == 200, put.body[:300]
    finished = session.finish(upload_id, len(ciphertext))
    assert finished.status == 201, finished.body[:300]
    [blob] = new_blobs(data, blobs_before)
    assert len(submission_rows(data)) == rows_before + 1
    assert blob.read_bytes() == ciphertext


def test_a_finish_whose_answer_dies_with_the_circuit_is_asked_again_and_files_once(
    onion_stack, breakable
):
    """The server files the upload; its answer never reaches the source, whose tor
    dies before reading it. Asking again through a new tor answers "stored", and the
    receipt the page drew (sent with the create, as the page's worker does) opens
    the mailbox the report is in: the lost answer lost nothing."""
    network, data = onion_stack.network, onion_stack.data
    session = OnionSession(breakable, onion_stack.onion)
    session.open_form("en")
    ciphertext = client_ciphertext(onion_stack.deployment, MARKER, os.urandom(MiB))
    blobs_before, rows_before = set(stored_blobs(data)), len(submission_rows(data))
    receipt = new_receipt()  # what the page's script draws
    upload_id = session.create_upload(len(ciphertext), receipt=receipt)
    assert session.put_chunk(upload_id, 0, ciphertext).status == 200

    lost = session.send_without_reading(
        "POST", f"/api/v1/uploads/{upload_id}/finish",
        json.dumps({"size": len(ciphertext)}).encode(), content_type="application/json")
    wait_for("the server to file the upload", lambda: new_blobs(data, blobs_before)
             and len(submission_rows(data)) > rows_before, timeout=60,
             watch=network.all_nodes())
    breakable.kill()
    lost.close()
    network.restart_client(breakable)

    again = session.finish(upload_id, len(ciphertext))
    assert again.status == 200 and b'"stored"' in again.body, again.body[:300]
    assert len(new_blobs(data, blobs_before)) == 1
    assert len(submission_rows(data)) == rows_before + 1
    mailbox = session.open_mailbox(receipt)
    assert re.findall(r'<li data-status="([a-z]+)">', mailbox) == ["received"]


# -- Nothing left behind --------------------------------------------------------------------------


def test_no_file_of_any_tor_node_or_of_the_intake_holds_a_marker_or_the_source_address(
    onion_stack, tmp_path
):
    """Last in the module: every report above carried MARKER. One more goes through
    the server path here (its plaintext crosses the onion service, nginx and
    gunicorn), so that the scan never looks for a marker that was never sent."""
    network, data = onion_stack.network, onion_stack.data
    session = OnionSession(network.client, onion_stack.onion)
    session.open_form("en")
    attachment = bytearray(os.urandom(3 * MiB))
    for offset in (100, 70_000, 1_500_000, 3 * MiB - 200):
        attachment[offset: offset + len(MARKER)] = MARKER.encode()
    before = set(stored_blobs(data))
    answer = session.post_form("en", valid_report(narrative=f"my phone {MARKER} was seized"),
                               [("evidence.bin", bytes(attachment), "application/octet-stream")])
    assert answer.status == 200 and "Location" not in answer.headers
    receipt = receipt_from(answer.body.decode())
    assert receipt is not None
    [blob] = new_blobs(data, before)
    opened = open_with_age(data, blob, onion_stack.identity_file, tmp_path / "opened")
    assert opened.plaintext.count(MARKER.encode()) == 5  # the narrative and the four copies
    access_log = (onion_stack.gunicorn_logs / "stdout.log").read_text()
    assert '"POST /en/report" 200' in access_log  # the scanned log is the one in use

    # No marker in any file: the Tor nodes' data directories and logs, nginx, the intake;
    # nor the receipt, which crossed the same relays, onion service, nginx and gunicorn.
    assert files_containing([network.root, *onion_stack.intake_roots()], MARKER.encode()) == []
    assert files_containing([network.root, *onion_stack.intake_roots()],
                            receipt.encode()) == []

    # The Tor network saw each source at 127.0.0.2, and only there...
    for client in network.clients:
        assert client.link.connections_made > 0, client.name
        assert client.link.source_addresses == {CLIENT_ADDRESS}, client.name
    # ...and neither the onion service, nginx nor the intake ever wrote it down.
    roots = [network.service.node.directory, *onion_stack.intake_roots()]
    assert files_containing(roots, CLIENT_ADDRESS.encode()) == []
