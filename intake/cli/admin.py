"""`intake export` and `intake purge`: the admin's side of moving reports off the server."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import click

from intake.cli.common import info, terminal_progress


@click.command("export")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The folder to write the bundle to (the USB stick).",
)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Export every submission still on the server, exported before or not "
    "(for a bundle that was lost or damaged).",
)
def export(out_dir: Path, everything: bool) -> None:
    """Write a bundle of every submission not yet exported, then say what still waits for acks."""
    from intake.config import settings_from_env
    from intake.transfer.server_side import export_bundles, quorum_from_env

    settings = settings_from_env().require_existing()
    quorum = quorum_from_env(os.environ)
    made = export_bundles(
        settings, out_dir, terminal_progress("Exporting"), everything=everything
    )
    if not made.bundles:
        info(
            "Nothing on the server to export."
            if everything
            else "Nothing new to export: every submission has been exported already "
            "(--all exports them again)."
        )
    for path, count in made.bundles:
        info(f"Wrote {path} with {count} submission(s). Carry it to the reviewers' machine.")
    _show_waiting(settings, quorum)


def _show_waiting(settings, quorum: int) -> None:
    from intake.cli.terminal import terminal_safe
    from intake.transfer.server_side import waiting_summary

    waiting = waiting_summary(settings, quorum)
    info(
        f"Still on the server: {waiting.exported} exported and not yet purged, "
        f"{waiting.received} not yet exported (ack quorum {quorum})."
    )
    for needed, count in sorted(waiting.needing.items(), reverse=True):
        info(f"  {count} need {needed} more reviewer ack(s)")
    for recipient_id, count in sorted(waiting.unacked_by.items()):
        info(f"  {count} not yet acked by {terminal_safe(recipient_id)}")
    if waiting.unacked_by and quorum > len(waiting.unacked_by):
        info(
            f"Warning: the quorum is {quorum} but the keyring has only "
            f"{len(waiting.unacked_by)} active reviewer(s), so nothing can be purged; lower "
            "INTAKE_ACK_QUORUM or add reviewers."
        )


@click.command("purge")
@click.option(
    "--ack",
    "ack_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The return file written by `intake review ack`.",
)
@click.option(
    "--quorum",
    default=None,
    metavar="M",
    help="Distinct reviewers whose proven acks a submission needs before it is deleted "
    "[default: INTAKE_ACK_QUORUM, else 1].",
)
@click.option(
    "--accept-unproven",
    is_flag=True,
    help="Count an old intake-ack/v1 file, which proves nothing (quorum 1 only).",
)
def purge(ack_path: Path, quorum: str | None, accept_unproven: bool) -> None:
    """Delete the submissions enough reviewers have proven they hold (hash checked), and
    deliver the reviewers' replies into their sources' mailboxes.

    Exit status: 0 when every entry was deleted or recorded while it waits for
    more reviewers, and every reply delivered (now or before); 1 when an
    entry, a proof or a reply was skipped, or the file was refused (one
    sentence says why).
    """
    from intake.cli.terminal import terminal_safe
    from intake.config import settings_from_env
    from intake.transfer.ackfile import ACK_V1
    from intake.transfer.server_side import ack_quorum, quorum_from_env
    from intake.transfer.server_side import purge as run_purge

    needed = ack_quorum(quorum) if quorum is not None else quorum_from_env(os.environ)
    settings = settings_from_env().require_existing()
    result = run_purge(settings, ack_path, quorum=needed, accept_unproven=accept_unproven,
                       progress=terminal_progress("Reclaiming"))
    if result.format == ACK_V1:
        info(
            f"Warning: this {ACK_V1} file proves nothing; anyone holding the bundle could have "
            "written it, and it was counted because of --accept-unproven."
        )
    for submission_id in result.deleted:
        info(f"deleted {submission_id}")
    for submission_id, have, need in result.waiting:
        info(f"waiting {submission_id}: acked by {have} of {need} reviewers")
    for submission_id, reason in result.kept:
        info(f"kept    {submission_id}: {reason}")
    proven = ", ".join(terminal_safe(r) for r in result.proven) or "none (unproven v1 file)"
    info(f"Proven reviewers: {proven}.")
    if result.forged or result.unknown_bundle:
        info(
            f"Skipped proofs: {result.forged} forged or altered, {result.unknown_bundle} for "
            "bundles this server does not know or no longer keeps."
        )
    replies = result.replies
    if replies.delivered or replies.already or replies.unknown_thread or replies.full \
            or result.replies_refused:
        info(
            f"Replies: {len(replies.delivered)} delivered, {len(replies.already)} delivered "
            f"before (skipped), {len(replies.unknown_thread)} for a mailbox this server does "
            f"not have (never, or deleted: skipped), {len(replies.full)} for a full mailbox "
            f"(skipped), {len(result.replies_refused)} not an age file (skipped)."
        )
    for reason, count in Counter(reason for _, reason in result.kept).most_common():
        info(f"  {count} kept: {reason}")
    info(
        f"{len(result.deleted)} deleted, {len(result.waiting)} waiting for more reviewers, "
        f"{len(result.kept)} kept."
    )
    if settings.blob_store == "postgresql" and result.deleted:
        show_reclaimed(result.reclaimed)
    if result.problems:
        sys.exit(1)


def show_reclaimed(reclaimed) -> None:
    """What the PostgreSQL blob store did so that deleted blobs leave its files."""
    info(
        f"Space of the deleted blobs reclaimed: {len(reclaimed.emptied)} partition(s) emptied, "
        f"{len(reclaimed.rewritten)} rewritten ({reclaimed.copied / 1e6:.1f} MB of blobs still "
        "waiting were copied). Their ciphertext is gone from the database's table files; "
        "the write-ahead log and any standby or archive keep it for their own retention "
        "(SECURITY.md)."
    )
    if reclaimed.busy:
        info(
            f"{len(reclaimed.busy)} partition(s) were busy and still hold deleted ciphertext "
            "in their files; run `intake db reclaim` when the intake is quieter."
        )
