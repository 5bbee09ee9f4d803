// sentinel's status page: live refresh of the server-rendered sections, and silences.
// No framework, no build: the server renders (and escapes) everything; this only swaps HTML
// the server made and sends the API's own JSON bodies.
"use strict";
(function () {
  var body = document.body;
  var prefix = body.getAttribute("data-prefix") || "";
  var main = document.getElementById("main");
  var live = document.getElementById("live");
  var updated = document.getElementById("updated");
  var form = document.getElementById("silence-form");
  var result = document.getElementById("s-result");
  var REFRESH_MS = 5000;

  function token() {
    var field = document.getElementById("s-token");
    if (field && field.value) sessionStorage.setItem("sentinel-token", field.value);
    return sessionStorage.getItem("sentinel-token") || "";
  }

  function api(method, path, data) {
    var headers = { "Accept": "application/json" };
    if (data !== undefined) headers["Content-Type"] = "application/json";
    var t = token();
    if (t) headers["Authorization"] = "Bearer " + t;
    return fetch(prefix + path, {
      method: method, headers: headers, credentials: "same-origin",
      body: data === undefined ? undefined : JSON.stringify(data)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) throw new Error(j.error || (r.status + " " + r.statusText));
        return j;
      });
    });
  }

  function editing() {
    var a = document.activeElement;
    return a && main.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName);
  }

  function refresh() {
    if (!live.checked || document.hidden || editing()) return Promise.resolve();
    var q = new URLSearchParams(location.search);
    q.set("fragment", "1");
    return fetch(prefix + "/?" + q.toString(), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        main.innerHTML = html;  // the server's own escaped HTML
        updated.textContent = "updated " + new Date().toLocaleTimeString();
        updated.className = "";
      })
      .catch(function (e) { updated.textContent = "refresh failed: " + e.message; updated.className = "bad"; });
  }

  // "name=value", "name!=value", "name=~regex", "name!~regex" (amtool's spelling, as the CLI).
  var MATCHER = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$/;
  function matchers(text) {
    return text.split("\n").filter(function (l) { return l.trim(); }).map(function (line) {
      var m = MATCHER.exec(line);
      if (!m) throw new Error("bad matcher: " + line);
      return { name: m[1], value: m[3], isRegex: m[2].indexOf("~") >= 0, isEqual: m[2][0] !== "!" };
    });
  }

  var UNITS = { s: 1, m: 60, h: 3600, d: 86400 };
  function seconds(text) {
    var m = /^(\d+)([smhd])$/.exec(text.trim());
    if (!m) throw new Error("duration: a number and s, m, h or d (2h)");
    return Number(m[1]) * UNITS[m[2]];
  }

  function say(text, bad) { result.textContent = text; result.className = bad ? "bad" : "ok"; }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var now = Date.now();
    var data;
    try {
      data = {
        matchers: matchers(form.matchers.value),
        startsAt: new Date(now).toISOString(),
        endsAt: new Date(now + seconds(form.duration.value) * 1000).toISOString(),
        createdBy: form.createdBy.value || "status page",
        comment: form.comment.value
      };
    } catch (err) { say(err.message, true); return; }
    api("POST", "/api/v1/silences", data)
      .then(function (j) { say("silence " + j.silenceID + " created"); form.comment.value = ""; return refresh(); })
      .catch(function (err) { say("not created: " + err.message, true); });
  });

  main.addEventListener("click", function (e) {
    var b = e.target.closest("button");
    if (!b) return;
    if (b.classList.contains("silence-this")) {
      form.matchers.value = JSON.parse(b.getAttribute("data-matchers")).join("\n");
      document.getElementById("new-silence").scrollIntoView();
      form.comment.focus();
    } else if (b.classList.contains("expire")) {
      b.disabled = true;
      api("DELETE", "/api/v1/silences/" + encodeURIComponent(b.getAttribute("data-id")))
        .then(refresh)
        .catch(function (err) { b.disabled = false; alert("not expired: " + err.message); });
    }
  });

  setInterval(refresh, REFRESH_MS);
  document.addEventListener("visibilitychange", refresh);
})();
