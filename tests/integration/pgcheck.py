#!/usr/bin/env python3
"""Logs in (and optionally runs one query), and checks the outcome against an expectation.

usage: pgcheck.py --port P --user U [--password X] [--database D] [--query SQL]
                  (--expect-ok [--expect-value V] | --expect-sqlstate CODE)
Exit 0 when the expectation holds; otherwise prints what happened and exits 1.
"""

import argparse
import sys

import pgwire


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password")
    parser.add_argument("--database", default="postgres")
    parser.add_argument("--query")
    parser.add_argument("--expect-value")
    expect = parser.add_mutually_exclusive_group(required=True)
    expect.add_argument("--expect-ok", action="store_true")
    expect.add_argument("--expect-sqlstate")
    args = parser.parse_args()

    what = f"user {args.user} on port {args.port}"
    try:
        conn = pgwire.connect(args.port, args.user, args.database, args.password)
        rows = conn.query(args.query) if args.query else None
        conn.close()
    except pgwire.PgError as e:
        if args.expect_sqlstate == e.sqlstate:
            print(f"ok: {what} refused with {e.sqlstate} ({e.fields.get('M')})")
            return 0
        print(f"FAIL: {what}: got error {e}, expected "
              f"{args.expect_sqlstate or 'success'}")
        return 1
    except (pgwire.Closed, TimeoutError, ValueError, OSError) as e:
        print(f"FAIL: {what}: {type(e).__name__}: {e}")
        return 1
    if args.expect_sqlstate:
        print(f"FAIL: {what}: logged in, expected SQLSTATE {args.expect_sqlstate}")
        return 1
    if args.expect_value is not None and (not rows or rows[0][0] != args.expect_value):
        print(f"FAIL: {what}: query returned {rows}, expected {args.expect_value}")
        return 1
    print(f"ok: {what} logged in" + (f", {args.query!r} -> {rows}" if rows else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
