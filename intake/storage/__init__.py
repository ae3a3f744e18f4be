"""Storage: ciphertext blobs on disk, minimal metadata in a database.

`blobs.BlobStore` writes each submission's age file atomically and durably;
`models` holds, per submission, only a random id, the day it arrived, the
padded size, the keyring version and a state, plus the highest keyring
version ever accepted. No time of day, address, user agent or language is
stored anywhere. Migrations are Alembic's (`intake db upgrade`).
"""
