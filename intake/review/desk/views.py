"""The desk's pages: sign-in, the list of cases, campaigns, a case, its triage, lock.

Every page is in the reviewer's language, which is the first part of its path
(``/ar/…``, ``/en/…``, ``/fr/…``, ``/fa/…``) and independent of the language
each source wrote in. Every value from a report, and every tag, name and
note, goes through `display.shown` in the templates.

The list (``/<lang>/``) and the group view (``/<lang>/groups``) read the
case store's index with the filters of `listing`; a refused filter is a 400
with one sentence. Each change of triage (status, assignee, tags, a note) is
a POST with the CSRF token, then a 303 to the case page; a change the store
refuses gives the case page again, with the sentence by its field and what
was typed kept (less any control character), as a 400.

An attachment is never sent as what it claims to be: an image is answered as
a PNG re-encoded in a subprocess, text as an escaped page, and anything
(including those) can be saved only as ``application/octet-stream`` with
``Content-Disposition: attachment``.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any
from urllib.parse import unquote

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_babel import format_decimal
from flask_babel import gettext as _

from intake import schema
from intake.review import labels, triage
from intake.review.casestore import CASE_ID, Case, case_code
from intake.review.desk import attachments as att
from intake.review.desk import display, listing
from intake.review.desk.app import (
    SESSION_KEY,
    STYLESHEETS,
    desk_state,
    render_error,
    reviewer_language,
)
from intake.review.desk.images import ImageRefused
from intake.review.indicators import Indicator
from intake.review.store import (
    AmbiguousCase,
    CaseFilter,
    CaseNotFound,
    CaseStore,
    CaseStoreBusy,
    CaseSummary,
    FilterError,
    IndicatorGroup,
    checked_indicator,
)
from intake.web.i18n import LANGUAGES

log = logging.getLogger("intake.desk")

#: The one page outside the desk's random path: where the printed URL leads.
entry = Blueprint("entry", __name__)
#: Everything else, registered under `DeskGuard.path_prefix`.
bp = Blueprint("desk", __name__)


@bp.url_value_preprocessor
def pull_language(endpoint: str | None, values: dict[str, Any] | None) -> None:
    if values is not None and "lang" in values:
        lang = values.pop("lang")
        if lang not in LANGUAGES:
            abort(404)
        g.lang = lang


@bp.url_defaults
def add_language(endpoint: str, values: dict[str, Any]) -> None:
    if "lang" not in values and current_app.url_map.is_endpoint_expecting(endpoint, "lang"):
        values["lang"] = reviewer_language()


def language_links() -> list[tuple[Any, str, bool]]:
    """(language, this page in it, is current) for the switcher; other pages lead to the list.

    A page keeps its query (the list's filters, its search and page) in every language.
    """
    endpoint = request.endpoint if request.method == "GET" else None
    args = {**request.args.to_dict(), **(request.view_args or {})}
    links = []
    for language in LANGUAGES.values():
        if endpoint and current_app.url_map.is_endpoint_expecting(endpoint, "lang"):
            href = url_for(endpoint, **{**args, "lang": language.code})
        else:
            href = url_for("desk.case_list", lang=language.code)
        links.append((language, href, language.code == reviewer_language()))
    return links


@entry.get("/login")
def login() -> Any:
    token = request.args.get("token", "")[:200]
    secret = desk_state().guard.exchange(token)
    if secret is None:
        return render_error(
            _("This address has been used already"),
            _("Each address the desk prints works once. Stop the desk with Ctrl+C and run "
              "\u201cintake review serve\u201d again for a new one."),
            styled=False,
        ), 403
    session.clear()
    session[SESSION_KEY] = secret
    # 303 to a URL without the token: it leaves the address bar and the history entry.
    return redirect(url_for("desk.case_list", lang=reviewer_language()), code=303)


@bp.get("/")
def home() -> Any:
    return redirect(url_for("desk.case_list", lang=reviewer_language()), code=303)


@bp.get("/static/<name>")
def stylesheet(name: str) -> Response:
    path = STYLESHEETS.get(name)
    if path is None:
        abort(404)
    return send_file(path, mimetype="text/css", max_age=0)


@bp.get("/favicon.ico")
def favicon() -> tuple[str, int]:
    return "", 204


@bp.get("/<lang>/")
def case_list() -> Any:
    """The cases, newest first, one page at a time, filtered and searched."""
    store = desk_state().store
    _reconcile(store)
    try:
        query = listing.read_query(request.args)
    except listing.Refused as refused:
        return _list_page(listing.ListQuery(CaseFilter()), refused=refused), 400
    try:
        listing.check_assignee(query, store)
        total, rows = store.page(query.filters, offset=(query.page - 1) * listing.PAGE_SIZE,
                                 limit=listing.PAGE_SIZE)
        last = listing.pages(total, listing.PAGE_SIZE)
        if query.page > last:  # past the end (the list got shorter): the last page
            query.page = last
            query.chosen.pop("page", None)
            if last > 1:
                query.chosen["page"] = str(last)
            total, rows = store.page(query.filters, offset=(last - 1) * listing.PAGE_SIZE,
                                     limit=listing.PAGE_SIZE)
    except FilterError as error:
        return _list_page(query, refused=listing.refusal(error, query, store)), 400
    return _list_page(query, rows=[_row(s) for s in rows], total=total)


def _reconcile(store: CaseStore) -> None:
    """Index what was imported or changed on disk since the last page, if the store lets us.

    An import indexes each case itself; this catches the rest. If another command holds
    the store past the busy timeout, the page shows the index as it is rather than fail.
    """
    try:
        store.reconcile()
    except CaseStoreBusy:
        log.warning("the case store is busy; the list shows the index as it was")


def _list_page(query: listing.ListQuery, *, rows: list[dict[str, Any]] | None = None,
               total: int = 0, refused: listing.Refused | None = None) -> str:
    store = desk_state().store
    return render_template(
        "cases.html", rows=rows or [], total=total, query=query, refused=refused,
        form=listing.filter_form(store), any_case=store.count() > 0, sharing=_sharing(query),
        last_page=listing.pages(total, listing.PAGE_SIZE),
        filter_label=listing.filter_label,
    )


def _row(summary: CaseSummary) -> dict[str, Any]:
    """One line of the list: the index's machine values as labels in the reviewer's language."""
    return {
        "s": summary,
        "status": labels.status_label(summary.status),
        "country": labels.choice_label("country", summary.country),
        "categories": ", ".join(labels.choice_label("categories", c)
                                for c in summary.categories),
        "risk": labels.choice_label("risk_now", summary.risk),
        "tool": labels.choice_label("suspected_tool", summary.suspected_tool),
    }


@bp.get("/<lang>/groups")
def group_list() -> Any:
    """The cases the filters select, grouped by the indicators they share: campaigns."""
    store = desk_state().store
    _reconcile(store)
    try:
        query = listing.read_query(request.args)
    except listing.Refused as refused:
        return _groups_page(listing.ListQuery(CaseFilter()), [], refused=refused), 400
    try:
        listing.check_assignee(query, store)
        groups = store.groups(query.filters)
    except FilterError as error:
        return _groups_page(query, [], refused=listing.refusal(error, query, store)), 400
    last = listing.pages(len(groups), listing.GROUPS_PAGE_SIZE)
    if query.page > last:
        query.page = last
        query.chosen.pop("page", None)
    start = (query.page - 1) * listing.GROUPS_PAGE_SIZE
    return _groups_page(query, groups[start:start + listing.GROUPS_PAGE_SIZE], total=len(groups),
                        first_number=start + 1)


def _groups_page(query: listing.ListQuery, groups: list[IndicatorGroup], *, total: int = 0,
                 first_number: int = 1, refused: listing.Refused | None = None) -> str:
    store = desk_state().store
    shown = [{
        "number": number,
        "size": len(group.case_ids),
        "indicators": [_indicator(i) for i in group.indicators[:listing.GROUP_INDICATORS_SHOWN]],
        "more_indicators": max(0, len(group.indicators) - listing.GROUP_INDICATORS_SHOWN),
        "members": [(case_id, case_code(case_id))
                    for case_id in group.case_ids[:listing.GROUP_MEMBERS_SHOWN]],
        "all": {**_other_filters(query.chosen), "indicator": _key(group.indicators[0])},
    } for number, group in enumerate(groups, start=first_number)]
    return render_template(
        "groups.html", groups=shown, total=total, query=query, refused=refused,
        form=listing.filter_form(store), any_case=store.count() > 0, sharing=_sharing(query),
        last_page=listing.pages(total, listing.GROUPS_PAGE_SIZE),
        filter_label=listing.filter_label,
    )


def _sharing(query: listing.ListQuery) -> dict[str, str] | None:
    """The indicator the list is narrowed to, as the form shows it, if it is one."""
    try:
        kind, value = checked_indicator(query.chosen["indicator"])
    except (KeyError, FilterError):
        return None
    return _indicator(Indicator(kind, value))


def _other_filters(chosen: dict[str, str]) -> dict[str, str]:
    """The filters of a query but its page and indicator (a group's link sets its own)."""
    return {k: v for k, v in chosen.items() if k not in ("page", "indicator")}


def _key(indicator: Indicator) -> str:
    return f"{indicator.kind}:{indicator.value}"


def _indicator(indicator: Indicator) -> dict[str, str]:
    return {"kind": labels.indicator_kind(indicator.kind), "value": indicator.value,
            "key": _key(indicator)}


def _case_or_404(case_id: str) -> Case:
    if not CASE_ID.fullmatch(case_id):
        abort(404)
    try:
        return desk_state().store.case(case_id)
    except (CaseNotFound, AmbiguousCase):
        abort(404)


def _attachment_or_404(case: Case, index: int) -> att.Attachment:
    found = att.attachments_of(case.directory, case.report)
    if not 1 <= index <= len(found):
        abort(404)
    return found[index - 1]


def _source_language(case: Case) -> str | None:
    lang = case.report.get("lang")
    return lang if isinstance(lang, str) and lang in schema.REPORT_LANGUAGES else None


#: What a change says once it is saved (keys kept in the session until the next page).
def _confirmation(key: str) -> str | None:
    return {
        "status": _("The status has been saved."),
        "assignee": _("The assignee has been saved."),
        "tag_added": _("The tag has been added."),
        "tag_removed": _("The tag has been removed."),
        "note": _("The note has been added to the log."),
    }.get(key)


@bp.get("/<lang>/cases/<case_id>")
def case_page(case_id: str) -> str:
    return _case_page(_case_or_404(case_id))


def _case_page(case: Case, *, errors: dict[str, str] | None = None,
               typed: dict[str, str] | None = None) -> str:
    store = desk_state().store
    files = []
    for attachment in att.attachments_of(case.directory, case.report):
        sniffed = att.sniff(attachment)
        files.append({
            "a": attachment,
            "sniffed": sniffed,
            "disagree": att.types_disagree(attachment.declared_type, sniffed),
            "kind": att.view_kind(sniffed),
        })
    related = store.related(case.case_id)
    triaged = store.triage(case.case_id)
    return render_template(
        "case.html",
        case=case,
        source_lang=_source_language(case),
        problems=case.problems,
        sections=display.section_views(case.raw_fields),
        files=files,
        triage=triaged,
        statuses=[(s, labels.status_label(s)) for s in triage.STATUSES],
        # Form values hold nothing that could act (see listing.typable_tags).
        assignee=triage.without_refused(triaged.assignee),
        tags_in_use=listing.typable_tags(store),
        assignees=listing.typable_names(store),
        notes=store.notes(case.case_id),
        follow_ups=case.follow_ups,
        replies=store.replies(case.case_id),
        reply_command=f"intake review reply {case.code} --text-file FILE",
        related=[{
            "case_id": r.case_id, "code": r.code, "received_on": r.received_on,
            "shared": [_indicator(i) for i in r.shared],
        } for r in related[:listing.RELATED_SHOWN]],
        related_total=len(related),
        errors=errors or {},
        typed=typed or {},
        author=triage.without_refused(str(session.get("author", ""))),
        confirmations=[text for key in get_flashed_messages()
                       if (text := _confirmation(str(key)))],
    )


def _saved(case: Case, key: str, anchor: str) -> Response:
    """After a change: say so on the next page, and redirect (a reload sends nothing again)."""
    flash(key)
    return redirect(url_for("desk.case_page", case_id=case.case_id, _anchor=anchor), code=303)


def _refused(case: Case, field: str, error: triage.TriageError,
             typed: dict[str, str]) -> tuple[str, int]:
    """The case page again, with the sentence next to the field and what was typed kept."""
    return _case_page(case, errors={field: _triage_sentence(error)}, typed=typed), 400


def _triage_sentence(error: triage.TriageError) -> str:
    sentences = {
        "status": _("Choose one of the statuses in the list."),
        "tag_empty": _("A tag cannot be empty. Type a word, such as pegasus-2026."),
        "tag_form": _("A tag is one line of at most %(max)s characters, without control "
                      "characters; any have been taken out below.", max=triage.MAX_TAG),
        "tag_limit": _("A case has at most %(max)s tags. Remove one first.",
                       max=triage.MAX_TAGS_PER_CASE),
        "name_form": _("A name is one line of at most %(max)s characters, with at least one "
                       "letter or digit and no control characters; any have been taken out "
                       "below.", max=triage.MAX_NAME),
        "author_missing": _("Write your name, so that the note keeps who wrote it."),
        "note_empty": _("The note is empty. Write it, then add it."),
        "note_long": _("A note is at most %(max)s characters. Split it into several notes.",
                       max=format_decimal(triage.MAX_NOTE)),
        "note_control": _("The note held control characters (such as an escape or a bidi "
                          "control); they have been taken out below. Check the note and add "
                          "it again."),
    }
    return sentences.get(error.reason, _("This cannot be saved."))


def _form_text(name: str) -> str:
    return str(request.form.get(name, ""))


@bp.post("/<lang>/cases/<case_id>/status")
def set_status(case_id: str) -> Any:
    case = _case_or_404(case_id)
    try:
        desk_state().store.set_status(case.case_id, _form_text("status"))
    except triage.TriageError as error:
        return _refused(case, "status", error, {})
    except CaseNotFound:
        abort(404)
    return _saved(case, "status", "triage")


@bp.post("/<lang>/cases/<case_id>/assignee")
def set_assignee(case_id: str) -> Any:
    case = _case_or_404(case_id)
    name = _form_text("assignee")
    try:
        desk_state().store.set_assignee(case.case_id, name)
    except triage.TriageError as error:
        return _refused(case, "assignee", error,
                        {"assignee": triage.without_refused(name)[:triage.MAX_NAME]})
    except CaseNotFound:
        abort(404)
    return _saved(case, "assignee", "triage")


@bp.post("/<lang>/cases/<case_id>/tags")
def add_tag(case_id: str) -> Any:
    case = _case_or_404(case_id)
    tag = _form_text("tag")
    try:
        desk_state().store.add_tag(case.case_id, tag)
    except triage.TriageError as error:
        return _refused(case, "tag", error, {"tag": triage.without_refused(tag)[:200]})
    except CaseNotFound:
        abort(404)
    return _saved(case, "tag_added", "triage")


@bp.post("/<lang>/cases/<case_id>/tags/remove")
def remove_tag(case_id: str) -> Any:
    case = _case_or_404(case_id)
    # The form carries the tag percent-encoded (ASCII), so that no tag's character, even
    # one written into the database by another program, reaches the page as it is.
    tag = unquote(_form_text("tag"), errors="strict") if _form_text("tag").isascii() else ""
    try:
        removed = desk_state().store.remove_tag(case.case_id, tag)
    except (triage.TriageError, UnicodeDecodeError):
        abort(400)
    except CaseNotFound:
        abort(404)
    if not removed:  # removed already (another tab, the command line): nothing to say
        return redirect(url_for("desk.case_page", case_id=case.case_id, _anchor="triage"),
                        code=303)
    return _saved(case, "tag_removed", "triage")


@bp.post("/<lang>/cases/<case_id>/notes")
def add_note(case_id: str) -> Any:
    case = _case_or_404(case_id)
    text, author = _form_text("text"), _form_text("author")
    typed = {"text": triage.without_refused(text.replace("\r\n", "\n"), newlines=True),
             "author": triage.without_refused(author)[:triage.MAX_NAME]}
    try:
        added = desk_state().store.add_note(case.case_id, text, author=author)
    except triage.TriageError as error:
        field = "author" if error.reason in ("name_form", "author_missing") else "text"
        return _refused(case, field, error, typed)
    except CaseNotFound:
        abort(404)
    session["author"] = added.author  # offered for the next note
    return _saved(case, "note", f"note-{added.number}")


@bp.get("/<lang>/cases/<case_id>/attachments/<int:index>")
def attachment_page(case_id: str, index: int) -> str:
    case = _case_or_404(case_id)
    attachment = _attachment_or_404(case, index)
    sniffed = att.sniff(attachment)
    kind = att.view_kind(sniffed)
    disagree = att.types_disagree(attachment.declared_type, sniffed)
    context: dict[str, Any] = {
        "case": case,
        "a": attachment,
        "sniffed": sniffed,
        "disagree": disagree,
        "f": {"a": attachment, "sniffed": sniffed, "disagree": disagree},
        "kind": kind,
        "current_sha256": att.file_sha256(attachment) if attachment.path is not None else None,
        "image": None,
        "refused": None,
        "text": None,
    }
    if kind == "image":
        try:
            context["image"] = _reencoded(attachment)
        except ImageRefused as refused:
            context["refused"] = refused.sentence
    elif kind == "text" and attachment.size is not None:
        context["text"] = att.text_preview(attachment, attachment.size)
    return render_template("attachment.html", **context)


def _reencoded(attachment: att.Attachment):
    if attachment.path is None or attachment.size is None:
        raise ImageRefused("not_an_image")
    if attachment.size > desk_state().images.limits.max_input:
        raise ImageRefused("too_large")
    data = att.read_bounded(attachment, desk_state().images.limits.max_input)
    return desk_state().images.reencode(data, hashlib.sha256(data).hexdigest())


@bp.get("/<lang>/cases/<case_id>/attachments/<int:index>/image.png")
def attachment_image(case_id: str, index: int) -> Response:
    case = _case_or_404(case_id)
    attachment = _attachment_or_404(case, index)
    if att.view_kind(att.sniff(attachment)) != "image":
        abort(404)
    try:
        image = _reencoded(attachment)
    except ImageRefused as refused:
        return Response(refused.sentence + "\n", status=422, mimetype="text/plain")
    response = Response(image.png, mimetype="image/png")
    response.headers["Content-Disposition"] = "inline"
    return response


@bp.get("/<lang>/cases/<case_id>/attachments/<int:index>/file")
def attachment_file(case_id: str, index: int) -> Response:
    """The original bytes, to be saved and never shown by the browser."""
    case = _case_or_404(case_id)
    attachment = _attachment_or_404(case, index)
    try:
        handle = att.open_attachment(attachment)
    except OSError:
        abort(404)
    response = Response(_stream(handle), mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = f'attachment; filename="{attachment.download_name}"'
    if attachment.size is not None:
        response.headers["Content-Length"] = str(attachment.size)
    return response


def _stream(handle):
    with handle:
        while block := handle.read(1 << 20):
            yield block


@bp.post("/<lang>/lock")
def lock() -> tuple[str, int]:
    desk_state().guard.lock()
    session.clear()
    return render_error(
        _("The desk is locked"),
        _("To open it again, stop the desk with Ctrl+C and run \u201cintake review serve\u201d "
          "again."),
        styled=False,
    ), 200
