"""The benchmarks' `--blob-store postgresql` plumbing (bench/throughput.py, bench/large_upload.py).

`--blob-store postgresql` runs the benchmark twice on one PostgreSQL
database (`--database-url`, default INTAKE_TEST_DATABASE_URL): once with the
filesystem blob store (blobs in the data dir, rows in PostgreSQL) and once
with INTAKE_BLOB_STORE=postgresql, so the two sets of figures are printed
side by side. The database is emptied and migrated before each run.
`--instances N` (throughput) starts N gunicorn instances, each with its own
data dir, and spreads the clients over them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from _common import Deployment, Server, bench_server

from intake.storage import db


def add_options(parser: argparse.ArgumentParser, *, instances: bool = False) -> None:
    parser.add_argument("--blob-store", choices=("filesystem", "postgresql"),
                        default="filesystem",
                        help="postgresql: run with the filesystem store, then the PostgreSQL "
                             "store, on one PostgreSQL database, and print both")
    parser.add_argument("--database-url", default=os.environ.get("INTAKE_TEST_DATABASE_URL"),
                        help="PostgreSQL for --blob-store postgresql "
                             "[default: INTAKE_TEST_DATABASE_URL]; it is emptied")
    if instances:
        parser.add_argument("--instances", type=int, default=1,
                            help="gunicorn instances (own data dirs), clients spread over them")


def stores(args: argparse.Namespace) -> list[str]:
    """The blob stores to run, in order."""
    if args.blob_store == "postgresql":
        if not args.database_url:
            raise SystemExit("bench: --blob-store postgresql needs --database-url or "
                             "INTAKE_TEST_DATABASE_URL")
        return ["filesystem", "postgresql"]
    return ["filesystem"]


def fresh_database(url: str) -> None:
    """Drop every table of `url` and migrate it again: each run starts from nothing."""
    from sqlalchemy import inspect, text

    engine = db.make_engine(url)
    try:
        with engine.begin() as connection:
            for table in inspect(connection).get_table_names():
                connection.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
    finally:
        engine.dispose()
    db.upgrade(url)


def env_for(store: str, args: argparse.Namespace, work: Path) -> dict[str, str]:
    """The servers' INTAKE_* settings for one run (nothing: the benchmark's own defaults)."""
    if args.blob_store != "postgresql":
        return {}
    fresh_database(args.database_url)
    key = work / f"secret_key-{store}"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o600)
    return {"INTAKE_DATABASE_URL": args.database_url, "INTAKE_BLOB_STORE": store,
            "INTAKE_SECRET_KEY_FILE": str(key)}


def count_blobs(store: str, args: argparse.Namespace, data_dirs: list[Path]) -> int:
    """The blobs the run stored, wherever its store keeps them."""
    if store == "postgresql":
        from sqlalchemy import text

        engine = db.make_engine(args.database_url)
        try:
            with engine.connect() as connection:
                return connection.execute(text(
                    "SELECT count(*) FROM blob_chunks WHERE start = 0 "
                    "AND blob_id NOT LIKE 'part:%'")).scalar()
        finally:
            engine.dispose()
    return sum(len(list((d / "blobs").glob("*.age"))) for d in data_dirs if (d / "blobs").is_dir())


def blob_sizes(store: str, args: argparse.Namespace, data_dir: Path) -> list[int]:
    """The size of every blob the run stored."""
    if store == "postgresql":
        from sqlalchemy import text

        engine = db.make_engine(args.database_url)
        try:
            with engine.connect() as connection:
                return list(connection.execute(text(
                    "SELECT sum(octet_length(data)) FROM blob_chunks WHERE blob_id NOT LIKE "
                    "'part:%' GROUP BY blob_id")).scalars())
        finally:
            engine.dispose()
    return [p.stat().st_size for p in (data_dir / "blobs").glob("*.age")]


def label(store: str, args: argparse.Namespace) -> str:
    if args.blob_store != "postgresql":
        return "filesystem blob store, SQLite"
    return f"{store} blob store, PostgreSQL"


@dataclass
class Servers:
    """Several instances as one: the clients' bases in turn, CPU summed."""

    servers: list[Server]

    @property
    def base(self) -> str:
        return self.servers[0].base

    @property
    def bases(self) -> list[str]:
        return [s.base for s in self.servers]

    @property
    def data_dir(self) -> Path:
        return self.servers[0].data_dir

    @property
    def data_dirs(self) -> list[Path]:
        return [s.data_dir for s in self.servers]

    def worker_pids(self) -> list[int]:
        return [pid for s in self.servers for pid in s.worker_pids()]

    def cpu_seconds(self) -> float:
        return sum(s.cpu_seconds() for s in self.servers)


@contextlib.contextmanager
def servers(work: Path, deployment: Deployment, *, workers: int, instances: int = 1,
            **env: str) -> Iterator[Servers]:
    """`instances` bench servers, each in its own folder (its own data dir), on one database."""
    with contextlib.ExitStack() as stack:
        running = []
        for n in range(instances):
            folder = work / f"instance-{n}" if instances > 1 else work
            folder.mkdir(exist_ok=True)
            running.append(stack.enter_context(
                bench_server(folder, deployment, workers=workers, **env)))
        yield Servers(running)
