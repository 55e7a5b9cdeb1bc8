"""Network files: the one loader of a user's network (a spec like '2-2-1' or a Python file).

Where it sits: graph. A file is the user's own code, run as a script (their program, not text we
evaluate); what it must leave behind is a :class:`~symgrad.graph.network.Graph` (in practice a
``symgrad.Network``). The CLI, the handouts and ``symgrad.load_network`` all come here.
"""
from __future__ import annotations

import contextlib
import signal
import threading

from symgrad.graph.network import Graph, mlp


def parse_spec(spec: str) -> list[int]:
    """'784-256-128-10' -> [784, 256, 128, 10], with a one-line error naming a bad part."""
    parts = spec.split("-")
    # ASCII digits only: str.isdigit() also takes ٢ (Arabic-Indic two), and int() reads it as 2
    if len(parts) < 2 or not all(p.strip().isascii() and p.strip().isdigit() and int(p) > 0
                                 for p in parts):
        raise ValueError(f"bad network spec {spec!r}: expected sizes like 2-2-1")
    return [int(p) for p in parts]


def load_network(source: str, hidden="relu", output="identity", loss="mse", cls=None,
                 timeout: float | None = None, on_overrun=None) -> Graph:
    """A network from a spec ('2-2-1', with the given activations and loss) or from a Python file
    that declares one: its Network named ``net``, else its only Network. The one loader of network
    files (the CLI and the handouts use it). Every failure is a one-line ValueError naming the file
    (and the line, when the file itself fails); the network is checked to have a loss and
    parameters. ``timeout`` (seconds, main thread only) stops a file still running after it."""
    if not source.endswith(".py"):
        return mlp(parse_spec(source), hidden=hidden, output=output, loss=loss, cls=cls)
    return run_network_file(source, timeout, on_overrun)[0]


class _TimedOut(BaseException):
    """Raised into a user's file by the alarm: a BaseException, so `except Exception` in their
    code does not swallow it."""


@contextlib.contextmanager
def _deadline(timeout: float | None, path: str, on_overrun=None):
    if not timeout:
        yield
        return
    watchdog = None
    if on_overrun is not None:  # the file may ignore the alarm: a second later, this runs
        watchdog = threading.Timer(timeout + 1, on_overrun)
        watchdog.daemon = True
        watchdog.start()
    if threading.current_thread() is not threading.main_thread() or \
            not hasattr(signal, "setitimer"):
        raise ValueError(f"{path}: a timeout needs the main thread of a Unix process")

    def stop(*_):
        raise _TimedOut

    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if watchdog is not None:
            watchdog.cancel()


def run_network_file(path: str, timeout: float | None = None,
                     on_overrun=None) -> tuple[Graph, dict]:
    """Run the user's file (their own code, as a script) → (its network, its namespace).
    Whatever the file raises becomes one ValueError naming the file and its line, BaseExceptions
    (GeneratorExit, their own) included, except KeyboardInterrupt: Ctrl-C stays Ctrl-C. A file
    still running after ``timeout`` seconds is stopped (Python code only: one long call into C
    ends first). A file may ignore the alarm (it is the user's code); ``on_overrun``, if given,
    is called from a thread a second after the limit if the file is still running (the CLI
    ends the process there)."""
    import runpy
    from pathlib import Path
    if not Path(path).is_file():
        raise ValueError(f"no such network file: {path}")
    if timeout is not None and not (isinstance(timeout, (int, float)) and 0 <= timeout <= 1e6):
        raise ValueError(f"timeout: expected seconds from 0 (no limit) to 1e6, got {timeout!r}")
    try:
        with _deadline(timeout, path, on_overrun):
            ns = runpy.run_path(path, run_name="__symgrad_network__")
    except SyntaxError as e:
        raise ValueError(f"{path}, line {e.lineno}: SyntaxError: {e.msg}") from None
    except _TimedOut:
        raise ValueError(f"{path}: still running after {timeout:g} s, so it was stopped "
                         "(the limit is --timeout; 0 for none)") from None
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # the user's code failed: what, and where in their file
        raise ValueError(f"{path}{_user_line(e, path)}: {type(e).__name__}: "
                         f"{_first_line(e)}") from None
    net = ns.get("net")
    if not isinstance(net, Graph):
        nets = {k: v for k, v in ns.items() if isinstance(v, Graph) and not k.startswith("_")}
        if len(nets) != 1:
            which = f" ({', '.join(nets)}: name one net)" if nets else ""
            raise ValueError(f"{path} defines no Network named net{which} (e.g. net = "
                             "symgrad.mlp([2, 2, 1]))")
        net = next(iter(nets.values()))
    try:
        net.check()
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return net, ns


def _user_line(exc, path) -> str:
    """', line N' of the deepest traceback frame in the user's file."""
    import os
    import traceback
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.abspath(f.filename) == os.path.abspath(path)]
    return f", line {frames[-1].lineno}" if frames else ""


def _first_line(exc) -> str:
    try:
        text = str(exc).strip()
    except Exception:  # the user's exception cannot even print itself
        return "(its message could not be printed)"
    return text.splitlines()[0] if text else "(no message)"


__all__ = ["parse_spec", "load_network", "run_network_file"]
