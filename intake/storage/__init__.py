"""Storage: ciphertext blobs on disk, minimal metadata in a database.

What it promises, assuming the server will be seized:

- Only ciphertext reaches the disk: a `blobs.BlobStore` stores each
  submission's age file, whole or not at all, under its random id and nothing
  else: as a file (`blobs.FilesystemBlobStore`: written atomically and
  durably, mode 0600 in a 0700 directory, dated to midnight UTC of its day),
  or as chunk rows in PostgreSQL (`pgblobs.PostgresBlobStore`), whose purged
  bytes `reclaim` removes from the tables' files.
- Only the allowed metadata reaches the database (`models`): per submission a
  random 128-bit id, the day it arrived (never a time), the padded size, the
  keyring version and a state; and the highest keyring version ever accepted.
  No address, user agent, language or timestamp has a column.
- A submission exists whole or not at all: `submissions.record_submission`
  commits the row after the blob, and deletes the blob if it cannot;
  leftovers of a crash are found (`find_orphans`) and never served.
- The keyring version floor never goes down (`raise_keyring_version`).

`db` builds engines for SQLite (default) or PostgreSQL and runs the Alembic
migrations (`intake db upgrade`); `uploads` keeps resumable uploads until
they are filed or expire; `move_blobs` moves a filesystem deployment into
PostgreSQL (`intake db move-blobs`).
"""
