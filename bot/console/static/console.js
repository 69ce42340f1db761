// The console's only script: live updates over Server-Sent Events, sending replies without
// leaving the page, canned replies. Everything also works as plain forms without it.
(function () {
  "use strict";
  var csrf = document.body.dataset.csrf || "";

  // The queue and the supervision page: one live table each.
  [["queue", "queue"], ["supervision", "supervision"]].forEach(function (pair) {
    var box = document.getElementById(pair[0]);
    if (!box || !box.dataset.events) return;
    var events = new EventSource(box.dataset.events);
    events.addEventListener(pair[1], function (event) {
      box.innerHTML = JSON.parse(event.data).html;
      box.dataset.live = "on";
    });
  });

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  var chat = document.getElementById("chat");
  if (!chat) return;
  var transcript = document.getElementById("transcript");
  var live = document.getElementById("live");
  function scrollDown() { transcript.scrollTop = transcript.scrollHeight; }
  scrollDown();

  function replaceKeepingOpen(id, html) {
    var box = document.getElementById(id);
    if (!box) return;
    var open = Array.prototype.map.call(box.querySelectorAll("details[open]"), function (d) {
      return d.className;
    });
    box.innerHTML = html;
    box.querySelectorAll("details").forEach(function (d) {
      if (open.indexOf(d.className) >= 0) d.open = true;
    });
  }

  var chatEvents = new EventSource(chat.dataset.events);
  chatEvents.addEventListener("chat", function (event) {
    var data = JSON.parse(event.data);
    if (data.state_key !== chat.dataset.stateKey ||
        String(data.window_open) !== chat.dataset.windowOpen) {
      window.location.reload();  // who holds the chat changed: the actions change too
      return;
    }
    var atBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 60;
    transcript.innerHTML = data.transcript;
    replaceKeepingOpen("ledger", data.ledger);
    replaceKeepingOpen("notes", data.notes);
    if (atBottom) scrollDown();
    chat.dataset.live = "on";
    if (live) live.classList.add("on");
  });
  chatEvents.addEventListener("gone", function () {
    chatEvents.close();
    window.location.href = "/console";
  });
  chatEvents.onerror = function () { if (live) live.classList.remove("on"); };

  var form = document.getElementById("reply-form");
  if (!form) return;
  var box = form.querySelector("textarea");
  var status = document.getElementById("reply-status");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf },
      credentials: "same-origin"
    }).then(function (response) {
      return response.json().catch(function () { return { ok: false, message: "Error " + response.status }; });
    }).then(function (data) {
      status.textContent = data.message || "";
      status.className = data.ok ? "muted" : "err";
      if (data.ok) { box.value = ""; scrollDown(); }
    }).catch(function () {
      status.textContent = "No se pudo enviar; revisa tu conexión.";
      status.className = "err";
    }).finally(function () { button.disabled = false; box.focus(); });
  });
  box.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  document.querySelectorAll("[data-canned]").forEach(function (button) {
    button.addEventListener("click", function () {
      box.value = button.dataset.canned;
      box.focus();
    });
  });
})();
