"""The cryptographic core, shared by the web server and the reviewer's tools.

Use these modules, each one idea:

- `envelope`: encrypt a stream to age X25519 recipients, decrypt with identities.
- `header`: check an age header from an untrusted client without any key.
- `container`: the report tar (report.json, attachments, Padmé padding), built
  as a pull stream and extracted safely.
- `keyring`: the signed list of recipients, admins' M-of-N Ed25519 signatures,
  expiry and rollback protection.
- `identity`: reviewer identities and admin signing keys, passphrase-encrypted.

No module here writes a cryptographic primitive by hand: age is pyrage (rage),
signatures are pyca/cryptography. The callers never see a nonce or a file key.
"""
