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
