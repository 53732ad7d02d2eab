"""Checks a capture directory written by `switchyard serve --capture DIR`.

- Every file is mode 0600 and reads on its own (`switchyard trace stats FILE` exits 0).
- In every file, each session's first record is its session-open or a snapshot, so that each
  file can be replayed alone.
- The password appears in no file.
- Over all files (`switchyard trace stats`): nothing was dropped, every session closed, and at
  least the given numbers of sessions, Query messages and CommandCompletes went to the client.
- The files written after --old-files was listed hold a snapshot with a prepared statement and
  a setting (the session that lived through capture off and on again).

usage: capture_check.py --binary B --dir D --password W --old-files F
                        --min-sessions N --min-queries N --min-command-completes N
"""

import argparse
import os
import re
import stat
import subprocess
import sys

LINE = re.compile(r"^\S+ s(\d+) #(\d+) (\S+)")
failures = []


def check(condition, message):
    print(("ok: " if condition else "FAIL: ") + message)
    if not condition:
        failures.append(message)


def run(binary, *args):
    result = subprocess.run([binary, "trace", *args], capture_output=True, text=True)
    return result.returncode, result.stdout, result.stderr


def first_records(binary, path):
    """session -> kind of its first record in this file."""
    code, out, err = run(binary, "show", path)
    if code != 0:
        return None, err.strip()
    first = {}
    for line in out.splitlines():
        match = LINE.match(line)
        if match and match.group(1) != "0":
            first.setdefault(match.group(1), match.group(3))
    return first, ""


def stats_value(text, pattern):
    match = re.search(pattern, text, re.MULTILINE)
    return int(match.group(1)) if match else -1


def message_count(text, direction, name):
    match = re.search(rf"^\s*{re.escape(direction)}\s+{name}\s+(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def main():
    parser = argparse.ArgumentParser()
    for name in ("--binary", "--dir", "--password", "--old-files"):
        parser.add_argument(name, required=True)
    for name in ("--min-sessions", "--min-queries", "--min-command-completes"):
        parser.add_argument(name, type=int, required=True)
    args = parser.parse_args()

    names = sorted(n for n in os.listdir(args.dir) if n.endswith(".trace"))
    paths = [os.path.join(args.dir, n) for n in names]
    check(len(paths) > 2, f"{len(paths)} capture files (rotation happened)")
    password = args.password.encode()
    for path in paths:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode != 0o600:
            check(False, f"{path} has mode {oct(mode)}, not 0600")
        with open(path, "rb") as f:
            if password in f.read():
                check(False, f"the password is in {path}")
        first, error = first_records(args.binary, path)
        if first is None:
            check(False, f"{path} does not read on its own: {error}")
            continue
        bad = {s: k for s, k in first.items() if k not in ("session-open", "snapshot")}
        if bad:
            check(False, f"{path}: sessions begin without session-open or snapshot: {bad}")
    check(not failures, f"all {len(paths)} files: mode 0600, readable alone, sessions begin "
          "with session-open or snapshot, no password")

    code, out, err = run(args.binary, "stats", *paths)
    check(code == 0, f"trace stats over all files exits 0 ({err.strip()})")
    total = stats_value(out, r"^\s*total\s+(\d+)")
    closed = stats_value(out, r"^\s*total\s+\d+ \(.*?(\d+) closed\)")
    dropped = stats_value(out, r"(\d+) records dropped")
    queries = message_count(out, "client->proxy", "Query")
    completes = message_count(out, "proxy->client", "CommandComplete")
    print(f"   sessions {total}, closed {closed}, dropped {dropped}, client Query {queries}, "
          f"CommandComplete to clients {completes}")
    check(dropped == 0, "no record was dropped")
    check(total >= args.min_sessions and closed == total,
          f"{total} sessions (at least {args.min_sessions}), all closed")
    check(queries >= args.min_queries, f"{queries} Query messages (at least {args.min_queries})")
    check(completes >= args.min_command_completes,
          f"{completes} CommandCompletes to clients (at least {args.min_command_completes})")
    for table in ("items", "pgbench_accounts"):
        check(re.search(rf"copy {table} .*from stdin", out, re.IGNORECASE) is not None,
              f"the COPY into {table} is in the capture")

    with open(args.old_files, encoding="utf-8") as f:
        old = set(f.read().split())
    new = [p for p, n in zip(paths, names) if n not in old]
    snapshot = False
    for path in new[:1]:
        code, out, _ = run(args.binary, "show", path)
        snapshot = re.search(r"snapshot user=\"capuser\".*prepared=1 settings=[1-9]", out) is not None
    check(snapshot, "the capture switched on again begins the live session with a snapshot "
          "holding its prepared statement and its SET")
    if failures:
        sys.exit(f"capture_check: {len(failures)} check(s) failed")


if __name__ == "__main__":
    main()
