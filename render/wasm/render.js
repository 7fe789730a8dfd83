// The mailbridge renderer in a browser page (or any JavaScript engine with
// WebAssembly): the module that scripts/build-wasm.sh builds, the same one the
// Keycloak extension runs, so a preview here is the email the service sends.
//
//   import { Renderer } from "./render.js";
//   const renderer = await Renderer.load("/mailbridge_render.wasm", {"emails/x/subject.j2": "…", …});
//   const { subject, text, html } = renderer.render({ template: "x", locale: "de", data: {…} });
//
// No framework, no imports. A render is bounded by the renderer's own fuel; to
// bound its time as well, run it in a Web Worker and terminate that worker.

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

/** One instance of the module with a template set loaded. */
export class Renderer {
  /**
   * Loads the module (a URL, a fetch Response, bytes, or a compiled WebAssembly.Module)
   * and the templates, given as {path: source} laid out like the service's directory.
   */
  static async load(wasm, templates) {
    const instance = wasm instanceof WebAssembly.Module
      ? await WebAssembly.instantiate(wasm, {})
      : (await WebAssembly.instantiate(await bytesOf(wasm), {})).instance;
    const renderer = new Renderer(instance.exports);
    renderer.loadTemplates(templates);
    return renderer;
  }

  constructor(exports) {
    this.exports = exports;
  }

  /** Replaces the templates; returns how many shipped template names they hold. */
  loadTemplates(templates) {
    const answer = JSON.parse(this.call(this.exports.mb_load_templates, JSON.stringify(templates)));
    if (answer.error !== undefined) throw new RenderError(answer);
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
    const answer = JSON.parse(this.call(this.exports.mb_missing, JSON.stringify(request)));
    if (answer.error !== undefined) throw new RenderError(answer);
    return answer;
  }

  /** The module's own answer to a request given as JSON text: {"subject","text","html"} or {"error","kind"}. */
  renderJson(request) {
    return this.call(this.exports.mb_render, request);
  }

  call(exported, text) {
    const { mb_alloc, mb_len, mb_free, memory } = this.exports;
    const bytes = encoder.encode(text);
    const input = mb_alloc(bytes.length) >>> 0;
    // Read memory.buffer after every call: growing the memory replaces it.
    new Uint8Array(memory.buffer, input, bytes.length).set(bytes);
    const answer = exported(input) >>> 0;
    const length = mb_len(answer) >>> 0;
    const json = decoder.decode(new Uint8Array(memory.buffer, answer, length));
    mb_free(answer);
    return json;
  }
}

async function bytesOf(wasm) {
  if (typeof wasm === "string" || wasm instanceof URL) wasm = await fetch(wasm);
  if (typeof Response !== "undefined" && wasm instanceof Response) {
    if (!wasm.ok) throw new Error(`the renderer module: HTTP ${wasm.status}`);
    return wasm.arrayBuffer();
  }
  return wasm;
}
