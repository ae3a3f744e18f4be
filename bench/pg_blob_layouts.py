"""Benchmark: how to keep blobs in PostgreSQL, measured before choosing.

Starts a private PostgreSQL 15 cluster (tests/pg_cluster.py: initdb as the
postgres system user into a temporary folder, a free loopback port; never the
machine's shared cluster) and, as a role that is NOT a superuser but owns the
database (as the intake's role does), compares:

  rows      chunk rows `(shelf, blob_id, start, data bytea STORAGE EXTERNAL)`
            in a table LIST-partitioned by shelf, one transaction per blob,
            for chunk sizes of 256 KiB, 1 MiB and 4 MiB;
  lo        a large object, written and read with lowrite/loread in 1 MiB pieces.

For each it prints write and read MB/s for a SIZE blob, and then what purge can
do about a deleted blob's bytes, scanning the relation files (main fork and
TOAST, after a CHECKPOINT) for a marker the deleted blob carried:

  - after DELETE (or lo_unlink) and a plain VACUUM;
  - after VACUUM FULL of the one partition (rows) / of pg_largeobject (lo),
    with SIZE of other live blobs beside it: whether this role may run it, how
    long it takes, and how long an INSERT into the same partition, into another
    partition, or a new large object waits meanwhile;
  - after TRUNCATE of a partition whose blobs are all deleted.

Needs root (to run initdb as postgres and read the cluster's files). Usage:
    .venv/bin/python bench/pg_blob_layouts.py [--mib 128]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MiB, machine_busy_seconds, machine_line  # noqa: E402
from pg_cluster import PrivateCluster, files_holding  # noqa: E402

MARKER_EVERY = 256 * 1024


def dsn(cluster: PrivateCluster) -> str:
    return cluster.url.replace("postgresql+psycopg://", "postgresql://")


def marked(size: int, marker: bytes) -> bytes:
    """Random bytes with `marker` written every 256 KiB (so every chunk of it carries one)."""
    data = bytearray(os.urandom(size))
    for offset in range(1000, size - len(marker), MARKER_EVERY):
        data[offset:offset + len(marker)] = marker
    return bytes(data)


def setup_rows(conn: psycopg.Connection) -> None:
    conn.execute(
        "CREATE TABLE chunks (shelf smallint NOT NULL, blob_id text NOT NULL, start bigint "
        "NOT NULL, data bytea NOT NULL, PRIMARY KEY (blob_id, start, shelf)) "
        "PARTITION BY LIST (shelf)"
    )
    for shelf in range(3):
        conn.execute(f"CREATE TABLE chunks_{shelf} PARTITION OF chunks FOR VALUES IN ({shelf})")
    conn.execute("ALTER TABLE chunks ALTER COLUMN data SET STORAGE EXTERNAL")
    conn.commit()


def write_rows(conn: psycopg.Connection, shelf: int, blob_id: str, data: bytes,
               chunk: int) -> float:
    started = time.perf_counter()
    with conn.transaction():
        for start in range(0, len(data), chunk):
            conn.execute("INSERT INTO chunks VALUES (%s, %s, %s, %s)",
                         (shelf, blob_id, start, data[start:start + chunk]))
    return time.perf_counter() - started


def read_rows(conn: psycopg.Connection, shelf: int, blob_id: str) -> tuple[float, int]:
    started, size, start = time.perf_counter(), 0, 0
    while True:
        row = conn.execute("SELECT data FROM chunks WHERE shelf = %s AND blob_id = %s AND "
                           "start = %s", (shelf, blob_id, start)).fetchone()
        if row is None:
            break
        size += len(row[0])
        start += len(row[0])
    conn.commit()
    return time.perf_counter() - started, size


def write_lo(conn: psycopg.Connection, data: bytes) -> tuple[float, int]:
    started = time.perf_counter()
    with conn.transaction():
        oid = conn.execute("SELECT lo_create(0)").fetchone()[0]
        fd = conn.execute("SELECT lo_open(%s, 131072)", (oid,)).fetchone()[0]  # INV_WRITE
        for start in range(0, len(data), MiB):
            conn.execute("SELECT lowrite(%s, %s)", (fd, data[start:start + MiB]))
        conn.execute("SELECT lo_close(%s)", (fd,))
    return time.perf_counter() - started, oid


def read_lo(conn: psycopg.Connection, oid: int) -> tuple[float, int]:
    started, size = time.perf_counter(), 0
    with conn.transaction():
        fd = conn.execute("SELECT lo_open(%s, 262144)", (oid,)).fetchone()[0]  # INV_READ
        while piece := conn.execute("SELECT loread(%s, %s)", (fd, MiB)).fetchone()[0]:
            size += len(piece)
    return time.perf_counter() - started, size


def scan(cluster: PrivateCluster, relations: list[str], marker: bytes) -> int:
    """How many files of `relations` (and their TOAST tables) hold `marker`, after a CHECKPOINT."""
    cluster.checkpoint()
    files = cluster.relation_files()
    wanted = set(relations)
    for name in relations:
        # `name` is one of this bench's own table names, never input.
        toast = cluster.psql(
            f"SELECT reltoastrelid::regclass FROM pg_class WHERE oid = '{name}'::regclass "  # noqa: S608
            "AND reltoastrelid <> 0", "intake")
        if toast:
            wanted.add(toast)
    paths = [p for name, found in files.items() if name in wanted for p in found]
    return len(files_holding(paths, [marker])[marker])


def timed(label: str, conn: psycopg.Connection, sql: str) -> str:
    started = time.perf_counter()
    try:
        conn.execute(sql)
        conn.commit()
    except psycopg.Error as exc:
        conn.rollback()
        return f"{label}: refused ({str(exc).strip().splitlines()[0]})"
    return f"{label}: {time.perf_counter() - started:.2f} s"


def wait_during(cluster: PrivateCluster, maintenance: str, probes: dict[str, str]) -> list[str]:
    """Run `maintenance`; meanwhile time each probe statement, on its own connection."""
    results: list[str] = []
    main = psycopg.connect(dsn(cluster), autocommit=True)
    probe_conns = {name: psycopg.connect(dsn(cluster), autocommit=True) for name in probes}
    waits: dict[str, float] = {}

    def probe(name: str, sql: str) -> None:
        started = time.perf_counter()
        probe_conns[name].execute(sql, (os.urandom(64 * 1024),))
        waits[name] = time.perf_counter() - started

    started = time.perf_counter()
    maintenance_thread = threading.Thread(target=main.execute, args=(maintenance,))
    maintenance_thread.start()
    time.sleep(0.3)  # the maintenance holds its lock by now
    threads = [threading.Thread(target=probe, args=item) for item in probes.items()]
    for thread in threads:
        thread.start()
    for thread in [maintenance_thread, *threads]:
        thread.join()
    results.append(f"{maintenance}: {time.perf_counter() - started:.2f} s")
    for name in probes:
        results.append(f"  meanwhile {name} waited {waits[name]:.2f} s")
    for conn in [main, *probe_conns.values()]:
        conn.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=128, help="blob size in MiB")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of the speed figures")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench: run as root (initdb runs as postgres; the scan reads its files)",
              file=sys.stderr)
        return 2
    size = args.mib * MiB
    mb = size / 1e6
    print(machine_line())
    busy, clock = machine_busy_seconds(), time.monotonic()
    cluster = PrivateCluster().create()
    try:
        conn = psycopg.connect(dsn(cluster))
        print("role:", conn.execute("SELECT current_user, rolsuper FROM pg_roles WHERE "
                                    "rolname = current_user").fetchone(), "(not a superuser)")
        conn.commit()
        setup_rows(conn)
        payload = os.urandom(size)

        print(f"\n== write and read one {args.mib} MiB blob ==")
        for attempt in range(1, args.repeat + 1):
            for chunk in (256 * 1024, MiB, 4 * MiB):
                seconds = write_rows(conn, 0, f"speed-{chunk}", payload, chunk)
                read_seconds, got = read_rows(conn, 0, f"speed-{chunk}")
                assert got == size
                print(f"#{attempt} rows, {chunk // 1024:>4} KiB chunks : write "
                      f"{mb / seconds:6.1f} MB/s, read {mb / read_seconds:6.1f} MB/s", flush=True)
                conn.execute("TRUNCATE chunks")
                conn.commit()
            seconds, oid = write_lo(conn, payload)
            read_seconds, got = read_lo(conn, oid)
            assert got == size
            print(f"#{attempt} large object, 1 MiB pieces: write {mb / seconds:6.1f} MB/s, "
                  f"read {mb / read_seconds:6.1f} MB/s", flush=True)
            conn.execute("SELECT lo_unlink(%s)", (oid,))
            conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM pg_largeobject")
        conn.autocommit = False

        print(f"\n== a deleted blob's bytes, beside {args.mib} MiB of live blobs ==")
        purged = b"PURGED-" + os.urandom(12).hex().encode()
        kept = b"KEPT-" + os.urandom(12).hex().encode()
        # The purged blob first, the live one after it: a plain VACUUM then cannot simply
        # cut the purged pages off the end of the files.
        write_rows(conn, 1, "purged", marked(8 * MiB, purged), MiB)
        write_rows(conn, 1, "live", marked(size, kept), MiB)
        write_rows(conn, 2, "alone", marked(8 * MiB, purged), MiB)
        print(f"rows: files holding the purged marker before delete: "
              f"{scan(cluster, ['chunks_1', 'chunks_2'], purged)}; the kept marker: "
              f"{scan(cluster, ['chunks_1'], kept)}")
        conn.execute("DELETE FROM chunks WHERE blob_id IN ('purged', 'alone')")
        conn.commit()
        conn.autocommit = True
        print(timed("rows: plain VACUUM of both partitions", conn, "VACUUM chunks_1, chunks_2"))
        print(f"rows: files holding the purged marker after DELETE + VACUUM: "
              f"{scan(cluster, ['chunks_1', 'chunks_2'], purged)}")
        for line in wait_during(cluster, "VACUUM FULL chunks_1", {
            "an INSERT into the same partition": "INSERT INTO chunks VALUES "
                                                 "(1, 'probe-same', 0, %s)",
            "an INSERT into another partition": "INSERT INTO chunks VALUES "
                                                "(0, 'probe-other', 0, %s)",
        }):
            print("rows: " + line)
        print(timed("rows: TRUNCATE of the emptied partition", conn, "TRUNCATE chunks_2"))
        print(f"rows: files holding the purged marker after VACUUM FULL / TRUNCATE: "
              f"{scan(cluster, ['chunks_1', 'chunks_2'], purged)}; the kept marker: "
              f"{scan(cluster, ['chunks_1'], kept)}")
        conn.autocommit = False

        _, purged_oid = write_lo(conn, marked(8 * MiB, purged))
        _, live_oid = write_lo(conn, marked(size, kept))
        print(f"lo: files holding the purged marker before unlink: "
              f"{scan(cluster, ['pg_largeobject'], purged)}")
        conn.execute("SELECT lo_unlink(%s)", (purged_oid,))
        conn.commit()
        conn.autocommit = True
        print(timed("lo: plain VACUUM pg_largeobject", conn, "VACUUM pg_largeobject"))
        print(f"lo: files holding the purged marker after lo_unlink + VACUUM: "
              f"{scan(cluster, ['pg_largeobject'], purged)}")
        for line in wait_during(cluster, "VACUUM FULL pg_largeobject", {
            "a new large object": "SELECT lo_from_bytea(0, %s)",
        }):
            print("lo: " + line)
        print(f"lo: files holding the purged marker after VACUUM FULL: "
              f"{scan(cluster, ['pg_largeobject'], purged)}")
        conn.close()
        cluster.psql("CREATE ROLE other_app LOGIN PASSWORD 'x'")
        cluster.psql("GRANT CONNECT ON DATABASE intake TO other_app")
        other = psycopg.connect(dsn(cluster).replace("intake:intake-test-password",
                                                     "other_app:x"), autocommit=True)
        print(timed("lo: VACUUM FULL pg_largeobject by a role that does not own the database",
                    other, "VACUUM FULL pg_largeobject"))
        notice = []
        other.add_notice_handler(lambda diag: notice.append(diag.message_primary))
        other.execute("VACUUM FULL pg_largeobject")
        print(f"  (its notice: {notice[0] if notice else 'none'})")
        other.close()
    finally:
        cluster.destroy()
    other_load = (machine_busy_seconds() - busy) / (time.monotonic() - clock)
    print(f"\nmachine busy during the run (this bench, its PostgreSQL and everything else): "
          f"{other_load:.2f} of {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
