// The template studio: checks the sample data as it is typed and renders it
// after each edit, into the sandboxed frame with the subject and text beside.
// With the WebAssembly renderer (the page says so) the render happens in this
// page, from the service's own template sources, with no request per edit;
// without it, the form posts into the frame and the text comes as JSON.
import { Renderer } from "/console/assets/render.js";

const form = document.getElementById("studio");
if (form && window.fetch) { start(form); }

function start(form) {
  const data = document.getElementById("data");
  const state = document.getElementById("data-state");
  const subject = document.getElementById("subject");
  const text = document.getElementById("text");
  const preview = document.getElementById("preview");
  const frame = document.querySelector(".frame");
  const notice = document.getElementById("renderer");
  const inPage = notice.dataset.renderer === "webassembly";
  const render = inPage ? inPageRenderer(form, preview, notice) : serviceRenderer(form);
  let timer = null;

  function show() {
    render(data.value)
      .then(function (content) {
        if (!content) { return; }
        subject.textContent = content.subject;
        text.textContent = content.text || "";
        state.textContent = "Valid JSON.";
        if (content.missing) { showMissing(content.missing); }
      })
      .catch(function (error) { state.textContent = "Not rendered: " + error.message; });
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
    // In the page a render takes a millisecond: render at once; the server is asked less often.
    timer = setTimeout(show, inPage ? 0 : 400);
  }

  data.addEventListener("input", check);
  document.querySelectorAll("[data-width]").forEach(function (button) {
    button.addEventListener("click", function () {
      frame.className = "frame " + button.getAttribute("data-width");
      document.querySelectorAll("[data-width]").forEach(function (b) {
        b.setAttribute("aria-pressed", b === button ? "true" : "false");
      });
    });
  });
  show();
}

// Lists what the render did without (the page shows the first render's list
// without any script).
function showMissing(missing) {
  document.getElementById("missing-lang").textContent = missing.lang;
  fill(document.getElementById("missing-translations"), missing.translations);
  fill(document.getElementById("missing-variables"), missing.variables);
}

function fill(list, names) {
  const items = names.map(function (name) {
    const item = document.createElement("li");
    const code = document.createElement("code");
    code.textContent = name;
    item.appendChild(code);
    return item;
  });
  if (items.length === 0) {
    const none = document.createElement("li");
    none.className = "none";
    none.textContent = "None.";
    items.push(none);
  }
  list.replaceChildren.apply(list, items);
}

// Renders with the service: the form into the frame, the JSON for the text
// (with what the render did without).
function serviceRenderer(form) {
  return function () {
    form.submit();
    return fetch("/console/templates/render", {
      method: "POST", credentials: "same-origin",
      body: new URLSearchParams(new FormData(form))
    }).then(function (answer) { return answer.ok ? answer.json() : null; });
  };
}

// Renders in the page: the module and the tenant's sources are fetched once;
// each render is posted to the preview frame's shell, which shows it.
function inPageRenderer(form, preview, notice) {
  const choice = {
    tenant: form.elements.tenant.value,
    template: form.elements.template.value,
    locale: form.elements.locale.value
  };
  const sources = "/console/templates/sources?tenant=" + encodeURIComponent(choice.tenant);
  // Started inside a promise: a browser without WebAssembly rejects it too.
  const renderer = Promise.resolve().then(function () {
    return Promise.all([
      WebAssembly.compileStreaming(fetch("/console/assets/mailbridge_render.wasm")),
      fetch(sources, { credentials: "same-origin" }).then(function (answer) {
        if (!answer.ok) { throw new Error("the templates could not be loaded (HTTP " + answer.status + ")"); }
        return answer.json();
      })
    ]);
  }).then(function (loaded) { return Renderer.load(loaded[0], loaded[1]); });
  // Without the module (blocked, or a browser without WebAssembly) the service renders.
  const byService = serviceRenderer(form);
  renderer.catch(function (error) {
    notice.dataset.renderer = "service";
    notice.textContent = "The WebAssembly renderer could not start (" + error.message +
      "): rendered by the service instead.";
  });

  let shown = null;
  function post() {
    if (shown !== null) { preview.contentWindow.postMessage({ html: shown }, "*"); }
  }
  // The shell says when it is ready; what was rendered before is posted again then.
  window.addEventListener("message", function (event) {
    if (event.source === preview.contentWindow && event.data && event.data.ready) { post(); }
  });

  return function (json) {
    return renderer.then(function (r) {
      const request = Object.assign({ data: JSON.parse(json) }, choice);
      const content = r.render(request);
      shown = content.html;
      post();
      content.missing = r.missing(request);
      return content;
    }, function () { return byService(json); });
  };
}
