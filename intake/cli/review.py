"""`intake review …`: the reviewers' side, on the air-gapped machine.

Nothing here imports the server's code (the web app, the database, the blob
store), so the reviewers' install does not need it.
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
    info(
        f"{len(result.added)} added, {len(result.already)} already in the case store, "
        f"{len(result.not_for_these_identities)} not for these identities, "
        f"{len(result.quarantined)} quarantined, {len(result.refused)} refused."
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
bundle imported last).
"""


@review.command("ack", help=ACK_HELP)
@click.argument("bundle", required=False, type=click.Path(path_type=Path, dir_okay=False))
@cases_option
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the return file here instead of to standard output.")
def ack(bundle: Path | None, cases_dir: Path, out: Path | None) -> None:
    from intake.cli.terminal import terminal_safe
    from intake.review.importer import make_ack

    document = make_ack(bundle, cases_dir)
    write_document(json.dumps(document, indent=1) + "\n", out)
    info(
        f"Acknowledged {len(document['submissions'])} submission(s) as reviewer "
        f"{terminal_safe(document['reviewer'])}, with {len(document['replies'])} reply(ies)."
    )


def _cases(cases_dir: Path):
    from intake.review.casestore import load_cases

    if not cases_dir.is_dir():
        raise IntakeError(f"There is no case store at {cases_dir}; import a bundle first.")
    return load_cases(cases_dir)


@review.command("list")
@cases_option
@click.option("--category", default=None, help="Only cases with this category value.")
@click.option("--country", default=None, help="Only cases from this country code.")
@click.option("--risk", default=None, help="Only cases with this risk value.")
@click.option("--since", default=None, help="Only cases received on or after YYYY-MM-DD.")
@click.option("--until", default=None, help="Only cases received on or before YYYY-MM-DD.")
def list_cases(cases_dir: Path, category, country, risk, since, until) -> None:
    """A table of cases: id, day, categories, country, risk, attachments."""
    rows = [("CASE", "RECEIVED", "CATEGORIES", "COUNTRY", "RISK", "FILES")]
    for case in _cases(cases_dir):
        f = case.fields
        if category and category not in f.get("categories", []):
            continue
        if country and country.upper() != str(f.get("country", "")).upper():
            continue
        if risk and risk != f.get("risk_now"):
            continue
        if (since and case.received_on < since) or (until and case.received_on > until):
            continue
        rows.append(
            (
                case.case_id,
                case.received_on,
                ",".join(f.get("categories", [])),
                str(f.get("country", "")),
                str(f.get("risk_now", "")),
                str(len(case.attachments)),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


@review.command("show")
@click.argument("case_id")
@cases_option
def show(case_id: str, cases_dir: Path) -> None:
    """Show a case in the terminal."""
    from intake import schema
    from intake.review.casestore import CASE_ID, load_case
    from intake.review.render import choice_label, visible

    if not CASE_ID.match(case_id) or not (cases_dir / case_id).is_dir():
        raise IntakeError(f"There is no case {case_id[:40]!r}; `intake review list` shows them.")
    case = load_case(cases_dir / case_id)
    click.echo(
        f"Case {case.case_id} ({case.code}), received {case.received_on}, "
        f"keyring version {case.keyring_version}"
    )
    for section in schema.SECTIONS:
        click.echo(f"\n== {section.title}")
        for f in section.fields:
            if f.kind == "files":
                continue
            value = case.fields.get(f.name, "")
            if isinstance(value, list):
                value = "; ".join(choice_label(f, str(v)) for v in value)
            elif isinstance(value, str) and (f.choices or f.kind == "country"):
                value = choice_label(f, value)
            click.echo(f"{f.label}: {visible(value)}")
    click.echo("\n== Attachments")
    if case.attachments:
        click.echo(
            "WARNING: attachments from a targeted person may be malware. Do not open them "
            "with this machine's usual programs; open documents with a sanitiser such as "
            "Dangerzone."
        )
    for a in case.attachments:
        click.echo(
            f"{case.directory / a['path']}  {visible(a['name'])}  {a['type']}  "
            f"{a['size']} bytes  sha256 {a['sha256']}"
        )


@review.command("stats")
@cases_option
def stats(cases_dir: Path) -> None:
    """Counts by month, country, category, suspected tool and risk."""
    from collections import Counter

    cases = _cases(cases_dir)
    click.echo(f"{len(cases)} case(s)")
    for title, values in (
        ("month", [c.received_on[:7] for c in cases]),
        ("country", [str(c.fields.get("country", "")) for c in cases]),
        ("category", [v for c in cases for v in c.fields.get("categories", [])]),
        ("suspected tool", [str(c.fields.get("suspected_tool", "")) for c in cases]),
        ("risk", [str(c.fields.get("risk_now", "")) for c in cases]),
    ):
        click.echo(f"\nby {title}:")
        for value, count in Counter(values).most_common():
            click.echo(f"  {value or '-':30} {count}")


@review.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "stix2", "html"]), required=True)
@cases_option
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--redact", is_flag=True, help="CSV: leave out free text and contact details.")
@click.option("--lang", default="en", show_default=True, help="HTML: the report's language.")
def export_cases(fmt: str, cases_dir: Path, out: Path | None, redact: bool, lang: str) -> None:
    """Export the cases as CSV, a STIX 2.1 bundle for MVT, or an HTML report with charts."""
    import io

    from intake.review import exports

    cases = _cases(cases_dir)
    if fmt == "csv":
        buffer = io.StringIO()
        exports.to_csv(cases, buffer, redact=redact)
        write_document(buffer.getvalue(), out)
    elif fmt == "stix2":
        write_document(exports.to_stix2(cases), out)
    else:
        write_document(exports.to_html(cases, lang), out)


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
