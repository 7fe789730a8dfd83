// Renders one request per stdin line with render/wasm/render.js (the browser
// module) and prints one answer per line, as `render --lines` of the jar does.
// Usage: node render_lines.mjs MODULE.wasm TEMPLATES_DIR < requests
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { pathToFileURL, fileURLToPath } from "node:url";

const [wasmPath, dir] = process.argv.slice(2);
const here = fileURLToPath(new URL(".", import.meta.url));
const { Renderer } = await import(pathToFileURL(join(here, "../../../render/wasm/render.js")));

const templates = {};
(function walk(d) {
  for (const name of readdirSync(d)) {
    const path = join(d, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (/\.(j2|ftl|json)$/.test(name)) templates[relative(dir, path).split(sep).join("/")] = readFileSync(path, "utf8");
  }
})(dir);

const renderer = await Renderer.load(readFileSync(wasmPath), templates);
const out = [];
for (const line of readFileSync(0, "utf8").split("\n")) {
  if (line.trim() !== "") out.push(renderer.renderJson(line));
}
process.stdout.write(out.join("\n") + "\n");
