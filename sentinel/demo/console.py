"""What the user watches: a live view redrawn every second (plain ANSI, on a terminal), or
plain timestamped lines (`--no-live`, pipes, CI), then the summary."""

from __future__ import annotations

import bisect
import contextlib
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TextIO

from sentinel.demo.story import clock
from sentinel.demo.watch import Snapshot, instance
from sentinel.display import format_value

STATUS_EVERY = 10.0

RESET, BOLD, DIM = "\x1b[0m", "\x1b[1m", "\x1b[2m"
RED, GREEN, YELLOW, BLUE, MAGENTA, CYAN = (f"\x1b[{n}m" for n in range(31, 37))
COLOURS = {
    "firing": RED + BOLD,
    "pending": YELLOW,
    "resolved": GREEN,
    "inactive": GREEN,
    "page": CYAN,
    "scenario": MAGENTA,
    "problem": RED,
    "demo": BLUE,
}


@dataclass(frozen=True, slots=True)
class View:
    """Everything one frame shows; times in seconds since the demo started."""

    started: float  # epoch seconds, to show alert times on the demo's clock
    elapsed: float
    duration: float
    folder: str
    snapshot: Snapshot | None
    events_per_s: float | None
    next_action: str
    kinds: dict[str, str]


class Console(Protocol):
    def note(self, t: float, kind: str, text: str) -> None: ...
    def update(self, view: View) -> None: ...
    def close(self) -> None: ...
    def lines(self, lines: list[str]) -> None: ...


def status_text(view: View) -> str:
    snap = view.snapshot
    if snap is None:
        return "sentinel API not answering yet"
    up = sum(snap.workers.values())
    rate = "n/a" if view.events_per_s is None else f"{view.events_per_s:.1f}/s"
    queues = " ".join(f"{q}={n:g}" for q, n in sorted(snap.queues.items())) or "n/a"
    firing = sum(1 for a in snap.alerts if a.get("state") == "firing")
    pending = sum(1 for a in snap.alerts if a.get("state") == "pending")
    return (
        f"workers {up}/{len(snap.workers)} alive, events {rate}, queues {queues}, "
        f"alerts {firing} firing {pending} pending"
    )


class Sink(Protocol):
    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...


class Output:
    """The demo's stdout, which may go away at any moment: `| head` leaves (EPIPE), a closed
    terminal hangs up (EIO). A failed write must never abort the shutdown that stops the
    children, so the first failure turns the output into a sink and calls `on_lost` once."""

    def __init__(self, out: TextIO, on_lost: Callable[[], None] = lambda: None) -> None:
        self.out = out
        self.on_lost = on_lost
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                self.out.write(text)
            except OSError:
                self._lose()
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self.out.flush()
            except OSError:
                self._lose()

    def isatty(self) -> bool:
        return not self.lost and self.out.isatty()

    def _lose(self) -> None:
        self.lost = True
        _silence(self.out)
        self.on_lost()


def _silence(out: TextIO) -> None:
    """Point the dead descriptor (and stderr, when it is the same terminal or pipe) at
    /dev/null: what is still buffered then flushes there at exit, instead of a second
    BrokenPipeError or EIO traceback from the interpreter's own shutdown."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test's stream), or closed
        return
    try:
        dead = os.fstat(fd)
    except OSError:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for target in {fd, 1, 2}:
            with contextlib.suppress(OSError):
                st = os.fstat(target)
                if (st.st_dev, st.st_ino) == (dead.st_dev, dead.st_ino):
                    os.dup2(devnull, target)
    finally:
        os.close(devnull)


class PlainConsole:
    def __init__(self, out: Sink = sys.stdout) -> None:
        self.out = out
        self._last_status = 0.0

    def note(self, t: float, kind: str, text: str) -> None:
        print(f"[{clock(t)}] {kind:<8} {text}", file=self.out, flush=True)

    def update(self, view: View) -> None:
        if view.snapshot is None or view.elapsed - self._last_status < STATUS_EVERY:
            return
        self._last_status = view.elapsed
        self.note(view.elapsed, "status", status_text(view))

    def close(self) -> None:
        pass

    def lines(self, lines: list[str]) -> None:
        for line in lines:
            print(line, file=self.out)
        self.out.flush()


class LiveConsole:
    """Redraws one block in place: cursor up over the previous frame, clear, draw."""

    def __init__(self, out: Sink = sys.stdout, recent: int = 10) -> None:
        self.out = out
        self.keep = recent
        self.recent: list[tuple[float, str, str]] = []
        self._drawn = 0
        self.out.write("\x1b[?25l")  # hide the cursor while we redraw

    def note(self, t: float, kind: str, text: str) -> None:
        # Log lines arrive up to a second late: keep the list in the order things happened.
        bisect.insort(self.recent, (t, kind, text), key=lambda item: item[0])
        del self.recent[: -self.keep]

    def update(self, view: View) -> None:
        width = max(40, shutil.get_terminal_size((100, 30)).columns - 1)
        frame = [self._fit(line, width) for line in self._frame(view)]
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self.out.write(up + "\x1b[J" + "\n".join(frame) + "\n")
        self.out.flush()
        self._drawn = len(frame)

    def close(self) -> None:
        self.out.write("\x1b[?25h")
        self.out.flush()

    def lines(self, lines: list[str]) -> None:
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    @staticmethod
    def _fit(line: str, width: int) -> str:
        """Cut to the terminal width counting only visible characters, so nothing wraps
        (a wrapped line would throw off the cursor-up count of the next frame)."""
        out, visible, i = [], 0, 0
        while i < len(line):
            if line[i] == "\x1b":
                end = line.index("m", i) + 1
                out.append(line[i:end])
                i = end
                continue
            if visible == width:
                break
            out.append(line[i])
            visible += 1
            i += 1
        return "".join(out) + RESET

    def _frame(self, view: View) -> list[str]:
        head = (
            f"{BOLD}sentinel demo{RESET}  {clock(view.elapsed)} of {clock(view.duration)}"
            f"  {DIM}Ctrl-C to stop · {view.folder}{RESET}"
        )
        frame = [head]
        snap = view.snapshot
        if snap is None:
            frame.append(f"{DIM}starting: workers, then sentinel...{RESET}")
        else:
            workers = "  ".join(
                f"{GREEN}✓{RESET} {h}" if up else f"{RED}✗ {h}{RESET}"
                for h, up in sorted(snap.workers.items())
            )
            rate = "n/a" if view.events_per_s is None else f"{view.events_per_s:.1f}/s"
            queues = "  ".join(f"{q} {n:g}" for q, n in sorted(snap.queues.items()))
            frame.append(
                f"workers {sum(snap.workers.values())}/{len(snap.workers)}  {workers}"
                f"    events {rate}    queues {queues or 'n/a'}"
            )
        frame.append(f"{DIM}next: {view.next_action}{RESET}")
        frame.append("")
        frame.extend(self._alerts(view))
        frame.append("")
        frame.append(f"{BOLD}recent{RESET}")
        if not self.recent:
            frame.append(f"{DIM}  (nothing yet){RESET}")
        for t, kind, text in self.recent:
            colour = COLOURS.get(kind, "")
            frame.append(f"{DIM}{clock(t)}{RESET}  {colour}{kind:<8}{RESET} {text}")
        return frame

    def _alerts(self, view: View) -> list[str]:
        alerts = view.snapshot.alerts if view.snapshot is not None else []
        rows = [("ALERT", "STATE", "VALUE", "THRESHOLD", "SINCE")]
        states = []
        for a in alerts:
            labels = {str(k): str(v) for k, v in (a.get("labels") or {}).items()}
            kind = view.kinds.get(labels.get("alertname", ""))
            state = str(a.get("state"))
            since = a.get("startsAt") if state == "firing" else a.get("activeAt")
            rows.append(
                (
                    instance(labels),
                    state,
                    format_value(kind, a.get("value")),
                    format_value(kind, a.get("threshold")),
                    clock(_epoch(since) - view.started) if since else "",
                )
            )
            states.append(state)
        if len(rows) == 1:
            return [f"{BOLD}alerts{RESET}  {DIM}none pending or firing{RESET}"]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        out = []
        for i, row in enumerate(rows):
            cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
            if i == 0:
                out.append(BOLD + "  ".join(cells) + RESET)
            else:
                colour = COLOURS.get(states[i - 1], "")
                cells[1] = f"{colour}{cells[1]}{RESET}"
                out.append("  ".join(cells))
        return out


def _epoch(rfc3339: str) -> float:
    try:
        return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return datetime.now().timestamp()
