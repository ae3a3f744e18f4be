"""Size and count limits: the one place where each is defined.

The web form, the upload API, the container reader and the review tools all
import their bounds from here, so that what the server accepts is exactly what
the reviewer's tools will open.
"""

MiB = 1024 * 1024

#: Default bound on a whole submission (request body, ciphertext, container).
DEFAULT_MAX_UPLOAD = 500 * MiB

#: Files a single report may carry.
MAX_ATTACHMENTS = 20

#: Bound on report.json inside a container (the form's text fields are far smaller).
MAX_REPORT_JSON = 1 * MiB

#: Bound on a container the reviewer's tools will open (the server's limit is
#: configurable; this is the ceiling any deployment can reach).
MAX_CONTAINER = 4 * 1024 * MiB

#: Recipients one keyring (and so one age header) may list.
MAX_RECIPIENTS = 64

#: Bound on an age header from a client: the version line, MAX_RECIPIENTS
#: X25519 stanzas of about 110 bytes each, and the MAC line.
MAX_AGE_HEADER = 16 * 1024
