"""The intake as people install it: a wheel outside the checkout, and the offline bundle.

- The lock files are in step with pyproject.toml, and the split between the server's and the
  reviewers' libraries holds in them.
- `intake --version`, `intake keys`, `intake review` import none of the server's code.
- The wheel and the sdist carry the templates, the static files, the vendored bundle and the
  compiled catalogues (the sdist the sources of the latter).
- A wheel installed with the server's lock into a fresh venv, run from an empty directory:
  `intake demo` serves every page in every language, and the static files with the SRI hash
  the page names; the banner's next steps work as printed (export, key rotation).
- The offline bundle installs into a fresh venv in a network namespace with no network at
  all (only a loopback that is down), with no index, no proxy and no configuration, and then
  runs the whole reviewer path on a bundle that the demo above exported. Its size is printed
  and held under its ceiling.

One wheel is built per run, and each venv is made once (module fixtures): a few minutes.
"""

from __future__ import annotations

import base64
import csv
import glob
import hashlib
import html
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from conftest import require_tool
from helpers import free_port, submit, thanked, wait_for_http
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from intake.web.i18n import LANGUAGES

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
sys.path.insert(0, str(ROOT / "tools"))
import offline_bundle  # noqa: E402  (tools/ is not a package)

#: Modules that only the server needs; the reviewers' commands must not import them.
SERVER_MODULES = ("sqlalchemy", "alembic", "psycopg", "nacl", "gunicorn", "intake.web",
                  "intake.storage", "intake.transfer.server_side", "werkzeug.serving")
SERVER_DISTRIBUTIONS = {"sqlalchemy", "alembic", "psycopg", "psycopg-binary", "pynacl",
                        "gunicorn"}
REVIEW_DISTRIBUTIONS = {"matplotlib", "stix2", "numpy", "pillow"}


# -- lock files ----------------------------------------------------------------------------

def lock_pins(profile: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a lock file."""
    pins: dict[str, tuple[str, list[str]]] = {}
    text = (LOCKS / f"{profile}.txt").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        found = re.fullmatch(r"([A-Za-z0-9._-]+)==([^ ;]+)((?: +--hash=sha256:[0-9a-f]{64})+)",
                             line)
        assert found, f"{profile}.txt: not an exact, hashed pin: {line!r}"
        name = canonicalize_name(found.group(1))
        pins[name] = (found.group(2), re.findall(r"[0-9a-f]{64}", found.group(3)))
    return pins


#: Each lock file: the extras of pyproject.toml it is made from, and its other inputs.
PROFILES: dict[str, tuple[list[str] | None, tuple[str, ...]]] = {
    "server": (["server"], ()),
    "review": (["review"], ("offline.in",)),
    "test": (["test"], ()),
    "lock-tool": (None, ("lock-tool.in",)),
}


def direct_requirements(profile: str) -> list[Requirement]:
    """The requirements a profile is made from, the package's own extras expanded."""
    extras, inputs = PROFILES[profile]
    wanted: list[str] = []
    if extras is not None:
        optional = PYPROJECT["project"]["optional-dependencies"]
        wanted += PYPROJECT["project"]["dependencies"]
        pending, seen = list(extras), set()
        while pending:
            extra = pending.pop()
            if extra in seen:
                continue
            seen.add(extra)
            for spec in optional[extra]:
                requirement = Requirement(spec)
                if canonicalize_name(requirement.name) == "intake":
                    pending.extend(requirement.extras)
                else:
                    wanted.append(spec)
    for name in inputs:
        lines = (LOCKS / name).read_text().splitlines()
        wanted += [line for line in lines if line.strip() and not line.startswith("#")]
    return [Requirement(spec) for spec in wanted]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_direct_dependency_is_pinned_with_hashes_in_its_profiles_lock(profile):
    pins = lock_pins(profile)
    for requirement in direct_requirements(profile):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements/{profile}.txt: run make lock"
        version, hashes = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements/{profile}.txt pins {name}=={version}, outside {requirement.specifier}:"
            " run make lock"
        )
        assert hashes
        if "binary" in requirement.extras:  # psycopg[binary]: its wheel is a package of its own
            assert f"{name}-binary" in pins, f"{name}[binary] lacks {name}-binary"


def test_the_reviewers_lock_has_none_of_the_servers_libraries_and_the_other_way_round():
    review, server = set(lock_pins("review")), set(lock_pins("server"))
    assert not review & SERVER_DISTRIBUTIONS, review & SERVER_DISTRIBUTIONS
    assert not server & REVIEW_DISTRIBUTIONS, server & REVIEW_DISTRIBUTIONS
    # What both import is pinned to the same version on both machines.
    common = set(lock_pins("review")) & set(lock_pins("server"))
    assert {"flask", "flask-wtf", "flask-babel", "jinja2", "pyrage", "cryptography"} <= common
    for name in common:
        assert lock_pins("review")[name][0] == lock_pins("server")[name][0], name


def test_the_lock_files_are_made_by_make_lock_for_the_target():
    makefile = (ROOT / "Makefile").read_text()
    assert "--python-version 3.11 --python-platform x86_64-manylinux_2_36" in makefile
    for profile in PROFILES:
        head = (LOCKS / f"{profile}.txt").read_text().splitlines()[:2]
        assert head == ["# This file was autogenerated by uv via the following command:",
                        "#    make lock"], profile


# -- the command line without the server's code ----------------------------------------------

@pytest.mark.parametrize("argv", [["--version"], ["keys", "--help"], ["review", "--help"],
                                  ["review", "list", "--help"], ["--help"]])
def test_the_reviewers_commands_import_none_of_the_servers_code(argv):
    probe = (
        "import sys\n"
        "from intake.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "print('--- modules ---', *sorted(sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)
    modules = result.stdout.rpartition("--- modules ---")[2].split()
    assert "intake.cli" in modules
    loaded = [m for m in modules if m.startswith(SERVER_MODULES)]
    assert loaded == [], f"intake {' '.join(argv)} imported {loaded}"


# -- the wheel and the sdist -----------------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """One sdist and one wheel for the whole module, built the way a release is."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    return {"wheel": out / f"intake-{VERSION}-py3-none-any.whl",
            "sdist": out / f"intake-{VERSION}.tar.gz"}


def tracked(*paths: str) -> list[str]:
    result = subprocess.run(["git", "ls-files", *paths], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    return result.stdout.split()


@pytest.mark.slow
def test_the_wheel_carries_templates_static_files_vendored_bundle_and_catalogues(built):
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = set(wheel.namelist())
        catalogue = wheel.read("intake/translations/ar/LC_MESSAGES/messages.mo")
    expected = {
        "intake/" + path if path.startswith("templates/") else path
        for path in tracked("intake", "templates")
        if not path.endswith((".po", ".pot", "babel.cfg"))  # catalogue sources and their map
    }
    assert expected - names == set(), f"missing from the wheel: {sorted(expected - names)}"
    for lang in LANGUAGES:
        assert f"intake/translations/{lang}/LC_MESSAGES/messages.mo" in names
    assert not [n for n in names if n.endswith((".po", ".pot"))]
    assert any(n.startswith("intake/static/vendor/age-encryption-") for n in names)
    assert catalogue[:4] in (b"\xde\x12\x04\x95", b"\x95\x04\x12\xde")  # a GNU .mo file


@pytest.mark.slow
def test_the_sdist_carries_the_sources_the_wheel_is_built_from(built):
    with tarfile.open(built["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    for path in tracked("intake", "templates"):
        assert path in names, f"missing from the sdist: {path}"
    assert {"setup.py", "pyproject.toml", "MANIFEST.in", "babel.cfg"} <= names
    assert not [n for n in names if n.endswith(".mo")], "compiled catalogues in the sdist"


# -- a wheel installed with the server's lock, outside the checkout --------------------------

def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("INTAKE_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


def make_venv(where: Path, python: str = sys.executable) -> Path:
    subprocess.run([python, "-m", "venv", str(where)], check=True, timeout=120)
    return where / "bin"


@pytest.fixture(scope="module")
def server_venv(built, tmp_path_factory) -> Path:
    """A fresh venv outside the checkout: the server's lock, then the wheel alone."""
    bin_dir = make_venv(tmp_path_factory.mktemp("server") / "venv")
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--require-hashes", "-r", str(LOCKS / "server.txt")], check=True,
                   timeout=600, cwd=bin_dir)
    subprocess.run([*pip, "--no-deps", str(built["wheel"])], check=True, timeout=300,
                   cwd=bin_dir)
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "check"], check=True, timeout=120,
                   cwd=bin_dir, capture_output=True)
    return bin_dir


def installed_distributions(bin_dir: Path) -> set[str]:
    probe = ("import importlib.metadata as m\n"
             "print('\\n'.join(d.metadata['Name'] for d in m.distributions()))")
    out = subprocess.run([str(bin_dir / "python"), "-c", probe], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    return {canonicalize_name(name) for name in out.split()}


@pytest.fixture(scope="module")
def demo(server_venv, tmp_path_factory):
    """`intake demo` from the wheel, in an empty directory, on a free port."""
    cwd = tmp_path_factory.mktemp("demo")
    port = free_port()
    log = cwd / "demo.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([str(server_venv / "intake"), "demo", "--port", str(port)],
                                cwd=cwd, env=clean_env(), stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", timeout=120, proc=proc)
        yield {"url": f"http://127.0.0.1:{port}", "cwd": cwd, "log": log, "proc": proc}
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)


def catalogue_text(lang: str, msgid: str) -> str:
    path = ROOT / "intake" / "translations" / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        return read_po(fh, locale=lang)[msgid].string


@pytest.mark.slow
def test_the_installed_wheel_serves_every_page_in_every_language(demo, server_venv):
    import requests

    assert not (REVIEW_DISTRIBUTIONS & installed_distributions(server_venv))
    static_paths: set[str] = set()
    integrity: dict[str, str] = {}
    for lang in LANGUAGES:
        for page in ("/{lang}/", "/{lang}/report", "/{lang}/thanks"):
            response = requests.get(demo["url"] + page.format(lang=lang), timeout=30)
            assert response.status_code == 200, (page.format(lang=lang), response.status_code)
            text = response.text
            assert f'lang="{lang}"' in text
            # The compiled catalogue is in use: the quick-exit button is in the page's language.
            assert html.escape(catalogue_text(lang, "Quick exit"), quote=False) in text
            static_paths |= set(re.findall(r"/static/[A-Za-z0-9._/-]+", text))
            for src, sri in re.findall(r'<script src="([^"]+)" integrity="([^"]+)"', text):
                integrity[src] = sri
    assert requests.get(demo["url"] + "/", timeout=30, allow_redirects=False).status_code == 302
    assert {"/static/intake.css", "/static/js/quick-exit.js", "/static/js/report.js"} \
        <= static_paths
    for path in sorted(static_paths):
        response = requests.get(demo["url"] + path, timeout=30)
        assert response.status_code == 200, path
        assert response.content == (ROOT / "intake" / path.removeprefix("/")).read_bytes(), path
    [(vendor, sri)] = integrity.items()
    assert vendor.startswith("/static/vendor/age-encryption-")
    served = requests.get(demo["url"] + vendor, timeout=30).content
    assert sri == "sha384-" + base64.b64encode(hashlib.sha384(served).digest()).decode()
    manifest = json.loads((ROOT / "intake/static/vendor/SRI.json").read_text())
    assert sri == manifest["integrity"]


def banner_steps(log: Path) -> tuple[dict[str, str], list[list[str]], list[list[str]]]:
    """From the demo's banner: the variables it exports, step 2's and step 3's commands."""
    text = log.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    steps: dict[str, list[list[str]]] = {"2": [], "3": []}
    current = None
    for line in text.splitlines():
        heading = re.match(r"([0-9])\. ", line)
        if heading:
            current = heading.group(1)
            continue
        if current not in steps or not line.startswith("     "):
            continue
        words = shlex.split(line)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            env[name] = value
        else:
            steps[current].append(words)
    return env, steps["2"], steps["3"]


@pytest.fixture(scope="module")
def exported(demo, server_venv) -> dict[str, Path]:
    """Reports sent to the demo, then the banner's step 2 up to `intake export`."""
    sent = submit(demo["url"], narrative="packaging: first report",
                  files=[("note.txt", b"attached text", "text/plain")])
    assert thanked(sent)
    assert thanked(submit(demo["url"], lang="ar", narrative="تقرير ثان", country="IR"))
    env, step2, _ = banner_steps(demo["log"])
    assert set(env) == {"INTAKE_DATA_DIR", "INTAKE_KEYRING", "INTAKE_ADMINS"}
    [export] = [c for c in step2 if c[1:2] == ["export"]]
    assert export[0] == str(server_venv / "intake")
    result = subprocess.run(export, env=clean_env(**env), cwd=demo["cwd"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    [bundle] = glob.glob(export[-1] + "/intake-export-*.tar")
    [import_] = [c for c in step2 if c[1:3] == ["review", "import"]]
    return {"bundle": Path(bundle), "import": import_, "steps": step2, "env": env}


@pytest.mark.slow
def test_the_banners_key_rotation_works_on_the_running_demo(demo, exported, server_venv):
    import requests

    env, _, step3 = banner_steps(demo["log"])
    demo_dir = Path(env["INTAKE_KEYRING"]).parent.parent
    passphrase_file = demo_dir / "passphrase.txt"
    new_identity, add, sign, listing = step3
    new_identity += ["--passphrase-file", str(passphrase_file)]
    made = subprocess.run(new_identity, env=clean_env(**env), capture_output=True, text=True,
                          timeout=120)
    assert made.returncode == 0, made.stderr
    add[add.index("age1...")] = made.stdout.strip()
    for command in (add, sign, listing):
        result = subprocess.run(command, env=clean_env(**env), capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, (command, result.stderr)
    assert "demo-reviewer-2" in result.stdout
    form = ""
    for _ in range(50):  # the demo re-reads the keyring within a few seconds
        form = requests.get(demo["url"] + "/en/report", timeout=30).text
        if 'name="keyring_version" type="hidden" value="2"' in form:
            break
        time.sleep(0.2)
    assert 'name="keyring_version" type="hidden" value="2"' in form


@pytest.mark.slow
def test_the_server_install_names_the_extra_the_review_commands_need(server_venv, tmp_path):
    result = subprocess.run([str(server_venv / "intake"), "review", "list", "--cases",
                             str(tmp_path)], capture_output=True, text=True, timeout=60,
                            env=clean_env(), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "pip install 'intake[review]'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("remove", ["templates", "translations/fa/LC_MESSAGES/messages.mo"])
def test_an_installation_without_templates_or_catalogues_says_so_in_one_line(
    server_venv, tmp_path, remove
):
    """A copy of the installed package, with one part gone, run by the wheel's venv."""
    site = subprocess.run([str(server_venv / "python"), "-c",
                           "import intake, os; print(os.path.dirname(intake.__file__))"],
                          capture_output=True, text=True, check=True, cwd=tmp_path,
                          env=clean_env()).stdout.strip()
    broken = tmp_path / "broken"
    shutil.copytree(site, broken / "intake")
    target = broken / "intake" / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    result = subprocess.run([str(server_venv / "python"), "-m", "intake", "serve", "--port",
                             str(free_port())], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env=clean_env(PYTHONPATH=str(broken),
                                                        INTAKE_DATA_DIR=str(tmp_path / "var")))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if not line.startswith("INFO ")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("intake: This installation of the intake lacks")
    assert ("page templates" if remove == "templates" else "catalogues for fa") in lines[0]
    assert "Traceback" not in result.stderr


# -- the offline bundle --------------------------------------------------------------------

@pytest.fixture(scope="module")
def offline(built, tmp_path_factory) -> dict[str, object]:
    """`tools/offline_bundle.py` on the built wheel (it downloads the wheels of the lock)."""
    out = tmp_path_factory.mktemp("offline")
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/offline_bundle.py"), "--wheel", str(built["wheel"]),
         "--lock", str(LOCKS / "review.txt"), "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    tar = out / f"intake-offline-{VERSION}.tar"
    printed = result.stdout
    return {"tar": tar, "printed": printed,
            "sha256": re.search(r"SHA-256: ([0-9a-f]{64})", printed).group(1),
            "spoken": re.search(r"another channel: ([0-9 ]+)", printed).group(1).strip()}


@pytest.mark.slow
def test_the_offline_bundle_is_under_its_size_ceiling(offline, capsys):
    size = offline["tar"].stat().st_size
    with capsys.disabled():  # in the test output whatever the outcome
        print(f"\n[offline bundle {offline['tar'].name}: {size} bytes ({size / 2**20:.1f} MiB);"
              f" ceiling {offline_bundle.MAX_BUNDLE_BYTES} bytes "
              f"({offline_bundle.MAX_BUNDLE_BYTES / 2**20:.0f} MiB)]")
    assert size <= offline_bundle.MAX_BUNDLE_BYTES
    assert f"{size} bytes" in offline["printed"]


@pytest.mark.slow
def test_the_offline_bundle_holds_only_wheels_the_lock_names_and_the_intake_wheel(offline,
                                                                                  built):
    folder = f"intake-offline-{VERSION}"
    pins = lock_pins("review")
    with tarfile.open(offline["tar"]) as tar:
        members = tar.getmembers()
        requirements = tar.extractfile(f"{folder}/requirements.txt").read().decode()
        wheels = {m.name.rsplit("/", 1)[1]: tar.extractfile(m).read() for m in members
                  if m.isfile() and m.name.startswith(f"{folder}/wheels/")}
    assert all(m.name == folder or m.name.startswith(folder + "/") for m in members)
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "" and m.mtime == 0 for m in members)
    assert set(wheels) == {*(n for n in wheels if not n.startswith("intake-")),
                           built["wheel"].name}
    names = {canonicalize_name(n.split("-")[0]) for n in wheels} - {"intake"}
    assert names == set(pins), names ^ set(pins)
    for name, data in wheels.items():
        digest = hashlib.sha256(data).hexdigest()
        if name.startswith("intake-"):
            assert data == built["wheel"].read_bytes()
            assert f"intake[review]=={VERSION} \\\n    --hash=sha256:{digest}" in requirements
        else:
            assert digest in pins[canonicalize_name(name.split("-")[0])][1], name
    assert (LOCKS / "review.txt").read_text() in requirements


@pytest.mark.slow
def test_the_reviewers_fingerprint_command_in_the_docs_matches_what_the_admin_reads(offline):
    docs = (ROOT / "docs" / "reviewers.md").read_text()
    [command] = [line.strip() for line in docs.splitlines()
                 if line.strip().startswith("python3 -c ") and "file_digest" in line]
    words = shlex.split(command)
    assert words[-1].startswith("intake-offline-")
    result = subprocess.run([*words[:-1], str(offline["tar"])], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout.strip() == offline["spoken"]
    assert re.fullmatch(r"[0-9]{5}( [0-9]{5}){4}", offline["spoken"])
    assert offline["spoken"] == offline_bundle.spoken_fingerprint(offline["sha256"])
    assert offline["sha256"] == hashlib.sha256(offline["tar"].read_bytes()).hexdigest()


def debian_python() -> str:
    """The system's python3, as on the reviewers' Debian 12 (the bundle is for CPython 3.11)."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no /usr/bin/python3 to stand for the reviewers' system Python")
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if version != "(3, 11)":
        pytest.skip(f"/usr/bin/python3 is {version}, the bundle is for CPython 3.11")
    return python


def offline_sh(script: str, home: Path) -> subprocess.CompletedProcess:
    """`script` in a new network namespace (a loopback that is down, nothing else), with an
    empty environment: no proxy variable, no pip configuration, no index."""
    require_tool("unshare")
    if os.geteuid() != 0:
        pytest.skip("a network namespace needs root (CI runs as root)")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "PIP_CONFIG_FILE": os.devnull}
    return subprocess.run(["unshare", "--net", "--", "sh", "-euc", script], env=env,
                          cwd=home, capture_output=True, text=True, timeout=600)


NO_NETWORK_PROBE = (
    "python3 -c 'import socket; assert socket.if_nameindex() == [(1, \"lo\")], "
    "socket.if_nameindex()\n"
    "try:\n    socket.create_connection((\"127.0.0.1\", 9), timeout=2)\n"
    "except OSError as exc:\n    assert exc.errno == 101, exc  # ENETUNREACH\n"
    "else:\n    raise SystemExit(\"connected\")'"
)


@pytest.fixture(scope="module")
def review_venv(offline, tmp_path_factory) -> Path:
    """The bundle installed as INSTALL.txt says, with no network at all."""
    debian_python()
    home = tmp_path_factory.mktemp("reviewer")
    shutil.copy2(offline["tar"], home)
    with tarfile.open(offline["tar"]) as tar:
        install = tar.extractfile(f"intake-offline-{VERSION}/INSTALL.txt").read().decode()
    # The commands of steps 1 to 3, as written (step 4's checks are the smoke test below).
    commands = [
        line.strip() for line in install.replace("\\\n", " ").splitlines()
        if line.startswith("     ") and "/bin/intake " not in line
    ]
    assert commands[0] == f"tar -xf intake-offline-{VERSION}.tar"
    assert commands[1].startswith("python3 -m venv --without-pip ")
    # PATH is /usr/bin:/bin in there: `python3` is the system's, as on the reviewers' machine.
    started = time.monotonic()
    result = offline_sh("\n".join([NO_NETWORK_PROBE, *commands]), home)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    bin_dir = home / "Persistent" / "intake-venv" / "bin"
    (bin_dir / ".install-seconds").write_text(f"{took:.1f}")
    return bin_dir


@pytest.mark.slow
def test_the_offline_bundle_installs_with_no_network_and_passes_its_smoke_test(review_venv,
                                                                              capsys):
    with capsys.disabled():
        took = (review_venv / ".install-seconds").read_text()
        print(f"\n[offline install, no network: {took} s]")
    home = review_venv.parent.parent.parent
    result = offline_sh(f"{NO_NETWORK_PROBE}\n{review_venv}/intake --version\n"
                        f"{review_venv}/intake review --help\n"
                        f"{review_venv}/intake keys --help", home)
    assert result.returncode == 0, result.stderr
    assert f"intake, version {VERSION}" in result.stdout
    assert "import" in result.stdout and "new-identity" in result.stdout
    installed = installed_distributions(review_venv)
    assert not installed & SERVER_DISTRIBUTIONS, installed & SERVER_DISTRIBUTIONS
    assert {"intake", "pip", "matplotlib", "stix2", "flask-wtf"} <= installed


@pytest.mark.slow
@pytest.mark.parametrize("command", [["demo"], ["serve"], ["db", "upgrade"],
                                     ["export", "--out", "usb"], ["purge", "--ack", "ack.json"]])
def test_the_reviewers_install_refuses_server_commands_in_one_sentence(review_venv, command):
    result = subprocess.run([str(review_venv / "intake"), *command], capture_output=True,
                            text=True, timeout=60, env=clean_env(), cwd=review_venv)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"`intake {command[0]}`" in result.stderr
    assert "pip install 'intake[server]'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_offline_install_runs_the_whole_reviewer_path_on_the_demos_export(
    review_venv, exported
):
    """The banner's `intake review import` (run by the offline install, with no network),
    then list, show and the three exports."""
    home = review_venv.parent.parent.parent
    import_ = [str(review_venv / "intake"), *exported["import"][1:]]
    import_[import_.index(next(w for w in import_ if "intake-export-*" in w))] = \
        str(exported["bundle"])
    cases = Path(import_[import_.index("--cases") + 1])
    intake = f"{review_venv}/intake"
    exports = home / "exports"
    script = "\n".join([
        NO_NETWORK_PROBE,
        shlex.join(import_),
        f"{intake} review list --cases {cases} > {home}/list.txt",
        f"mkdir -p {exports}",
        *(f"{intake} review export --format {fmt} --cases {cases} --out {exports}/all.{fmt}"
          for fmt in ("html", "csv", "stix2")),
    ])
    result = offline_sh(script, home)
    assert result.returncode == 0, result.stderr
    assert "2 added, 0 already" in result.stderr
    listing = (home / "list.txt").read_text().strip().splitlines()
    assert len(listing) == 3  # a header and the two reports
    case = next(p for p in cases.iterdir() if (p / "attachments").is_dir())
    shown = offline_sh(f"{intake} review show {case.name} --cases {cases}", home)
    assert shown.returncode == 0, shown.stderr
    assert "packaging: first report" in shown.stdout and "note.txt" in shown.stdout
    report = (exports / "all.html").read_text()
    assert "<svg" in report and "<script" not in report
    assert len(list(csv.DictReader(io.StringIO((exports / "all.csv").read_text())))) == 2
    assert json.loads((exports / "all.stix2").read_text())["type"] == "bundle"



DESK_PROBE = r'''
import http.cookiejar, re, sys, time, urllib.parse, urllib.request
url_file, code = sys.argv[1], sys.argv[2]
for _ in range(150):
    text = open(url_file).read().strip()
    if text.startswith("http://127.0.0.1:"):
        break
    time.sleep(0.2)
else:
    raise SystemExit("the desk printed no address: " + open(url_file).read())
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
page = opener.open(text, timeout=30)
body = page.read().decode()
assert page.status == 200 and code in body, body[:2000]
assert "script-src 'self'" in page.headers["Content-Security-Policy"]
link = re.search(r'href="([^"]*/cases/([0-9a-f]{32}))"', body)
case = opener.open(urllib.parse.urljoin(page.url, link.group(1)), timeout=30)
assert case.status == 200 and "IC-" + link.group(2)[:8].upper() in case.read().decode()
print("desk ok")
'''


@pytest.mark.slow
def test_the_offline_install_serves_the_reviewers_desk_with_no_network(review_venv, exported):
    """`intake review serve` from the offline install, in a namespace whose only network is
    its own loopback: the one-time address opens the case list, and a case opens."""
    home = review_venv.parent.parent.parent
    cases = home / "desk-cases"
    import_ = [str(review_venv / "intake"), *exported["import"][1:]]
    import_[import_.index(next(w for w in import_ if "intake-export-*" in w))] = \
        str(exported["bundle"])
    import_[import_.index("--cases") + 1] = str(cases)
    (home / "desk-probe.py").write_text(DESK_PROBE)
    intake = f"{review_venv}/intake"
    script = "\n".join([
        NO_NETWORK_PROBE,
        shlex.join(import_),
        "/bin/ip link set lo up",  # the namespace's loopback, for the desk alone
        f"{intake} review serve --cases {cases} --port 8765 > {home}/desk-url.txt "
        f"2> {home}/desk.err &",
        "desk=$!",
        f"code=$({intake} review list --cases {cases} | awk 'NR==2 {{print $1}}')",
        f"{review_venv}/python {home}/desk-probe.py {home}/desk-url.txt \"$code\" "
        f"|| {{ cat {home}/desk.err >&2; kill $desk; exit 1; }}",
        "kill $desk",
    ])
    result = offline_sh(script, home)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "desk ok" in result.stdout
