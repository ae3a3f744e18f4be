"""The hostile corpus: inputs an attacker can make or send, each with the exact outcome it
must get."""
