"""The web layer: the report form (no-JavaScript path) and its security envelope.

It knows nothing of review. It calls "encrypt this report to this keyring"
and "store this blob", never a nonce or a key.
"""
