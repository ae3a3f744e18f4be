"""The air-gapped side: import bundles, keep cases, list and export them.

Runs with no web server and no network. Shares `intake.crypto` and
`intake.schema` with the server, nothing else.
"""
