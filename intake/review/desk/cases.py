"""TEMPORARY (until the case store's database lands): cases read straight from their folders.

This is the one module of the desk that knows how cases are stored. The views
call only `DeskCases.list_cases()` and `DeskCases.get_case()`; when
`intake.review.store.CaseStore` is on the branch, this module is replaced by
it and nothing else of the desk changes.

A case folder that cannot be read (a damaged case.json, a report.json over
the container's bound) is counted, not shown, and never stops the others
from being listed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from intake.limits import MAX_REPORT_JSON
from intake.review.casestore import CASE_ID, META_FILE, Case, case_ids, load_case

log = logging.getLogger("intake.desk")


class DeskCases:
    def __init__(self, cases_dir: Path) -> None:
        self.cases_dir = cases_dir

    def _load(self, case_id: str) -> Case | None:
        directory = self.cases_dir / case_id
        try:
            if (directory / "report.json").stat().st_size > MAX_REPORT_JSON:
                return None
            case = load_case(directory)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(case.report, dict) or case.case_id != case_id:
            return None
        # A case whose case.json cannot be read, or names another case, has no trustworthy
        # identity: count it as unreadable. Other problems (a bad day, a report.json that
        # breaks the form) still show, as damaged.
        unreadable = (f"{META_FILE} is not", f"{META_FILE} names another", f"{META_FILE} cannot")
        if any(problem.startswith(unreadable) for problem in case.problems):
            return None
        return case

    def list_cases(self) -> tuple[list[Case], int]:
        """Every readable case, newest first, and how many case folders could not be read."""
        cases, unreadable = [], 0
        for case_id in case_ids(self.cases_dir):
            case = self._load(case_id)
            if case is None:
                unreadable += 1
            else:
                cases.append(case)
        if unreadable:
            log.warning("%d case folder(s) could not be read and are not listed", unreadable)
        cases.sort(key=lambda c: (str(c.received_on), c.case_id), reverse=True)
        return cases, unreadable

    def get_case(self, case_id: str) -> Case | None:
        if not CASE_ID.fullmatch(case_id) or not (self.cases_dir / case_id).is_dir():
            return None
        return self._load(case_id)
