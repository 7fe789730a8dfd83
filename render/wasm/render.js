// The mailbridge renderer in a browser page (or any JavaScript engine with
// WebAssembly): the module that scripts/build-wasm.sh builds, the same one the
// Keycloak extension runs, so a preview here is the email the service sends.
//
//   import { Renderer } from "./render.js";
//   const renderer = await Renderer.load("/mailbridge_render.wasm", {"emails/x/subject.j2": "…", …});
//   const { subject, text, html } = renderer.render({ template: "x", locale: "de", data: {…} });
//
// No framework, no imports. A render is bounded by the renderer's own fuel; to
// bound its time as well, run it in a Web Worker and terminate that worker. A
// render that traps fails alone: the next call runs on a fresh instance.

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** A template that could not be rendered: `kind` says why (as the service's problem types do). */
export class RenderError extends Error {
  constructor(answer) {
    super(answer.error);
    this.name = "RenderError";
    this.kind = answer.kind;
  }
}

/** The module with a template set loaded, in one instance at a time. */
export class Renderer {
  /**
   * Loads the module (a URL, a fetch Response, bytes, or a compiled WebAssembly.Module)
   * and the templates, given as {path: source} laid out like the service's directory.
   */
  static async load(wasm, templates) {
    const module = wasm instanceof WebAssembly.Module
      ? wasm
      : await WebAssembly.compile(await bytesOf(wasm));
    const renderer = new Renderer(module, (await WebAssembly.instantiate(module, {})).exports);
    renderer.loadTemplates(templates);
    return renderer;
  }

  constructor(module, exports) {
    this.module = module;
    this.exports = exports;
    // The templates last loaded, as the JSON text the module took: a fresh
    // instance loads them again.
    this.templates = null;
  }

  /** Replaces the templates; returns how many shipped template names they hold. */
  loadTemplates(templates) {
    const json = JSON.stringify(templates);
    const answer = JSON.parse(this.call("mb_load_templates", json));
    if (answer.error !== undefined) throw new RenderError(answer);
    this.templates = json;
    return answer.templates;
  }

  /** Renders a request ({tenant, template, locale, data}) into {subject, text, html}. */
  render(request) {
    const answer = JSON.parse(this.renderJson(JSON.stringify(request)));
    if (answer.error !== undefined) throw new RenderError(answer);
    return answer;
  }

  /**
   * What rendering a request has to do without: {lang, translations, variables}
   * (keys of t() the language lacks, data the templates look up but the request lacks).
   */
  missing(request) {
    const answer = JSON.parse(this.call("mb_missing", JSON.stringify(request)));
    if (answer.error !== undefined) throw new RenderError(answer);
    return answer;
  }

  /** The module's own answer to a request given as JSON text: {"subject","text","html"} or {"error","kind"}. */
  renderJson(request) {
    return this.call("mb_render", request);
  }

  /**
   * Calls the module's export `name` with `text`; returns its answer. A trap
   * (memory exhausted, a panic) throws the engine's error, WebAssembly.RuntimeError.
   */
  call(name, text) {
    const bytes = encoder.encode(text);
    if (this.exports === null) this.exports = this.fresh();
    try {
      return exchange(this.exports, name, bytes);
    } catch (error) {
      // A trap stops the module in the middle of the call: its memory stays
      // grown, and its stack and what it had borrowed are never given back, so
      // later calls would fail too. This call fails; the next one runs on a
      // fresh instance with the same templates.
      this.exports = null;
      try {
        this.exports = this.fresh();
      } catch {
        // Left to the next call, which starts an instance before it runs.
      }
      throw error;
    }
  }

  /** A new instance of the module with the templates loaded (synchronous, so a render stays so). */
  fresh() {
    const { exports } = new WebAssembly.Instance(this.module, {});
    if (this.templates !== null) {
      const answer = JSON.parse(exchange(exports, "mb_load_templates", encoder.encode(this.templates)));
      if (answer.error !== undefined) throw new RenderError(answer);
    }
    return exports;
  }
}

/** Writes `bytes` into the module's memory, calls the export `name` on them, and reads its answer. */
function exchange(exports, name, bytes) {
  const { mb_alloc, mb_len, mb_free, memory } = exports;
  const input = mb_alloc(bytes.length) >>> 0;
  // Read memory.buffer after every call: growing the memory replaces it.
  new Uint8Array(memory.buffer, input, bytes.length).set(bytes);
  const answer = exports[name](input) >>> 0;
  const length = mb_len(answer) >>> 0;
  const json = decoder.decode(new Uint8Array(memory.buffer, answer, length));
  mb_free(answer);
  return json;
}

async function bytesOf(wasm) {
  if (typeof wasm === "string" || wasm instanceof URL) wasm = await fetch(wasm);
  if (typeof Response !== "undefined" && wasm instanceof Response) {
    if (!wasm.ok) throw new Error(`the renderer module: HTTP ${wasm.status}`);
    return wasm.arrayBuffer();
  }
  return wasm;
}
