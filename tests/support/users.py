"""Run a piece of this test process as another uid, as a forked child (needs root).

The interpreter of the test venv may sit where other uids cannot reach it, so the child is
forked, not exec'd: it drops to the uid (umask 022, no supplementary groups), runs the
function with its stdout and stderr captured, and exits with the function's return code.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable


def as_user(uid: int, work: Callable[[], int]) -> tuple[int, str]:
    """``work()``'s exit code and everything it wrote to stdout and stderr, run as ``uid``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            os.close(read_end)
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            # pytest's capture replaced sys.stdout / sys.stderr: point them at the pipe too
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.umask(0o022)
            code = work()
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        output = pipe.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output
