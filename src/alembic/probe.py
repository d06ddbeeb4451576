# ballast's window into an Alembic project: the revision graph, read with Alembic's own
# ScriptDirectory (never by parsing `alembic history` text), printed as one JSON object.
# Run with the project's python, ALEMBIC_CONFIG naming its ini. Reads files only: it
# never imports env.py and never connects to a database.
import ast
import json
import os
import sys

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
        })
    env_py = os.path.join(script.dir, "env.py")
    print(json.dumps({
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
