#!/usr/bin/env python3
"""Hostile and broken clients against a running proxy.

Each case must end with an ErrorResponse carrying a SQLSTATE, then the proxy closing the
connection; a case that is decidable from the bytes alone must be answered promptly (well
before the login timeout would fire, so the proxy really checked the bytes). Cases where the
client half-closes its side can no longer be told anything: they need only a prompt close.
After every case a normal client (psql -c 'select 1') still works and the proxy still runs.

usage: bad_input.py --port PROXY_PORT [--pid PROXY_PID] --auth-timeout-ms N
       (with_proxy.sh provides PROXY_PORT and PROXY_PID in the environment as well)
"""

import argparse
import os
import random
import socket
import struct
import subprocess
import sys
import time

import pgwire

SPECIAL_CODES = {80877102, 80877103, 80877104, pgwire.PROTOCOL_3_0}


class Failure(Exception):
    pass


def expect_error_and_close(conn, within_s, require_error=True):
    """Reads until the proxy closes. Returns the SQLSTATE of the ErrorResponse (or None)."""
    started = time.monotonic()
    try:
        messages = conn.wait_closed(timeout=within_s)
    except TimeoutError:
        raise Failure(f"the connection was still open after {within_s:.1f} s")
    except ValueError as e:
        raise Failure(f"garbage from the proxy: {e}")
    elapsed = time.monotonic() - started
    errors = [pgwire.parse_fields(p) for kind, p in messages if kind == b"E"]
    others = [kind for kind, _ in messages if kind not in (b"E", b"N")]
    if others:
        raise Failure(f"unexpected messages {others} before the close")
    if not errors:
        if require_error:
            raise Failure("the connection closed without an ErrorResponse")
        return None, elapsed
    if "C" not in errors[-1]:
        raise Failure(f"ErrorResponse without a SQLSTATE: {errors[-1]}")
    return errors[-1]["C"], elapsed


def logged_in(port):
    conn = pgwire.connect(port, "postgres", "postgres")
    conn.query("select 1")
    return conn


class Cases:
    def __init__(self, port, auth_timeout_s):
        self.port = port
        self.auth_timeout_s = auth_timeout_s
        # Bytes that are wrong on their own must be refused in well under the login timeout.
        self.prompt_s = auth_timeout_s / 2

    def raw(self):
        return pgwire.Conn("127.0.0.1", self.port)

    def random_first_packet(self, seed):
        data = random.Random(seed).randbytes(64)
        conn = self.raw()
        conn.send(data)
        return expect_error_and_close(conn, self.prompt_s)

    def random_startup_body(self, seed):
        """A correct length word followed by random bytes: an unknown protocol code."""
        rng = random.Random(seed)
        body = rng.randbytes(60)
        while struct.unpack("!I", body[:4])[0] in SPECIAL_CODES:
            body = rng.randbytes(60)
        conn = self.raw()
        conn.send(struct.pack("!I", len(body) + 4) + body)
        return expect_error_and_close(conn, self.prompt_s)

    def truncated_startup_then_close(self):
        packet = pgwire.startup_packet({"user": "postgres", "database": "postgres"})
        conn = self.raw()
        conn.send(packet[: len(packet) // 2])
        conn.sock.shutdown(socket.SHUT_WR)
        return expect_error_and_close(conn, self.prompt_s, require_error=False)

    def startup_length_2_pow_31(self):
        conn = self.raw()
        conn.send(struct.pack("!II", 1 << 31, pgwire.PROTOCOL_3_0))
        return expect_error_and_close(conn, self.prompt_s)

    def startup_over_10000_bytes(self):
        # The length word announces 10,001+ bytes; only the start is sent, so the proxy must
        # judge the length word itself (sending all of it could make our own read fail with a
        # reset when the proxy closes with unread bytes).
        packet = pgwire.startup_packet({"user": "postgres", "database": "x" * 12000})
        conn = self.raw()
        conn.send(packet[:200])
        return expect_error_and_close(conn, self.prompt_s)

    def unknown_message_type(self):
        conn = logged_in(self.port)
        conn.send(pgwire.message(b"\x01", b"junk"))
        return expect_error_and_close(conn, self.prompt_s)

    def typed_message_length_2_pow_31(self):
        conn = logged_in(self.port)
        conn.send(b"Q" + struct.pack("!I", 1 << 31) + b"select 1")
        return expect_error_and_close(conn, self.prompt_s)

    def truncated_message_then_close(self):
        conn = logged_in(self.port)
        conn.send(b"Q" + struct.pack("!I", 100) + b"select")
        conn.sock.shutdown(socket.SHUT_WR)
        return expect_error_and_close(conn, self.prompt_s, require_error=False)

    def silent_client(self):
        conn = self.raw()
        sqlstate, elapsed = expect_error_and_close(conn, self.auth_timeout_s + 5)
        if elapsed < self.auth_timeout_s * 0.8:
            raise Failure(f"closed after {elapsed:.1f} s, before the login timeout")
        return sqlstate, elapsed


def normal_client_works(port):
    result = subprocess.run(
        [os.path.join(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"), "psql"), "-X", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
         "-Atc", "select 1"],
        capture_output=True, text=True, timeout=30,
        env=dict(os.environ, PGCONNECT_TIMEOUT="10"))
    if result.stdout.strip() != "1":
        raise Failure(f"psql -c 'select 1' then failed: {result.stdout}{result.stderr}".strip())


def alive(pid):
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=os.environ.get("PROXY_PORT"))
    parser.add_argument("--pid", type=int, default=os.environ.get("PROXY_PID") or None)
    parser.add_argument("--auth-timeout-ms", type=int, required=True)
    args = parser.parse_args()
    cases = Cases(args.port, args.auth_timeout_ms / 1000)
    plan = [(f"random first packet (seed {s})", lambda s=s: cases.random_first_packet(s))
            for s in (1, 2, 3)]
    plan += [(f"random startup body (seed {s})", lambda s=s: cases.random_startup_body(s))
             for s in (1, 2, 3)]
    plan += [
        ("truncated startup packet, then close", cases.truncated_startup_then_close),
        ("startup length word 2^31", cases.startup_length_2_pow_31),
        ("startup packet over 10,000 bytes", cases.startup_over_10000_bytes),
        ("unknown message type after login", cases.unknown_message_type),
        ("typed message length 2^31 after login", cases.typed_message_length_2_pow_31),
        ("truncated typed message, then close", cases.truncated_message_then_close),
        ("client that never sends anything", cases.silent_client),
    ]
    failures = 0
    for name, case in plan:
        try:
            sqlstate, elapsed = case()
            normal_client_works(args.port)
            if not alive(args.pid):
                raise Failure("the proxy process died")
            answer = f"ErrorResponse {sqlstate}" if sqlstate else "closed"
            print(f"ok: {name}: {answer} in {elapsed * 1000:.0f} ms; select 1 still works")
        except (Failure, pgwire.PgError, pgwire.Closed, OSError, ValueError,
                subprocess.TimeoutExpired) as e:
            failures += 1
            print(f"FAIL: {name}: {type(e).__name__}: {e}")
            if not alive(args.pid):
                print("the proxy process is gone; stopping")
                break
    print(f"bad_input: {len(plan) - failures} of {len(plan)} cases passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
