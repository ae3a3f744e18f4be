"""A private PostgreSQL cluster for the tests that stop PostgreSQL or read its files.

The machine's shared cluster is used by other tests and other people at the
same time: it is never stopped, restarted or read from disk. A test that must
do either starts its own cluster here: `initdb` into a fresh folder as the
`postgres` system user (through `runuser`), on a free loopback port, with its
socket in that folder, and a role `intake` that is **not** a superuser and owns
the database `intake`, as in production. The cluster is stopped and its folder
removed at the end.

Needs root (to become `postgres` and to read the cluster's files) and the
PostgreSQL server binaries (Debian's newest /usr/lib/postgresql/<major>/bin,
or INTAKE_TEST_PG_BIN); otherwise the test is skipped (a failure under
INTAKE_STRICT_TESTS).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _newest_pg_bin() -> Path:
    """Debian's newest /usr/lib/postgresql/<major>/bin (the one CI installs)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = Path(os.environ.get("INTAKE_TEST_PG_BIN") or _newest_pg_bin())
ROLE, PASSWORD, DATABASE = "intake", "intake-test-password", "intake"


def _skip(reason: str) -> None:
    import pytest

    pytest.skip(reason)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateCluster:
    """One throwaway PostgreSQL cluster; see the module docstring."""

    def __init__(self, *, settings: dict[str, str] | None = None):
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "shared_buffers": "32MB",
            "fsync": "on",
            "log_min_messages": "warning",
            **(settings or {}),
        }
        # Not under pytest's tmp_path: its parents are 0700 root, which postgres cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="intake-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.log = self.root / "server.log"

    # -- running things as postgres --------------------------------------------------------

    def _as_postgres(self, *cmd: str, check: bool = True,
                     input: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd],
            capture_output=True, text=True, input=input, cwd=self.root, timeout=300,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {result.stderr.strip() or result.stdout}")
        return result

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run `sql` as the superuser over the private socket; its output, unaligned."""
        return self._as_postgres(
            str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", str(self.root), "-p", str(self.port), "-d", database, "-c", sql,
        ).stdout.strip()

    # -- life cycle -------------------------------------------------------------------------

    def create(self) -> PrivateCluster:
        postgres = pwd.getpwnam("postgres")
        os.chown(self.root, postgres.pw_uid, postgres.pw_gid)
        os.chmod(self.root, 0o700)
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-instructions",
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("".join(f"{k} = '{v}'\n" for k, v in self.settings.items()))
        self.start()
        self.psql(f"CREATE ROLE {ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                  f"PASSWORD '{PASSWORD}'")
        self.psql(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        return self

    def start(self) -> None:
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120",
            "-o", f"-p {self.port} -k {self.root}", "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster: "fast" (clean) or "immediate" (a crash: recovery at next start)."""
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                          "-t", "120", "stop", check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        """The application's URL: a role that is not a superuser, over TCP with a password."""
        return f"postgresql+psycopg://{ROLE}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    # -- what is on its disk ----------------------------------------------------------------

    def relation_files(self, database: str = DATABASE) -> dict[str, list[Path]]:
        """Every relation of `database` with storage (tables, their TOAST tables and indexes,
        the catalogs): name -> its files (every segment and fork), via pg_relation_filepath."""
        rows = self.psql(
            "SELECT c.oid::regclass, pg_relation_filepath(c.oid) FROM pg_class c "
            "WHERE pg_relation_filepath(c.oid) IS NOT NULL",
            database,
        )
        files: dict[str, list[Path]] = {}
        for line in rows.splitlines():
            name, _, relative = line.rpartition("|")
            base = self.data / relative
            files[name] = sorted(p for p in base.parent.glob(base.name + "*")
                                 if p.name == base.name or p.name[len(base.name)] in "._")
        return files

    def checkpoint(self) -> None:
        """Write every dirty page to the relation files (what a scan of them then sees)."""
        self.psql("CHECKPOINT")


def files_holding(paths: list[Path], needles: list[bytes]) -> dict[bytes, list[Path]]:
    """For each needle, the files among `paths` that contain it."""
    found: dict[bytes, list[Path]] = {needle: [] for needle in needles}
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            content = path.read_bytes()
            for needle in needles:
                if needle in content:
                    found[needle].append(path)
    return found


def private_cluster_or_skip(**kwargs) -> PrivateCluster:
    """A created, running private cluster, or a skip saying what is missing."""
    if os.geteuid() != 0:
        _skip("a private PostgreSQL cluster needs root (initdb runs as postgres); CI runs as root")
    if not (PG_BIN / "initdb").exists():
        _skip(f"the PostgreSQL binaries are not in {PG_BIN} (set INTAKE_TEST_PG_BIN)")
    if not stat.S_ISCHR(os.stat("/dev/null").st_mode):
        # initdb's shell commands write to /dev/null, as the postgres user.
        raise RuntimeError(
            "/dev/null is not the null device here (a process replaced it with a file); "
            "restore it as root: rm /dev/null && mknod -m 666 /dev/null c 1 3"
        )
    if shutil.which("runuser") is None:
        _skip("runuser is not installed")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        _skip("there is no postgres system user")
    cluster = PrivateCluster(**kwargs)
    try:
        return cluster.create()
    except BaseException:
        cluster.destroy()
        raise


@contextlib.contextmanager
def private_cluster(**kwargs) -> Iterator[PrivateCluster]:
    cluster = private_cluster_or_skip(**kwargs)
    try:
        yield cluster
    finally:
        cluster.destroy()
