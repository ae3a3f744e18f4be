/*
 * Quick exit: leave this site at once for a neutral one.
 * The button (or pressing Escape three times within two seconds) hides the
 * page behind a blank overlay immediately, then replaces this page in the
 * tab's history with the neutral site, so Back does not return here.
 * Without JavaScript the button is an ordinary link. It does not erase the
 * browser's history, and it cannot protect against spyware on the device.
 */
(function () {
  "use strict";
  var link = document.getElementById("quick-exit");
  if (!link) return;

  function leave(event) {
    if (event) event.preventDefault();
    var cover = document.createElement("div");
    cover.className = "exit-cover";
    document.body.appendChild(cover);
    document.title = "";
    window.location.replace(link.href);
  }

  link.addEventListener("click", leave);
  var presses = [];
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var now = Date.now();
    presses = presses.filter(function (t) { return now - t < 2000; });
    presses.push(now);
    if (presses.length >= 3) leave(event);
  });
})();
