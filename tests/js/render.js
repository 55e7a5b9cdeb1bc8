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
const { AutoloadConfiguration } = require("mathjax-full/js/input/tex/autoload/AutoloadConfiguration.js");

// tex-chtml's registerTeX list, less noundefined (and require and autoload, which load files in
// a browser): base, ams, newcommand, configmacros. What autoload would load on first use of one
// of its macros or environments (boldsymbol, cancel, color, ...: AutoloadConfiguration's table)
// is loaded here the same way: an expression that fails on such a name is run again with that
// package, which stays loaded. Loading all 14 up front made every expression slower (5.0 s → 8.5
// s to parse the 928 distinct blocks of the handouts), most of them filters that walk every tree.
const BASE = ["base", "ams", "newcommand", "configmacros"];
const AUTOLOAD = {};
for (const [pkg, names] of Object.entries(AutoloadConfiguration.options.autoload)) {
  const [macros, envs] = Array.isArray(names[0]) ? names : [names, []];
  for (const m of macros) AUTOLOAD["\\" + m] = pkg;
  for (const e of envs || []) AUTOLOAD["env:" + e] = pkg;
}

const adaptor = liteAdaptor();
RegisterHTMLHandler(adaptor);
const documents = {};

function documentWith(extra) {
  const key = extra.join(",");
  if (!documents[key]) {
    const tex = new TeX({
      packages: BASE.concat(extra),
      formatError: (jax, err) => { throw err; },
    });
    const OutputJax = new SVG({ fontCache: "none" });
    documents[key] = { tex, html: mathjax.document("", { InputJax: tex, OutputJax }) };
  }
  return documents[key];
}

// Text that MathJax shows as typed where LaTeX would not: a macro inside \text{} (MathJax's text
// mode knows no macros without the textmacros package, so \text{a\,b} shows "a\,b"), TeX's
// quotes `` and '' (LaTeX makes them curly quotes), ~ (a space in LaTeX) and braces (a group in
// LaTeX: \text{{[}a{]}} shows "{[}a{]}").
const LITERAL = /\\|``|''|~|[{}]/;

function walk(node, texts, errors) {
  if (node.isKind("mtext")) texts.push(node.getText());
  if (node.isKind("merror")) errors.push(node.attributes.get("data-mjx-error") || "merror");
  for (const child of node.childNodes || []) if (child && child.isKind) walk(child, texts, errors);
}

function mathjaxRun(s, display, extra) {
  const { tex, html } = documentWith(extra);
  // html.convert(s) done in two halves, to read the MathML between them
  const item = new html.options.MathItem(s, tex, display);
  item.start.node = adaptor.body(html.document);
  item.setMetrics(16, 8, 80 * 8, 1000000, 1);
  item.convert(html, STATE.COMPILED);
  const texts = [], errors = [];
  walk(item.root, texts, errors);
  // a TeX error that was not thrown would show as an <merror>
  if (errors.length) return errors[0];
  const literal = texts.filter((t) => LITERAL.test(t));
  if (literal.length) return `text shown as typed: ${JSON.stringify(literal[0])}`;
  // the SVG itself (an output error throws; about half of MathJax's time), not serialized:
  // outerHTML of it would add 1 s to the 12 s of the handouts' 928 distinct blocks
  item.convert(html, STATE.LAST);
  return null;
}

const loaded = []; // the packages autoloaded so far: they stay loaded, as in a browser's page

function mathjaxError(s, display) {
  for (;;) {
    try {
      return mathjaxRun(s, display, loaded);
    } catch (e) {
      const msg = String((e && e.message) || e);
      const m = msg.match(/^Undefined control sequence (\\[A-Za-z]+)|^Unknown environment '(.*)'/);
      const pkg = m && AUTOLOAD[m[1] || "env:" + m[2]];
      if (!pkg || loaded.includes(pkg)) return msg;
      loaded.push(pkg); // as autoload does: load the package, then run the expression again
      loaded.sort();
    }
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
