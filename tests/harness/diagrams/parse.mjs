// Parse every diagram with the real mermaid parser, in one node process.
//
//   node parse.mjs NODE_MODULES_DIR < {"diagrams": [{"id": "...", "text": "..."}]}
//   -> {"mermaid": "11.x.y", "results": [{"id", "ok", "type", "line", "message"}]}
//
// `line` is the 1-based line of the diagram text the error points at (null
// when mermaid does not say). Mermaid's sanitiser (DOMPurify) needs a DOM, so
// a linkedom window is made global before mermaid is imported; mermaid is
// loaded from its bundled build, which starts several times faster than the
// unbundled one.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.argv[2];
if (!modules) {
  process.stderr.write("usage: node parse.mjs NODE_MODULES_DIR < diagrams.json\n");
  process.exit(2);
}
const require = createRequire(join(modules, "..", "package.json"));
const load = (name) => import(pathToFileURL(require.resolve(name)).href);

const { parseHTML } = await load("linkedom");
const { window, document } = parseHTML("<!doctype html><html><head></head><body></body></html>");
globalThis.window = window;
globalThis.document = document;

const { default: mermaid } = await load("mermaid/dist/mermaid.esm.min.mjs");
mermaid.initialize({ startOnLoad: false });
const version = JSON.parse(readFileSync(require.resolve("mermaid/package.json"), "utf8")).version;

// Before parsing, mermaid cuts the YAML front matter, the %%{...}%%
// directives, the %% comment lines and leading blanks out of the text (see
// preprocessDiagram in mermaid's preprocess.ts), so the line numbers in its
// errors count lines of what is left. Doing the same cuts while remembering
// the original line of every character maps them back.
const FRONT_MATTER = /^([^\S\n\r]*)-{3}\s*[\n\r](.*?)[\n\r]\1-{3}\s*[\n\r]+/s;
const DIRECTIVE = /%{2}{\s*(?:(\w+)\s*:|(\w+))\s*(?:(\w+)|((?:(?!}%{2}).|\r?\n)*))?\s*(?:}%{2})?/gi;
const COMMENT = /^\s*%%(?!{)[^\n]+\n?/gm;
const LEADING_SPACE = /^\s+/;

function cut(kept, regex) {
  const text = kept.map((c) => c.ch).join("");
  const drop = new Set();
  for (const match of text.matchAll(regex.global ? regex : new RegExp(regex.source, regex.flags + "g"))) {
    for (let i = match.index; i < match.index + match[0].length; i++) drop.add(i);
    if (!regex.global) break;
  }
  return kept.filter((_, i) => !drop.has(i));
}

function originalLine(text, parsedLine) {
  let kept = [];
  let line = 1;
  for (const ch of text.replace(/\r\n?/g, "\n")) {
    kept.push({ ch, line });
    if (ch === "\n") line++;
  }
  for (const regex of [FRONT_MATTER, DIRECTIVE, COMMENT, LEADING_SPACE]) kept = cut(kept, regex);
  let current = 1;
  for (const { ch, line: origin } of kept) {
    if (current === parsedLine) return origin;
    if (ch === "\n") current++;
  }
  return kept.length ? kept[kept.length - 1].line : 1;
}

function errorLine(error, text) {
  const hash = error.hash;
  let line = null;
  if (hash && hash.loc && Number.isInteger(hash.loc.first_line)) line = hash.loc.first_line;
  else if (hash && Number.isInteger(hash.line)) line = hash.line + 1;
  else {
    const match = /\bline (\d+)/i.exec(String(error.message));
    if (match) line = Number(match[1]);
  }
  return line === null ? null : originalLine(text, line);
}

function oneLine(message) {
  return String(message).replace(/\s+$/, "");
}

// Mermaid names the line of the token where parsing could not go on, which
// can be a line or two after the mistake: an arrow typed wrong at the end of
// a line is only noticed at the next line's first token (or later, when the
// lexer took the following lines as label text). So the line reported is
// the first line, from a few lines before the one mermaid names up to it,
// without which the diagram parses; when no single line is the cause, the
// line mermaid names. The YAML front matter's errors name no diagram line:
// they count lines of the front matter (after its first `---`), and are
// taken as they are.
const LOOK_BACK = 6;

async function parses(text) {
  try {
    await mermaid.parse(text);
    return true;
  } catch {
    return false;
  }
}

async function culprit(text, named) {
  const lines = text.split("\n");
  for (let line = Math.max(1, named - LOOK_BACK); line <= Math.min(named, lines.length); line++) {
    const without = lines.map((content, i) => (i === line - 1 ? "" : content)).join("\n");
    if (await parses(without)) return line;
  }
  return named;
}

function frontMatterLine(error, text) {
  const match = /\((\d+):\d+\)/.exec(String(error.message));
  return match && /^\s*-{3}/.test(text) ? Number(match[1]) + 1 : null;
}

const input = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const { id, text } of input.diagrams) {
  try {
    const parsed = await mermaid.parse(text);
    results.push({ id, ok: true, type: parsed.diagramType, line: null, message: "" });
  } catch (error) {
    const named = errorLine(error, text);
    const line = named === null ? frontMatterLine(error, text) : await culprit(text, named);
    results.push({ id, ok: false, type: null, line, message: oneLine(error.message || error) });
  }
}
process.stdout.write(JSON.stringify({ mermaid: version, results }));
