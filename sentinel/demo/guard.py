"""`python -m sentinel.demo.guard PARENT_PID -- ARGV...`: run ARGV so that it dies with the demo.

The demo stops its children itself on every exit it gets to see (duration, Ctrl-C, SIGTERM,
SIGHUP, a closed stdout). This covers the one it cannot see: the demo SIGKILLed, or crashing
in the interpreter. On Linux the kernel delivers SIGKILL to the child when its parent dies
(prctl PR_SET_PDEATHSIG, which survives the exec below); set here, in a process of its own,
because arming it from `Popen(preexec_fn=...)` is unsafe in a process with threads.

Linux only, and loud elsewhere: the child then runs unguarded and its log says so.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def arm(signum: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `signum` to this process when its parent dies."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def main(argv: Sequence[str]) -> int:
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        print("usage: python -m sentinel.demo.guard PARENT_PID -- ARGV...", file=sys.stderr)
        return 2
    parent, command = int(argv[0]), list(argv[2:])
    if not arm():
        print(
            "sentinel.demo.guard: no parent-death signal on this platform; this process "
            "outlives the demo if the demo is killed with SIGKILL",
            file=sys.stderr,
        )
    elif os.getppid() != parent:
        return 1  # the demo died between our fork and prctl: the signal will never come
    os.execvp(command[0], command)  # replaces this process, or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
