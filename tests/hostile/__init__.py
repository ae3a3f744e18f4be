"""The hostile corpus: inputs an attacker can make, each with the exact outcome it must get."""
