"""`intake export` and `intake purge`: the admin's side of moving reports off the server."""

from __future__ import annotations

import sys
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
def export(out_dir: Path) -> None:
    """Write a bundle of every submission not yet exported."""
    from intake.config import settings_from_env
    from intake.transfer.server_side import export_bundle

    settings = settings_from_env().require_existing()
    made = export_bundle(settings, out_dir, terminal_progress("Exporting"))
    if made is None:
        info("Nothing new to export: every submission has been exported already.")
        return
    path, count = made
    info(f"Wrote {path} with {count} submission(s). Carry it to the reviewers' machine.")


@click.command("purge")
@click.option(
    "--ack",
    "ack_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The ack file written by `intake review ack`.",
)
def purge(ack_path: Path) -> None:
    """Delete the submissions the reviewers acknowledged (hash checked)."""
    from intake.config import settings_from_env
    from intake.transfer.server_side import purge as run_purge

    result = run_purge(settings_from_env().require_existing(), ack_path)
    for submission_id in result.deleted:
        info(f"deleted {submission_id}")
    for submission_id, reason in result.kept:
        info(f"kept    {submission_id}: {reason}")
    info(f"{len(result.deleted)} deleted, {len(result.kept)} kept.")
    if result.kept:
        sys.exit(1)
