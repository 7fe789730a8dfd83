// The studio's preview frame: shows the email the console page posts to it.
// It runs in a sandbox (an origin of its own) and takes messages only from
// the page that framed it. The email replaces this document's element: the
// parser's scripts never run, and the listeners below stay for the next edit.
(function () {
  "use strict";
  window.addEventListener("message", function (event) {
    var html = event.source === window.parent && event.data && event.data.html;
    if (typeof html !== "string") { return; }
    var email = new DOMParser().parseFromString(html, "text/html");
    document.replaceChild(document.adoptNode(email.documentElement), document.documentElement);
  });
  // The email's links and forms go nowhere: the frame stays this page, so the
  // next edit is posted here and never to a page the email links to.
  window.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("a[href], area[href]")) { event.preventDefault(); }
  }, true);
  window.addEventListener("submit", function (event) { event.preventDefault(); }, true);
  window.parent.postMessage({ ready: true }, "*");
})();
