"""Transaction pooling through switchyard (run by transaction_pooling_test.sh, which starts the
proxy with --pool-mode transaction --pool-size POOL_SIZE in front of one server).

What a client must not notice although its transactions run on different server connections:
  1. a SET and an SQL PREPARE made in one transaction hold in a later one served by another
     server connection (checked with pg_backend_pid());
  2. a protocol-level named prepared statement (Parse once, Bind/Execute later) works there too;
  3. DEALLOCATE ALL forgets the client's statements, and only the client's;
  4. a client that LISTENs keeps a connection and gets its notifications;
  5. a transaction keeps its one server connection from BEGIN to COMMIT.
"""
import os
import struct
import sys

import pgwire

PORT = int(os.environ["PROXY_PORT"])
POOL_SIZE = int(os.environ["POOL_SIZE"])


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def pid_of(conn):
    return int(conn.query("SELECT pg_backend_pid()")[0][0])


def extended(conn, statement, params, parse_query=None):
    """Parse (when parse_query is given) + Bind + Execute + Sync; returns the rows."""
    out = b""
    if parse_query is not None:
        out += pgwire.message(b"P", statement.encode() + b"\0" + parse_query.encode() + b"\0" +
                              struct.pack("!h", 0))
    values = b"".join(struct.pack("!i", len(v)) + v.encode() for v in params)
    out += pgwire.message(b"B", b"\0" + statement.encode() + b"\0" + struct.pack("!h", 0) +
                          struct.pack("!h", len(params)) + values + struct.pack("!h", 0))
    out += pgwire.message(b"E", b"\0" + struct.pack("!i", 0))
    out += pgwire.message(b"S")
    conn.send(out)
    return conn.result()


def hold_all_but(owner_pid):
    """Takes every pooled connection with an open transaction, then gives back all of them but
    the one whose backend is owner_pid: the next transaction of anyone else runs elsewhere."""
    holders = []
    for _ in range(POOL_SIZE):
        conn = pgwire.connect(PORT)
        conn.query("BEGIN")
        holders.append((conn, pid_of(conn)))
    pids = {pid for _, pid in holders}
    if len(pids) != POOL_SIZE:
        fail(f"{POOL_SIZE} open transactions shared server connections: pids {sorted(pids)}")
    if owner_pid not in pids:
        fail(f"the idle client's connection {owner_pid} was not given back to the pool "
             f"(the pool's connections are {sorted(pids)})")
    kept = None
    for conn, pid in holders:
        if pid == owner_pid:
            kept = conn
        else:
            conn.query("COMMIT")
            conn.close()
    return kept


def main():
    a = pgwire.connect(PORT)
    a.query("SET application_name = 'tx_pool_a'")
    a.query("SET search_path = tx_pool_schema, public")
    a.query("CREATE SCHEMA IF NOT EXISTS tx_pool_schema")
    a.query("CREATE TABLE IF NOT EXISTS tx_pool_schema.t(x int)")
    a.query("TRUNCATE t")
    a.query("INSERT INTO t VALUES (1), (2), (3)")
    a.query("PREPARE q(int) AS SELECT count(*) FROM t WHERE x <= $1")
    extended(a, "named_p", ["2"], parse_query="SELECT x * 10 FROM t WHERE x = $1::int")
    first_pid = pid_of(a)

    # 1 and 2: another server connection serves a's next statements.
    kept = hold_all_but(first_pid)
    if pid_of(a) == first_pid:
        fail("the client's statement ran on the connection another client holds")
    settings = a.query("SELECT current_setting('application_name'), current_setting('search_path')")
    if settings != [["tx_pool_a", "tx_pool_schema, public"]]:
        fail(f"SETs were not carried to the new server connection: {settings}")
    if a.query("EXECUTE q(2)") != [["2"]]:
        fail("the SQL prepared statement did not survive the change of server connection")
    if extended(a, "named_p", ["3"]) != [["30"]]:
        fail("the protocol prepared statement did not survive the change of server connection")
    kept.query("COMMIT")
    kept.close()

    # 3: DEALLOCATE ALL forgets a's statements, on whatever connection serves it next.
    b = pgwire.connect(PORT)
    b.query("PREPARE q(int) AS SELECT $1 + 100")
    a.query("DEALLOCATE ALL")
    try:
        a.query("EXECUTE q(1)")
        fail("EXECUTE of a deallocated statement succeeded")
    except pgwire.PgError as error:
        if error.sqlstate != "26000":
            fail(f"EXECUTE after DEALLOCATE ALL: SQLSTATE {error.sqlstate}, expected 26000")
    if b.query("EXECUTE q(1)") != [["101"]]:
        fail("another client's prepared statement was lost by a's DEALLOCATE ALL")

    # 4: a listening client keeps its connection and gets its notifications.
    a.query("LISTEN tx_pool_channel")
    listen_pid = pid_of(a)
    b.query("NOTIFY tx_pool_channel, 'hello'")
    kind, payload = a.read_message(timeout=10)
    if kind != b"A" or b"hello" not in payload:
        fail(f"expected the notification, got {kind!r} {payload!r}")
    if pid_of(a) != listen_pid:
        fail("a listening client was moved to another server connection")
    a.query("UNLISTEN *")

    # 5: a transaction keeps its connection from BEGIN to COMMIT while others come and go.
    a.query("BEGIN")
    begin_pid = pid_of(a)
    for _ in range(3):
        other = pgwire.connect(PORT)
        other.query("SELECT 1")
        other.close()
        if pid_of(a) != begin_pid:
            fail("a transaction moved to another server connection")
    a.query("COMMIT")
    a.query("DROP SCHEMA tx_pool_schema CASCADE")
    a.close()
    b.close()
    print("transaction pooling: ok")


if __name__ == "__main__":
    main()
