"""A Request whose uploads never touch the disk in plaintext.

Werkzeug spools file parts of a multipart body to temporary files.
`IntakeRequest` replaces that factory with `EncryptedSpool`, whatever the
size, and remembers every spool it made so that all are closed (and so freed)
when the request ends, on success, on error and on a client that disconnects
half-way. Text parts stay in memory, bounded by `max_form_memory_size`.

Werkzeug applies neither bound to an url-encoded body (it reads the whole
body at once, up to the request limit of hundreds of MiB); the intake's form
never sends one that large, so such a body is refused over
`max_form_memory_size` bytes or `max_form_parts` fields, and without a length.
"""

from __future__ import annotations

from typing import IO, Any

from flask import Request, current_app
from werkzeug.exceptions import LengthRequired, RequestEntityTooLarge

from intake.crypto.spool import EncryptedSpool
from intake.limits import MAX_ATTACHMENTS

#: A form has about 60 controls; the bound leaves room for every checkbox and file.
MAX_FORM_PARTS = 200
#: Bound on one text part held in memory (the longest field is far shorter).
MAX_FORM_MEMORY = 1024 * 1024


class IntakeRequest(Request):
    max_form_parts = MAX_FORM_PARTS
    max_form_memory_size = MAX_FORM_MEMORY

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.spools: list[EncryptedSpool] = []

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        if len(self.spools) >= MAX_ATTACHMENTS + 5:
            # Far more file parts than the form offers: refuse before spooling more.
            raise RequestEntityTooLarge()
        spool = EncryptedSpool(current_app.config["INTAKE_SETTINGS"].spool_dir)
        self.spools.append(spool)
        return spool  # type: ignore[return-value]

    def _load_form_data(self) -> None:
        if "form" in self.__dict__ or self.mimetype != "application/x-www-form-urlencoded":
            return super()._load_form_data()
        if self.content_length is None:
            raise LengthRequired()
        if self.content_length > self.max_form_memory_size:
            raise RequestEntityTooLarge()
        super()._load_form_data()
        if len(self.form) > self.max_form_parts:
            raise RequestEntityTooLarge()

    def close(self) -> None:
        try:
            super().close()
        finally:
            for spool in self.spools:
                spool.close()
            self.spools.clear()
