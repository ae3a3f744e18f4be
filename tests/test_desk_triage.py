"""The desk on the case store: the list (filters, search, pages), the group view, and
triage on a case page (status, assignee, tags, append-only notes, related cases).

Against the desk app in this process (`create_desk_app`), which opens the real
`CaseStore` in a temporary cases folder laid out as the importer writes it.
The Chromium tests (test_desk_browser.py) drive the same pages in a browser;
test_desk_concurrency.py runs the real command next to the command line.
"""

from __future__ import annotations

import datetime
import re
import sqlite3
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from desk_support import code_of, desk_client, write_case
from flask_babel import force_locale

from intake.review import labels
from intake.review.store import DATABASE, CaseStore
from intake.web.i18n import LANGUAGES

BASE = {
    "reporter_role": "self", "consent_use": ["statistics"], "contact_method": "none",
    "categories": ["mercenary_spyware"], "first_noticed": "2026-03", "country": "BH",
    "how_discovered": ["suspicious_message"], "target_profile": ["journalist"],
    "risk_now": "elevated", "narrative": "A missed call, then the phone grew hot.",
}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CODES = re.compile(r'class="ic-code" href="[^"]*/cases/([0-9a-f]{32})"')


@pytest.fixture
def cases(tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    return folder


def listed(desk, query: str = "", lang: str = "en") -> list[str]:
    """The case ids a list page links to, in order (a 200 is required)."""
    answer = desk.get(f"/{lang}/{query}")
    assert answer.status_code == 200, (query, answer.status_code)
    page = answer.get_data(as_text=True)
    return CODES.findall(page.split("<tbody>", 1)[1]) if "<tbody>" in page else []


def token(desk, path: str) -> str:
    return CSRF.search(desk.get(path).get_data(as_text=True)).group(1)


def post(desk, path: str, **form: str):
    return desk.post(path, data={"csrf_token": token(desk, "/en/"), **form})


# -- The list --------------------------------------------------------------------------------

@pytest.fixture
def four(cases):
    """Four cases with different answers, days and languages."""
    ids = {
        "ar": write_case(cases, {**BASE, "narrative": "قال مُحَمَّد إنّ الرسالة وصلت"},
                         lang="ar", received_on="2026-01-10"),
        "fr": write_case(cases, {**BASE, "narrative": "Le téléphone de Zoë a été saisi.",
                                 "country": "LB", "categories": ["device_seizure"],
                                 "risk_now": "immediate_danger", "suspected_tool": "pegasus"},
                         lang="fr", received_on="2026-02-20"),
        "fa": write_case(cases, {**BASE, "narrative": "پیامی از یک شمارهٔ ناشناس رسید",
                                 "country": "IR", "categories": ["phishing"]},
                         lang="fa", received_on="2026-03-02"),
        "en": write_case(cases, {**BASE, "country": "EG", "suspected_tool": "predator"},
                         received_on="2026-03-15"),
    }
    with CaseStore(cases) as store:
        store.set_status(ids["fr"], "confirmed")
        store.add_tag(ids["fr"], "pegasus-2026")
        store.add_tag(ids["fa"], "pegasus-2026")
        store.set_assignee(ids["ar"], "Amal")
    return ids


def test_the_list_is_newest_first_with_every_column_labelled(cases, four):
    desk = desk_client(cases)
    assert listed(desk) == [four["en"], four["fa"], four["fr"], four["ar"]]
    page = desk.get("/en/").get_data(as_text=True)
    row = page.split(code_of(four["fr"]), 1)[1].split("</tr>", 1)[0]
    for text in ("2026-02-20", "Confirmed", "Lebanon", "Device seizure", "In immediate danger",
                 "Pegasus", "pegasus-2026"):
        assert text in row, text
    assert "4 cases, newest first" in page
    with desk.app.test_request_context(), force_locale("ar"):
        confirmed = labels.status_label("confirmed")
        lebanon = labels.choice_label("country", "LB")
    arabic = desk.get("/ar/").get_data(as_text=True)
    row = arabic.split(code_of(four["fr"]), 1)[1].split("</tr>", 1)[0]
    assert confirmed in row and lebanon in row and "Confirmed" not in row


@pytest.mark.parametrize(("query", "expected"), [
    ("?status=confirmed", ["fr"]),
    ("?status=new", ["en", "fa", "ar"]),
    ("?tag=pegasus-2026", ["fa", "fr"]),
    ("?category=phishing", ["fa"]),
    ("?country=LB", ["fr"]),
    ("?risk=immediate_danger", ["fr"]),
    ("?tool=pegasus", ["fr"]),
    ("?assignee=Amal", ["ar"]),
    ("?assignee=-", ["en", "fa", "fr"]),  # given to nobody
    ("?since=2026-02-20", ["en", "fa", "fr"]),
    ("?until=2026-02-20", ["fr", "ar"]),
    ("?since=2026-02-01&until=2026-03-10", ["fa", "fr"]),
    ("?tag=pegasus-2026&country=IR", ["fa"]),
    ("?status=new&tool=predator", ["en"]),
    ("?q=telephone", ["fr"]),
    ("?q=", ["en", "fa", "fr", "ar"]),  # an empty search is no search
])
def test_each_filter_selects_its_cases(cases, four, query, expected):
    assert listed(desk_client(cases), query) == [four[k] for k in expected]


def test_search_finds_arabic_and_persian_with_or_without_marks_and_letter_forms(cases, four):
    desk = desk_client(cases)
    for typed, found in (("محمد", "ar"), ("مُحَمَّد", "ar"), ("الرساله", "ar"),
                         ("پيامي", "fa"), ("TÉLÉPHONE zoe", "fr")):
        assert listed(desk, f"?q={typed}") == [four[found]], typed
    assert listed(desk, "?q=nothing-like-this") == []
    page = desk.get("/en/?q=nothing-like-this").get_data(as_text=True)
    assert "No case matches this search and these filters." in page


def test_the_form_offers_only_valid_values_and_keeps_the_chosen_ones(cases, four):
    page = desk_client(cases).get("/en/?tag=pegasus-2026&since=2026-02-01").get_data(
        as_text=True)
    tags = re.search(r'<select id="f-tag".*?</select>', page, re.S).group(0)
    assert re.findall(r'<option value="([^"]*)"', tags) == ["", "pegasus-2026"]
    assert '<option value="pegasus-2026" selected>' in tags
    assignees = re.search(r'<select id="f-assignee".*?</select>', page, re.S).group(0)
    assert re.findall(r'<option value="([^"]*)"', assignees) == ["", "-", "Amal"]
    countries = re.search(r'<select id="f-country".*?</select>', page, re.S).group(0)
    assert sorted(re.findall(r'<option value="([^"]*)"', countries)) == ["", "BH", "EG", "IR",
                                                                         "LB"]
    assert 'name="since" value="2026-02-01"' in page
    # Every language link keeps the filters.
    for lang in LANGUAGES:
        assert re.search(rf'href="[^"]*/{lang}/\?[^"]*tag=pegasus-2026[^"]*"', page), lang


@pytest.mark.parametrize(("query", "sentence"), [
    ("?status=open", "There is no status “open”. Choose one of: "),
    ("?category=spyware", "Choose one of: "),
    ("?risk=immediate", "“immediate” is not one of the form’s answers for “Risk now”"),
    ("?tool=nso", "is not one of the form’s answers for “Suspected tool”"),
    ("?country=XX", "“XX” is not a country code. The cases come from: "),
    ("?tag=nothing", "No case has the tag “nothing”. The tags in use are: "),
    ("?assignee=Reza", "No case is given to “Reza”. Choose one of: "),
    ("?since=30/11/2026", "“30/11/2026” is not a day. Write it as YYYY-MM-DD"),
    ("?until=2026-02-30", "“2026-02-30” is not a day."),
    ("?q=...", "The search has no word in it."),
    ("?page=0", "“0” is not a page number"),
    ("?page=two", "“two” is not a page number"),
    ("?indicator=nonsense", "is not an indicator the desk can look for"),
])
@pytest.mark.parametrize("view", ["", "groups"])
def test_an_unknown_filter_value_is_a_sentence_listing_the_valid_ones(
        cases, four, query, sentence, view):
    answer = desk_client(cases).get(f"/en/{view}{query}")
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    text = re.sub(r"<[^>]+>", "", page.split('role="alert"', 1)[1].split("</div>", 1)[0])
    assert sentence in text, text
    if "status" in query:
        assert "New, In triage, Needs follow-up, Confirmed, Not confirmed, Closed" in text
    if "country" in query:
        assert "Bahrain, Egypt, Iran, Lebanon" in text
    if "assignee" in query:
        assert "nobody, Amal" in text
    if "risk" in query:
        assert "In immediate danger" in text
    assert '<form method="get"' in page  # the form, to choose again
    assert "<tbody>" not in page


def test_a_refusal_is_in_the_reviewers_language(cases, four):
    page = desk_client(cases).get("/ar/?status=open").get_data(as_text=True)
    assert "لا يوجد وضع باسم «<bdi>open</bdi>»" in page
    assert "<bdi>تحتاج إلى متابعة</bdi>" in page


def test_the_list_pages_through_many_cases(cases):
    days = [datetime.date(2026, 1, 1) + datetime.timedelta(days=n) for n in range(120)]
    ids = [write_case(cases, BASE, received_on=day.isoformat()) for day in days]
    newest_first = ids[::-1]
    desk = desk_client(cases)
    assert listed(desk) == newest_first[:50]
    assert listed(desk, "?page=2") == newest_first[50:100]
    assert listed(desk, "?page=3") == newest_first[100:]
    assert listed(desk, "?page=99") == newest_first[100:]  # past the end: the last page
    page = desk.get("/en/?page=2").get_data(as_text=True)
    assert "120 cases, newest first · Page 2 of 3" in page
    assert re.search(r'href="[^"]*/en/\?page=1" rel="prev"', page)
    assert re.search(r'href="[^"]*/en/\?page=3" rel="next"', page)
    filtered = desk.get("/en/?since=2026-03-01&page=2").get_data(as_text=True)
    assert "61 cases match, newest first · Page 2 of 2" in filtered
    assert re.search(r'href="[^"]*/en/\?since=2026-03-01&amp;page=1" rel="prev"', filtered)


def test_an_empty_store_says_how_to_fill_it(cases):
    page = desk_client(cases).get("/en/").get_data(as_text=True)
    assert "There are no cases yet" in page and "<select" not in page


def test_a_case_imported_while_the_desk_runs_is_listed_and_one_removed_is_gone(cases, tmp_path):
    first = write_case(cases, BASE)
    desk = desk_client(cases)
    assert listed(desk) == [first]
    later = write_case(cases, BASE, received_on="2026-12-01")
    assert listed(desk) == [later, first]
    (cases / first).rename(tmp_path / "away")
    assert listed(desk) == [later]
    assert desk.get(f"/en/cases/{first}").status_code == 404


# -- Groups and related cases ----------------------------------------------------------------

@pytest.fixture
def campaign(cases):
    """Two reports sharing a domain (one inside a URL), a third sharing a phone, a stranger."""
    return {
        "url": write_case(cases, {**BASE, "indicators": "hxxps://track.evil[.]example/a?b=1"},
                          received_on="2026-03-01"),
        "domain": write_case(cases, {**BASE, "indicators": "evil.example\n+973 3000 0000"},
                             received_on="2026-03-02"),
        "phone": write_case(cases, {**BASE, "indicators": "+97330000000"},
                            received_on="2026-03-03"),
        "alone": write_case(cases, {**BASE, "indicators": "unrelated.example"},
                            received_on="2026-03-04"),
    }


def test_a_case_page_lists_the_cases_sharing_an_indicator_and_which(cases, campaign):
    desk = desk_client(cases)
    page = desk.get(f"/en/cases/{campaign['url']}").get_data(as_text=True)
    related = page.split('id="related"', 1)[1].split("</section>", 1)[0]
    assert CODES.findall(related) == [campaign["domain"]]
    assert '<span class="kind">domain</span> <bdi dir="ltr" class="mono">evil.example</bdi>' \
        in related
    page = desk.get(f"/en/cases/{campaign['domain']}").get_data(as_text=True)
    related = page.split('id="related"', 1)[1].split("</section>", 1)[0]
    assert sorted(CODES.findall(related)) == sorted([campaign["url"], campaign["phone"]])
    assert "+97330000000" in related and "phone number" in related
    alone = desk.get(f"/en/cases/{campaign['alone']}").get_data(as_text=True)
    assert "No other case shares a domain" in alone
    with desk.app.test_request_context(), force_locale("fa"):
        phone = labels.indicator_kind("phone")
    persian = desk.get(f"/fa/cases/{campaign['domain']}").get_data(as_text=True)
    assert f'<span class="kind">{phone}</span>' in persian


def test_the_group_view_shows_each_campaign_and_links_its_cases(cases, campaign):
    desk = desk_client(cases)
    page = desk.get("/en/groups").get_data(as_text=True)
    assert "2 groups, largest first" in page
    groups = page.split('<li class="group">')[1:]
    found = {frozenset(CODES.findall(g)): re.findall(r'class="mono">([^<]+)</bdi>', g)
             for g in groups}
    assert found == {frozenset([campaign["url"], campaign["domain"]]): ["evil.example"],
                     frozenset([campaign["domain"], campaign["phone"]]): ["+97330000000"]}
    # Filters choose the cases first: without the phone's case, one group is left.
    with CaseStore(cases) as store:
        store.set_status(campaign["phone"], "closed")
    page = desk.get("/en/groups?status=new").get_data(as_text=True)
    assert "1 group among the cases that match" in page
    assert campaign["phone"] not in page


def test_a_large_group_links_the_list_of_all_its_cases(cases):
    members = [write_case(cases, {**BASE, "indicators": f"https://a{n}.evil.example/x"},
                          received_on=f"2026-01-{n + 1:02d}") for n in range(35)]
    desk = desk_client(cases)
    page = desk.get("/en/groups").get_data(as_text=True)
    group = page.split('<li class="group">')[1]
    assert len(CODES.findall(group)) == 30
    link = re.search(r'href="([^"]+)">List all 35 cases of this group', group).group(1)
    assert "indicator=domain:evil.example" in link.replace("%3A", ":")
    listed_page = desk.client.get("http://127.0.0.1:8999" + link.replace("&amp;", "&"))
    text = listed_page.get_data(as_text=True)
    assert "35 cases match" in text
    assert "Only the cases that share this indicator (domain):" in text
    assert sorted(CODES.findall(text.split("<tbody>")[1])) == sorted(members)


# -- Triage on the case page -----------------------------------------------------------------

def test_every_change_is_a_post_with_csrf_then_a_redirect(cases, four):
    case_id = four["en"]
    desk = desk_client(cases)
    path = f"/en/cases/{case_id}"
    changes = [("status", {"status": "needs_follow_up"}, "#triage",
                "The status has been saved."),
               ("assignee", {"assignee": "  Reza  "}, "#triage", "The assignee has been saved."),
               ("tags", {"tag": "campaign-x"}, "#triage", "The tag has been added."),
               ("tags", {"tag": "وسم-عربي"}, "#triage", "The tag has been added."),
               ("tags/remove", {"tag": "campaign-x"}, "#triage", "The tag has been removed."),
               ("notes", {"author": "Reza", "text": "Asked for\r\nthe notification."},
                "#note-1", "The note has been added to the log.")]
    for action, form, anchor, confirmation in changes:
        # Without the CSRF token nothing changes.
        refused = desk.post(f"{path}/{action}", data=form)
        assert refused.status_code == 400
        if action == "tags/remove":
            form = {"tag": "campaign-x"}
        answer = post(desk, f"{path}/{action}", **form)
        assert answer.status_code == 303, (action, answer.get_data(as_text=True)[:500])
        assert answer.headers["Location"].endswith(f"/en/cases/{case_id}{anchor}")
        assert confirmation in desk.get(path).get_data(as_text=True)
        assert confirmation not in desk.get(path).get_data(as_text=True)  # said once
        assert desk.get(f"{path}/{action}").status_code == 405  # never a GET
    with CaseStore(cases) as store:
        triaged = store.triage(case_id)
        assert (triaged.status, triaged.assignee, triaged.tags) == (
            "needs_follow_up", "Reza", ("وسم-عربي",))
        [note] = store.notes(case_id)
        assert (note.author, note.text, note.day) == (
            "Reza", "Asked for\nthe notification.", datetime.date.today().isoformat())
    page = desk.get(path).get_data(as_text=True)
    assert '<option value="needs_follow_up" selected>' in page
    assert 'name="assignee" value="Reza"' in page
    assert 'name="author" value="Reza"' in page  # offered for the next note
    assert listed(desk, "?tag=وسم-عربي") == [case_id]
    assert listed(desk, "?assignee=Reza") == [case_id]


def test_notes_are_a_log_oldest_first_that_nothing_can_change(cases, four):
    case_id = four["ar"]
    desk = desk_client(cases)
    for n, author in enumerate(("Amal", "Reza", "Amal")):
        assert post(desk, f"/en/cases/{case_id}/notes", author=author,
                    text=f"note {n}").status_code == 303
    page = desk.get(f"/en/cases/{case_id}").get_data(as_text=True)
    log = page.split('<ol class="note-list">', 1)[1].split("</ol>", 1)[0]
    assert re.findall(r'<div class="source-text" dir="auto">(note \d)</div>', log) == [
        "note 0", "note 1", "note 2"]
    assert re.findall(r'<bdi class="author">(\w+)</bdi>', log) == ["Amal", "Reza", "Amal"]
    # There is no way to change or remove one: no such form, no such route.
    assert "notes/1" not in page
    for method in (desk.post, desk.client.put, desk.client.delete):
        path = f"/en/cases/{case_id}/notes/1"
        answer = method(path) if method == desk.post else method(desk.base + path)
        assert answer.status_code in (404, 405)
    with CaseStore(cases) as store:
        assert [n.text for n in store.notes(case_id)] == ["note 0", "note 1", "note 2"]


@pytest.mark.parametrize(("action", "form", "field", "sentence", "kept"), [
    ("notes", {"author": "Amal", "text": "see \x1b]52;c;aGk=\x07 and \u202eevil"}, "text",
     "The note held control characters", "see ]52;c;aGk= and evil"),
    ("notes", {"author": "Amal", "text": "   "}, "text", "The note is empty.", "   "),
    ("notes", {"author": "", "text": "kept text"}, "author", "Write your name", "kept text"),
    ("notes", {"author": "-", "text": "kept text"}, "author", "at least one letter",
     "kept text"),
    ("notes", {"author": "Amal", "text": "x" * 20_001}, "text", "at most 20,000 characters",
     "x" * 20_001),
    ("tags", {"tag": "   "}, "tag", "A tag cannot be empty.", ""),
    ("tags", {"tag": "evil\x1b[2K\u202e"}, "tag", "without control characters", "evil[2K"),
    ("tags", {"tag": "x" * 65}, "tag", "at most 64 characters", "x" * 65),
    ("assignee", {"assignee": "Amal\r\nroot"}, "assignee", "at least one letter", "Amalroot"),
    ("status", {"status": "done"}, "status", "Choose one of the statuses in the list.", None),
])
def test_a_refused_change_says_why_by_its_field_and_keeps_what_was_typed(
        cases, four, action, form, field, sentence, kept):
    case_id = four["en"]
    desk = desk_client(cases)
    answer = post(desk, f"/en/cases/{case_id}/{action}", **form)
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    error = re.search(r'<p class="error" id="(\w+)-error">([^<]*)</p>', page)
    assert error and sentence in error.group(2), page[:300]
    assert error.group(1) == {"text": "note"}.get(field, field)
    if kept is not None and field == "text":
        assert f">{kept}</textarea>" in page
    elif kept is not None and kept:
        name = "text" if field == "text" else field
        assert re.search(rf'name="{name}" value="{re.escape(kept)}"', page) or \
            f">{kept}</textarea>" in page
    assert not re.findall(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]", page)
    with CaseStore(cases) as store:
        assert store.notes(case_id) == [] and store.triage(case_id).tags == ()
        assert store.triage(case_id).status == "new" and store.triage(case_id).assignee == ""


def test_a_change_to_a_case_that_is_not_there_is_a_404(cases, four):
    desk = desk_client(cases)
    for case_id in ("0" * 32, "../../etc", four["en"][:8]):
        assert post(desk, f"/en/cases/{case_id}/status", status="closed").status_code == 404
    with CaseStore(cases) as store:
        assert all(s.status != "closed" for s in store.cases())


def test_a_change_that_waits_too_long_for_another_command_is_a_503_sentence(cases, four):
    """A change that waits longer than the busy timeout for another process is a 503 with
    one sentence in the reviewer's language, and changes nothing; reading goes on."""
    case_id = four["en"]
    desk = desk_client(cases, store=CaseStore(cases, busy_timeout=0.3))
    form = {"csrf_token": token(desk, "/en/"), "status": "closed"}
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys\n"
         "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "db.execute('BEGIN IMMEDIATE'); print('holding', flush=True); sys.stdin.readline()\n"
         "db.execute('COMMIT')", str(cases / DATABASE)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        answer = desk.post(f"/en/cases/{case_id}/status", data=form)
        assert answer.status_code == 503
        assert "The case store is busy" in answer.get_data(as_text=True)
        arabic = desk.post(f"/ar/cases/{case_id}/status", data=form).get_data(as_text=True)
        assert "مخزن الحالات مشغول" in arabic
        assert listed(desk, "?q=telephone") == [four["fr"]]
        # A case that arrives meanwhile cannot be indexed yet: the list shows the rest.
        late = write_case(cases, BASE, received_on="2026-12-01")
        assert late not in listed(desk)
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    assert '<option value="new" selected>' in desk.get(f"/en/cases/{case_id}").get_data(
        as_text=True)
    assert desk.post(f"/en/cases/{case_id}/status", data=form).status_code == 303
    assert listed(desk)[0] == late


# -- Hostile content on the new pages --------------------------------------------------------

SCRIPT = "<script>alert(document.cookie)</script>"
HOSTILE = f"{SCRIPT}<img src=x onerror=alert(1)>\u202egnp.exe\u2066 \x1b[2J\x1b]0;owned\x07"
ACTING = re.compile(r"[\u202a-\u202e\u2066-\u2069\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.handlers: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.handlers += [name for name, _value in attrs if name.startswith("on")]


def test_hostile_tags_notes_names_and_queries_are_inert_on_every_new_page(cases):
    hostile = write_case(cases, {**BASE, "narrative": HOSTILE + " marker",
                                 "indicators": f"https://evil.example/{SCRIPT}\nevil.example"},
                         lang="ar")
    other = write_case(cases, {**BASE, "indicators": "evil.example"})
    desk = desk_client(cases)
    # What the desk lets a reviewer type: markup is text.
    assert post(desk, f"/en/cases/{hostile}/tags", tag=SCRIPT).status_code == 303
    assert post(desk, f"/en/cases/{hostile}/notes", author=SCRIPT,
                text=f"{SCRIPT}\n<b onmouseover=alert(2)>x</b>").status_code == 303
    assert post(desk, f"/en/cases/{hostile}/assignee", assignee=SCRIPT).status_code == 303
    # What only another program could write into the database: controls that act.
    with sqlite3.connect(cases / DATABASE) as db:
        db.execute("INSERT INTO tags VALUES (?, ?)", (hostile, "tag" + HOSTILE))
        db.execute("INSERT INTO tags VALUES (?, ?)", (other, "\u202e" + SCRIPT))
        db.execute("INSERT INTO notes (case_id, author, day, text) VALUES (?, ?, ?, ?)",
                   (hostile, "\u202eAmal\x1b[2J", "2026-11-30\x1b[1A", HOSTILE))
        db.execute("UPDATE triage SET assignee = ? WHERE case_id = ?",
                   ("\u202e" + SCRIPT + "\x1b]0;t\x07", hostile))
    pages = {}
    for lang in LANGUAGES:
        for path in ("", "?q=marker", f"?q={HOSTILE}", f"?tag={SCRIPT}", f"?tag={HOSTILE}",
                     f"?assignee={HOSTILE}", f"?country={HOSTILE}", f"?since={HOSTILE}",
                     f"?indicator=domain:{HOSTILE}", "?indicator=domain:evil.example",
                     f"?page={HOSTILE}", "groups", f"groups?q={HOSTILE}",
                     f"cases/{hostile}", f"cases/{other}"):
            answer = desk.get(f"/{lang}/{path}")
            assert answer.status_code in (200, 400), (lang, path, answer.status_code)
            pages[lang, path] = answer.get_data(as_text=True)
    for key, page in pages.items():
        parsed = Tags()
        parsed.feed(page)
        assert "script" not in parsed.tags and "img" not in parsed.tags, key
        assert "b" not in parsed.tags and parsed.handlers == [], key
        assert ACTING.findall(page) == [], (key, ACTING.findall(page)[:5])
        assert "<script" not in page and "<b onmouseover" not in page, key
    case_page = pages["en", f"cases/{hostile}"]
    assert case_page.count("&lt;script&gt;alert(document.cookie)&lt;/script&gt;") >= 5
    assert "[U+202E]" in case_page and "[U+001B]" in case_page
    # A tag another program wrote is shown (marked) but never put into a form's value.
    tag_select = re.search(r"<select id=\"f-tag\".*?</select>", pages["en", ""], re.S).group(0)
    assert "\u202e" not in tag_select and SCRIPT not in tag_select
    assert "&lt;script&gt;" in pages["en", "?q=marker"]


def test_a_tag_another_program_wrote_can_still_be_removed(cases):
    """The remove form carries the tag percent-encoded: exact, and inert in the page."""
    case_id = write_case(cases, BASE)
    desk = desk_client(cases)
    with sqlite3.connect(cases / DATABASE) as db:
        db.execute("INSERT INTO tags VALUES (?, ?)", (case_id, "\u202eevil\x1b[2J"))
    page = desk.get(f"/en/cases/{case_id}").get_data(as_text=True)
    encoded = re.search(r'name="tag" value="([^"]*)"', page).group(1)
    assert encoded.isascii() and "%E2%80%AE" in encoded
    answer = desk.post(f"/en/cases/{case_id}/tags/remove",
                       data={"csrf_token": token(desk, "/en/"), "tag": encoded})
    assert answer.status_code == 303
    with sqlite3.connect(cases / DATABASE) as db:
        assert db.execute("SELECT count(*) FROM tags").fetchone()[0] == 0
