"""The hostile corpus: inputs an attacker can send, each with the exact outcome it must get."""
