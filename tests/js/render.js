#!/usr/bin/env node
// Render math with KaTeX and MathJax and say, for each string, whether each accepted it.
//
// Used by tests/test_renderers.py (one process per test session). Input: JSON lines on stdin,
// each a list of items, an item a string (display math) or {"tex": ..., "display": bool}.
// Output: one JSON line per input line, a list with one result per item:
//   {"katex": null | "error message", "mathjax": null | "error message",
//    "katex_warnings": ["strict-mode warning", ...]}
// `node render.js 'x^2' '\frac{a}{b}'` checks its arguments instead and exits 1 if any fails.
//
// KaTeX runs with throwOnError, so a parse error is an error, not red text. MathJax runs as its
// plain browser build (tex-chtml/tex-svg) configures TeX input: base, ams, newcommand,
// configmacros, and the packages that build autoloads on first use (boldsymbol, cancel, color,
// ...), but without noundefined (which would typeset an unknown macro in red instead of failing)
// and with formatError throwing, so a TeX error is reported rather than rendered as an merror.
"use strict";

const readline = require("readline");
const katex = require("katex");
const { mathjax } = require("mathjax-full/js/mathjax.js");
const { TeX } = require("mathjax-full/js/input/tex.js");
const { SVG } = require("mathjax-full/js/output/svg.js");
const { liteAdaptor } = require("mathjax-full/js/adaptors/liteAdaptor.js");
const { RegisterHTMLHandler } = require("mathjax-full/js/handlers/html.js");
const { STATE } = require("mathjax-full/js/core/MathItem.js");
require("mathjax-full/js/input/tex/AllPackages.js"); // registers every package's configuration

// tex-chtml's registerTeX list, less noundefined, require and autoload (node loads no files on
// demand), plus what autoload would load (AutoloadConfiguration's table in mathjax-full 3.2.2)
const PACKAGES = ["base", "ams", "newcommand", "configmacros", "action", "amscd", "bbox",
  "boldsymbol", "braket", "bussproofs", "cancel", "color", "enclose", "extpfeil", "html",
  "mhchem", "unicode", "verb"];

const adaptor = liteAdaptor();
RegisterHTMLHandler(adaptor);
const tex = new TeX({
  packages: PACKAGES,
  formatError: (jax, err) => { throw err; },
});
const svg = new SVG({ fontCache: "none" });
const html = mathjax.document("", { InputJax: tex, OutputJax: svg });

// Text that MathJax shows as typed where LaTeX would not: a macro inside \text{} (MathJax's text
// mode knows no macros without the textmacros package, so \text{a\,b} shows "a\,b"), TeX's
// quotes `` and '' (LaTeX makes them curly quotes), ~ (a space in LaTeX) and braces (a group in
// LaTeX: \text{{[}a{]}} shows "{[}a{]}").
const LITERAL = /\\|``|''|~|[{}]/;

function mtexts(node, out) {
  if (node.isKind("mtext")) out.push(node.getText());
  for (const child of node.childNodes || []) if (child && child.isKind) mtexts(child, out);
  return out;
}

function mathjaxError(s, display) {
  try {
    // html.convert(s) done in two halves, to read the MathML between them
    const item = new html.options.MathItem(s, tex, display);
    item.start.node = adaptor.body(html.document);
    item.setMetrics(16, 8, 80 * 8, 1000000, 1);
    item.convert(html, STATE.COMPILED);
    const literal = mtexts(item.root, []).filter((t) => LITERAL.test(t));
    if (literal.length) return `text shown as typed: ${JSON.stringify(literal[0])}`;
    item.convert(html, STATE.LAST);
    // a TeX error that was not thrown would show as an <merror> (data-mjx-error in SVG output)
    const m = adaptor.outerHTML(item.typesetRoot).match(/data-mjx-error="([^"]*)"/);
    return m ? m[1] : null;
  } catch (e) {
    return String((e && e.message) || e);
  }
}

function katexResult(s, display) {
  const warnings = [];
  try {
    katex.renderToString(s, {
      displayMode: display,
      throwOnError: true,
      // a strict-mode complaint (non-LaTeX input KaTeX renders anyway) is kept, not fatal
      strict: (code, msg) => { warnings.push(`${code}: ${msg}`); return "ignore"; },
    });
    return [null, warnings];
  } catch (e) {
    return [String((e && e.message) || e), warnings];
  }
}

function check(item) {
  const s = typeof item === "string" ? item : item.tex;
  const display = typeof item === "string" ? true : item.display !== false;
  const [k, warnings] = katexResult(s, display);
  return { katex: k, mathjax: mathjaxError(s, display), katex_warnings: warnings };
}

if (process.argv.length > 2) {
  let bad = 0;
  for (const s of process.argv.slice(2)) {
    const r = check(s);
    if (r.katex || r.mathjax) bad++;
    console.log(JSON.stringify({ tex: s, ...r }));
  }
  process.exit(bad ? 1 : 0);
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  if (!line.trim()) return;
  let out;
  try {
    out = JSON.parse(line).map(check);
  } catch (e) {
    out = { error: String((e && e.message) || e) };
  }
  process.stdout.write(JSON.stringify(out) + "\n");
});
