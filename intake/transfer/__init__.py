"""Moving ciphertext off the server: export bundles, and purge after the reviewers' ack."""
