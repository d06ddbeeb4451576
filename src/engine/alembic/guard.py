# ballast's guard on the connections an Alembic child opens, sourced first by the probe
# and by the launcher of every alembic command. With BALLAST_WITNESS_PID/NAME set, each
# new connection of any engine (a SQLAlchemy Pool "connect" listener) must see ballast's
# witness session, its pid and one-off application name, in its own database; one that
# does not is refused before env.py or Alembic runs anything on it, and the refusal is
# sticky: a later connection that does see the witness proves nothing then (an env.py
# that falls back to DATABASE_URL when its own URL fails). With BALLAST_NO_CONNECT set
# (offline rendering, the graph probe), any connection is refused. A connection that
# passes is named as ballast named the child (PGAPPNAME), whatever env.py set.
import hashlib
import os
import sys

# The project's folder goes last: a package of its own named `alembic/` (its
# script_location) must not shadow the library; its modules stay importable.
sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())] + [os.getcwd()]


class ElsewhereError(Exception):
    """A connection an Alembic child opened does not reach ballast's database."""


BALLAST_FACTS = {}


def _ballast_guard():
    pid = os.environ.get("BALLAST_WITNESS_PID")
    no_connect = os.environ.get("BALLAST_NO_CONNECT")
    if not pid and not no_connect:
        return
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    # md5 of the name, not the name in a literal: nothing to escape, whatever it holds.
    name_md5 = hashlib.md5(os.environ.get("BALLAST_WITNESS_NAME", "").encode()).hexdigest()
    check = (
        "select current_database()::text, current_user::text, "
        "coalesce(host(inet_server_addr()), 'a local socket'), "
        "current_setting('port'), current_setting('application_name'), "
        "current_schema()::text, "
        f"exists(select 1 from pg_stat_activity where pid = {int(pid or 0)} "
        f"and md5(application_name) = '{name_md5}' and datname = current_database())"
    )

    def on_connect(dbapi_connection, _record):
        if no_connect:
            raise ElsewhereError(
                "it opened a database connection where it must not (offline rendering, "
                "or reading the revision files)"
            )
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(check)
            row = cursor.fetchone()
            # The session is named as ballast named the child (PGAPPNAME), also when
            # env.py names its connections itself: ballast's lock-queue guard finds
            # Alembic's session by that name.
            wanted = os.environ.get("PGAPPNAME")
            if wanted and bool(row[6]) and row[4] != wanted:
                quoted = wanted.replace("'", "''")
                cursor.execute(f"set application_name = '{quoted}'")
        finally:
            cursor.close()
        try:
            # Leave no transaction open behind the check; commit keeps the name.
            dbapi_connection.commit()
        except Exception:
            try:
                dbapi_connection.rollback()
            except Exception:
                pass
        if BALLAST_FACTS.get("reaches_witness") is False:
            # Refused already: what the refused connection saw stays the account, and
            # this one is refused too.
            raise ElsewhereError(BALLAST_FACTS["refusal"])
        reaches = bool(row[6])
        BALLAST_FACTS.update({
            "database": row[0],
            "user": row[1],
            "server": f"{row[2]} port {row[3]}",
            "application_name": row[4],
            "current_schema": row[5],
            "reaches_witness": reaches,
        })
        if not reaches:
            BALLAST_FACTS["refusal"] = (
                f"alembic's env.py connects to database `{row[0]}` on {row[2]} port {row[3]} "
                f"(as user {row[1]}), not to the database ballast backs up"
            )
            raise ElsewhereError(BALLAST_FACTS["refusal"])

    event.listen(Pool, "connect", on_connect)


def ballast_elsewhere(error):
    """The ElsewhereError behind `error` (SQLAlchemy or the driver may wrap it)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ElsewhereError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


_ballast_guard()
