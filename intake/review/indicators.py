"""Indicators as sources type them, made comparable: normalised, then classified.

A source pastes one indicator per line, often defanged (``hxxp://evil[.]example``),
sometimes with Arabic-Indic digits, invisible bidi marks or a domain in Arabic
script. `classify` turns such a line into an `Indicator` whose value is the form
forensic tools compare: NFKC, no bidi or zero-width characters, ASCII digits,
defanging undone, domains (and the host of URLs and e-mails) in punycode, domains
and e-mails lower-case, hashes lower-case hex. `normalise_indicator` is the same
value without the kind. Both are idempotent and never raise on any input.

How a line is classified, first match wins:

1. ``md5``/``sha1``/``sha256``: 32, 40 or 64 hexadecimal digits;
2. ``url``: a scheme followed by ``://`` and a valid host (domain or IP);
3. ``email``: ``local@domain`` with a valid domain;
4. ``ipv4``, ``ipv6``: what `ipaddress` accepts (no leading zeros);
5. ``file_name``: no path, ends in an extension from `FILE_EXTENSIONS`
   (``invoice.zip`` is a file, though ``.zip`` is also a top-level domain);
6. ``app_id``: reverse-DNS such as ``com.whatsapp`` or ``com.example.app``:
   the *first* label is one of `REVERSE_DNS_ROOTS` and every label is an
   identifier. Host names practically never start with ``com.`` or ``org.``,
   while Android packages and iOS bundle ids almost always do, so this rule
   keeps ``example.com`` and ``ar.example.org`` domains. The price: a bare
   suffix such as ``gov.uk`` reads as an app id. App ids keep their case;
7. ``domain``: a valid host name of at least two labels;
8. ``phone``: 7 to 15 digits with ``+``, spaces, dots, dashes or parentheses;
   the value keeps only a leading ``+`` (``00`` becomes ``+``) and the digits;
9. ``unknown``: anything else, including values with control characters left
   after cleaning, and lines longer than `MAX_INDICATOR_LENGTH`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from intake.crypto.container import strip_invisible
from intake.schema import normalise_digits

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

    from intake.review.casestore import Case

KINDS = (
    "domain", "url", "ipv4", "ipv6", "email", "sha256", "sha1", "md5",
    "phone", "app_id", "file_name", "unknown",
)
#: Longer lines are not indicators anyone can use; they are kept as "unknown".
MAX_INDICATOR_LENGTH = 2048
#: First labels that make a dotted name an app id rather than a domain.
REVERSE_DNS_ROOTS = frozenset({"com", "org", "net", "edu", "gov", "io"})
#: Extensions that make a name a file rather than a domain. Left out on purpose:
#: extensions that are busy top-level domains (.com, .app, .sh, .py, .pl, .rs).
FILE_EXTENSIONS = frozenset({
    "apk", "apks", "xapk", "aab", "ipa", "dex", "so", "dylib", "jar", "exe", "dll", "scr",
    "msi", "bat", "cmd", "ps1", "vbs", "js", "jse", "hta", "lnk", "dmg", "pkg", "iso",
    "mobileconfig", "plist", "doc", "docx", "docm", "xls", "xlsx", "xlsm", "ppt", "pptx",
    "pptm", "pdf", "rtf", "odt", "ods", "odp", "txt", "csv", "eml", "msg", "htm", "html",
    "zip", "rar", "7z", "gz", "tgz", "tar", "jpg", "jpeg", "png", "gif", "heic", "webp",
    "mp4", "mov", "mp3", "m4a", "ogg", "opus", "wav", "bin",
})


@dataclass(frozen=True)
class Indicator:
    """One classified indicator: `kind` is one of `KINDS`, `value` is normalised."""

    kind: str
    value: str


# -- Cleaning: what every kind gets --------------------------------------------------------

_DEFANGS = (
    (re.compile(r"^hxxp(s?)(?=\W)", re.IGNORECASE), r"http\1"),
    (re.compile(r"^fxp(s?)(?=\W)", re.IGNORECASE), r"ftp\1"),
    (re.compile(r"\s*[\[({]\s*(?:\.|dot)\s*[\])}]\s*", re.IGNORECASE), "."),
    (re.compile(r"[\[({]\s*(://|:)\s*[\])}]"), r"\1"),
    (re.compile(r"\s*[\[({]\s*(?:@|at)\s*[\])}]\s*", re.IGNORECASE), "@"),
)
# Full stops a CJK or full-width keyboard types; IDNA reads them as dots.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": ".", "\u066b": "."})
_WRAPPERS = (("<", ">"), ('"', '"'), ("'", "'"), ("`", "`"))


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", str(text))
    text = normalise_digits(strip_invisible(text)).translate(_DOTS)
    # Until nothing changes, so that "[[.]]" cleans the same once or twice.
    # Each round after the first only shortens the text or rewrites its scheme.
    for _round in range(len(text) + 1):
        cleaned = _undo_defanging(text)
        if cleaned == text:
            break
        text = cleaned
    return text


def _undo_defanging(text: str) -> str:
    text = text.strip()
    for opening, closing in _WRAPPERS:
        inside = text[1:-1]
        if (len(text) >= 2 and text.startswith(opening) and text.endswith(closing)
                and opening not in inside and closing not in inside):
            text = inside.strip()
    for pattern, replacement in _DEFANGS:
        text = pattern.sub(replacement, text)
    return text.strip()


# -- Hosts ---------------------------------------------------------------------------------

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_TOP_LABEL = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")


def _ascii_domain(host: str) -> str | None:
    """`host` as a lower-case punycode domain name, or None if it is not one."""
    host = host.rstrip(".")
    if not host or len(host) > 253:
        return None
    if host.isascii():
        ascii_host = host.lower()
    else:
        ascii_host = _punycode(host)
        if ascii_host is None:
            return None
    labels = ascii_host.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if not _TOP_LABEL.fullmatch(labels[-1]):
        return None
    return ascii_host


def _punycode(host: str) -> str | None:
    # IDNA 2008 with UTS 46 mapping first; the older IDNA 2003 codec of the
    # standard library still accepts names registered before 2008 (emoji).
    try:
        import idna

        return idna.encode(host, uts46=True).decode("ascii")
    except (ImportError, UnicodeError, ValueError):
        pass
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


def _ip(text: str) -> Indicator | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    kind = "ipv4" if address.version == 4 else "ipv6"
    return Indicator(kind, address.compressed)


def _host(host: str) -> str | None:
    """A URL's or e-mail's host, normalised: a domain, an IPv4 or a bracketed IPv6."""
    if host.startswith("[") and host.endswith("]"):
        address = _ip(host[1:-1])
        return f"[{address.value}]" if address and address.kind == "ipv6" else None
    address = _ip(host)
    if address is not None:
        return address.value if address.kind == "ipv4" else None
    return _ascii_domain(host)


# -- The kinds -----------------------------------------------------------------------------

_HASHES = {32: "md5", 40: "sha1", 64: "sha256"}
_HEX = re.compile(r"[0-9a-fA-F]+")
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<netloc>[^/?#]*)(?P<rest>.*)",
                  re.DOTALL)
_PORT = re.compile(r":[0-9]{1,5}")
_EMAIL = re.compile(r"(?P<local>[^@\s]+)@(?P<host>[^@\s]+)")
_APP_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_PHONE = re.compile(r"\+?[0-9(][0-9 ()./-]*")
_DOTTED_NUMBERS = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _url(text: str) -> Indicator | None:
    match = _URL.fullmatch(text)
    if match is None:
        return None
    userinfo, at, hostport = match["netloc"].rpartition("@")
    port = ""
    port_match = re.search(r":[^:\]]*\Z", hostport)  # \Z: $ would also stop before a newline
    if port_match is not None:
        port = port_match.group()
        hostport = hostport[: port_match.start()]
        if port != ":" and not _PORT.fullmatch(port):
            return None
    host = _host(hostport)
    if host is None:
        return None
    netloc = f"{userinfo}{at}{host}{port}"
    return Indicator("url", f"{match['scheme'].lower()}://{netloc}{match['rest']}")


def _email(text: str) -> Indicator | None:
    match = _EMAIL.fullmatch(re.sub(r"^mailto:", "", text, flags=re.IGNORECASE))
    if match is None:
        return None
    host = _ascii_domain(match["host"])
    if host is None:
        return None
    return Indicator("email", f"{match['local'].lower()}@{host}")


def _file_name(text: str) -> Indicator | None:
    if any(ch in text for ch in "/\\@") or text.startswith("."):
        return None
    _stem, dot, extension = text.rpartition(".")
    if dot and _stem.strip() and extension.lower() in FILE_EXTENSIONS:
        return Indicator("file_name", text)
    return None


def _app_id(text: str) -> Indicator | None:
    labels = text.split(".")
    if len(labels) < 2 or labels[0].lower() not in REVERSE_DNS_ROOTS:
        return None
    # A punycode label ("xn--") is a domain's, never an app's.
    if not all(_APP_LABEL.fullmatch(label) and not label.lower().startswith("xn--")
               for label in labels):
        return None
    return Indicator("app_id", text)


def _phone(text: str) -> Indicator | None:
    if not _PHONE.fullmatch(text) or _DOTTED_NUMBERS.fullmatch(text) or _ISO_DATE.fullmatch(text):
        return None
    digits = re.sub(r"[^0-9]", "", text)
    if text.startswith("+"):
        prefix = "+"
    elif digits.startswith("00"):
        prefix, digits = "+", digits[2:]
    else:
        prefix = ""
    if not 7 <= len(digits) <= 15:
        return None
    return Indicator("phone", prefix + digits)


def classify(value: str) -> Indicator:
    """The kind of one typed indicator and its normalised value (see the module doc)."""
    text = _clean(value)
    if len(text) > MAX_INDICATOR_LENGTH or any(
        unicodedata.category(ch) in {"Cc", "Cf"} for ch in text
    ):
        return Indicator("unknown", text)
    if len(text) in _HASHES and _HEX.fullmatch(text):
        return Indicator(_HASHES[len(text)], text.lower())
    for kind_of in (_url, _email):
        found = kind_of(text)
        if found is not None:
            return found
    address = _ip(text.removeprefix("[").removesuffix("]") if ":" in text else text)
    if address is not None:
        return address
    # A name may end with the root's dot ("evil.example."); the value will not.
    name = text.rstrip(".")
    for kind_of in (_file_name, _app_id):
        found = kind_of(name)
        if found is not None:
            return found
    domain = _ascii_domain(name)
    if domain is not None:
        return Indicator("domain", domain)
    return _phone(text) or Indicator("unknown", text)


def normalise_indicator(text: str) -> str:
    """`text` as forensic tools compare it: the value `classify` gives."""
    return classify(text).value


def indicators_of(case: Case) -> list[Indicator]:
    """The case's indicators, one per non-blank line of its `indicators` field,
    without repeats, in the order the source typed them."""
    raw = case.fields.get("indicators") or ""
    if not isinstance(raw, str):
        return []
    found: dict[Indicator, None] = {}
    for line in raw.splitlines():
        if line.strip():
            indicator = classify(line)
            if indicator.value:
                found.setdefault(indicator)
    return list(found)


# -- Correlation: the keys two cases are compared on ---------------------------------------

#: Kinds that link two cases when they share a value; file names and unknown lines do
#: not ("invoice.pdf" in two reports says nothing about a shared campaign).
LINKING_KINDS = frozenset({
    "domain", "url", "email", "phone", "sha256", "sha1", "md5", "app_id", "ipv4", "ipv6",
})


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    # publicsuffixlist ships the list inside the package and never fetches it:
    # PublicSuffixList() with no argument reads the bundled file.
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def registered_domain(host: str) -> str | None:
    """The domain a host was registered under (``a.b.evil.co.uk`` -> ``evil.co.uk``).

    Read from the Public Suffix List that ships with ``publicsuffixlist``, its
    private section included (``x.blogspot.com`` is its own registration).
    None for an IP address, a public suffix itself, or what is not a domain.
    """
    domain = _ascii_domain(host)
    if domain is None:
        return None
    return _public_suffixes().privatesuffix(domain)


def e164(number: str, region: str | None) -> str | None:
    """`number` in E.164 (``+9613123456``), with `region` (ISO 3166 alpha-2) as the
    default for a number typed without its country code; None if it is no possible
    number. Uses ``phonenumbers`` (its metadata ships with it)."""
    import phonenumbers

    default = region.upper() if region and re.fullmatch(r"[A-Za-z]{2}", region) else None
    try:
        parsed = phonenumbers.parse(number, default)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _host_of_url(url: str) -> str | None:
    netloc = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    host = netloc.rpartition("@")[2]
    if host.startswith("["):
        return None
    return host.rsplit(":", 1)[0] if ":" in host else host


def correlation_keys(indicator: Indicator, region: str | None = None) -> list[Indicator]:
    """What `indicator` is compared on against other cases, most specific first.

    A URL gives itself, its host and its registered domain; a domain gives itself
    and its registered domain; a phone number its E.164 form (`region`, the case's
    country, for numbers typed without a country code; the digits as typed when
    ``phonenumbers`` cannot read it); the other linking kinds give their normalised
    value. File names and unknown lines give nothing (see `LINKING_KINDS`).
    """
    if indicator.kind not in LINKING_KINDS:
        return []
    keys = [indicator]
    if indicator.kind == "phone":
        keys = [Indicator("phone", e164(indicator.value, region) or indicator.value)]
    host = _host_of_url(indicator.value) if indicator.kind == "url" else None
    if indicator.kind == "domain":
        host = indicator.value
    if host:
        address = _ip(host)
        if address is not None:
            keys.append(address)
        else:
            keys.append(Indicator("domain", host))
            registered = registered_domain(host)
            if registered:
                keys.append(Indicator("domain", registered))
    return list(dict.fromkeys(keys))
