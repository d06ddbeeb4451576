# ballast's Alembic zygote: one Python process per run and project that imports Alembic,
# SQLAlchemy and the PostgreSQL driver once (most of what a Python child costs), then
# forks a child for each command ballast sends. Each child is what a fresh
# `python -c CODE ARGS` would be: its own process, environment, arguments, exit status
# and signals; only the imports are done already. No connection is opened here, so a
# child inherits none.
#
# Protocol: one JSON object per line on stdin: {"nonce", "code", "argv", "env", "merge"}.
# For each, fd 1 carries `\x1eballast NONCE started PID` before the child writes
# anything; when the child has ended, fd 1 and fd 2 each carry
# `\x1eballast NONCE ended CODE` (CODE: the exit status, minus the signal number when a
# signal ended it). With "merge", the child's stderr goes to fd 1. End of stdin ends it.
import json
import os
import signal
import sys

# The project's folder goes last, as in guard.py: a package of its own named `alembic/`
# (its script_location) must not shadow the library imported below.
sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())] + [os.getcwd()]
# ballast sends its children a SIGINT itself; the zygote never takes one.
signal.signal(signal.SIGINT, signal.SIG_IGN)

ZYGOTE_PID = os.getpid()


def _warm():
    """Imports what every child needs. A failure is the child's to report: it imports
    again and fails there, with the traceback a fresh process would print."""
    for name in (
        "ctypes",
        "logging.config",
        "sqlalchemy",
        "sqlalchemy.event",
        "sqlalchemy.pool",
        "alembic",
        "alembic.config",
        "alembic.command",
        "alembic.script",
        "alembic.runtime.migration",
        "alembic.runtime.environment",
        "alembic.op",
        "psycopg",
        "psycopg2",
        "sqlalchemy.dialects.postgresql",
    ):
        try:
            __import__(name)
        except Exception:
            pass


def _child(command):
    try:
        import ctypes

        # PR_SET_PDEATHSIG: the child dies with the zygote, as the zygote with ballast.
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)
    except Exception:
        pass
    if os.getppid() != ZYGOTE_PID:
        os._exit(70)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = open(os.devnull, encoding="utf-8")
    if command.get("merge"):
        os.dup2(1, 2)
    os.environ.update(command["env"])
    sys.argv = ["-c"] + command["argv"]
    try:
        exec(compile(command["code"], "<string>", "exec"), {"__name__": "__main__"})
        status = 0
    except SystemExit as e:
        status = _exit_status(e.code)
    except BaseException as e:  # as the interpreter reports an uncaught one
        sys.excepthook(type(e), e, e.__traceback__)
        status = -signal.SIGINT if isinstance(e, KeyboardInterrupt) else 1
    _exit(status)


def _exit_status(code):
    """What the interpreter makes of SystemExit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _exit(status):
    """Ends the child as the interpreter would, without its finalization: tearing down
    every module the zygote imported costs more than most commands."""
    import atexit
    import threading

    for finish in (threading._shutdown, atexit._run_exitfuncs):
        try:
            finish()
        except BaseException:
            pass
    # Finalization would flush what code wrote into file objects of its own (Alembic
    # wraps stdout in one for `--sql` with an output encoding): flush each that is open
    # (the child's own objects: the zygote's are frozen), stdout and stderr last.
    import gc
    import io

    for stream in [o for o in gc.get_objects() if isinstance(o, io.IOBase)] + [sys.stdout, sys.stderr]:
        try:
            if not stream.closed:
                stream.flush()
        except BaseException:
            pass
    if status < 0:  # an uncaught KeyboardInterrupt: die of the signal, as CPython does
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    os._exit(status)


def _serve():
    commands = sys.stdin.buffer
    while True:
        line = commands.readline()
        if not line:
            return
        command = json.loads(line)
        nonce = command["nonce"]
        sys.stdout.flush()
        sys.stderr.flush()
        go_read, go_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(go_write)
            os.read(go_read, 1)  # the started line is out first
            os.close(go_read)
            _child(command)
        os.close(go_read)
        os.write(1, f"\x1eballast {nonce} started {pid}\n".encode())
        os.write(go_write, b"g")
        os.close(go_write)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        ended = f"\x1eballast {nonce} ended {code}\n".encode()
        os.write(1, ended)
        os.write(2, ended)


_warm()
# What the zygote holds stays out of each child's collections (and out of _exit's scan
# for file objects), and its pages stay shared.
import gc  # noqa: E402

gc.freeze()
_serve()
