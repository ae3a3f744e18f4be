/*
 * The hashing worker of the intake: a worker of encrypt-worker.js.
 *
 * It receives the chunks of one file after another, copies of what the
 * encryption worker streams into the age encrypter, and computes each file's
 * SHA-256 on its own core, so that hashing and encrypting run side by side in
 * one pass. A file of at most WEBCRYPTO_CAP bytes is gathered and hashed by
 * WebCrypto's native digest (several times faster than JavaScript, but it
 * needs the whole file in memory, hence the cap); a larger one is hashed chunk
 * by chunk with the age bundle's SHA-256 and nothing is kept. It answers every
 * chunk once taken (the sender bounds what waits here) and each "digest" with
 * the file's hex digest. It never touches the network.
 *
 *   {type: "load", vendor}  -> {type: "ready"} | {type: "error", message}
 *   {type: "begin", size}   -> (nothing)
 *   {type: "update", chunk} -> {type: "hashed", bytes}
 *   {type: "digest"}        -> {type: "digest", hex} | {type: "error", message}
 */
"use strict";

// 32 MiB: a typical photo, document or short recording, held once at most.
const WEBCRYPTO_CAP = 32 * 1024 * 1024;

let file = null; // {hash} streaming, or {buffer, filled} gathered for WebCrypto
let queue = Promise.resolve(); // messages are handled one after another, in order

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function begin(size) {
  const native = self.crypto && self.crypto.subtle && size <= WEBCRYPTO_CAP;
  file = native ? { buffer: new Uint8Array(size), filled: 0 } : { hash: self.ageEncryption.sha256.create() };
}

function update(chunk) {
  if (file.hash) {
    file.hash.update(chunk);
  } else {
    if (file.filled + chunk.length > file.buffer.length) throw new Error("a file grew while it was hashed");
    file.buffer.set(chunk, file.filled);
    file.filled += chunk.length;
  }
  self.postMessage({ type: "hashed", bytes: chunk.length });
}

async function digest() {
  const done = file;
  file = null;
  const bytes = done.hash ? done.hash.digest() : new Uint8Array(
    await self.crypto.subtle.digest("SHA-256", done.buffer.subarray(0, done.filled)));
  self.postMessage({ type: "digest", hex: hex(bytes) });
}

function handle(m) {
  if (m.type === "load") {
    importScripts(m.vendor);
    self.postMessage({ type: "ready" });
    return null;
  }
  if (m.type === "begin") return begin(m.size);
  if (m.type === "update") return update(m.chunk);
  if (m.type === "digest") return digest();
  return null;
}

self.onmessage = (event) => {
  queue = queue.then(() => handle(event.data)).catch((error) => {
    self.postMessage({ type: "error", message: "hashing failed: " + String(error.message || error) });
  });
};
