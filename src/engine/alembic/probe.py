# ballast's window into an Alembic project: the revision graph, read with Alembic's own
# ScriptDirectory (never by parsing `alembic history` text), printed as one JSON object.
# Run with the project's python, ALEMBIC_CONFIG naming its ini. Reads files only, unless
# BALLAST_WITNESS_PID is set: then it also runs env.py online as `alembic current` does
# (dont_mutate: no version table is created, no migration runs) and reports where
# Alembic's connection goes, so ballast can prove it is the database it backed up.
# guard.py runs first, in the same script (it moves the project's folder to the end of
# sys.path, and installs the connection guard).
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


def connection_facts(config, script):
    """Where env.py's connections go (the guard checks each one as it opens and keeps
    what it saw in BALLAST_FACTS), and the version table env.py configures."""
    import re

    from alembic.runtime.environment import EnvironmentContext

    def inspect(rev, context):
        if context.connection is None:
            raise RuntimeError("env.py gave Alembic no connection in online mode")
        # Where an unqualified version table lands: the schema at configure time (an
        # env.py may SET search_path after connecting).
        schema = context.connection.exec_driver_sql("select current_schema()").scalar()
        BALLAST_FACTS.update({
            "version_table": context.version_table,
            "version_table_schema": context.version_table_schema or schema,
            "transaction_per_migration": bool(
                context.opts.get("transaction_per_migration", False)
            ),
        })
        return []

    try:
        # env.py may print: stdout carries ballast's JSON alone.
        with contextlib.redirect_stdout(sys.stderr):
            with EnvironmentContext(config, script, fn=inspect, dont_mutate=True):
                script.run_env()
    except (Exception, SystemExit) as e:
        # The guard refused a connection: the facts say what it saw.
        if ballast_elsewhere(e) is not None or BALLAST_FACTS.get("reaches_witness") is False:
            return dict(BALLAST_FACTS, reaches_witness=False)
        # Never a password in what is reported: mask user:password@ in URLs.
        raise RuntimeError(re.sub(r"://[^/@\s]*@", "://***@", f"{type(e).__name__}: {e}")) from None
    if "reaches_witness" not in BALLAST_FACTS:
        raise RuntimeError("env.py opened no connection")
    if "version_table" not in BALLAST_FACTS:
        raise RuntimeError("env.py ran without calling context.run_migrations()")
    return dict(BALLAST_FACTS)


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
            probed["connection_error"] = (
                str(e) if isinstance(e, RuntimeError) else f"{type(e).__name__}: {e}"
            ).strip()
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
