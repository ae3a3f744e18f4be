/*
 * The encryption worker of the intake.
 *
 * Builds the report container (report.json, attachments/NN-<safe name>, the
 * end-of-archive marker, Padme padding: the same layout as the server path),
 * age-encrypts it to the keyring's active recipients as a stream, and uploads
 * the ciphertext in chunks through /api/v1/uploads, resuming after failures.
 * Plaintext leaves this worker only as ciphertext. Files are read as streams,
 * so a large file never sits whole in memory.
 */
"use strict";

const BLOCK = 512;
const AGE_CHUNK = 65536;
const MAX_ATTEMPTS = 8;
const encoder = new TextEncoder();
let age = null;

const BIDI_AND_ZERO_WIDTH = /[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C\u200B\u200C\u200D\u2060\uFEFF\u00AD\u180E]/g;

function stripInvisible(text) {
  return text.replace(BIDI_AND_ZERO_WIDTH, "");
}

function cleanOriginalName(name) {
  let clean = stripInvisible(name.normalize("NFC"));
  clean = clean.split(/[/\\]/).pop();
  clean = clean.replace(/\p{C}/gu, "").trim();
  if (clean.length > 255) {
    const dot = clean.lastIndexOf(".");
    const ext = dot > 0 && clean.length - dot <= 17 ? clean.slice(dot) : "";
    clean = clean.slice(0, 255 - ext.length) + ext;
  }
  return clean;
}

function stripEdges(text) {
  return text.replace(/^[._-]+|[._-]+$/g, "");
}

function safeName(name, index) {
  const base = cleanOriginalName(name).normalize("NFKC").replace(/[^A-Za-z0-9._-]+/g, "_");
  const match = base.match(/\.[A-Za-z0-9]{1,10}$/);
  const ext = match ? match[0].toLowerCase() : "";
  let stem = ext ? base.slice(0, base.length - ext.length) : base;
  stem = stripEdges(stripEdges(stem).slice(0, 80 - ext.length)) || "file";
  return String(index).padStart(2, "0") + "-" + stem + ext;
}

function padme(length) {
  if (length < 2) return length;
  let exponent = 0;
  while (2 ** (exponent + 1) <= length) exponent++;
  let sizeBits = 0;
  while (2 ** sizeBits <= exponent) sizeBits++;
  const step = 2 ** (exponent - sizeBits);
  return Math.ceil(length / step) * step;
}

function ceilBlock(n) {
  return Math.ceil(n / BLOCK) * BLOCK;
}

function octal(value, width) {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function tarHeader(name, size) {
  const header = new Uint8Array(BLOCK);
  const put = (text, offset) => header.set(encoder.encode(text), offset);
  put(name, 0);
  put(octal(0o644, 8), 100);
  put(octal(0, 8), 108);
  put(octal(0, 8), 116);
  put(octal(size, 12), 124);
  put(octal(0, 12), 136);
  put("        ", 148);
  put("0", 156);
  put("ustar\0", 257);
  put("00", 263);
  put(octal(0, 8), 329);
  put(octal(0, 8), 337);
  let sum = 0;
  for (const byte of header) sum += byte;
  put(octal(sum, 7) + " ", 148);
  return header;
}

async function hashFile(file, onBytes) {
  const hash = age.sha256.create();
  const reader = file.stream().getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    hash.update(value);
    onBytes(value.length);
  }
  return Array.from(hash.digest(), (b) => b.toString(16).padStart(2, "0")).join("");
}

function containerStream(parts, length, onBytes) {
  // parts: Uint8Array or File; zero padding to `length` at the end.
  let index = 0;
  let reader = null;
  let produced = 0;
  return new ReadableStream({
    async pull(controller) {
      for (;;) {
        if (reader) {
          const { done, value } = await reader.read();
          if (!done) {
            produced += value.length;
            onBytes(produced);
            controller.enqueue(value);
            return;
          }
          reader = null;
          continue;
        }
        if (index < parts.length) {
          const part = parts[index++];
          if (part instanceof Uint8Array) {
            if (part.length === 0) continue;
            produced += part.length;
            onBytes(produced);
            controller.enqueue(part);
            return;
          }
          reader = part.stream().getReader();
          continue;
        }
        if (produced < length) {
          const size = Math.min(AGE_CHUNK, length - produced);
          produced += size;
          onBytes(produced);
          controller.enqueue(new Uint8Array(size));
          return;
        }
        controller.close();
        return;
      }
    },
  }, { highWaterMark: 1 });
}

function progress(phase, done, total) {
  self.postMessage({ type: "progress", phase, done, total });
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || "HTTP " + status);
    this.status = status;
    this.body = body || {};
  }
}

async function api(job, method, path, body, contentType) {
  const headers = { "X-CSRFToken": job.csrf };
  if (contentType) headers["Content-Type"] = contentType;
  const response = await fetch(job.api + path, {
    method, headers, body, credentials: "same-origin", cache: "no-store",
  });
  let parsed = null;
  try { parsed = await response.json(); } catch (e) { parsed = null; }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function sendChunk(job, uploadId, offset, bytes) {
  for (let attempt = 1; ; attempt++) {
    try {
      // A Blob body: Chromium sends an ArrayBuffer body several times slower (measured).
      await api(job, "PUT", `/uploads/${uploadId}?offset=${offset}`, new Blob([bytes]), "application/octet-stream");
      return;
    } catch (error) {
      if (error instanceof ApiError && error.status < 500 && error.status !== 409) throw error;
      if (attempt >= MAX_ATTEMPTS) throw error;
      self.postMessage({ type: "retrying", attempt });
      await sleep(Math.min(30000, 500 * 2 ** (attempt - 1)));
      let status = null;
      try {
        status = await api(job, "GET", `/uploads/${uploadId}`);
      } catch (statusError) {
        if (statusError instanceof ApiError && statusError.status === 404) throw statusError;
      }
      if (status) {
        if (status.offset >= offset + bytes.length) return; // it did arrive
        if (status.offset < offset) throw new Error("the server lost part of the upload");
        if (status.offset > offset) {
          bytes = bytes.subarray(status.offset - offset);
          offset = status.offset;
        }
      }
    }
  }
}

// Finishing is idempotent on the server (a finished upload answers "stored"),
// so a lost answer is asked again rather than the report being sent twice.
async function finishUpload(job, uploadId, size) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await api(job, "POST", `/uploads/${uploadId}/finish`, JSON.stringify({ size }), "application/json");
    } catch (error) {
      const retryable = !(error instanceof ApiError) || error.status >= 500 ||
        (error.status === 409 && error.body.error === "in_progress");
      if (!retryable || attempt >= MAX_ATTEMPTS) throw error;
      self.postMessage({ type: "retrying", attempt });
      await sleep(Math.min(30000, 500 * 2 ** (attempt - 1)));
    }
  }
}

function newEncrypter(recipients) {
  const encrypter = new age.Encrypter();
  for (const recipient of recipients) encrypter.addRecipient(recipient);
  return encrypter;
}

async function run(job) {
  const files = job.files;
  const total = files.reduce((n, f) => n + f.size, 0);
  let hashed = 0;
  const entries = [];
  for (let i = 0; i < files.length; i++) {
    const sha = await hashFile(files[i], (n) => { hashed += n; progress("prepare", hashed, total); });
    entries.push({
      path: "attachments/" + safeName(files[i].name, i + 1),
      name: cleanOriginalName(files[i].name),
      type: /^[A-Za-z0-9!#$&^_.+-]{1,64}\/[A-Za-z0-9!#$&^_.+-]{1,64}$/.test(files[i].type)
        ? files[i].type : "application/octet-stream",
      size: files[i].size,
      sha256: sha,
    });
  }
  const report = encoder.encode(JSON.stringify({
    schema: "intake-report/v1", lang: job.lang, fields: job.fields, attachments: entries,
  }));
  const parts = [tarHeader("report.json", report.length), report, new Uint8Array(ceilBlock(report.length) - report.length)];
  let unpadded = BLOCK + ceilBlock(report.length) + 2 * BLOCK;
  files.forEach((file, i) => {
    parts.push(tarHeader(entries[i].path, file.size), file, new Uint8Array(ceilBlock(file.size) - file.size));
    unpadded += BLOCK + ceilBlock(file.size);
  });
  const length = padme(unpadded);

  for (;;) {
    const recipients = job.keyring.recipients.map((r) => r.recipient);
    const empty = await newEncrypter(recipients).encrypt(new Uint8Array(0));
    const headerLength = empty.length - 32;
    const size = headerLength + 16 + length + 16 * Math.max(1, Math.ceil(length / AGE_CHUNK));
    let created;
    try {
      created = await api(job, "POST", "/uploads", JSON.stringify({ size, keyring_version: job.keyring.version }), "application/json");
    } catch (error) {
      if (error instanceof ApiError && error.body.error === "keyring_changed") {
        job.keyring = error.body.keyring;
        self.postMessage({ type: "keyring", keyring: job.keyring });
        continue;
      }
      throw error;
    }
    const stream = containerStream(parts.slice(), length, (n) => progress("encrypt", n, length));
    const ciphertext = await newEncrypter(recipients).encrypt(stream);
    const reader = ciphertext.getReader();
    const chunkSize = created.chunk_size;
    let buffer = new Uint8Array(chunkSize);
    let filled = 0;
    let offset = 0;
    let inFlight = Promise.resolve();
    // One chunk uploads while the next one is encrypted: the two overlap, and
    // at most two chunks of ciphertext are ever held in memory.
    const flush = async () => {
      if (!filled) return;
      const bytes = buffer.subarray(0, filled);
      const at = offset;
      offset += filled;
      buffer = new Uint8Array(chunkSize);
      filled = 0;
      await inFlight;
      inFlight = sendChunk(job, created.id, at, bytes).then(() => progress("upload", at + bytes.length, size));
    };
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      let view = value;
      while (view.length) {
        const take = Math.min(view.length, chunkSize - filled);
        buffer.set(view.subarray(0, take), filled);
        filled += take;
        view = view.subarray(take);
        if (filled === chunkSize) await flush();
      }
    }
    await flush();
    await inFlight;
    if (offset !== size) throw new Error("the ciphertext size was not the one announced");
    try {
      await finishUpload(job, created.id, size);
    } catch (error) {
      if (error instanceof ApiError && error.body.error === "keyring_changed") {
        job.keyring = error.body.keyring;
        self.postMessage({ type: "keyring", keyring: job.keyring });
        continue;
      }
      throw error;
    }
    self.postMessage({ type: "done" });
    return;
  }
}

self.onmessage = (event) => {
  const job = event.data;
  try {
    if (!age) {
      importScripts(job.vendor);
      age = self.ageEncryption;
    }
  } catch (error) {
    self.postMessage({ type: "error", message: "the encryption library could not be loaded" });
    return;
  }
  run(job).catch((error) => {
    self.postMessage({ type: "error", status: error.status || 0, code: (error.body && error.body.error) || "", message: String(error.message || error) });
  });
};
