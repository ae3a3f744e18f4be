"""The desk's pages: sign-in, the list of cases, a case, its attachments, lock.

Every page is in the reviewer's language, which is the first part of its path
(``/ar/…``, ``/en/…``, ``/fr/…``, ``/fa/…``) and independent of the language
each source wrote in. Every value from a report goes through `display.shown`
in the templates. An attachment is never sent as what it claims to be: an
image is answered as a PNG re-encoded in a subprocess, text as an escaped
page, and anything (including those) can be saved only as
``application/octet-stream`` with ``Content-Disposition: attachment``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_babel import gettext as _

from intake import schema
from intake.review.casestore import Case
from intake.review.desk import attachments as att
from intake.review.desk import display
from intake.review.desk.app import (
    SESSION_KEY,
    STYLESHEETS,
    desk_state,
    render_error,
    reviewer_language,
)
from intake.review.desk.images import ImageRefused
from intake.web.i18n import LANGUAGES

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
    """(language, this page in it, is current) for the switcher; other pages lead to the list."""
    endpoint = request.endpoint if request.method == "GET" else None
    args = dict(request.view_args or {})
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
def case_list() -> str:
    cases, unreadable = desk_state().cases.list_cases()
    rows = []
    for case in cases:
        answers = _answers(case)
        rows.append({
            "case": case,
            "country": display.choice_list(schema.FIELDS["country"], answers.get("country")),
            "categories": display.choice_list(
                schema.FIELDS["categories"], answers.get("categories")
            ),
            "risk": display.choice_list(schema.FIELDS["risk_now"], answers.get("risk_now")),
            "files": len(att.attachments_of(case.directory, case.report)),
        })
    return render_template("cases.html", rows=rows, unreadable=unreadable)


def _answers(case: Case) -> dict[str, Any]:
    """report.json's ``fields``, or nothing when a hostile client made it something else."""
    fields = case.report.get("fields")
    return fields if isinstance(fields, dict) else {}


def _case_or_404(case_id: str) -> Case:
    case = desk_state().cases.get_case(case_id)
    if case is None:
        abort(404)
    return case


def _attachment_or_404(case: Case, index: int) -> att.Attachment:
    found = att.attachments_of(case.directory, case.report)
    if not 1 <= index <= len(found):
        abort(404)
    return found[index - 1]


def _source_language(case: Case) -> str | None:
    lang = case.report.get("lang")
    return lang if isinstance(lang, str) and lang in schema.REPORT_LANGUAGES else None


@bp.get("/<lang>/cases/<case_id>")
def case_page(case_id: str) -> str:
    case = _case_or_404(case_id)
    files = []
    for attachment in att.attachments_of(case.directory, case.report):
        sniffed = att.sniff(attachment)
        files.append({
            "a": attachment,
            "sniffed": sniffed,
            "disagree": att.types_disagree(attachment.declared_type, sniffed),
            "kind": att.view_kind(sniffed),
        })
    return render_template(
        "case.html",
        case=case,
        source_lang=_source_language(case),
        problems=schema.report_problems(case.report),
        sections=display.section_views(_answers(case)),
        files=files,
    )


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
