// The browser's view of age-encryption: the entry point that
// frontend/build-vendor.mjs bundles into intake/static/vendor/age-encryption-<version>.js.
//
// The bundle is a classic script (no ES module syntax, no eval), so the same
// file loads with <script src integrity> in the page and with importScripts()
// in the Web Worker. It defines one global, self.ageEncryption, and nothing
// else: only encryption to X25519 recipients is needed in the browser, so
// decryption, armor, passphrases and WebAuthn stay out of the public surface.
//
//   const e = new self.ageEncryption.Encrypter()
//   for (const r of activeRecipients) e.addRecipient(r)       // "age1..."
//   const out = await e.encrypt(readableStream)                 // streams, chunk by chunk
//   out.size(plaintextLength)                                   // exact ciphertext length
//   await e.encrypt(uint8Array)                                 // or all at once, Uint8Array out
//   self.ageEncryption.sha256.create().update(bytes).digest()  // incremental SHA-256
//
// sha256 is @noble/hashes' (already a dependency of age-encryption): the worker
// hashes each attachment for report.json while streaming it, since WebCrypto's
// digest needs the whole file in memory.

import { sha256 } from "@noble/hashes/sha2.js";
import { Encrypter } from "age-encryption";

// Replaced at build time with the version read from node_modules/age-encryption/package.json.
/* global __AGE_ENCRYPTION_VERSION__ */
const version = __AGE_ENCRYPTION_VERSION__;

self.ageEncryption = Object.freeze({ Encrypter, sha256, version });
