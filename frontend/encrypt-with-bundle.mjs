// Encrypt standard input with the vendored age bundle, as a Web Worker would,
// and write the age file to standard output. tests/test_vendor.py uses it to
// prove that the built file works and that its output decrypts with rage.
//
//   node frontend/encrypt-with-bundle.mjs BUNDLE (--stream|--bytes) age1... [age1...]
//
// The bundle runs in a fresh vm context whose global object is also `self` and
// holds only what a worker offers (no window, no document, no require), so a
// bundle that leaned on Node or on the DOM would fail here. --stream feeds the
// plaintext as a ReadableStream in uneven chunks and checks that the stream's
// size() predicted the ciphertext length; --bytes encrypts one Uint8Array.

import { readFileSync } from "node:fs";
import { webcrypto } from "node:crypto";
import vm from "node:vm";

const [bundlePath, mode, ...recipients] = process.argv.slice(2);
if (!bundlePath || !["--stream", "--bytes"].includes(mode) || recipients.length === 0) {
  process.stderr.write("usage: encrypt-with-bundle.mjs BUNDLE (--stream|--bytes) age1...\n");
  process.exit(2);
}

const context = vm.createContext({
  crypto: webcrypto,
  TextEncoder,
  TextDecoder,
  ReadableStream,
  TransformStream,
  WritableStream,
  Response,
  Blob,
  DOMException,
});
vm.runInContext("globalThis.self = globalThis", context);
const globalsBefore = new Set(Object.getOwnPropertyNames(context));
vm.runInContext(readFileSync(bundlePath, "utf8"), context, { filename: "age-encryption.js" });
const added = Object.getOwnPropertyNames(context).filter((name) => !globalsBefore.has(name));
if (added.join() !== "ageEncryption") {
  throw new Error(`the bundle should define only self.ageEncryption, it defined: ${added}`);
}

// Runs inside the context, so every Uint8Array and stream is of the bundle's realm.
const encryptInContext = vm.runInContext(
  `(async (plaintext, recipients, streaming) => {
    const e = new self.ageEncryption.Encrypter()
    for (const r of recipients) e.addRecipient(r)
    const input = Uint8Array.from(plaintext)
    if (!streaming) return [await e.encrypt(input)]
    const sizes = [1, 4095, 65536, 65537, 100000]
    let offset = 0, turn = 0
    const source = new ReadableStream({
      pull(controller) {
        if (offset >= input.length) return controller.close()
        const end = Math.min(input.length, offset + sizes[turn++ % sizes.length])
        controller.enqueue(input.slice(offset, end))
        offset = end
      },
    })
    const encrypted = await e.encrypt(source)
    const chunks = []
    for (const reader = encrypted.getReader(); ;) {
      const { done, value } = await reader.read()
      if (done) break
      chunks.push(value)
    }
    const total = chunks.reduce((n, c) => n + c.length, 0)
    if (encrypted.size(input.length) !== total) {
      throw new Error("size() predicted " + encrypted.size(input.length) + " bytes, got " + total)
    }
    return chunks
  })`,
  context,
);

const chunks = await encryptInContext(readFileSync(0), recipients, mode === "--stream");
for (const chunk of chunks) {
  process.stdout.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
}
