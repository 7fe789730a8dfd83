// Refreshes the overview's figures in place every 10 seconds, without a full
// reload; without JavaScript the page still works (reload to refresh).
(function () {
  "use strict";
  var figures = document.getElementById("figures");
  if (!figures || !window.fetch) { return; }
  var url = figures.getAttribute("data-refresh");
  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var parsed = new DOMParser().parseFromString(html, "text/html");
        figures.replaceChildren.apply(figures, Array.prototype.slice.call(parsed.body.childNodes));
      })
      .catch(function () { /* the next round tries again */ });
  }
  setInterval(refresh, 10000);
})();

// The template studio: checks the sample data as it is typed, and renders it
// (into the sandboxed frame, and the subject and text beside it) once it is JSON.
(function () {
  "use strict";
  var form = document.getElementById("studio");
  if (!form || !window.fetch) { return; }
  var data = document.getElementById("data");
  var state = document.getElementById("data-state");
  var subject = document.getElementById("subject");
  var text = document.getElementById("text");
  var frame = document.querySelector(".frame");
  var timer = null;

  function render() {
    form.submit();
    fetch("/console/templates/render", {
      method: "POST", credentials: "same-origin",
      body: new URLSearchParams(new FormData(form))
    })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (content) {
        if (!content) { return; }
        subject.textContent = content.subject;
        text.textContent = content.text || "";
      })
      .catch(function () { /* the next edit tries again */ });
  }

  function check() {
    try {
      JSON.parse(data.value);
    } catch (e) {
      data.setAttribute("aria-invalid", "true");
      state.textContent = "Not JSON yet: " + e.message;
      return;
    }
    data.setAttribute("aria-invalid", "false");
    state.textContent = "Valid JSON.";
    clearTimeout(timer);
    timer = setTimeout(render, 400);
  }

  data.addEventListener("input", check);
  Array.prototype.forEach.call(document.querySelectorAll("[data-width]"), function (button) {
    button.addEventListener("click", function () {
      frame.className = "frame " + button.getAttribute("data-width");
      Array.prototype.forEach.call(document.querySelectorAll("[data-width]"), function (b) {
        b.setAttribute("aria-pressed", b === button ? "true" : "false");
      });
    });
  });
  render();
})();
