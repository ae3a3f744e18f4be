"""A private Tor network on loopback, offline: for the tests, and for operators.

Three directory authorities, two relays, the intake's onion service and a
client with a SOCKS port, every one a real `tor` listening on 127.0.0.1 only,
all in one directory. It is built from tor's documented testing options
(man tor, "TESTING NETWORK OPTIONS"): `TestingTorNetwork 1` lifts the rules
that protect the real network (private addresses, distinct subnets, a
reachability wait), the authorities vote every few seconds, and every relay is
voted Guard and HSDir so that five relays can carry an onion service. Each
authority's v3 identity and signing keys come from `tor-gencert`, made once
when the network is created; each relay's RSA identity from
`tor --list-fingerprint`.

The onion service runs deploy/torrc as shipped, changed in exactly three
places (`service_torrc` says which; tests/test_tor.py checks that nothing else
moved): its HiddenServiceDir, the target of its HiddenServicePort, and its
syslog line, which becomes a log file in the node's directory. Each client
reaches the relays through a `SourceLink` that connects from 127.0.0.2, so
that "the source's address reaches no file of the intake" can be checked on a
machine where every other address is 127.0.0.1.

Every wait has a deadline and fails with the tail of the logs that explain it;
`stop()` ends every process this module started (each in its own process
group), and is safe to call after any failure.

Operators run the same network by hand to try a torrc or nginx change
(deploy/README.md, "Trying a change on a private Tor network"):

    .venv/bin/python tests/tor_network.py --target 127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_TORRC = ROOT / "deploy" / "torrc"
LOOPBACK = "127.0.0.1"
#: Where the client's connections come from: no other process here uses it, so
#: finding it in a file means the client's address travelled.
CLIENT_ADDRESS = "127.0.0.2"

AUTHORITIES = 3
RELAYS = 2
#: From the first process started to the first page fetched through the onion
#: address takes 15-70 s on a two-core machine (the first consensus waits for a
#: voting round); a busy CI runner is slower.
READY_TIMEOUT = 240.0
STOP_TIMEOUT = 15.0

T = TypeVar("T")


class TorNetworkError(RuntimeError):
    """The network did not come up, or a node died: the message has the logs' tails."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def require(tool: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists()
                                  else None)
    if path is None:
        raise TorNetworkError(f"{tool} is not installed (Debian: apt-get install tor)")
    return path


# -- One tor process ------------------------------------------------------------------------------


@dataclass
class TorNode:
    """One tor: its directory, its torrc, its process and its logs."""

    name: str
    directory: Path
    torrc_lines: list[str]
    process: subprocess.Popen | None = None
    #: The highest resident set size any run of this node reached, in KiB (VmHWM).
    peak_rss_kib: int = 0

    @property
    def torrc(self) -> Path:
        return self.directory / "torrc"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def notice_log(self) -> Path:
        return self.directory / "notice.log"

    @property
    def info_log(self) -> Path:
        return self.directory / "info.log"

    def write_torrc(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.data_dir.chmod(0o700)  # tor refuses a data directory others can read
        self.torrc.write_text("\n".join(self.torrc_lines) + "\n")

    def start(self, tor: str, defaults: Path) -> None:
        self.write_torrc()
        with open(self.directory / "stdout.log", "ab") as out:
            self.process = subprocess.Popen(
                [tor, "--defaults-torrc", str(defaults), "-f", str(self.torrc)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def sample_rss(self) -> None:
        if not self.alive():
            return
        with contextlib.suppress(OSError, StopIteration, ValueError):
            status = Path(f"/proc/{self.process.pid}/status").read_text()
            line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
            self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))

    def kill(self) -> None:
        """SIGKILL: the process vanishes mid-stream, as a crashed or cut-off tor does."""
        if self.process is None:
            return
        self.sample_rss()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.sample_rss()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 25) -> str:
        parts = []
        for log in (self.notice_log, self.directory / "stdout.log"):
            if log.exists():
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {log} (last {len(tail)} lines)\n" + "\n".join(tail))
        state = "running" if self.alive() else (
            f"exited with {self.process.returncode}" if self.process else "not running")
        return f"=== tor node {self.name} ({state})\n" + "\n".join(parts)

    def log_text(self, *, info: bool = False) -> str:
        log = self.info_log if info else self.notice_log
        return log.read_text(errors="replace") if log.exists() else ""


def wait_for(what: str, check: Callable[[], T | None], *, timeout: float,
             watch: Iterable[TorNode], explain: Iterable[TorNode] | None = None,
             interval: float = 0.25) -> T:
    """Poll `check` until it gives something; fail after `timeout` s, or as soon as
    a watched node dies, with the tails of the logs of the nodes that `explain`
    the wait (by default the watched ones) and of any that died."""
    nodes = list(watch)
    relevant = list(explain) if explain is not None else nodes
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        # A node stopped or killed on purpose has no process; one that exited on its own has.
        dead = [n for n in nodes if n.process is not None and n.process.poll() is not None]
        if dead or time.monotonic() > deadline:
            why = (f"tor node {', '.join(n.name for n in dead)} exited" if dead
                   else f"no result within {timeout:.0f} s")
            tails = "\n".join(n.log_tail() for n in [*relevant, *(d for d in dead
                                                               if d not in relevant)])
            raise TorNetworkError(f"waiting for {what}: {why}\n{tails}")
        time.sleep(interval)


# -- The source's own network link ----------------------------------------------------------------


class SourceLink:
    """The network link of a source's computer: a CONNECT proxy for the client's tor.

    The client's tor makes every relay connection through it (`HTTPSProxy`),
    and it connects onwards from CLIENT_ADDRESS. tor itself cannot do this on
    loopback: it ignores OutboundBindAddress for loopback destinations (man
    tor), and the kernel gives every loopback connection the source 127.0.0.1.
    With the link, the Tor network sees the source at 127.0.0.2, an address no
    other process here uses, so that "the source's address reaches no log of
    the intake" means something. It only connects to 127.0.0.1.

    `rate` (bytes per second in each direction, None for unlimited) makes the
    link slow, as a source's link often is, so that a test can act while an
    upload is on its way rather than race it.
    """

    HEAD_LIMIT = 8192

    def __init__(self, rate: int | None = None):
        self.rate = rate
        self.connections_made = 0
        #: Bytes the client sent into the network, and bytes it received.
        self.bytes_up = 0
        self.bytes_down = 0
        self.source_addresses: set[str] = set()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._budget_at = time.monotonic()
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                inbound, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(inbound,), daemon=True).start()

    def _connect(self, inbound: socket.socket) -> None:
        head = b""
        with contextlib.suppress(OSError):
            inbound.settimeout(10)
            while b"\r\n\r\n" not in head and len(head) < self.HEAD_LIMIT:
                data = inbound.recv(1024)
                if not data:
                    break
                head += data
        request = re.fullmatch(
            rb"CONNECT 127\.0\.0\.1:([0-9]{1,5}) HTTP/1\.[01]\r\n.*", head, re.S
        )
        if request is None or b"\r\n\r\n" not in head:
            with contextlib.suppress(OSError):
                inbound.sendall(b"HTTP/1.0 403 Forbidden\r\n\r\n")
            inbound.close()
            return
        try:
            outbound = socket.create_connection(
                (LOOPBACK, int(request.group(1))), timeout=10, source_address=(CLIENT_ADDRESS, 0)
            )
        except OSError:
            with contextlib.suppress(OSError):
                inbound.sendall(b"HTTP/1.0 502 Bad Gateway\r\n\r\n")
            inbound.close()
            return
        with self._lock:
            self.connections_made += 1
            self.source_addresses.add(outbound.getsockname()[0])
            self._sockets += [inbound, outbound]
        rest = head.split(b"\r\n\r\n", 1)[1]
        inbound.settimeout(None)
        outbound.settimeout(None)
        try:
            inbound.sendall(b"HTTP/1.0 200 Connection established\r\n\r\n")
            if rest:
                outbound.sendall(rest)
        except OSError:
            self._close(inbound, outbound)
            return
        threading.Thread(target=self._pump, args=(outbound, inbound, False), daemon=True).start()
        self._pump(inbound, outbound, True)

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while data := src.recv(16384):
                self._spend(len(data))
                dst.sendall(data)
                with self._lock:
                    if up:
                        self.bytes_up += len(data)
                    else:
                        self.bytes_down += len(data)
        except OSError:
            pass
        finally:
            self._close(src, dst)

    def _spend(self, size: int) -> None:
        """Hold the caller until `size` more bytes fit in the link's rate."""
        if not self.rate:
            return
        with self._lock:
            start = max(self._budget_at, time.monotonic())
            self._budget_at = start + size / self.rate
        time.sleep(max(0.0, start - time.monotonic()))

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone does not.
        self._close(self._listener)
        with self._lock:
            self._close(*self._sockets)
            self._sockets.clear()
        self._thread.join(timeout=5)


# -- The nodes' configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class Authority:
    nickname: str
    or_port: int
    dir_port: int
    fingerprint: str  # the relay identity (RSA) fingerprint
    v3ident: str  # the v3 authority identity key's fingerprint (tor-gencert)

    def dir_authority_line(self) -> str:
        return (f"DirAuthority {self.nickname} orport={self.or_port} v3ident={self.v3ident} "
                f"{LOOPBACK}:{self.dir_port} {self.fingerprint}")


def network_lines(node: TorNode, authorities: list[Authority]) -> list[str]:
    """What every node of the private network has, whatever its role."""
    return [
        "## The private test network (tests/tor_network.py); not for the real Tor network.",
        "TestingTorNetwork 1",
        f"DataDirectory {node.data_dir}",
        "RunAsDaemon 0",
        # If the process that started this network dies without stopping it, tor
        # notices within 15 s and exits (man tor, __OwningControllerProcess).
        f"__OwningControllerProcess {os.getpid()}",
        *(a.dir_authority_line() for a in authorities),
        # Five relays are the whole network: build circuits as soon as a quarter
        # of the possible paths are known.
        "PathsNeededToBuildCircuits 0.25",
        "ClientUseIPv6 0",
        f"Log notice file {node.notice_log}",
    ]


def relay_lines(node: TorNode, nickname: str, or_port: int) -> list[str]:
    return [
        f"Nickname {nickname}",
        "ContactInfo intake-private-test-network",
        f"Address {LOOPBACK}",
        f"ORPort {LOOPBACK}:{or_port}",
        "SocksPort 0",
        # Publish the descriptor at once instead of testing reachability first.
        "AssumeReachable 1",
        # No exits: this network carries onion services only.
        "ExitRelay 0",
        "ExitPolicy reject *:*",
        "ShutdownWaitLength 0",
    ]


def authority_lines(dir_port: int) -> list[str]:
    return [
        f"DirPort {LOOPBACK}:{dir_port}",
        "AuthoritativeDirectory 1",
        "V3AuthoritativeDirectory 1",
        # Vote within seconds of starting, then every 20 s; every relay here is
        # voted Guard and HSDir, since none has the uptime those flags need.
        "TestingV3AuthInitialVotingInterval 10 seconds",
        "TestingV3AuthInitialVoteDelay 2 seconds",
        "TestingV3AuthInitialDistDelay 2 seconds",
        "V3AuthVotingInterval 20 seconds",
        "V3AuthVoteDelay 4 seconds",
        "V3AuthDistDelay 4 seconds",
        f"TestingDirAuthVoteGuard {LOOPBACK}",
        f"TestingDirAuthVoteHSDir {LOOPBACK}",
    ]


#: The shipped torrc's lines that a test must change, and why (see service_torrc).
SERVICE_REWRITES = {
    "HiddenServiceDir": "the shipped /var/lib/tor/intake/ belongs to the host's tor",
    "HiddenServicePort": "the test nginx listens on a free port, not on 127.0.0.1:8080",
    "Log": "a test's tor must not write to the host's syslog, and its logs are scanned",
}


def torrc_options(text: str) -> list[tuple[str, str]]:
    """(option, value) of every line of a torrc, comments and blank lines left out."""
    options = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition(" ")
            options.append((key, value.strip()))
    return options


def service_torrc(shipped: str, *, hidden_service_dir: Path, target: str,
                  node_dir: Path) -> list[tuple[str, str]]:
    """deploy/torrc's options for the onion-service node, changed only in SERVICE_REWRITES.

    The file that ships is the file that is tested: every other option, the
    HiddenService* ones with the proof-of-work defence among them, is taken as
    it is and in its order. Only HiddenServiceDir (into the node's directory),
    the target of `HiddenServicePort 80 127.0.0.1:8080` (the test nginx) and
    `Log notice syslog` (the node's notice.log) are rewritten.
    """
    options = []
    for key, value in torrc_options(shipped):
        if key == "HiddenServiceDir":
            value = f"{hidden_service_dir}/"
        elif key == "HiddenServicePort":
            virtual, _, _ = value.partition(" ")
            value = f"{virtual} {target}"
        elif key == "Log" and value.endswith(" syslog"):
            value = value.removesuffix(" syslog") + f" file {node_dir / 'notice.log'}"
        options.append((key, value))
    return options


def run_tool(command: list[str], stdin: bytes = b"") -> None:
    result = subprocess.run(command, input=stdin, capture_output=True, timeout=60)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")[-3000:]
        raise TorNetworkError(f"{' '.join(command)} exited with {result.returncode}:\n{output}")


def make_authority(tor: str, gencert: str, directory: Path, index: int) -> Authority:
    """An authority's keys: the v3 identity and signing key, then the relay identity."""
    nickname = f"auth{index}"
    or_port, dir_port = free_port(), free_port()
    keys = directory / "data" / "keys"
    keys.mkdir(parents=True, mode=0o700)
    (directory / "data").chmod(0o700)
    # An empty passphrase for the identity key: it only ever signs this test network.
    run_tool([gencert, "--create-identity-key", "-m", "12", "-a", f"{LOOPBACK}:{dir_port}",
              "-i", str(keys / "authority_identity_key"), "-s", str(keys / "authority_signing_key"),
              "-c", str(keys / "authority_certificate"), "--passphrase-fd", "0"], stdin=b"\n")
    certificate = (keys / "authority_certificate").read_text()
    v3ident = re.search(r"^fingerprint ([0-9A-F]{40})$", certificate, re.M).group(1)
    fingerprint = relay_fingerprint(tor, directory, nickname, or_port)
    return Authority(nickname, or_port, dir_port, fingerprint, v3ident)


def relay_fingerprint(tor: str, directory: Path, nickname: str, or_port: int) -> str:
    """Make a relay's identity keys in its data directory and read its fingerprint."""
    data = directory / "data"
    data.mkdir(parents=True, mode=0o700, exist_ok=True)
    data.chmod(0o700)
    torrc = directory / "fingerprint.torrc"
    torrc.write_text(f"DataDirectory {data}\nNickname {nickname}\nAddress {LOOPBACK}\n"
                     f"ORPort {LOOPBACK}:{or_port}\nSocksPort 0\nLog err stderr\n")
    defaults = directory / "fingerprint.defaults"
    defaults.write_text("")
    run_tool([tor, "--defaults-torrc", str(defaults), "-f", str(torrc), "--list-fingerprint"])
    torrc.unlink()
    defaults.unlink()
    name, fingerprint = (data / "fingerprint").read_text().split()
    assert name == nickname
    return fingerprint


# -- The network ----------------------------------------------------------------------------------


@dataclass
class TorClient(TorNode):
    """A source's tor: a SOCKS port for the browser, an HTTP CONNECT port for scripts."""

    socks_port: int = 0
    tunnel_port: int = 0
    link: SourceLink | None = None
    #: Where the notice log ended when this client was last started.
    started_at_byte: int = 0

    def start(self, tor: str, defaults: Path) -> None:
        self.started_at_byte = self.notice_log.stat().st_size if self.notice_log.exists() else 0
        super().start(tor, defaults)

    def bootstrapped(self) -> bool:
        if not self.notice_log.exists():
            return False
        with self.notice_log.open("rb") as fh:
            fh.seek(self.started_at_byte)
            return b"Bootstrapped 100%" in fh.read()


@dataclass
class OnionService:
    """An onion-service node and the directory that holds its keys and hostname."""

    node: TorNode
    hidden_service_dir: Path

    @property
    def onion(self) -> str:
        return (self.hidden_service_dir / "hostname").read_text().strip()

    def descriptor_uploaded(self) -> bool:
        return "Uploading hidden service descriptor: finished with status 200" in (
            self.node.log_text(info=True))


@dataclass
class Readiness:
    """Seconds from the start of `PrivateTorNetwork.start` to each step."""

    consensus: float = 0.0
    descriptor_uploaded: float = 0.0
    client_bootstrapped: float = 0.0
    first_fetch: float = 0.0


@dataclass
class PrivateTorNetwork:
    """Three authorities, two relays, an onion service in front of `target`, a client.

    `service_text` is the torrc the onion service runs (deploy/torrc), changed
    by `service_torrc` only. Call `start()`, then `stop()` (also after a failure).
    """

    root: Path
    target: str
    service_text: str = field(default_factory=SHIPPED_TORRC.read_text)
    nodes: list[TorNode] = field(default_factory=list)
    authorities: list[Authority] = field(default_factory=list)
    services: list[OnionService] = field(default_factory=list)
    clients: list[TorClient] = field(default_factory=list)
    readiness: Readiness = field(default_factory=Readiness)

    def __post_init__(self) -> None:
        self.tor = require("tor")
        self.gencert = require("tor-gencert")
        self.root.mkdir(parents=True, exist_ok=True)
        self.defaults = self.root / "torrc-defaults"
        self.defaults.write_text("")  # nothing from /etc/tor or Debian's service defaults

    @property
    def service(self) -> OnionService:
        return self.services[0]

    @property
    def onion(self) -> str:
        return self.service.onion

    @property
    def client(self) -> TorClient:
        return self.clients[0]

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        """Start every node; return once the client has fetched a page from the onion."""
        began = time.monotonic()
        deadline = began + timeout

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        # The authorities' keys, made once for the network's life.
        for i in range(AUTHORITIES):
            self.authorities.append(
                make_authority(self.tor, self.gencert, self.root / f"auth{i}", i))
        for a in self.authorities:
            node = TorNode(a.nickname, self.root / a.nickname, [])
            node.torrc_lines = [*network_lines(node, self.authorities),
                                *relay_lines(node, a.nickname, a.or_port),
                                *authority_lines(a.dir_port)]
            self.nodes.append(node)
        for i in range(RELAYS):
            nickname, or_port = f"relay{i}", free_port()
            node = TorNode(nickname, self.root / nickname, [])
            relay_fingerprint(self.tor, node.directory, nickname, or_port)
            node.torrc_lines = [*network_lines(node, self.authorities),
                                *relay_lines(node, nickname, or_port)]
            self.nodes.append(node)
        for node in self.nodes:
            node.start(self.tor, self.defaults)

        wait_for(f"a consensus that lists all {AUTHORITIES + RELAYS} relays as HSDirs",
                 self._consensus_complete, timeout=left(), watch=self.nodes)
        self.readiness.consensus = time.monotonic() - began

        service = self.add_onion_service("onion-service", self.service_text)
        client = self.add_client("client")
        self.wait_published(service, timeout=left())
        self.readiness.descriptor_uploaded = time.monotonic() - began
        self.wait_bootstrapped(client, timeout=left())
        self.readiness.client_bootstrapped = time.monotonic() - began
        self.wait_reachable(client, self.onion, timeout=left())
        self.readiness.first_fetch = time.monotonic() - began

    def add_onion_service(self, name: str, shipped: str) -> OnionService:
        """Start an onion-service node that runs `shipped` (a torrc) as service_torrc says."""
        node = TorNode(name, self.root / name, [])
        hs_dir = node.directory / "hidden_service"
        hs_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
        hs_dir.chmod(0o700)
        options = service_torrc(shipped, hidden_service_dir=hs_dir, target=self.target,
                                node_dir=node.directory)
        node.torrc_lines = [
            "## The onion service's torrc as shipped, but for HiddenServiceDir, the target",
            "## of HiddenServicePort and its syslog line (tests/tor_network.py service_torrc).",
            *(f"{key} {value}" for key, value in options),
            # The network's lines but their notice log: the rewritten Log line is it.
            *(line for line in network_lines(node, self.authorities)
              if not line.startswith("Log ")),
            # Info level: the descriptor uploads and the proof-of-work set-up are logged there.
            f"Log info file {node.info_log}",
        ]
        service = OnionService(node, hs_dir)
        self.nodes.append(node)
        self.services.append(service)
        node.start(self.tor, self.defaults)
        return service

    def add_client(self, name: str, *, rate: int | None = None,
                   extra: Iterable[str] = ()) -> TorClient:
        """Start a client with its own ports, data directory and link (`rate`: SourceLink)."""
        client = TorClient(name, self.root / name, [], socks_port=free_port(),
                           tunnel_port=free_port(), link=SourceLink(rate))
        client.torrc_lines = [
            *network_lines(client, self.authorities),
            f"SocksPort {LOOPBACK}:{client.socks_port}",
            f"HTTPTunnelPort {LOOPBACK}:{client.tunnel_port}",
            # Every connection to a relay goes out through the source's link (127.0.0.2).
            f"HTTPSProxy {LOOPBACK}:{client.link.port}",
            *extra,
        ]
        self.clients.append(client)
        client.start(self.tor, self.defaults)
        return client

    def wait_published(self, service: OnionService, timeout: float = 120.0) -> None:
        # A client that asks every HSDir before the descriptor is there does not ask
        # them again for 15 minutes: no client fetches before this returns.
        wait_for(f"{service.node.name}'s descriptor to reach an HSDir",
                 service.descriptor_uploaded, timeout=timeout, watch=self.all_nodes(),
                 explain=[service.node])

    def wait_bootstrapped(self, client: TorClient, timeout: float = 120.0) -> None:
        wait_for(f"{client.name} to bootstrap", client.bootstrapped, timeout=timeout,
                 watch=self.all_nodes(), explain=[client])

    def wait_reachable(self, client: TorClient, onion: str, timeout: float = 120.0) -> None:
        """Until a page comes back from `onion` through `client`."""

        def fetched() -> bool:
            try:
                status = onion_request(client, onion, "GET", "/", timeout=30).status
            except OSError:
                return False
            return 200 <= status < 500

        services = [s.node for s in self.services if s.onion == onion]
        wait_for(f"a first page from {onion} through {client.name}", fetched,
                 timeout=timeout, watch=self.all_nodes(), explain=[client, *services],
                 interval=1.0)

    def restart_client(self, client: TorClient, timeout: float = 120.0) -> None:
        """Start a killed client again, same ports and data directory; wait for bootstrap."""
        client.start(self.tor, self.defaults)
        self.wait_bootstrapped(client, timeout=timeout)

    def _consensus_complete(self) -> bool:
        wanted = AUTHORITIES + RELAYS
        for a in self.authorities:
            path = self.root / a.nickname / "data" / "cached-microdesc-consensus"
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace")
                routers = re.findall(r"^r ", text, re.M)
                hsdirs = re.findall(r"^s .*\bHSDir\b", text, re.M)
                if len(routers) >= wanted and len(hsdirs) >= wanted:
                    return True
        return False

    def all_nodes(self) -> list[TorNode]:
        return [*self.nodes, *self.clients]

    def sample_rss(self) -> None:
        for node in self.all_nodes():
            node.sample_rss()

    def stop(self) -> None:
        """Stop every tor this network started, all at once, and close the links."""
        nodes = [n for n in self.all_nodes() if n.process is not None]
        for node in nodes:
            node.sample_rss()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGTERM)
        for node in nodes:
            node.stop()  # waits, and kills what SIGTERM did not end
        for client in self.clients:
            if client.link is not None:
                client.link.close()

    def peak_rss_mib(self) -> float:
        """The sum of every node's peak resident set size, in MiB."""
        return sum(n.peak_rss_kib for n in self.all_nodes()) / 1024

    def log_tails(self) -> str:
        return "\n".join(n.log_tail() for n in self.all_nodes())


@contextlib.contextmanager
def private_tor_network(root: Path, target: str, **kwargs) -> Iterator[PrivateTorNetwork]:
    """A started network, stopped on the way out whatever happened."""
    network = PrivateTorNetwork(root, target, **kwargs)
    try:
        network.start()
        yield network
    finally:
        network.stop()


# -- HTTP through a client ------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def onion_connection(client: TorClient, onion: str, timeout: float = 120
                     ) -> http.client.HTTPConnection:
    """A connection to port 80 of `onion` through the client's HTTPTunnelPort."""
    connection = http.client.HTTPConnection(LOOPBACK, client.tunnel_port, timeout=timeout)
    connection.set_tunnel(onion, 80)
    return connection


def onion_request(client: TorClient, onion: str, method: str, path: str,
                  body: bytes | None = None, headers: dict[str, str] | None = None,
                  timeout: float = 120) -> Answer:
    """One HTTP request through the client; redirects are not followed."""
    connection = onion_connection(client, onion, timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Answer(response.status, response.msg, response.read())
    finally:
        connection.close()


# -- By hand --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run a private Tor network on loopback, with the onion service of "
        "deploy/torrc in front of TARGET, until Ctrl-C (deploy/README.md).")
    parser.add_argument("--target", default="127.0.0.1:8080",
                        help="where the onion's port 80 goes (default: nginx, 127.0.0.1:8080)")
    parser.add_argument("--torrc", type=Path, default=SHIPPED_TORRC,
                        help="the onion service's torrc to try (default: deploy/torrc)")
    parser.add_argument("--dir", type=Path, default=Path("var/tor-network"),
                        help="where the nodes' files go; emptied first (default: var/tor-network)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"127\.0\.0\.1:[0-9]{1,5}", args.target):
        parser.error("--target must be 127.0.0.1:PORT")
    if not args.torrc.is_file():
        parser.error(f"--torrc {args.torrc} is not a file")
    if args.dir.exists():
        shutil.rmtree(args.dir)
    args.dir.mkdir(parents=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    network = PrivateTorNetwork(args.dir.resolve(), args.target,
                                service_text=args.torrc.read_text())
    try:
        print(f"starting 3 authorities, 2 relays, the onion service and a client in {args.dir}",
              file=sys.stderr)
        network.start()
        ready, port = network.readiness, network.client.socks_port
        print(f"""
ready after {ready.first_fetch:.0f} s (a consensus after {ready.consensus:.0f} s)

  onion address   http://{network.onion}/
  SOCKS port      127.0.0.1:{port}
  try             curl --socks5-hostname 127.0.0.1:{port} -sI http://{network.onion}/
  logs            {args.dir}/*/notice.log, {args.dir}/onion-service/info.log

Ctrl-C stops every node.""", flush=True)
        while not stop.wait(5):
            network.sample_rss()
            if not all(n.alive() for n in network.all_nodes()):
                print(network.log_tails(), file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        pass
    except TorNetworkError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        network.stop()
        print(f"stopped; the tor processes' peak memory, summed: {network.peak_rss_mib():.0f} MiB",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
