"""Moving ciphertext off the server and back: the export bundle, the return file and the
reviewer proofs they share with the reviewers' tools (`bundle`, `ackfile`, `proof`, which
import nothing of the server), and the server's export and purge (`server_side`)."""
