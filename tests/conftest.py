"""Test-wide settings. Under CI (CI=true, as .ci/run is run) hypothesis draws the same examples
every run, so a landing never depends on which inputs a random search happened to try; locally it
keeps searching afresh, which is how the flaky cases it found were found."""
import os

from hypothesis import settings

# numpy kernels by default: numba compiles each distinct fused loop in about a second, which every
# test compiling a network would pay; tests/test_numba_fused.py asks for fused=True itself
os.environ.setdefault("SYMGRAD_FUSED", "0")

settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


# -- KaTeX and MathJax, in one node process per session (tests/js/render.js) ----------------------
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parent / "js"


class Renderers:
    """tests/js/render.js kept running: ``check([(tex, display), ...])`` sends one JSON line and
    reads one back, a result per item ({"katex": error or None, "mathjax": error or None,
    "katex_warnings": [...]}). A string seen before is answered from memory: the handouts share
    most of their blocks (837 distinct of 2149 in one sweep)."""

    def __init__(self):
        self.proc = subprocess.Popen(["node", str(JS / "render.js")], cwd=JS, text=True,
                                     encoding="utf-8", stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.seen = {}
        self.seconds, self.asked = 0.0, 0  # node's share of the time, for the summary line

    @staticmethod
    def items(items):
        """Strings (display math) or (tex, display) pairs, as (tex, display) pairs."""
        return [(t, True) if isinstance(t, str) else (t[0], bool(t[1])) for t in items]

    def check(self, items):
        items = self.items(items)
        new = list(dict.fromkeys(i for i in items if i not in self.seen))
        self.asked += len(items)
        if new:
            start = time.perf_counter()
            self.proc.stdin.write(json.dumps([{"tex": t, "display": d} for t, d in new]) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("tests/js/render.js stopped: " + self.proc.stderr.read())
            out = json.loads(line)
            if isinstance(out, dict):
                raise RuntimeError("tests/js/render.js: " + out["error"])
            self.seen.update(zip(new, out))
            self.seconds += time.perf_counter() - start
        return [self.seen[i] for i in items]

    def failures(self, items, where=""):
        """[(where, tex, which renderer, its message)] for every item some renderer refused."""
        items = self.items(items)
        return [(where, tex, name, r[name]) for (tex, _), r in zip(items, self.check(items))
                for name in ("katex", "mathjax") if r[name]]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


_RENDERED = []  # the session's Renderers, for the summary line


def pytest_terminal_summary(terminalreporter):
    for r in _RENDERED:
        terminalreporter.write_line(f"KaTeX and MathJax: {len(r.seen)} distinct math strings of "
                                    f"{r.asked} checked in {r.seconds:.1f} s of node")


@pytest.fixture(scope="session")
def renderers():
    """KaTeX and MathJax (npm packages pinned in tests/js/package.json, installed by .ci/run with
    `npm ci --prefix tests/js`); skipped where node or the packages are missing."""
    if shutil.which("node") is None:
        pytest.skip("node not installed: the KaTeX/MathJax checks need Node.js (apt-get install "
                    "nodejs npm; .ci/run does)")
    missing = [p for p in ("katex", "mathjax-full") if not (JS / "node_modules" / p).is_dir()]
    if missing:
        pytest.skip(f"npm packages {', '.join(missing)} not installed: run "
                    "`npm ci --prefix tests/js` (.ci/run does)")
    r = Renderers()
    _RENDERED.append(r)
    yield r
    r.close()
