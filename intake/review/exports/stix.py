"""The cases' indicators as a STIX 2.1 bundle that MVT loads.

MVT's parser (the rules are in the schema document) reads ``malware``,
``report``, ``indicator`` and ``relationship`` objects, and only one
comparison per pattern. The bundle holds:

- one ``indicator`` per distinct normalised value, however many cases share
  it (its id depends on the pattern only);
- per case with indicators, a ``malware`` object named after the case code
  (never a person's name: MVT shows it to whoever runs the check), an
  ``indicates`` relationship from each of its indicators to it, and a
  ``report`` named after the case code that references all of these. MVT
  files an indicator shared by several cases under one of their reports (the
  last in the bundle); the relationships keep every case's link.

A URL gives its host too, as a ``domain-name`` (or ``ipv4-addr``), so that
MVT's ``check_domain`` matches the domain on any path. The boundary filter of
this output is `stix_pattern`: a value MVT would misread (``'``, ``]``, ``\\``,
or ``=``, which makes MVT abort the whole load, its issue #906) never reaches
a pattern. What cannot be exported (phone numbers, IPv6 addresses, unknown
lines, values MVT would misread) is returned by `stix2_left_out`, so that the
command line can list it rather than drop it silently. Nothing of the
narrative is exported. `stix2` is imported only when a bundle is made.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from intake.review.casestore import Case
from intake.review.indicators import Indicator, classify, indicators_of

#: The MVT pattern path for each kind MVT can match; other kinds are not exported.
STIX_PATHS = {
    "domain": "domain-name:value",
    "url": "url:value",
    "ipv4": "ipv4-addr:value",
    "email": "email-addr:value",
    "sha256": "file:hashes.sha256",
    "sha1": "file:hashes.sha1",
    "md5": "file:hashes.md5",
    "app_id": "app:id",
    "file_name": "file:name",
}
# MVT strips "[]" and splits the pattern on "=": a value with "=" aborts the
# whole load (MVT issue #906), and a quote or bracket ends the value early.
# A backslash would need STIX escaping, which MVT does not undo.
_STIX_FORBIDDEN = ("'", "]", "\\", "=")
# Fixed, so that exporting a case again gives its objects the same ids.
_STIX_NAMESPACE = uuid.UUID("8a3c1f52-33b4-4c1e-9e0e-6f2d1a7c5b90")


@dataclass(frozen=True)
class LeftOut:
    """An indicator (or part of one) `to_stix2` did not export, and why."""

    case_code: str
    indicator: Indicator
    reason: str


def _single(indicator: Indicator) -> tuple[str | None, str]:
    if indicator.kind == "phone":
        return None, "phone numbers have no MVT type; they stay in the case"
    if indicator.kind not in STIX_PATHS:
        return None, f"MVT has no type for {indicator.kind.replace('_', ' ')}"
    if any(ch in indicator.value for ch in _STIX_FORBIDDEN):
        return None, "contains ', ], \\ or =, which MVT would misread"
    return f"[{STIX_PATHS[indicator.kind]}='{indicator.value}']", ""


def _url_host(url: str) -> Indicator | None:
    netloc = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    host = netloc.rpartition("@")[2]
    if host.startswith("["):
        return None
    host = host.rsplit(":", 1)[0] if ":" in host else host
    found = classify(host)
    return found if found.kind in {"domain", "ipv4"} else None


def stix_patterns(indicator: Indicator) -> tuple[list[str], str]:
    """The single-comparison patterns for `indicator`, and why a part was left out ("").

    A URL gives its own pattern and its host's; a URL MVT would misread gives
    only its host's.
    """
    pattern, reason = _single(indicator)
    patterns = [pattern] if pattern else []
    if indicator.kind == "url":
        host = _url_host(indicator.value)
        host_pattern = _single(host)[0] if host else None
        if host_pattern:
            patterns.append(host_pattern)
            if pattern is None:
                reason = "a URL MVT would misread; only its host is exported"
    return patterns, ("" if pattern else reason)


def _stix_id(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(_STIX_NAMESPACE, chr(0).join((kind, *parts)))}"


def _published(case: Case) -> datetime.datetime:
    if case.received_on:
        return datetime.datetime.fromisoformat(case.received_on).replace(tzinfo=datetime.UTC)
    return datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _plan(cases: Iterable[Case]) -> tuple[list[tuple[Case, list[Any]]], list[LeftOut]]:
    """Each case with its distinct STIX indicators (cases without any left out), and
    what was left out of the indicators."""
    import stix2
    from stix2.exceptions import STIXError

    made: dict[str, Any] = {}
    planned: list[tuple[Case, list[Any]]] = []
    left_out: list[LeftOut] = []
    for case in cases:
        found_here: dict[str, Any] = {}
        for indicator in indicators_of(case):
            patterns, reason = stix_patterns(indicator)
            for pattern in patterns:
                if pattern not in made:
                    try:
                        made[pattern] = stix2.Indicator(
                            id=_stix_id("indicator", pattern), pattern=pattern,
                            pattern_type="stix",
                        )
                    except STIXError:
                        made[pattern] = None
                if made[pattern] is None:
                    reason = reason or "not a valid STIX pattern"
                else:
                    found_here[pattern] = made[pattern]
            if reason:
                left_out.append(LeftOut(case.code, indicator, reason))
        if found_here:
            planned.append((case, list(found_here.values())))
    return planned, left_out


def to_stix2(cases: Sequence[Case]) -> str:
    """The cases' indicators as a STIX 2.1 bundle (JSON text) that MVT loads."""
    import stix2

    objects = _stix_objects(cases)
    bundle = stix2.Bundle(objects=objects) if objects else stix2.Bundle()
    return bundle.serialize(pretty=True) + "\n"


def stix2_left_out(cases: Iterable[Case]) -> list[LeftOut]:
    """What `to_stix2` leaves out of the same cases, so the reviewer can be told."""
    return _plan(cases)[1]


def _stix_objects(cases: Sequence[Case]) -> list[Any]:
    import stix2

    planned, _left_out = _plan(cases)
    objects: list[Any] = []
    seen: set[str] = set()
    for _case, indicators in planned:
        for indicator in indicators:
            if indicator.id not in seen:
                seen.add(indicator.id)
                objects.append(indicator)
    for case, indicators in planned:
        # The case code, never a name: MVT shows it to whoever runs the check.
        malware = stix2.Malware(
            id=_stix_id("malware", case.case_id), name=case.code, is_family=False
        )
        relationships = [
            stix2.Relationship(
                id=_stix_id("relationship", case.case_id, indicator.pattern),
                source_ref=indicator.id,
                relationship_type="indicates",
                target_ref=malware.id,
            )
            for indicator in indicators
        ]
        report = stix2.Report(
            id=_stix_id("report", case.case_id),
            name=case.code,
            published=_published(case),
            object_refs=[*(i.id for i in indicators), malware.id, *(r.id for r in relationships)],
        )
        objects.extend([malware, *relationships, report])
    return objects
