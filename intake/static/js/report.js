/*
 * Progressive enhancement of the report form: encrypt in the browser.
 *
 * When the browser can (a secure context, Web Workers, WebCrypto, streams),
 * submitting the form hands the fields and the chosen files to a Web Worker
 * that builds the report container, age-encrypts it to the keyring embedded
 * in this page and uploads only ciphertext. The form stays as it is until the
 * server confirms. When the browser cannot, the page says so before anything
 * is typed, and the form is sent the standard way (encrypted by the server on
 * arrival). Plaintext is never sent to the upload API.
 *
 * Once the source has pressed send, a failure of the encrypted path (the
 * intake busy, a worker error, an API error, the network failing again and
 * again) never sends the form another way by itself: someone who can make the
 * API fail must not be able to push reports onto the path where the server
 * sees them. The page says what happened and lets the source choose: try the
 * encrypted path again, or send through the server now, knowing that the
 * server then sees the report in memory. Nothing typed is lost either way.
 *
 * The receipt: for a new report the page draws it here, once, with
 * crypto.getRandomValues (rejection sampling: a byte counts only below 250,
 * so every digit is equally likely), and the worker sends it when it creates
 * the upload. A lost answer to "finish" therefore never loses it. Once the
 * report is filed the page posts it (never in a URL) to the thank-you page,
 * which shows it. The same script sends a follow-up from a mailbox page
 * (config.mode "follow-up"): there the page's mailbox ticket goes with the
 * upload instead, and no receipt is drawn.
 */
(function () {
  "use strict";
  var configNode = document.getElementById("intake-config");
  if (!configNode) return;
  var config = JSON.parse(configNode.textContent);
  var followUp = config.mode === "follow-up";
  var form = document.getElementById(followUp ? "follow-up-form" : "report-form");
  if (!form) return;
  var messages = config.messages;
  var fallback = document.getElementById("js-fallback");
  var progressBox = document.getElementById("js-progress");
  var status = document.getElementById("progress-status");
  var encryptBar = document.getElementById("encrypt-progress");
  var uploadBar = document.getElementById("upload-progress");
  var timeLeft = document.getElementById("progress-time");
  var button = form.querySelector("button[type=submit]");
  var choice = document.getElementById("js-choice");
  var sendingPlain = false;
  // Drawn once per page, on the first "send": a retry keeps the same receipt.
  var receipt = null;

  var RECEIPT_DIGITS = 20;

  function drawReceipt() {
    var digits = "";
    var bytes = new Uint8Array(32);
    while (digits.length < RECEIPT_DIGITS) {
      window.crypto.getRandomValues(bytes);
      for (var i = 0; i < bytes.length && digits.length < RECEIPT_DIGITS; i++) {
        if (bytes[i] < 250) digits += String(bytes[i] % 10); // 250 = 25 x 10: no digit favoured
      }
    }
    return digits;
  }

  // The thank-you page, with the receipt posted to it: never in a URL or a cookie.
  function showThanks() {
    if (followUp) {
      window.location.assign(config.thanks);
      return;
    }
    var post = document.createElement("form");
    post.method = "post";
    post.action = config.thanks;
    post.hidden = true;
    [["csrf_token", config.csrf], ["receipt", receipt]].forEach(function (pair) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = pair[0];
      input.value = pair[1];
      post.appendChild(input);
    });
    document.body.appendChild(post);
    post.submit();
  }

  function capable() {
    try {
      return window.isSecureContext && typeof Worker === "function" && window.crypto &&
        window.crypto.subtle && typeof ReadableStream === "function" &&
        typeof Blob.prototype.stream === "function" && typeof fetch === "function" &&
        typeof TextEncoder === "function";
    } catch (e) {
      return false;
    }
  }

  // The keyring changed while the report was on its way: the worker encrypts to
  // the new one, so the page shows who can read it now, and a fallback to the
  // server path states the new version.
  function showKeyring(keyring) {
    config.keyring = keyring;
    var version = form.querySelector("input[name=keyring_version]");
    if (version) version.value = String(keyring.version);
    var list = document.querySelector("details.readers ul");
    if (!list) return;
    while (list.firstChild) list.removeChild(list.firstChild);
    keyring.recipients.forEach(function (r) {
      var item = document.createElement("li");
      var print = document.createElement("bdi");
      print.setAttribute("dir", "ltr");
      print.className = "fingerprint";
      print.textContent = r.fingerprint;
      item.appendChild(document.createTextNode(r.label + ": "));
      item.appendChild(print);
      list.appendChild(item);
    });
  }

  function useServerPath(reason) {
    fallback.hidden = false;
    fallback.querySelector(".reason").textContent = reason;
    progressBox.hidden = true;
    sendingPlain = true;
  }

  if (!capable()) {
    useServerPath(messages.unsupported);
    return;
  }

  var DIGITS = { "٠": "0", "١": "1", "٢": "2", "٣": "3", "٤": "4", "٥": "5", "٦": "6", "٧": "7", "٨": "8", "٩": "9",
    "۰": "0", "۱": "1", "۲": "2", "۳": "3", "۴": "4", "۵": "5", "۶": "6", "۷": "7", "۸": "8", "۹": "9" };

  function partialDate(text) {
    var t = text.replace(/[٠-٩۰-۹]/g, function (d) { return DIGITS[d]; }).replace(/[\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]/g, "").trim();
    var m = t.match(/^(\d{4})(?:([-/])(\d{1,2})(?:\2(\d{1,2}))?)?$/);
    if (!m) return null;
    var year = +m[1], month = m[3] ? +m[3] : null, day = m[4] ? +m[4] : null;
    if (year < 1990 || year > 2100) return null;
    if (month === null) return String(year);
    if (month < 1 || month > 12) return null;
    var mm = String(month).padStart(2, "0");
    if (day === null) return year + "-" + mm;
    if (day < 1 || day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return null;
    return year + "-" + mm + "-" + String(day).padStart(2, "0");
  }

  function collect() {
    var data = new FormData(form);
    var fields = {};
    var missing = [];
    config.fields.forEach(function (f) {
      var value;
      if (f.kind === "files") return;
      var source = f.source || f.name; // the follow-up's message is report.json's narrative
      if (f.multi) value = data.getAll(source);
      else if (f.kind === "checkbox") value = data.get(source) !== null;
      else value = (data.get(source) || "").toString();
      if (f.kind === "partial_date" && value) {
        var normal = partialDate(value);
        if (normal === null) missing.push(f);
        else value = normal;
      }
      if (f.required && (f.multi ? value.length === 0 : value === "" || value === false)) missing.push(f);
      fields[f.name] = value;
    });
    // The schema's conditional rules (intake.schema.conditional_errors), checked here
    // because the server cannot read what the browser encrypts.
    var byName = {};
    config.fields.forEach(function (f) { byName[f.name] = f; });
    if (fields.reporter_role === "for_someone" && !fields.subject_agreed) missing.push(byName.subject_agreed);
    if (fields.contact_method && fields.contact_method !== "none" && !fields.contact_handle.trim()) {
      missing.push(byName.contact_handle);
    }
    return { fields: fields, missing: missing };
  }

  function showProblems(missing) {
    var box = document.getElementById("js-errors");
    var list = box.querySelector("ul");
    list.textContent = "";
    missing.forEach(function (f) {
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = "#" + (f.source || f.name);
      link.textContent = f.label;
      item.appendChild(link);
      list.appendChild(item);
    });
    box.hidden = false;
    box.focus();
  }

  function setBar(bar, done, total) {
    bar.max = total || 1;
    bar.value = done;
  }

  // The encrypted path failed after the source pressed send: say why, keep the
  // form as it is, and wait for the source to choose.
  function offerChoice(reason, serverPathHelps) {
    button.disabled = false;
    progressBox.hidden = true;
    choice.querySelector(".reason").textContent = reason;
    document.getElementById("js-server-option").hidden = !serverPathHelps;
    choice.hidden = false;
    choice.focus();
  }

  function failed(m) {
    if (m.status === 413) {
      status.textContent = messages.too_large; // too large for either path
      button.disabled = false;
    } else if (m.status === 503 && m.code === "busy") {
      offerChoice(messages.busy, true);
    } else if (m.status === 503 && m.code === "closed") {
      offerChoice(messages.closed, false);
    } else {
      offerChoice(messages.not_sent, true);
    }
  }

  // An honest estimate of the time left: the slower of the two stages (encrypting,
  // sending), each at the rate it has kept over the last minute, and nothing at all
  // until the server has acknowledged a first chunk (before that, no rate of the
  // connection is known). Shown in whole minutes (or hours), so that it changes
  // rarely and a screen reader is not kept busy; the words come from the server,
  // every count in the page's language.
  var ESTIMATE_WINDOW_MS = 60000;

  function Estimator() {
    this.started = Date.now();
    this.stages = { encrypt: [], upload: [] };
    this.totals = { encrypt: 0, upload: 0 };
    this.shown = "";
  }

  Estimator.prototype.record = function (stage, done, total) {
    var now = Date.now();
    var samples = this.stages[stage];
    if (!samples.length) samples.push({ t: this.started, done: 0 });
    samples.push({ t: now, done: done });
    while (samples.length > 2 && now - samples[1].t > ESTIMATE_WINDOW_MS) samples.shift();
    this.totals[stage] = total;
  };

  Estimator.prototype.secondsLeft = function () {
    var self = this;
    var worst = null;
    var acknowledged = this.stages.upload.length > 1;
    ["encrypt", "upload"].forEach(function (stage) {
      var samples = self.stages[stage];
      if (samples.length < 2) return;
      var first = samples[0], last = samples[samples.length - 1];
      var rate = (last.done - first.done) / Math.max(1, last.t - first.t) * 1000;
      if (rate <= 0) return;
      // Time since the last progress counts against what is left: between two
      // chunks on a slow circuit the figure keeps going down, not standing still.
      var left = (self.totals[stage] - last.done) / rate - (Date.now() - last.t) / 1000;
      worst = worst === null ? left : Math.max(worst, left);
    });
    return acknowledged ? worst : null;
  };

  Estimator.prototype.words = function () {
    var words = messages.time_left;
    var seconds = this.secondsLeft();
    if (seconds === null) return words.estimating;
    if (seconds < 60) return words.under_a_minute;
    var minutes = Math.round(seconds / 60);
    if (minutes < 60) return words.minutes[minutes];
    var hours = Math.round(minutes / 60);
    return hours < words.hours.length ? words.hours[hours] : words.over;
  };

  Estimator.prototype.show = function () {
    var text = this.words();
    if (text !== this.shown) {
      this.shown = text;
      timeLeft.textContent = text;
    }
  };

  document.getElementById("js-retry").addEventListener("click", sendEncrypted);
  document.getElementById("js-send-server").addEventListener("click", function () {
    choice.hidden = true;
    useServerPath(messages.chosen_server);
    document.body.setAttribute("data-js-path", "server");
    form.requestSubmit();
  });

  form.addEventListener("submit", function (event) {
    if (sendingPlain) return; // the standard way: let the browser post the form
    event.preventDefault();
    sendEncrypted();
  });

  function sendEncrypted() {
    choice.hidden = true;
    var collected = collect();
    if (collected.missing.length) {
      showProblems(collected.missing);
      return;
    }
    document.getElementById("js-errors").hidden = true;
    var files = Array.prototype.slice.call(document.getElementById("attachments").files || []);
    if (files.length > config.max_attachments) {
      showProblems([{ name: "attachments", label: messages.too_many_files }]);
      return;
    }
    if (followUp && !collected.fields.narrative.trim() && files.length === 0) {
      showProblems([{ name: "message", label: messages.empty }]);
      return;
    }
    if (!followUp && receipt === null) receipt = drawReceipt();
    var worker;
    try {
      worker = new Worker(config.worker);
    } catch (e) {
      failed({ status: 0 });
      return;
    }
    button.disabled = true;
    setBar(encryptBar, 0, 1);
    setBar(uploadBar, 0, 1);
    progressBox.hidden = false;
    document.body.setAttribute("data-js-path", "encrypted");
    status.textContent = messages.preparing;
    var estimate = new Estimator();
    estimate.show();
    var ticking = window.setInterval(function () { estimate.show(); }, 5000);
    var stopTicking = function () { window.clearInterval(ticking); };
    worker.onmessage = function (message) {
      var m = message.data;
      if (m.type === "progress") {
        if (m.phase === "prepare") status.textContent = messages.preparing;
        if (m.phase === "encrypt") { setBar(encryptBar, m.done, m.total); status.textContent = messages.encrypting; }
        if (m.phase === "upload") { setBar(uploadBar, m.done, m.total); status.textContent = messages.uploading; }
        if (m.phase === "encrypt" || m.phase === "upload") {
          estimate.record(m.phase, m.done, m.total);
          estimate.show();
        }
      } else if (m.type === "retrying") {
        status.textContent = messages.retrying;
      } else if (m.type === "keyring") {
        status.textContent = messages.keyring_changed;
        showKeyring(m.keyring);
        estimate = new Estimator(); // encrypting again from the start
        estimate.show();
      } else if (m.type === "done") {
        stopTicking();
        status.textContent = messages.done;
        timeLeft.textContent = "";
        worker.terminate();
        showThanks();
      } else if (m.type === "error") {
        stopTicking();
        timeLeft.textContent = "";
        worker.terminate();
        failed(m);
      }
    };
    worker.onerror = function () {
      stopTicking();
      timeLeft.textContent = "";
      worker.terminate();
      failed({ status: 0 });
    };
    worker.postMessage({
      vendor: config.vendor, api: config.api, csrf: config.csrf, lang: config.lang,
      keyring: config.keyring, fields: collected.fields, files: files,
      receipt: followUp ? null : receipt, mailbox: followUp ? config.mailbox : null,
    });
  }
})();
