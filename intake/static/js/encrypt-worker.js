/*
 * The encryption worker of the intake.
 *
 * Builds the report container, version 2 (attachments/NN-<safe name>, then
 * report.json last, the end-of-archive marker, Padme padding: the same layout
 * as the server path), age-encrypts it to the keyring's active recipients as
 * a stream, and uploads the ciphertext in chunks through /api/v1/uploads,
 * resuming after failures. Plaintext leaves this worker only as ciphertext,
 * or as a copy of a file's chunks to the hashing worker (hash-worker.js, a
 * worker of this worker, which never talks to the network).
 *
 * One pass: each file is hashed while it streams into the encrypter, on a
 * second core when the browser allows a nested worker, and report.json, which
 * carries the digests, comes last. Its length is known before any digest (a
 * SHA-256 hex digest is always 64 characters), so the exact ciphertext size
 * is announced to the API before the first byte is encrypted. Files are read
 * as streams: no file ever sits whole in memory, and the chunks waiting for
 * the hashing worker are bounded by HASH_BACKLOG.
 *
 * The create names the source's mailbox: the receipt the page drew (a new
 * report) or the mailbox page's ticket (a follow-up). The receipt goes to the
 * server in that request body only; the worker keeps nothing once it is done.
 */
"use strict";

const BLOCK = 512;
const AGE_CHUNK = 65536;
const MAX_ATTEMPTS = 8;
const SHA256_HEX_LENGTH = 64;
// What report.json carries until a file's digest is known: the same length.
const PENDING_DIGEST = "0".repeat(SHA256_HEX_LENGTH);
// Bytes copied to the hashing worker and not yet hashed; past this, wait for it.
const HASH_BACKLOG = 8 * 1024 * 1024;
// Encryption progress goes to the page at most once per this many bytes.
const PROGRESS_STEP = 1024 * 1024;
const MIME = /^[A-Za-z0-9!#$&^_.+-]{1,64}\/[A-Za-z0-9!#$&^_.+-]{1,64}$/;
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

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// SHA-256 on this worker's own thread: the fallback when a nested worker is not available.
class InlineHasher {
  constructor() {
    this.hash = age.sha256.create();
  }

  begin() {}

  async update(chunk) {
    this.hash.update(chunk);
  }

  async digest() {
    const digest = hex(this.hash.digest());
    this.hash = age.sha256.create();
    return digest;
  }

  close() {}
}

// SHA-256 on a second core: each chunk is copied to hash-worker.js, which
// answers every chunk it has hashed; at most HASH_BACKLOG bytes wait there.
class WorkerHasher {
  static async start(vendor) {
    const hasher = new WorkerHasher(new Worker("hash-worker.js"));
    await hasher.call({ type: "load", vendor }, "ready");
    return hasher;
  }

  constructor(worker) {
    this.worker = worker;
    this.backlog = 0;
    this.waiting = [];
    this.failure = null;
    worker.onmessage = (event) => {
      const m = event.data;
      if (m.type === "hashed") {
        this.backlog -= m.bytes;
        this.wake();
      } else if (m.type === "error") {
        this.fail(new Error(m.message));
      } else {
        this.wake(m);
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      this.fail(new Error("the hashing worker failed"));
    };
  }

  wake(message) {
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) {
      if (!w.type || (message && message.type === w.type)) w.resolve(message);
      else this.waiting.push(w);
    }
  }

  fail(error) {
    this.failure = error;
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w.reject(error);
  }

  wait(type) {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiting.push({ type, resolve, reject }));
  }

  call(message, answer) {
    const reply = this.wait(answer);
    this.worker.postMessage(message);
    return reply;
  }

  begin(size) {
    this.worker.postMessage({ type: "begin", size });
  }

  async update(chunk) {
    if (this.failure) throw this.failure;
    const copy = chunk.slice(); // the encrypter keeps the original
    this.backlog += copy.length;
    this.worker.postMessage({ type: "update", chunk: copy }, [copy.buffer]);
    while (this.backlog > HASH_BACKLOG) await this.wait(null);
  }

  async digest() {
    return (await this.call({ type: "digest" }, "digest")).hex;
  }

  close() {
    this.worker.terminate();
  }
}

async function startHasher(vendor) {
  if (typeof Worker === "function") {
    try {
      return await WorkerHasher.start(vendor);
    } catch (error) {
      // No nested worker here (or it failed to load): hash on this thread instead.
    }
  }
  return new InlineHasher();
}

// report.json's bytes. With PENDING_DIGEST in every entry it has the same length as
// with the real digests, so the container's length is known before hashing starts.
function reportBytes(job, entries) {
  return encoder.encode(JSON.stringify({
    schema: "intake-report/v2", lang: job.lang, fields: job.fields, attachments: entries,
  }));
}

// The container as a stream: each file (hashed on the way through), then report.json
// with the digests, then zeros up to `length`. `onBytes` gets the bytes produced so far.
function containerStream(job, entries, reportLength, length, hasher, onBytes) {
  const files = job.files;
  let produced = 0;
  async function* parts() {
    for (let i = 0; i < files.length; i++) {
      yield tarHeader(entries[i].path, files[i].size);
      const reader = files[i].stream().getReader();
      hasher.begin(files[i].size);
      let read = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        read += value.length;
        if (read > files[i].size) throw new Error("a file grew while it was being encrypted");
        await hasher.update(value);
        yield value;
      }
      if (read !== files[i].size) throw new Error("a file shrank while it was being encrypted");
      yield new Uint8Array(ceilBlock(read) - read);
      entries[i].sha256 = await hasher.digest();
    }
    const report = reportBytes(job, entries);
    if (report.length !== reportLength) throw new Error("report.json did not keep its length");
    yield tarHeader("report.json", report.length);
    yield report;
    yield new Uint8Array(ceilBlock(report.length) - report.length);
    while (produced < length) yield new Uint8Array(Math.min(AGE_CHUNK, length - produced));
  }
  const source = parts();
  return new ReadableStream({
    async pull(controller) {
      for (;;) {
        const { done, value } = await source.next();
        if (done) {
          controller.close();
          return;
        }
        if (value.length === 0) continue;
        produced += value.length;
        onBytes(produced);
        controller.enqueue(value);
        return;
      }
    },
    async cancel() {
      await source.return();
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
// The body names the ciphertext size, which the server checks against what arrived.
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

// A uniform random integer in [low, high], from the browser's CSPRNG (rejection sampling,
// so that no value is likelier than another).
function randomInt(low, high) {
  const span = high - low + 1;
  const limit = Math.floor(0x100000000 / span) * span;
  const word = new Uint32Array(1);
  do crypto.getRandomValues(word); while (word[0] >= limit);
  return low + (word[0] % span);
}

function randomPrintable(length) {
  let text = "";
  for (let i = 0; i < length; i++) text += String.fromCharCode(randomInt(33, 126));
  return text;
}

// The "grease" stanza rage adds to every age file (age-core's grease_the_joint): a type of
// 1 to 8 printable characters and "-grease", 0 to 4 arguments of 1 to 8, a body of 0 to 99
// random bytes, after the recipients. The server's own path writes its files with rage, so
// the page adds one drawn the same way: otherwise a blob's length would tell which path a
// report took. Every age implementation ignores it. One grease per attempt, so that the
// header measured for the announced size is the header sent.
function greaseRecipient() {
  const args = [randomPrintable(randomInt(1, 8)) + "-grease"];
  const count = randomInt(0, 4);
  for (let i = 0; i < count; i++) args.push(randomPrintable(randomInt(1, 8)));
  const body = crypto.getRandomValues(new Uint8Array(randomInt(0, 99)));
  return { wrapFileKey: () => [{ args, body }] };
}

function newEncrypter(recipients, grease) {
  const encrypter = new age.Encrypter();
  for (const recipient of recipients) encrypter.addRecipient(recipient);
  encrypter.addRecipient(grease);
  return encrypter;
}

async function run(job) {
  const files = job.files;
  const entries = files.map((file, i) => ({
    path: "attachments/" + safeName(file.name, i + 1),
    name: cleanOriginalName(file.name),
    type: MIME.test(file.type) ? file.type : "application/octet-stream",
    size: file.size,
    sha256: PENDING_DIGEST,
  }));
  const reportLength = reportBytes(job, entries).length;
  let unpadded = BLOCK + ceilBlock(reportLength) + 2 * BLOCK;
  for (const file of files) unpadded += BLOCK + ceilBlock(file.size);
  const length = padme(unpadded);
  const hasher = await startHasher(job.vendor);
  try {
    await encryptAndUpload(job, entries, reportLength, length, hasher);
  } finally {
    hasher.close();
  }
}

async function encryptAndUpload(job, entries, reportLength, length, hasher) {
  for (;;) {
    const recipients = job.keyring.recipients.map((r) => r.recipient);
    const grease = greaseRecipient();
    const empty = await newEncrypter(recipients, grease).encrypt(new Uint8Array(0));
    const headerLength = empty.length - 32;
    const size = headerLength + 16 + length + 16 * Math.max(1, Math.ceil(length / AGE_CHUNK));
    let created;
    try {
      const body = { size, keyring_version: job.keyring.version };
      if (job.receipt) body.receipt = job.receipt;
      if (job.mailbox) body.mailbox = job.mailbox;
      created = await api(job, "POST", "/uploads", JSON.stringify(body), "application/json");
    } catch (error) {
      if (error instanceof ApiError && error.body.error === "keyring_changed") {
        job.keyring = error.body.keyring;
        self.postMessage({ type: "keyring", keyring: job.keyring });
        continue;
      }
      throw error;
    }
    let reported = 0;
    const stream = containerStream(job, entries, reportLength, length, hasher, (n) => {
      // A message per 64 KiB chunk would cost the page more than the bar is worth.
      if (n - reported < PROGRESS_STEP && n < length) return;
      reported = n;
      progress("encrypt", n, length);
    });
    const ciphertext = await newEncrypter(recipients, grease).encrypt(stream);
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
