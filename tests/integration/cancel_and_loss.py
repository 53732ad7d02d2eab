#!/usr/bin/env python3
"""Cancel and server loss through the proxy.

1. psql (libpq) interrupted with SIGINT sends a CancelRequest through the proxy: its
   `select pg_sleep(30)` ends within seconds with SQLSTATE 57014.
2. A CancelRequest carrying a wrong secret cancels nothing; the right key does.
3. The server backend of a client is terminated (pg_terminate_backend, from a direct
   connection) in the middle of its query: the client gets SQLSTATE 08006 (never the server's
   own FATAL 57P01), then either a clean close (a FATAL 08006 may say so first) or
   ReadyForQuery and a session that keeps working; a new client
   through the proxy works, and the proxy is still running.

usage (via with_proxy.sh, which provides PROXY_PORT, PROXY_PID and PRIMARY_PORT):
  with_proxy.sh BINARY -- cancel_and_loss.py
"""

import os
import struct
import subprocess
import sys
import time

import pgwire

PROXY_PORT = int(os.environ["PROXY_PORT"])
PRIMARY_PORT = int(os.environ["PRIMARY_PORT"])
PROXY_PID = int(os.environ["PROXY_PID"]) if os.environ.get("PROXY_PID") else None
PSQL = os.path.join(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"), "psql")


class Failure(Exception):
    pass


def direct_value(sql):
    conn = pgwire.connect(PRIMARY_PORT)
    try:
        rows = conn.query(sql)
    finally:
        conn.close()
    return rows[0][0] if rows else None


def wait_for_backend(marker, timeout_s=10):
    """The pid of the server backend running the query tagged with `marker`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid = direct_value(f"select pid from pg_stat_activity where state = 'active' and "
                           f"query like '%{marker}%' and pid <> pg_backend_pid()")
        if pid:
            return int(pid)
        time.sleep(0.05)
    raise Failure(f"the query tagged {marker} never showed up in pg_stat_activity")


def psql_cancel():
    started = time.monotonic()
    result = subprocess.run(
        ["timeout", "-s", "INT", "2", PSQL, "-X", "-v", "VERBOSITY=verbose", "-h", "127.0.0.1",
         "-p", str(PROXY_PORT), "-U", "postgres", "-d", "postgres",
         "-c", "select pg_sleep(30) /* psql-cancel */"],
        capture_output=True, text=True, timeout=40,
        env=dict(os.environ, PGCONNECT_TIMEOUT="10"))
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    if "57014" not in output:
        raise Failure(f"no 57014 after SIGINT (exit {result.returncode}): {output.strip()}")
    if elapsed > 10:
        raise Failure(f"the cancelled query took {elapsed:.1f} s to end")
    still = direct_value("select count(*) from pg_stat_activity where "
                         "query like '%psql-cancel%' and state = 'active' and "
                         "pid <> pg_backend_pid()")
    if still != "0":
        raise Failure("the server is still running the cancelled query")
    return f"57014 after {elapsed:.1f} s (SIGINT at 2 s)"


def cancel_request(key):
    conn = pgwire.Conn("127.0.0.1", PROXY_PORT)
    conn.send(struct.pack("!IIII", 16, 80877102, key[0], key[1]))
    try:
        conn.wait_closed(timeout=5)  # the proxy answers a CancelRequest by closing
    except TimeoutError:
        raise Failure("the proxy kept a CancelRequest connection open")
    finally:
        conn.close()


def cancel_keys():
    conn = pgwire.connect(PROXY_PORT)
    try:
        if conn.backend_key is None:
            raise Failure("no BackendKeyData at login")
        pid, secret = conn.backend_key
        conn.send(pgwire.message(b"Q", b"select pg_sleep(2) /* wrong-key */\0"))
        wait_for_backend("wrong-key")
        cancel_request((pid, secret ^ 0x5A5A5A5A))
        try:
            conn.result(timeout=10)
        except pgwire.PgError as e:
            raise Failure(f"a CancelRequest with a wrong secret cancelled the query: {e}")
        conn.send(pgwire.message(b"Q", b"select pg_sleep(30) /* right-key */\0"))
        wait_for_backend("right-key")
        started = time.monotonic()
        cancel_request((pid, secret))
        try:
            conn.result(timeout=10)
            raise Failure("the right CancelRequest did not cancel pg_sleep(30)")
        except pgwire.PgError as e:
            if e.sqlstate != "57014":
                raise Failure(f"cancel gave {e}, not 57014")
        rows = conn.query("select 1")  # the session is fine after a cancel
        if rows != [["1"]]:
            raise Failure(f"select 1 after the cancel returned {rows}")
        return f"wrong secret ignored; right one gave 57014 in {time.monotonic() - started:.1f} s"
    finally:
        conn.close()


def server_loss():
    conn = pgwire.connect(PROXY_PORT)
    try:
        conn.send(pgwire.message(b"Q", b"select pg_sleep(30) /* server-loss */\0"))
        backend = wait_for_backend("server-loss")
        if direct_value(f"select pg_terminate_backend({backend})") != "t":
            raise Failure("pg_terminate_backend failed")
        started = time.monotonic()
        # pg_sleep's RowDescription may come first: the server sends it before it sleeps.
        kind, payload = read_past(conn, skip=(b"N", b"T"))
        if kind != b"E":
            raise Failure(f"expected an ErrorResponse, got {kind!r}")
        fields = pgwire.parse_fields(payload)
        if fields.get("C") != "08006":
            raise Failure(f"the client saw {fields.get('S')} {fields.get('C')} "
                          f"({fields.get('M')}), not 08006")
        elapsed = time.monotonic() - started
        # Then either a close (perhaps after a FATAL that says so, with the same SQLSTATE), or
        # ReadyForQuery and a session that goes on.
        while True:
            try:
                kind, payload = read_past(conn, skip=(b"N",))
            except pgwire.Closed:
                return f"08006 in {elapsed * 1000:.0f} ms, then a clean close"
            if kind == b"Z":
                break
            fields = pgwire.parse_fields(payload) if kind == b"E" else {}
            if fields.get("C") != "08006":
                raise Failure(f"after 08006 expected ReadyForQuery or a close, got {kind!r} "
                              f"{fields}")
        rows = conn.query("select 1")
        if rows != [["1"]]:
            raise Failure(f"the session stayed open but select 1 returned {rows}")
        return f"08006 in {elapsed * 1000:.0f} ms; the session stayed open and works"
    finally:
        conn.close()


def read_past(conn, skip):
    while True:
        kind, payload = conn.read_message(timeout=10)
        if kind not in skip:
            return kind, payload


def new_client_works():
    conn = pgwire.connect(PROXY_PORT)
    try:
        if conn.query("select 1") != [["1"]]:
            raise Failure("select 1 returned something else")
    finally:
        conn.close()


def main():
    failures = 0
    for name, case in [("psql SIGINT cancel", psql_cancel),
                       ("CancelRequest keys", cancel_keys),
                       ("server backend terminated mid-query", server_loss)]:
        try:
            detail = case()
            new_client_works()
            if PROXY_PID and not os.path.exists(f"/proc/{PROXY_PID}"):
                raise Failure("the proxy process died")
            print(f"ok: {name}: {detail}; a new client works")
        except (Failure, pgwire.PgError, pgwire.Closed, TimeoutError, OSError, ValueError,
                subprocess.TimeoutExpired) as e:
            failures += 1
            print(f"FAIL: {name}: {type(e).__name__}: {e}")
    print(f"cancel_and_loss: {3 - failures} of 3 cases passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
