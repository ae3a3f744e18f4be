"""`intake review …`: the reviewers' side, on the air-gapped machine.

Nothing here imports the server's code (the web app, the database, the blob
store), so the reviewers' install does not need it. Every value that came
from a report, a manifest or the case store goes through
`intake.cli.terminal.terminal_safe` before it reaches the terminal (`_safe`);
documents (exports, report.html) go through their own format's filter.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from intake.cli.common import (
    cases_option,
    info,
    passphrase_file_option,
    passphrase_source,
    terminal_progress,
    write_document,
)
from intake.errors import IntakeError


@click.group("review")
def review() -> None:
    """The reviewers' side, on the air-gapped machine."""


#: `intake review import`'s exit statuses (documented in docs/reviewers.md and --help).
#: 1 and 2 are the command line's own: a one-sentence refusal, and click's usage errors.
EXIT_IMPORTED = 0
EXIT_NOTHING_IMPORTED = 1
EXIT_NOT_FOR_THESE_IDENTITIES = 3
EXIT_SET_ASIDE = 4

IMPORT_HELP = """Decrypt a bundle into the case store.

\b
Exit status:
  0  every submission was imported, or was already in the case store
  1  nothing was imported: the bundle is damaged or not a bundle, the
     identity or passphrase is wrong, or no given identity opens any
     report in the bundle (one sentence says which)
  2  the command line is wrong (a missing option or argument)
  3  some submissions are not for these identities (counted, nothing of
     them copied); every other one was imported
  4  some submissions were quarantined (damaged) or refused (broke the
     rules); every other one was imported; see CASES/.quarantine/
"""


@review.command("import", help=IMPORT_HELP)
@click.argument("bundle", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--identity",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The reviewer identity file.",
)
@passphrase_file_option
@cases_option
def import_(bundle: Path, identity: Path, passphrase_file: Path | None, cases_dir: Path) -> None:
    from intake.cli.terminal import terminal_safe
    from intake.crypto.identity import load_identities
    from intake.review.importer import import_bundle, read_bundle

    read_bundle(bundle).close()  # a damaged bundle fails before the passphrase is asked
    identities = load_identities(identity, passphrase_source(passphrase_file, what=str(identity)))
    result = import_bundle(bundle, identities, cases_dir, terminal_progress("Importing"))
    for submission_id, reason in result.quarantined:
        info(f"quarantined {submission_id}: {terminal_safe(reason)}")
    for submission_id, reason in result.refused:
        info(f"refused     {submission_id}: {terminal_safe(reason)}")
    for submission_id, case_id in result.follow_ups:
        info(f"follow-up {submission_id}: filed in its source's case {_code(case_id)}")
    info(
        f"{len(result.added)} added, {len(result.already)} already in the case store, "
        f"{len(result.not_for_these_identities)} not for these identities, "
        f"{len(result.quarantined)} quarantined, {len(result.refused)} refused."
    )
    if result.follow_ups:
        info(f"{len(result.follow_ups)} of those added came from a source with a case here, "
             "and were filed in it as follow-ups.")
    if result.threads_unread:
        info(
            "This bundle says which submissions come from one source (threads.age), but your "
            "identity cannot open that part: each submission was filed as a case of its own, "
            "and none can be answered. Ask the admins whether the keyring lists your key."
        )
    if result.set_aside:
        info(f"What was set aside, as it arrived, and why: {cases_dir / '.quarantine'}")
    if result.bundle_id is not None and not result.challenges_opened:
        info(
            "No challenge in this bundle is for your identity, so an ack from you will not "
            "count on the server; ask the admins whether the keyring lists your key."
        )
    if result.set_aside:
        sys.exit(EXIT_SET_ASIDE)
    if result.not_for_these_identities:
        sys.exit(EXIT_NOT_FOR_THESE_IDENTITIES)


ACK_HELP = """Write the signed return file (intake-ack/v2) for the server's purge.

With BUNDLE, it acknowledges the submissions of BUNDLE that are safely in
the case store, with a proof that your identity opened the bundle. Without
BUNDLE it acknowledges nothing and carries only replies (proven with the
bundle imported last). Either way it carries every reply written with
`intake review reply` and not yet sent, and marks them sent once the file
is written.
"""


@review.command("ack", help=ACK_HELP)
@click.argument("bundle", required=False, type=click.Path(path_type=Path, dir_okay=False))
@cases_option
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the return file here instead of to standard output.")
def ack(bundle: Path | None, cases_dir: Path, out: Path | None) -> None:
    from intake.cli.terminal import terminal_safe
    from intake.review.importer import make_ack, mark_replies_sent

    document = make_ack(bundle, cases_dir)
    write_document(json.dumps(document, indent=1) + "\n", out)
    # Only now is the file written: a reply is marked sent only once it is in one.
    mark_replies_sent(cases_dir, document)
    info(
        f"Acknowledged {len(document['submissions'])} submission(s) as reviewer "
        f"{terminal_safe(document['reviewer'])}, with {len(document['replies'])} reply(ies)."
    )


@review.command("reply")
@click.argument("case_ref", metavar="ID")
@click.option("--text-file", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The reply, as UTF-8 text ('-' reads standard input).")
@cases_option
def reply(case_ref: str, text_file: Path, cases_dir: Path) -> None:
    """Encrypt a reply to the case's source and queue it for the next return file.

    Only the source, with the receipt their report gave them, can read it on
    the follow-up page. Your plaintext copy stays with the case. It leaves
    with the next `intake review ack`.
    """
    text = _read_note(text_file, what="reply")
    with _store(cases_dir) as store:
        case_id = store.resolve(case_ref)
        queued = store.add_reply(case_id, text)
    info(f"Reply {queued.reply_id[:8]} to the source of {_code(case_id)} is queued; it leaves "
         "with the next `intake review ack`.")


# -- The case store: listing, showing, counting, triage, exports ---------------------------

#: The languages of labels and documents (`intake.review.i18n.LANGUAGES`).
_LANGUAGES = ("en", "ar", "fr", "fa")
#: Bound on a note file: a note is at most 20,000 characters of up to 4 bytes each.
_MAX_NOTE_FILE = 80_000

lang_option = click.option(
    "--lang", type=click.Choice(_LANGUAGES), default="en", show_default=True,
    help="The language of labels and documents (not the reports' own text).",
)


def _safe(value: object, *, keep_newlines: bool = False) -> str:
    """`terminal_safe`, with a fast path for the common case of a listing's cells."""
    from intake.cli.terminal import terminal_safe

    text = value if isinstance(value, str) else str(value)
    # str.isprintable() is False for every category terminal_safe escapes (Cc, Cf, Cs,
    # Co, Cn, Zl, Zp), so printable text is already what terminal_safe would return.
    if text.isprintable():
        return text
    return terminal_safe(text, keep_newlines=keep_newlines)


def _store(cases_dir: Path):
    from intake.review.store import CaseStore

    return CaseStore(cases_dir, progress=terminal_progress("Indexing"))


def filter_options(command):
    """The filters `list`, `stats` and `export` share; values are the machine codes."""
    options = [
        click.option("--status", default=None, help="Only cases with this status."),
        click.option("--tag", default=None, help="Only cases with this tag."),
        click.option("--category", default=None, help="Only cases with this category value."),
        click.option("--country", default=None, help="Only cases from this country code."),
        click.option("--risk", default=None, help="Only cases with this risk value."),
        click.option("--tool", default=None, help="Only cases with this suspected tool."),
        click.option("--since", default=None, help="Only cases received on or after YYYY-MM-DD."),
        click.option("--until", default=None, help="Only cases received on or before YYYY-MM-DD."),
        click.option("--search", default=None, help="Only cases whose text has every word."),
        click.option("--assignee", default=None, help="Only cases given to this name."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _filters(options: dict):
    from intake.review.store import CaseFilter

    names = ("status", "tag", "category", "country", "risk", "tool", "since", "until",
             "search", "assignee")
    return CaseFilter(**{name: options.pop(name) for name in names})


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


@review.command("list")
@cases_option
@filter_options
@click.option("--group-by-indicator", is_flag=True,
              help="Show the listed cases grouped by the indicators they share.")
def list_cases(cases_dir: Path, group_by_indicator: bool, **options) -> None:
    """A table of cases: code, day, status, answers, files, tags; damaged ones marked."""
    filters = _filters(options)
    with _store(cases_dir) as store:
        if group_by_indicator:
            _print_groups(store.groups(filters))
            return
        listed = store.cases(filters)
    rows = [("CASE", "RECEIVED", "STATUS", "COUNTRY", "RISK", "TOOL", "CATEGORIES", "FILES",
             "TAGS", "ASSIGNEE", "")]
    for s in listed:
        rows.append(tuple(_safe(cell) for cell in (
            s.code, s.received_on or "-", s.status, s.country or "-", s.risk or "-",
            s.suspected_tool or "-", ",".join(s.categories) or "-", str(s.attachments),
            ",".join(s.tags) or "-", s.assignee or "-",
            f"DAMAGED ({len(s.problems)} problem(s); `show` lists them)" if s.damaged else "",
        )))
    _table(rows)
    info(f"{len(listed)} case(s).")


def _print_groups(groups) -> None:
    """What the listed cases share, each group once (the filters chose the cases)."""
    for group in groups:
        keys = "; ".join(f"{i.kind} {_safe(i.value)}" for i in group.indicators)
        click.echo(f"{len(group.case_ids)} cases share {keys}:")
        click.echo("    " + ", ".join(group.codes))
    info(f"{len(groups)} group(s) of cases sharing an indicator.")


@review.command("show")
@click.argument("case_ref", metavar="ID")
@cases_option
@lang_option
@click.option("--html", "as_html", is_flag=True,
              help="Write the case as an HTML page (report.html) instead.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="With --html: the file to write (default: standard output).")
def show(case_ref: str, cases_dir: Path, lang: str, as_html: bool, out: Path | None) -> None:
    """Show a case (ID: its 32-hex id, its IC-XXXXXXXX code or a unique prefix)."""
    with _store(cases_dir) as store:
        case = store.case(case_ref)
        triaged = store.triage(case.case_id)
        related = store.related(case.case_id)
        notes = store.notes(case.case_id)
        replies = store.replies(case.case_id)
    if as_html:
        from intake.review.render import render_case

        write_document(render_case(case, lang=lang, triage=triaged, related=related,
                                   notes=notes), out)
        return
    if out is not None:
        raise IntakeError("--out goes with --html; without it the case is shown here.")
    from intake.review.i18n import in_language

    with in_language(lang):
        _show_case(case, triaged, related, notes, lang)
        _show_thread(case, replies)


def _show_thread(case, replies) -> None:
    """What the same source sent later, and the replies to them (the follow-up channel)."""
    from intake.review import labels

    click.echo(f"\n== {_safe(labels.word('follow_ups'))}")
    for follow_up in case.follow_ups:
        click.echo(f"{_safe(labels.word('follow_up', day=follow_up.received_on or '-'))} "
                   f"({follow_up.case_id})"
                   + (" DAMAGED: " + _safe("; ".join(follow_up.problems))
                      if follow_up.damaged else ""))
        text = _safe(str(follow_up.fields.get("narrative") or ""), keep_newlines=True)
        if text:
            click.echo("    " + text.replace("\n", "\n    "))
        for a in follow_up.attachments:
            click.echo(f"    {_safe(follow_up.directory / a['path'])}  {_safe(a['name'])}  "
                       f"{_safe(a['type'])}  {a['size']} bytes  sha256 {a['sha256']}")
    if not case.follow_ups:
        click.echo(_safe(labels.word("none")))
    if any(f.attachments for f in case.follow_ups):
        click.echo("WARNING: attachments from a targeted person may be malware. Do not open "
                   "them with this machine's usual programs.")
    click.echo(f"\n== {_safe(labels.word('replies'))}")
    click.echo(_safe(labels.word("can_reply", code=case.code) if case.reply_to
                     else labels.word("no_way_back")))
    for item in replies:
        state = (labels.word("reply_sent", day=item.day, sent=item.sent_on) if item.sent_on
                 else labels.word("reply_queued", day=item.day))
        text = _safe(item.text, keep_newlines=True).replace("\n", "\n    ")
        click.echo(f"{item.reply_id[:8]} {_safe(state)}:\n    {text}")


def _show_case(case, triaged, related, notes, lang: str) -> None:
    from intake import schema
    from intake.review import labels

    click.echo(
        f"Case {case.code} ({case.case_id}), received {_safe(case.received_on or '-')}, "
        f"keyring version {case.keyring_version}, written in {case.lang}"
    )
    click.echo(
        f"{_safe(labels.field_label('status'))}: "
        f"{_safe(labels.status_label(triaged.status))} · "
        f"{_safe(labels.field_label('assignee'))}: {_safe(triaged.assignee or '-')} · "
        f"{_safe(labels.field_label('tags'))}: {_safe(', '.join(triaged.tags) or '-')}"
    )
    if case.damaged:
        click.echo("\nDAMAGED: this case's files break the form's rules; the answers below are "
                   "those that pass them.")
        for problem in case.problems:
            click.echo(f"  - {_safe(problem)}")
    for section in schema.SECTIONS:
        click.echo(f"\n== {_safe(section.title)}")
        for field in section.fields:
            if field.kind == "files":
                continue
            value = labels.answer_label(field, case.fields.get(field.name))
            if "\n" in value:
                text = _safe(value, keep_newlines=True).replace("\n", "\n    ")
                click.echo(f"{_safe(field.label)}:\n    {text}")
            else:
                click.echo(f"{_safe(field.label)}: {_safe(value)}")
    broken = {k: v for k, v in case.raw_fields.items() if k not in case.fields}
    if broken:
        click.echo("\n== Answers that break the form's rules (as stored, cut to 200 characters)")
        for name, value in broken.items():
            stored = json.dumps(value, ensure_ascii=False)[:200]
            click.echo(f"{_safe(str(name)[:60])}: {_safe(stored)}")
    click.echo(f"\n== {_safe(labels.word('attachments'))}")
    if case.attachments:
        # English too, whatever --lang says: the one line no reviewer may miss.
        click.echo(
            "WARNING: attachments from a targeted person may be malware. Do not open them "
            "with this machine's usual programs; open documents with a sanitiser such as "
            "Dangerzone."
        )
        if lang != "en":
            click.echo(_safe(labels.word("attachments_warning")))
    for a in case.attachments:
        click.echo(
            f"{_safe(case.directory / a['path'])}  {_safe(a['name'])}  {_safe(a['type'])}  "
            f"{a['size']} bytes  sha256 {a['sha256']}"
        )
    click.echo(f"\n== {_safe(labels.word('related'))}")
    for relation in related:
        shared = "; ".join(f"{i.kind} {_safe(i.value)}" for i in relation.shared)
        click.echo(f"{relation.code} ({_safe(relation.received_on or '-')}): {shared}")
    if not related:
        click.echo(_safe(labels.word("none")))
    click.echo(f"\n== {_safe(labels.word('notes'))}")
    for note in notes:
        text = _safe(note.text, keep_newlines=True).replace("\n", "\n    ")
        click.echo(f"#{note.number} {note.day} {_safe(note.author)}:\n    {text}")
    if not notes:
        click.echo(_safe(labels.word("none")))


@review.command("related")
@click.argument("case_ref", metavar="ID")
@cases_option
def related_cases(case_ref: str, cases_dir: Path) -> None:
    """The other cases that share an indicator with ID, and which."""
    with _store(cases_dir) as store:
        case_id = store.resolve(case_ref)
        related = store.related(case_id)
    for relation in related:
        shared = "; ".join(f"{i.kind} {_safe(i.value)}" for i in relation.shared)
        click.echo(f"{relation.code}  {_safe(relation.received_on or '-')}  {shared}")
    info(f"{len(related)} related case(s).")


@review.command("stats")
@cases_option
@filter_options
@lang_option
def stats(cases_dir: Path, lang: str, **options) -> None:
    """Counts by month, status, country, category, suspected tool and risk, as labels."""
    from intake.review import labels
    from intake.review.i18n import in_language

    filters = _filters(options)
    with _store(cases_dir) as store:
        counted = store.stats(filters)
    with in_language(lang):
        click.echo(_safe(labels.word("cases", count=counted.total)))
        if counted.damaged:
            click.echo(_safe(labels.word("damaged_cases", count=counted.damaged)))
        for title, rows, label in (
            ("by_month", counted.by_month, str),
            ("by_status", counted.by_status, labels.status_label),
            ("by_country", counted.by_country, lambda v: labels.choice_label("country", v)),
            ("by_category", counted.by_category,
             lambda v: labels.choice_label("categories", v)),
            ("by_tool", counted.by_tool, lambda v: labels.choice_label("suspected_tool", v)),
            ("by_risk", counted.by_risk, lambda v: labels.choice_label("risk_now", v)),
        ):
            click.echo(f"\n{_safe(labels.word(title))}:")
            for value, count in rows:
                shown = label(value) if value else labels.no_answer()
                click.echo(f"  {_safe(shown):40} {count}")


@review.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "stix2", "html"]), required=True)
@cases_option
@filter_options
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--redact", is_flag=True, help="CSV: leave out free text and contact details.")
@click.option("--codes", is_flag=True, help="CSV: machine codes instead of labels (for scripts).")
@click.option("--codebook", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="CSV: also write the codebook (column, code, label) to this file.")
@lang_option
def export_cases(fmt: str, cases_dir: Path, out: Path | None, redact: bool, codes: bool,
                 codebook: Path | None, lang: str, **options) -> None:
    """Export the cases as CSV, a STIX 2.1 bundle for MVT, or an HTML report with charts."""
    import io

    from intake.review import exports
    from intake.review.i18n import in_language

    if fmt != "csv" and (codes or codebook or redact):
        raise IntakeError("--codes, --codebook and --redact go with --format csv.")
    filters = _filters(options)
    with _store(cases_dir) as store:
        listed = store.cases(filters)
        cases = store.load(listed)
        triage_of = {s.case_id: store.triage(s.case_id) for s in listed}
    for case in cases:
        if case.damaged:
            info(f"{case.code} is damaged; only its answers that pass the form's rules are "
                 "exported.")
    if fmt == "csv":
        buffer = io.StringIO(newline="")
        with in_language(lang):
            exports.to_csv(cases, buffer, redact=redact, codes=codes, triage_of=triage_of)
            if codebook is not None:
                book = io.StringIO(newline="")
                exports.write_codebook(book)
                write_document(book.getvalue(), codebook)
        write_document(buffer.getvalue(), out)
    elif fmt == "stix2":
        for left in exports.stix2_left_out(cases):
            info(f"{left.case_code}: {left.indicator.kind} "
                 f"{_safe(left.indicator.value[:120])} left out: {left.reason}.")
        write_document(exports.to_stix2(cases), out)
    else:
        write_document(exports.to_html(cases, lang), out)
    info(f"Exported {len(cases)} case(s).")


@review.command("tag")
@click.argument("case_ref", metavar="ID")
@click.argument("tag")
@click.option("--remove", is_flag=True, help="Remove the tag instead.")
@cases_option
def tag(case_ref: str, tag: str, remove: bool, cases_dir: Path) -> None:
    """Add TAG to a case (or remove it)."""
    with _store(cases_dir) as store:
        case_id = store.resolve(case_ref)
        if remove:
            removed = store.remove_tag(case_id, tag)
            info(f"{'Removed' if removed else 'The case had no'} tag {_safe(tag)!r}.")
        else:
            info(f"Tagged {_code(case_id)} {_safe(store.add_tag(case_id, tag))!r}.")


def _code(case_id: str) -> str:
    from intake.review.casestore import case_code

    return case_code(case_id)


@review.command("status")
@click.argument("case_ref", metavar="ID")
@click.argument("status")
@cases_option
def status(case_ref: str, status: str, cases_dir: Path) -> None:
    """Set a case's status: new, in_triage, needs_follow_up, confirmed, not_confirmed, closed."""
    with _store(cases_dir) as store:
        case_id = store.resolve(case_ref)
        store.set_status(case_id, status)
    info(f"{_code(case_id)} is now {status}.")


@review.command("assign")
@click.argument("case_ref", metavar="ID")
@click.argument("name")
@cases_option
def assign(case_ref: str, name: str, cases_dir: Path) -> None:
    """Give a case to NAME (a name reviewers type; "" gives it to nobody)."""
    with _store(cases_dir) as store:
        case_id = store.resolve(case_ref)
        store.set_assignee(case_id, name)
    info(f"{_code(case_id)} is given to {_safe(name)!r}." if name.strip()
         else f"{_code(case_id)} is given to nobody.")


@review.command("note")
@click.argument("case_ref", metavar="ID")
@click.option("--text-file", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The note, as UTF-8 text ('-' reads standard input).")
@click.option("--author", default=None,
              help="Who writes the note (default: this computer's user name).")
@cases_option
def note(case_ref: str, text_file: Path, author: str | None, cases_dir: Path) -> None:
    """Append a note to a case's log (notes are never changed or deleted)."""
    import getpass

    data = _read_note(text_file)
    with _store(cases_dir) as store:
        case_id = store.resolve(case_ref)
        added = store.add_note(case_id, data, author=author if author is not None
                               else getpass.getuser())
    info(f"Note #{added.number} added to {_code(case_id)} by {_safe(added.author)}.")


def _read_note(text_file: Path, what: str = "note") -> str:
    try:
        if str(text_file) == "-":
            data = sys.stdin.buffer.read(_MAX_NOTE_FILE + 1)
        else:
            with text_file.open("rb") as fh:
                data = fh.read(_MAX_NOTE_FILE + 1)
    except OSError as exc:
        raise IntakeError(f"The {what} file {text_file} cannot be read ({exc.strerror}).") from None
    if len(data) > _MAX_NOTE_FILE:
        raise IntakeError(f"The {what} file is too long for one {what}; split it in several.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise IntakeError(f"The {what} file {text_file} is not UTF-8 text.") from None


@review.command("serve")
@cases_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Only 127.0.0.1 is accepted: the desk is for this computer alone.",
)
@click.option(
    "--port",
    type=int,
    default=8001,
    show_default=True,
    envvar="INTAKE_DESK_PORT",
    help="The port on 127.0.0.1 (1024-65535).",
)
def serve_desk_command(cases_dir: Path, host: str, port: int) -> None:
    """The reviewers' desk in a browser, on 127.0.0.1 only; prints a one-time address."""
    from intake.review.desk.server import serve_desk

    serve_desk(cases_dir, host=host, port=port)
