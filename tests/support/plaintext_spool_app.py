"""A deliberately broken intake for the canary test's control run.

Its spool writes uploads to a named temporary file in plaintext, deleted when
closed, the way Werkzeug's default does. The canary test must catch it; if it
did not, the test would prove nothing.
"""

from __future__ import annotations

import hashlib
import tempfile

from intake import create_app
from intake.web import request as intake_request


class PlaintextSpool:
    def __init__(self, directory):
        directory.mkdir(parents=True, exist_ok=True)
        self._file = tempfile.NamedTemporaryFile(dir=directory, delete=True)  # noqa: SIM115
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.size += len(data)
        self._digest.update(data)
        return self._file.write(data)

    def seal(self):
        self._file.flush()

    @property
    def sha256(self):
        return self._digest.hexdigest()

    def seek(self, offset, whence=0):
        self._file.flush()
        return self._file.seek(offset, whence)

    def read(self, *args):
        return self._file.read(*args)

    def open_plaintext(self):
        self._file.flush()
        return open(self._file.name, "rb")  # noqa: SIM115

    def close(self):
        self._file.close()


intake_request.EncryptedSpool = PlaintextSpool
app = create_app()
