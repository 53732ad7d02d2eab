"""A session that is live while capture is switched off and on again with SIGUSR1.

It makes session state (a SET and a prepared statement), has the proxy stop capturing, writes the
names of the capture files that exist then to --old-files, has it start again, and uses the
prepared statement. The new capture must begin this session with a snapshot holding that state,
which the caller checks in the files not listed in --old-files.

usage: capture_toggle.py --port P --user U --password W --database D --proxy-pid PID
                         --proxy-log LOG --capture-dir DIR --old-files FILE
"""

import argparse
import os
import signal
import sys
import time

import pgwire


def wait_for_count(path, needle, count, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(path, encoding="utf-8", errors="replace") as log:
            if log.read().count(needle) >= count:
                return
        time.sleep(0.05)
    sys.exit(f"FAIL: the proxy log never had {count} lines with {needle!r}")


def main():
    parser = argparse.ArgumentParser()
    for name in ("--port", "--proxy-pid"):
        parser.add_argument(name, type=int, required=True)
    for name in ("--user", "--password", "--database", "--proxy-log", "--capture-dir",
                 "--old-files"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()

    with open(args.proxy_log, encoding="utf-8", errors="replace") as log:
        ons = log.read().count("event=capture state=on")
    conn = pgwire.connect(args.port, args.user, args.database, args.password)
    conn.query("set search_path = public, pg_catalog")
    conn.query("prepare toggle_statement (int) as select $1 + 1")

    os.kill(args.proxy_pid, signal.SIGUSR1)
    wait_for_count(args.proxy_log, "event=capture state=off", 1)
    time.sleep(0.5)  # the writer finishes the old files (it closes them at once)
    with open(args.old_files, "w", encoding="utf-8") as out:
        for name in sorted(os.listdir(args.capture_dir)):
            out.write(name + "\n")
    os.kill(args.proxy_pid, signal.SIGUSR1)
    wait_for_count(args.proxy_log, "event=capture state=on", ons + 1)

    rows = conn.query("execute toggle_statement(41)")
    if rows != [["42"]]:
        sys.exit(f"FAIL: execute after the capture restarted returned {rows}")
    conn.send(pgwire.message(b"X"))
    conn.close()
    print("ok: a live session went through capture off and on again")


if __name__ == "__main__":
    main()
