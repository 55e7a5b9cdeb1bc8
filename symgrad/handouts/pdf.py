"""Compiling a handout to PDF with a real TeX engine, and TeX's own error when it fails.

Where it sits: derive → print → handout → **PDF**. Runs pdflatex (latexmk when it is installed) in a
scratch directory, without shell escape; on failure raises :class:`TeXError` quoting TeX's message
and the line of the .tex it points at; without TeX, a message naming the Debian packages to install.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = ("install TeX Live to build PDFs (Debian/Ubuntu: apt-get install texlive-latex-base "
                "texlive-latex-recommended texlive-pictures), or write .tex or .md instead")


class TeXError(RuntimeError):
    """pdflatex failed (``.line`` is the line of the .tex it complained about) or is missing."""

    def __init__(self, message: str, line: int | None = None, log: str = ""):
        super().__init__(message)
        self.line, self.log = line, log


def tex_available() -> bool:
    return shutil.which("pdflatex") is not None


def compile_pdf(tex: str, out: str | Path, timeout: float = 120, keep_failed: bool = True,
                engine: str = "auto", keep_log: bool = False) -> Path:
    """Compile the LaTeX source ``tex`` to the PDF ``out``; return its path. ``engine``: "auto"
    (latexmk, which reruns as needed, else pdflatex) or "pdflatex" (one run: fast, for tests).
    ``keep_log`` writes TeX's log beside the PDF (``out.log``), e.g. to look for overfull boxes."""
    out = Path(out)
    if not tex_available():
        raise TeXError("pdflatex not found: " + INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="symgrad-tex-") as tmp:
        src = Path(tmp) / "handout.tex"
        src.write_text(tex, encoding="utf-8")
        base = ["-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
                "-no-shell-escape"]
        if engine == "auto" and shutil.which("latexmk"):
            runs = [["latexmk", "-pdf", "-quiet", "-pdflatex=pdflatex %O %S", *base,
                     "handout.tex"]]
        else:
            runs = [["pdflatex", *base, "handout.tex"]]
        for cmd in runs:
            try:
                proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True,
                                      timeout=timeout, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise TeXError(f"pdflatex did not finish in {timeout:.0f} s") from None
            log_path = Path(tmp) / "handout.log"
            log = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() \
                else proc.stdout
            pdf = Path(tmp) / "handout.pdf"
            if proc.returncode != 0 or not pdf.exists():
                if keep_failed:  # leave the source and log beside the output to look at
                    out.with_suffix(".failed.tex").write_text(tex, encoding="utf-8")
                    out.with_suffix(".failed.log").write_text(log, encoding="utf-8")
                raise _error(log, tex, out if keep_failed else None)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pdf, out)
        if keep_log:
            out.with_suffix(".log").write_text(log, encoding="utf-8")
    return out


def _error(log: str, tex: str, out: Path | None) -> TeXError:
    """TeX's first error ("! ..." in the log, e.g. a missing .sty), with the line of the .tex
    source it is about (the file:line of -file-line-error, else "l.N")."""
    lines = log.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.startswith("! ")
                  or re.match(r"^[^\n:]*\.(tex|sty|cls):\d+: ", ln)), None)
    msg, line = "pdflatex failed", None
    if first is not None:
        m = re.match(r"^[^\n:]*\.(?:tex|sty|cls):\d+: (.*)$", lines[first])
        msg = (m.group(1) if m else lines[first][2:]).strip()
        m = re.match(r"^[^\n:]*handout\.tex:(\d+): ", lines[first])
        if m:
            line = int(m.group(1))
        else:  # the l.N line after the message gives where in handout.tex TeX stopped
            for ln in lines[first:first + 40]:
                m = re.match(r"^l\.(\d+)", ln) or re.match(r"^[^\n:]*handout\.tex:(\d+): ", ln)
                if m:
                    line = int(m.group(1))
                    break
    src = tex.splitlines()[line - 1].strip() if line and line <= len(tex.splitlines()) else ""
    where = f" at line {line}" if line else ""
    text = f"TeX error{where}: {msg}"
    if src:
        text += f" [{src[:100]}{'…' if len(src) > 100 else ''}]"
    if out is not None:
        text += f" (source and log kept in {out.with_suffix('.failed.tex').name}, .failed.log)"
    return TeXError(text, line, log)
