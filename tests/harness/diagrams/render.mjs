// Open pages of the built site in headless Chromium and wait for every
// diagram to be drawn; save a full-page screenshot of each page, one of
// each diagram, and one of each kind of checked-by mark (the line under a
// code block, hooks/checked_by.py) with the end of the block above it.
//
//   node render.mjs NODE_MODULES_DIR < job.json  ->  results JSON on stdout
//
// job.json: {"chromium": PATH, "base": "http://127.0.0.1:PORT/", "outDir": DIR,
//            "schemes": ["light", "dark"], "timeoutMs": 20000, "width": 1280,
//            "pages": [{"page": "docs/x.md", "url": "x/", "shot": "x", "expected": N}]}
//
// A mark's kind is its class and the checks it names (data-checks): the
// first mark of each kind on the site, per palette, is saved as
// marks-SCHEME-N.png, and again at "phoneWidth" (when given) as
// marks-phone-SCHEME-N.png; each page's result counts its code blocks and
// marks.
//
// Material replaces each <pre class="mermaid"> with a <div class="mermaid">
// and draws the diagram's <svg> into a closed shadow root of that div. An init
// script keeps a reference to every shadow root the page attaches (the roots
// stay closed to the page itself) so the drawn svg can be found and measured.
// The site serves its own mermaid (hooks/mermaid.py), so a page needs nothing
// from another host: every request off the local server is aborted (the
// network is off), and recorded in the page's `offHost` list, which fails
// the page.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const modules = process.argv[2];
const require = createRequire(join(modules, "..", "package.json"));
const { chromium } = require("playwright-core");

const job = JSON.parse(readFileSync(0, "utf8"));
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
];

function keepShadowRoots() {
  const roots = [];
  const attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    const root = attach.call(this, init);
    roots.push([this, root]);
    return root;
  };
  window.__diagramRoots = roots;
}

// In the page: what became of each diagram.
function measure() {
  const content = document.querySelector(".md-content__inner") || document.body;
  const width = content.getBoundingClientRect().width;
  const left = document.querySelectorAll("pre.mermaid").length;
  const diagrams = [];
  for (const [host, root] of window.__diagramRoots || []) {
    if (!host.isConnected || !host.classList.contains("mermaid")) continue;
    const svg = root.querySelector("svg");
    if (!svg) { diagrams.push({ drawn: false }); continue; }
    const box = svg.getBoundingClientRect();
    const natural = parseFloat(svg.style.maxWidth) || (svg.viewBox.baseVal && svg.viewBox.baseVal.width) || box.width;
    diagrams.push({
      drawn: true,
      error: svg.getAttribute("aria-roledescription") === "error" || !!root.querySelector(".error-icon"),
      type: svg.getAttribute("aria-roledescription"),
      naturalWidth: Math.round(natural),
      width: Math.round(box.width),
      height: Math.round(box.height),
      overflow: Math.round(box.right - content.getBoundingClientRect().right),
    });
  }
  return { left, contentWidth: Math.round(width), diagrams };
}

// In the page: the code blocks, the marks, and where each mark of a kind not
// seen yet is, with the last part of the block above it and the start of
// what follows (page coordinates), to judge it in its place.
function marks(seen) {
  const blocks = document.querySelectorAll(".md-content .highlight:not(.highlight .highlight), .md-content div.mermaid");
  const found = [...document.querySelectorAll(".md-content .checked-by")];
  const shots = [];
  for (const mark of found) {
    const kind = `${mark.className} [${mark.dataset.checks}]`;
    if (seen.includes(kind)) continue;
    seen.push(kind);
    const above = mark.previousElementSibling;
    const box = mark.getBoundingClientRect();
    const top = above ? Math.max(above.getBoundingClientRect().top, box.top - 140) : box.top;
    const content = document.querySelector(".md-content__inner").getBoundingClientRect();
    shots.push({
      kind,
      text: [mark.querySelector(".checked-by__label"), ...mark.querySelectorAll("li, .checked-by__reason")]
        .map((part) => part && part.textContent).filter(Boolean).join(" · ").replace(" · ", ": "),
      clip: { x: Math.max(0, content.left - 8), y: top + window.scrollY - 8,
              width: Math.min(content.width + 16, document.documentElement.clientWidth), height: box.bottom - top + 72 },
    });
  }
  return { blocks: blocks.length, marks: found.length, shots };
}

const browser = await chromium.launch({ executablePath: job.chromium, args: FLAGS, headless: true });
const results = [];
try {
  for (const scheme of job.schemes) {
    const seen = { wide: [], phone: [] };
    const markShots = { wide: 0, phone: 0 };
    const context = await browser.newContext({
      viewport: { width: job.width || 1280, height: 900 },
      colorScheme: scheme === "dark" ? "dark" : "light",
    });
    await context.addInitScript(keepShadowRoots);
    let offHost = [];
    await context.route("**/*", (route) => {
      const request = route.request();
      if (request.url().startsWith(job.base)) return route.continue();
      offHost.push(`${request.resourceType()} ${request.url()}`);
      return route.abort();
    });
    for (const entry of job.pages) {
      const page = await context.newPage();
      const errors = [];
      offHost = [];
      page.on("pageerror", (error) => errors.push(String(error.message || error)));
      // Requests off the local server are aborted and listed in offHost; a
      // failed request to the local server is worth reporting.
      page.on("console", (message) => {
        if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) errors.push(message.text());
      });
      page.on("requestfailed", (request) => {
        if (request.url().startsWith(job.base)) errors.push(`${request.url()}: ${request.failure()?.errorText}`);
      });
      const result = { page: entry.page, scheme, expected: entry.expected, screenshot: null, errors, offHost };
      try {
        await page.goto(job.base + entry.url, { waitUntil: "load" });
        try {
          await page.waitForFunction(
            (expected) => {
              const roots = (window.__diagramRoots || []).filter(([h]) => h.isConnected && h.classList.contains("mermaid"));
              return document.querySelectorAll("pre.mermaid").length === 0
                && roots.length >= expected && roots.every(([, r]) => r.querySelector("svg"));
            },
            entry.expected, { timeout: job.timeoutMs },
          );
        } catch (error) {
          errors.push(`not every diagram was drawn within ${job.timeoutMs} ms`);
        }
        await page.evaluate(() => document.fonts && document.fonts.ready);
        Object.assign(result, await page.evaluate(measure));
        result.screenshot = join(job.outDir, `${entry.shot}-${scheme}.png`);
        await page.screenshot({ path: result.screenshot, fullPage: true });
        // and each diagram on its own, at the size the page shows it (the
        // sticky header hidden, so it does not cover the top of a diagram)
        await page.addStyleTag({ content: ".md-header, .md-tabs { visibility: hidden !important; }" });
        const hosts = page.locator("div.mermaid");
        const count = await hosts.count();
        for (let n = 0; n < count; n++) {
          await hosts.nth(n).screenshot({ path: join(job.outDir, `${entry.shot}-${scheme}-${n + 1}.png`) });
        }
        result.markShots = [];
        const sizes = [["wide", job.width || 1280, `marks-${scheme}`]];
        if (job.phoneWidth && job.phoneWidth !== job.width) sizes.push(["phone", job.phoneWidth, `marks-phone-${scheme}`]);
        for (const [size, width, prefix] of sizes) {
          if (size === "phone") await page.setViewportSize({ width, height: 844 });
          const found = await page.evaluate(marks, seen[size]);
          seen[size].push(...found.shots.map((shot) => shot.kind));
          if (size === "wide") Object.assign(result, { blocks: found.blocks, marks: found.marks });
          for (const shot of found.shots) {
            const path = join(job.outDir, `${prefix}-${String(++markShots[size]).padStart(2, "0")}.png`);
            await page.screenshot({ path, clip: shot.clip, fullPage: true });
            result.markShots.push({ path, kind: shot.kind, text: shot.text, width });
          }
        }
      } catch (error) {
        errors.push(String(error.message || error));
      }
      results.push(result);
      await page.close();
    }
    await context.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify({ results }));
