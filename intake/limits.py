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

# -- Browser uploads in progress (intake.storage.uploads; the reasoning is in
# SECURITY.md and deploy/README.md, "Upload budget"). An open upload reserves
# what has arrived plus UPLOAD_WINDOW ahead of it (never more than its declared
# size), so a create that never sends a byte costs at most one chunk.

#: The chunk size the API asks for, and the window an open upload reserves ahead.
UPLOAD_CHUNK = 4 * MiB

#: Bytes all open uploads together may reserve: 500 sources sending 20 MiB
#: reports at once reserve at most 500 x 20.5 MiB = 10 GiB; 6 GiB more keeps
#: room for 1,536 new uploads even then.
OPEN_UPLOAD_BYTES = 16 * 1024 * MiB

#: Open uploads (a row and a part file each), whatever their size: ten times
#: the 500 that must fit.
MAX_OPEN_UPLOADS = 5000

# -- The follow-up channel (intake.storage.mailboxes, intake.storage.derivation;
# the reasoning is in SECURITY.md, "The follow-up channel").

#: A source mailbox with no activity (the source opening it or sending more) for
#: this many days is deleted (INTAKE_MAILBOX_DAYS).
DEFAULT_MAILBOX_DAYS = 90

#: Receipt derivations (Argon2id, about 0.3 s of CPU and 128 MiB each) that may
#: run at once across every instance of a deployment, for the follow-up page.
#: Beyond them the page says "busy, try in a minute".
FOLLOW_UP_DERIVATIONS = 2
#: How long a follow-up request waits for one of those before it answers "busy".
FOLLOW_UP_WAIT_SECONDS = 2.0

#: Derivations for new reports, a separate pool the follow-up page cannot take:
#: a report is never refused for it, it waits its turn.
REPORT_DERIVATIONS = 2
#: A report that has waited this long derives without a slot (and the admin's
#: log says so): its source's browser must get an answer.
REPORT_WAIT_SECONDS = 60.0

#: Replies one mailbox may hold; a return file's replies beyond it are skipped.
MAX_MAILBOX_REPLIES = 200
