"""The coalition's documents made from the case store, one module per format.

- `intake.review.exports.csv`: CSV for spreadsheets (labels or codes) and its codebook;
- `intake.review.exports.stix`: STIX 2.1 for MVT;
- `intake.review.exports.html`: an HTML report of counts with charts.

Each module applies its own boundary filter where it writes its output:
formula defusing for CSV, MVT-safe patterns for STIX, autoescaping for HTML.
The terminal's is `intake.cli.terminal.terminal_safe`. The per-case page is
`intake.review.render`.
"""

from intake.review.exports.csv import csv_columns, defuse, to_csv, write_codebook
from intake.review.exports.html import COUNTED_FIELDS, to_html
from intake.review.exports.stix import STIX_PATHS, LeftOut, stix2_left_out, stix_patterns, to_stix2

__all__ = [
    "COUNTED_FIELDS", "STIX_PATHS", "LeftOut", "csv_columns", "defuse", "stix2_left_out",
    "stix_patterns", "to_csv", "to_html", "to_stix2", "write_codebook",
]
