# ballast's window into an Alembic project: the revision graph, read with Alembic's own
# ScriptDirectory (never by parsing `alembic history` text), printed as one JSON object.
# Run with the project's python, ALEMBIC_CONFIG naming its ini. Reads files only, unless
# BALLAST_WITNESS_PID is set: then it also runs env.py online as `alembic current` does
# (dont_mutate: no version table is created, no migration runs) and reports where
# Alembic's connection goes, so ballast can prove it is the database it backed up.
import os
import sys

# The project's folder goes last: a package of its own named `alembic/` (its
# script_location) must not shadow the library; its modules stay importable.
sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())] + [os.getcwd()]

import ast
import contextlib
import json

from alembic import __version__ as alembic_version
from alembic.config import Config
from alembic.script import ScriptDirectory


def downgrade_status(path):
    """'ok', 'missing' (no downgrade function), 'empty' (only pass/docstring/...),
    or 'raises' (its body raises at the top level, e.g. NotImplementedError)."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError):
        return "unreadable"
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "downgrade":
            body = [
                n for n in node.body
                if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
            ]
            if not body or all(isinstance(n, ast.Pass) for n in body):
                return "empty"
            if any(isinstance(n, ast.Raise) for n in body):
                return "raises"
            return "ok"
    return "missing"


def literal_sql(path):
    """The SQL upgrade() hands op.execute() as a literal (or sa.text() of one), in the
    file's order: what the lint can still read of a revision offline mode cannot
    render."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError):
        return []
    found = []
    for node in tree.body:
        if not (isinstance(node, ast.FunctionDef) and node.name == "upgrade"):
            continue
        for call in ast.walk(node):
            if not (isinstance(call, ast.Call) and call.args
                    and isinstance(call.func, ast.Attribute) and call.func.attr == "execute"
                    and isinstance(call.func.value, ast.Name) and call.func.value.id == "op"):
                continue
            arg = call.args[0]
            if isinstance(arg, ast.Call) and arg.args and \
                    getattr(arg.func, "attr", getattr(arg.func, "id", None)) == "text":
                arg = arg.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((call.lineno, arg.value.strip().rstrip(";").strip()))
    return [sql for _, sql in sorted(found) if sql]


def allows_missing_downgrade(path):
    """The file says `ballast:allow missing-downgrade` (or `all`) in a comment."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return False
    for line in text.splitlines():
        _, found, rest = line.partition("ballast:allow")
        words = rest.replace(",", " ").replace(":", " ").split()
        if found and {"missing-downgrade", "all"} & set(words):
            return True
    return False


def transaction_per_migration(env_py):
    """True/False when env.py passes a literal to configure(), None when it cannot be
    told without running it."""
    try:
        with open(env_py, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=env_py)
    except (OSError, SyntaxError):
        return None
    seen = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "transaction_per_migration":
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, bool):
                seen.append(node.value.value)
            else:
                return None
    if not seen:
        return False  # Alembic's default: one transaction for the whole upgrade
    return any(seen)


class ElsewhereError(Exception):
    """A connection env.py opened does not reach ballast's database."""


def connection_facts(config, script):
    """Where env.py's connections go: server, database, user, the version table it
    configures. Every connection any engine opens is checked as it opens, before
    env.py can run anything on it, for ballast's witness session (its pid and a
    one-off application name, BALLAST_WITNESS_*) in this very database; one that
    does not see it is closed at once, and env.py stops there."""
    from alembic.runtime.environment import EnvironmentContext
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    pid = int(os.environ["BALLAST_WITNESS_PID"])
    name = os.environ["BALLAST_WITNESS_NAME"].replace("'", "''")
    check = (
        "select current_database()::text, current_user::text, "
        "coalesce(host(inet_server_addr()), 'a local socket'), "
        "current_setting('port'), current_setting('application_name'), "
        "current_schema()::text, "
        f"exists(select 1 from pg_stat_activity where pid = {pid} "
        f"and application_name = '{name}' and datname = current_database())"
    )
    facts = {}

    def on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(check)
            row = cursor.fetchone()
        finally:
            cursor.close()
        try:
            dbapi_connection.rollback()  # leave no transaction open behind the check
        except Exception:
            pass
        facts.update({
            "database": row[0],
            "user": row[1],
            "server": f"{row[2]} port {row[3]}",
            "application_name": row[4],
            "current_schema": row[5],
            "reaches_witness": bool(row[6]),
        })
        if not row[6]:
            raise ElsewhereError(f"connected to {row[0]} on {row[2]} port {row[3]}")

    def inspect(rev, context):
        if context.connection is None:
            raise RuntimeError("env.py gave Alembic no connection in online mode")
        facts.update({
            "version_table": context.version_table,
            "version_table_schema": context.version_table_schema,
            "transaction_per_migration": bool(
                context.opts.get("transaction_per_migration", False)
            ),
        })
        return []

    event.listen(Pool, "connect", on_connect)
    try:
        # env.py may print: stdout carries ballast's JSON alone.
        with contextlib.redirect_stdout(sys.stderr):
            with EnvironmentContext(config, script, fn=inspect, dont_mutate=True):
                script.run_env()
    except Exception as e:
        # An ElsewhereError may come wrapped by the driver or SQLAlchemy: the facts
        # say what the connection saw.
        if facts and not facts["reaches_witness"]:
            return facts
        raise
    finally:
        event.remove(Pool, "connect", on_connect)
    if "reaches_witness" not in facts:
        raise RuntimeError("env.py opened no connection")
    if "version_table" not in facts:
        raise RuntimeError("env.py ran without calling context.run_migrations()")
    if not facts["version_table_schema"]:
        facts["version_table_schema"] = facts["current_schema"]
    return facts


def main():
    ini = os.environ["ALEMBIC_CONFIG"]
    config = Config(ini)
    script = ScriptDirectory.from_config(config)
    revisions = []
    # walk_revisions goes head to base; ballast wants base first.
    for rev in reversed(list(script.walk_revisions())):
        down = rev.down_revision
        if down is None:
            downs = []
        elif isinstance(down, (tuple, list)):
            downs = list(down)
        else:
            downs = [down]
        revisions.append({
            "revision": rev.revision,
            "down_revisions": downs,
            "branch_labels": sorted(rev.branch_labels or []),
            "message": (rev.doc or "").strip().splitlines()[0] if rev.doc else "",
            "path": os.path.abspath(rev.path),
            "is_merge": rev.is_merge_point,
            "downgrade": downgrade_status(rev.path),
            "allows_missing_downgrade": allows_missing_downgrade(rev.path),
            "literal_sql": literal_sql(rev.path),
        })
    env_py = os.path.join(script.dir, "env.py")
    probed = {}
    if os.environ.get("BALLAST_WITNESS_PID"):
        try:
            probed["connection"] = connection_facts(config, script)
        except (Exception, SystemExit) as e:  # ballast refuses to change anything then
            probed["connection_error"] = f"{type(e).__name__}: {e}".strip()
    print(json.dumps({
        **probed,
        "alembic_version": alembic_version,
        "script_location": os.path.abspath(script.dir),
        "heads": list(script.get_heads()),
        "revisions": revisions,
        "env_py": os.path.abspath(env_py),
        "transaction_per_migration": transaction_per_migration(env_py),
    }))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # reported by ballast with the project's name
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.exit(3)
