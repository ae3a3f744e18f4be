"""The production files in deploy/: checked by the real tools, not by eye.

- deploy/torrc passes `tor --verify-config` and describes a v3 onion service
  that forwards to the port nginx listens on;
- deploy/nginx.conf passes `nginx -t`, and says what keeps plaintext off the
  disk and addresses out of the logs (the behaviour itself is in test_nginx.py);
  its body limit and security headers are the app's own;
- deploy/intake.service passes `systemd-analyze verify` (and a typo fails the
  same check), keeps its sandbox's exposure score low, and the intake really
  runs under the unit's system-call filter and MemoryDenyWriteExecute rule,
  rebuilt here with libseccomp exactly as systemd installs them.

Each test copies the real file into tmp_path and rewrites only paths, ports
and the user, so that the tools check the file that is deployed.
"""

from __future__ import annotations

import ctypes.util
import io
import json
import os
import pwd
import re
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import require_tool
from helpers import ROOT, Deployment, gunicorn, server_env, submit, thanked

from intake.crypto.envelope import decrypt_stream
from intake.limits import DEFAULT_MAX_UPLOAD
from intake.web.api import MAX_CHUNK
from intake.web.security import SECURITY_HEADERS

DEPLOY = ROOT / "deploy"
TORRC = DEPLOY / "torrc"
NGINX_CONF = DEPLOY / "nginx.conf"
UNIT = DEPLOY / "intake.service"
PROD_GUNICORN = "/opt/intake/.venv/bin/gunicorn"
PROD_CONF = "/opt/intake/src/deploy/gunicorn.conf.py"
LOCAL_GUNICORN = Path(sys.executable).parent / "gunicorn"


# --- Tor ---------------------------------------------------------------------------------------


def torrc_options(text: str) -> list[tuple[str, str]]:
    options = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition(" ")
            options.append((key, value.strip()))
    return options


def tor_verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    """`tor --verify-config` on `text` with its directories moved into tmp_path."""
    tor = require_tool("tor")
    hs_dir, data_dir = tmp_path / "hs", tmp_path / "tor-data"
    for d in (hs_dir, data_dir):
        d.mkdir(mode=0o700)
        d.chmod(0o700)  # Tor refuses a group-readable directory
    assert re.search(r"^HiddenServiceDir /var/lib/tor/intake/$", text, re.M)
    copy = re.sub(r"^HiddenServiceDir .*$", f"HiddenServiceDir {hs_dir}/", text, flags=re.M)
    copy += f"\nDataDirectory {data_dir}\n"
    (tmp_path / "torrc").write_text(copy)
    # An empty defaults file: only the settings in deploy/torrc are checked.
    (tmp_path / "defaults").write_text("")
    return subprocess.run(
        [tor, "--verify-config", "--defaults-torrc", str(tmp_path / "defaults"),
         "-f", str(tmp_path / "torrc")],
        capture_output=True, text=True, timeout=60,
    )


def test_torrc_passes_tor_verify_config(tmp_path):
    result = tor_verify(tmp_path, TORRC.read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration was valid" in result.stdout


def test_a_broken_torrc_fails_the_same_check(tmp_path):
    broken = TORRC.read_text().replace("HiddenServiceVersion 3", "HiddenServiceVersoin 3")
    result = tor_verify(tmp_path, broken)
    assert result.returncode != 0


def test_torrc_is_one_anonymous_v3_onion_service_in_front_of_nginx():
    options = torrc_options(TORRC.read_text())
    values = dict(options)
    assert values["HiddenServiceDir"] == "/var/lib/tor/intake/"
    assert values["HiddenServiceVersion"] == "3"
    assert [v for k, v in options if k == "HiddenServicePort"] == [f"80 {nginx_listen()}"]
    assert [k for k, _ in options].count("HiddenServiceDir") == 1
    assert values["SocksPort"] == "0"
    assert values["ExitRelay"] == "0"
    assert values["ExitPolicy"] == "reject *:*"
    assert values["HiddenServiceNonAnonymousMode"] == "0"
    assert values["HiddenServiceSingleHopMode"] == "0"
    assert values["SafeLogging"] == "1"
    # Debian's service file supplies these; overriding them would break it.
    assert not {"DataDirectory", "User", "RunAsDaemon"} & set(values)


# --- nginx -------------------------------------------------------------------------------------

_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'|(#[^\n]*)|([{};])|([^\s{};"\'#]+)')


def nginx_directives(text: str) -> list[tuple[tuple[str, ...], str, list[str]]]:
    """(enclosing blocks, name, arguments) of every directive, comments left out."""
    out: list[tuple[tuple[str, ...], str, list[str]]] = []
    stack: list[str] = []
    words: list[str] = []
    for m in _TOKEN.finditer(text):
        dq, sq, comment, punct, word = m.groups()
        if comment is not None:
            continue
        if punct == ";":
            out.append((tuple(stack), words[0], words[1:]))
            words = []
        elif punct == "{":
            out.append((tuple(stack), words[0], words[1:]))
            stack.append(words[0])
            words = []
        elif punct == "}":
            stack.pop()
        else:
            words.append(dq if dq is not None else sq if sq is not None else word)
    assert not stack and not words, "unbalanced nginx.conf"
    return out


def directive(name: str, text: str | None = None) -> list[list[str]]:
    return [args for _, n, args in nginx_directives(text or NGINX_CONF.read_text()) if n == name]


def nginx_size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


def nginx_listen() -> str:
    [[address, *_]] = directive("listen")
    return address


def nginx_test_config(prefix: Path, *, listen: int, upstream: int,
                      edit: Callable[[str], str] | None = None) -> Path:
    """deploy/nginx.conf for a test instance: paths, ports and user rewritten, and `edit`."""
    text = NGINX_CONF.read_text()
    user = pwd.getpwuid(os.getuid()).pw_name
    for old, new in [
        ("user www-data;", f"user {user};"),
        ("pid /run/nginx.pid;", f"pid {prefix}/nginx.pid;"),
        ("error_log /var/log/nginx/error.log ", f"error_log {prefix}/error.log "),
        ("/var/lib/nginx/", f"{prefix}/temp/"),
        ("listen 127.0.0.1:8080 ", f"listen 127.0.0.1:{listen} "),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};"),
    ]:
        assert old in text, f"deploy/nginx.conf no longer has {old!r}; update the tests"
        text = text.replace(old, new)
    if edit:
        text = edit(text)
    (prefix / "temp").mkdir(parents=True, exist_ok=True)
    path = prefix / "nginx.conf"
    path.write_text(text)
    return path


def nginx_t(prefix: Path, conf: Path) -> subprocess.CompletedProcess:
    nginx = require_tool("nginx")
    return subprocess.run(
        [nginx, "-t", "-q", "-c", str(conf), "-p", str(prefix), "-e", str(prefix / "startup.log")],
        capture_output=True, text=True, timeout=60,
    )


def test_nginx_conf_passes_nginx_t(tmp_path):
    conf = nginx_test_config(tmp_path, listen=18080, upstream=18000)
    result = nginx_t(tmp_path, conf)
    assert result.returncode == 0, result.stderr
    # nginx made the temporary directories where the test copy says.
    assert (tmp_path / "temp/body").is_dir() and (tmp_path / "temp/proxy").is_dir()


def test_a_broken_nginx_conf_fails_the_same_check(tmp_path):
    conf = nginx_test_config(tmp_path, listen=18080, upstream=18000)
    conf.write_text(conf.read_text().replace("proxy_request_buffering off;",
                                             "proxy_request_bufering off;"))
    assert nginx_t(tmp_path, conf).returncode != 0


def test_nginx_body_limit_is_the_apps_default_max_upload():
    # The server's limit; the upload API's chunk location has its own, smaller one.
    [size], [chunk] = directive("client_max_body_size")
    assert nginx_size(size) == DEFAULT_MAX_UPLOAD and nginx_size(chunk) == MAX_CHUNK


def test_nginx_never_spools_bodies_to_disk_and_logs_nothing_about_clients():
    one = {name: directive(name) for name in (
        "proxy_request_buffering", "proxy_http_version", "client_body_in_file_only",
        "proxy_max_temp_file_size", "server_tokens", "access_log", "error_log",
        "client_body_buffer_size",
    )}
    # Streamed through, everywhere but the upload API's chunks (ciphertext, see below).
    assert one["proxy_request_buffering"] == [["off"], ["on"]]
    assert [ctx for ctx, name, args in nginx_directives(NGINX_CONF.read_text())
            if name == "proxy_request_buffering"] == [("http", "server"),
                                                      ("http", "server", "location")]
    assert one["proxy_http_version"] == [["1.1"]]
    assert one["client_body_in_file_only"] == [["off"]]
    assert one["proxy_max_temp_file_size"] == [["0"]]
    assert one["server_tokens"] == [["off"]]
    assert one["access_log"] == [["off"]]
    assert [args[-1] for args in one["error_log"]] == ["crit"]
    [[buffer]] = one["client_body_buffer_size"]
    assert nginx_size(buffer) <= 1024 * 1024
    # Nothing about the client is logged or passed on, whatever the format.
    text = NGINX_CONF.read_text()
    leaky = re.compile(r"\$(remote_addr|remote_port|binary_remote_addr|realip_remote_addr|"
                       r"proxy_add_x_forwarded_for|http_x_forwarded_for|http_user_agent|"
                       r"http_referer|time_local|time_iso8601|msec)\b")
    for _, name, args in nginx_directives(text):
        assert not any(leaky.search(a) for a in args), (name, args)
    assert directive("log_format") == []
    headers = {args[0].lower(): args[1:] for args in directive("proxy_set_header")}
    for name in ("x-forwarded-for", "x-real-ip", "forwarded"):
        assert headers[name] == [""], name


def api_chunk_location() -> tuple[str, str]:
    """The one location that buffers request bodies: its pattern and its block."""
    [(pattern, block)] = re.findall(r'location ~ "([^"]+)" \{([^}]*)\}', NGINX_CONF.read_text())
    return pattern, block


def test_nginx_buffers_only_the_upload_apis_chunks_which_are_ciphertext():
    pattern, block = api_chunk_location()
    assert "proxy_request_buffering on;" in block
    # No bigger body than the API's largest chunk is ever stored.
    [[limit]] = directive("client_max_body_size", "http {" + block + "}")
    assert nginx_size(limit) == MAX_CHUNK
    chunk = "/api/v1/uploads/" + "A" * 32
    assert re.search(pattern, chunk)
    # The form (plaintext without JavaScript) and every other API call stream through.
    for path in ("/en/report", "/ar/report", "/api/v1/uploads", chunk + "/finish",
                 "/api/v1/uploads/" + "A" * 31, "/api/v1/keyring", "/en/report?x=/api/v1/uploads/"
                 + "A" * 32):
        assert not re.search(pattern, path.split("?")[0]), path
    # Each chunk's Content-Length is known: the API refuses chunks without one.
    assert "chunked_transfer_encoding" not in block


def test_nginx_drops_idle_upstream_connections_before_gunicorn_does():
    [[timeout]] = directive("keepalive_timeout", re.search(
        r"upstream intake \{[^}]*\}", NGINX_CONF.read_text()).group(0))
    keepalive = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))["keepalive"]
    assert int(timeout.rstrip("s")) < keepalive


def test_nginx_adds_exactly_the_apps_security_headers_once():
    added = directive("add_header")
    # No location repeats them (an add_header in a location would drop the server's).
    assert len(added) == len(SECURITY_HEADERS)
    assert {args[0]: args[1] for args in added} == SECURITY_HEADERS
    assert all(args[2:] == ["always"] for args in added), "also on nginx's own error pages"
    hidden = {args[0] for args in directive("proxy_hide_header")}
    assert hidden == set(SECURITY_HEADERS), "the app's copies must be dropped"


def test_nginx_proxies_to_where_gunicorn_listens_and_loads_nothing_from_elsewhere(monkeypatch):
    monkeypatch.delenv("INTAKE_BIND", raising=False)
    bind = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))["bind"]
    upstream = [args for ctx, name, args in nginx_directives(NGINX_CONF.read_text())
                if name == "server" and ctx == ("http", "upstream")]
    assert upstream == [[bind]]
    assert directive("proxy_pass") == [["http://intake"], ["http://intake"]]
    assert nginx_listen() == "127.0.0.1:8080"
    # Only loopback: the onion service is the way in.
    assert all(args[0].startswith("127.0.0.1:") for args in directive("listen"))
    assert "Onion-Location" in NGINX_CONF.read_text()  # the (commented) clearnet example


# --- systemd -----------------------------------------------------------------------------------


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def unit_copy(tmp_path: Path, text: str) -> Path:
    """The unit with ExecStart pointed at this checkout's gunicorn, which exists here."""
    assert f"ExecStart={PROD_GUNICORN} -c {PROD_CONF}\n" in text
    text = text.replace(PROD_GUNICORN, str(LOCAL_GUNICORN))
    text = text.replace(PROD_CONF, str(DEPLOY / "gunicorn.conf.py"))
    path = tmp_path / "intake.service"
    path.write_text(text)
    return path


def systemd_verify(unit: Path) -> list[str]:
    """Problems `systemd-analyze verify` reports. It exits 0 on an unknown key or a
    value it cannot parse (it only ignores them), so any message counts."""
    tool = require_tool("systemd-analyze")
    result = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True,
                            timeout=60, cwd=unit.parent)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}")
    return problems


def test_unit_passes_systemd_analyze_verify(tmp_path):
    assert systemd_verify(unit_copy(tmp_path, UNIT.read_text())) == []


@pytest.mark.parametrize("old,new", [
    ("ProtectSystem=strict", "ProtectSytem=strict"),
    ("LimitCORE=0", "LimitCORE=none-at-all"),
    (f"ExecStart={LOCAL_GUNICORN}", "ExecStart=/nonexistent/gunicorn"),
])
def test_a_broken_unit_fails_the_same_check(tmp_path, old, new):
    unit = unit_copy(tmp_path, UNIT.read_text())
    assert old in unit.read_text()
    unit.write_text(unit.read_text().replace(old, new))
    assert systemd_verify(unit) != []


def test_unit_sandbox_exposure_is_low(tmp_path):
    tool = require_tool("systemd-analyze")
    unit = unit_copy(tmp_path, UNIT.read_text())

    def exposure_ok(path: Path) -> bool:
        # --threshold is on a 0-100 scale: 20 is "2.0" in the printed table.
        return subprocess.run(
            [tool, "security", "--offline=yes", "--threshold=20", str(path)],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        ).returncode == 0

    assert exposure_ok(unit)
    bare = tmp_path / "bare" / "intake.service"
    bare.parent.mkdir()
    bare.write_text("[Service]\nExecStart=/bin/true\n")
    assert not exposure_ok(bare)


def test_unit_runs_gunicorn_hardened_as_documented():
    s = unit_settings(UNIT.read_text())
    [exec_start] = s["ExecStart"]
    assert exec_start.startswith(f"{PROD_GUNICORN} -c {PROD_CONF}")
    expected = {
        "User": "intake", "Group": "intake", "EnvironmentFile": "/etc/intake/intake.env",
        "ProtectSystem": "strict", "ReadWritePaths": "/var/lib/intake", "PrivateTmp": "yes",
        "NoNewPrivileges": "yes", "MemoryDenyWriteExecute": "yes", "ProtectHome": "yes",
        "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces": "yes",
        "LockPersonality": "yes", "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "", "UMask": "0077", "StateDirectory": "intake",
        "Restart": "on-failure", "LimitCORE": "0",
    }
    for key, value in expected.items():
        assert s.get(key) == [value], key
    assert s["SystemCallFilter"][0] == "@system-service"
    # The data directory the app is told about is the only writable one.
    assert "INTAKE_DATA_DIR=/var/lib/intake" in s["Environment"]


# --- the unit's seccomp rules, applied to a real gunicorn ----------------------------------------

# systemd's SystemCallFilter= and MemoryDenyWriteExecute=, rebuilt with libseccomp:
# an allow-list (anything else fails with EPERM), plus mmap(W|X), mprotect(X),
# pkey_mprotect(X) and shmat(SHM_EXEC) refused. Then exec the command.
SECCOMP_WRAPPER = r"""
import ctypes, errno, json, os, sys
lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
class Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                       ctypes.c_uint, ctypes.POINTER(Cmp)]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
ALLOW, EPERM, MASKED_EQ = 0x7FFF0000, 0x00050000 | errno.EPERM, 7
def nr(name):
    return lib.seccomp_syscall_resolve_name(name.encode())
mdwe = lib.seccomp_init(ALLOW)
for name, arg, mask in [("mmap", 2, 0x6), ("mprotect", 2, 0x4), ("pkey_mprotect", 2, 0x4),
                        ("shmat", 2, 0o100000)]:
    cmp = Cmp(arg, MASKED_EQ, mask, mask)
    assert lib.seccomp_rule_add_array(mdwe, EPERM, nr(name), 1, ctypes.byref(cmp)) == 0, name
assert lib.seccomp_load(mdwe) == 0
rules = json.load(open(sys.argv[1]))
allow = lib.seccomp_init(EPERM)
for name in rules["allow"]:
    if nr(name) >= 0:
        assert lib.seccomp_rule_add_array(allow, ALLOW, nr(name), 0, None) == 0, name
assert lib.seccomp_load(allow) == 0
os.execv(sys.argv[2], sys.argv[2:])
"""


def syscall_groups(tool: str) -> dict[str, list[str]]:
    out = subprocess.run([tool, "syscall-filter"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    groups: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(groups: dict[str, list[str]], names: list[str]) -> set[str]:
    out: set[str] = set()
    for name in names:
        out |= expand(groups, groups[name]) if name.startswith("@") else {name}
    return out


@pytest.fixture(scope="module")
def seccomp_prefix(tmp_path_factory) -> list[str]:
    """A command prefix that runs what follows under the unit's seccomp rules."""
    tool = require_tool("systemd-analyze")
    if ctypes.util.find_library("seccomp") is None:
        pytest.skip("libseccomp is not installed (systemd depends on it)")
    groups = syscall_groups(tool)
    allowed: set[str] = set()
    for rule in unit_settings(UNIT.read_text())["SystemCallFilter"]:
        if rule.startswith("~"):
            allowed -= expand(groups, rule[1:].split())
        else:
            allowed |= expand(groups, rule.split())
    path = tmp_path_factory.mktemp("seccomp") / "rules.json"
    path.write_text(json.dumps({"allow": sorted(allowed)}))
    return [sys.executable, "-c", SECCOMP_WRAPPER, str(path)]


def test_control_the_rebuilt_filter_refuses_what_the_unit_forbids(seccomp_prefix):
    probe = (
        "import mmap, os\n"
        "m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE); print('rw ok')\n"
        "for name, call in [('wx', lambda: mmap.mmap(-1, 4096, prot=7)),\n"
        "                   ('affinity', lambda: os.sched_setaffinity(0, {0})),\n"
        "                   ('setuid', lambda: os.setuid(os.getuid()))]:\n"
        "    try:\n"
        "        call(); print(name, 'allowed')\n"
        "    except PermissionError:\n"
        "        print(name, 'refused')\n"
    )
    out = subprocess.run([*seccomp_prefix, sys.executable, "-c", probe], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.split("\n") == [
        "rw ok", "wx refused", "affinity refused", "setuid refused", ""
    ], out.stderr


def test_native_libraries_load_under_the_units_filter(seccomp_prefix):
    # psycopg's binary build (libpq), PyNaCl, pyrage and cryptography, as the server uses them.
    probe = (
        "import psycopg, nacl.bindings, pyrage\n"
        "from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey\n"
        "Ed25519PrivateKey.generate().sign(b'x')\n"
        "i = pyrage.x25519.Identity.generate()\n"
        "assert pyrage.decrypt(pyrage.encrypt(b'x', [i.to_public()]), [i]) == b'x'\n"
        "nacl.bindings.crypto_secretstream_xchacha20poly1305_keygen()\n"
        "print(psycopg.pq.__impl__, psycopg.pq.version())\n"
    )
    out = subprocess.run([*seccomp_prefix, sys.executable, "-c", probe], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("binary "), out.stdout


def test_gunicorn_serves_a_submission_under_the_units_filter(tmp_path, seccomp_prefix):
    deployment = Deployment(tmp_path / "keys").setup(recipients=1)
    data, tmpdir = tmp_path / "var", tmp_path / "tmp"
    tmpdir.mkdir()
    env = server_env(data, deployment, tmpdir)
    with gunicorn(env, tmp_path / "logs", prefix=seccomp_prefix, workers=1) as base:
        response = submit(base, narrative="filtered",
                          files=[("a.bin", os.urandom(300_000), "application/octet-stream")])
        assert thanked(response), response.text[:300]
    [blob] = (data / "blobs").glob("*.age")
    plain = io.BytesIO()
    with blob.open("rb") as fh:
        decrypt_stream(fh, plain, deployment.identities)
    assert b"filtered" in plain.getvalue()
