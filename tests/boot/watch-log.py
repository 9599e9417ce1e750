#!/usr/bin/env python3
"""Times texts appearing on a growing serial console log.

Usage: watch-log.py LOG START PID LIMIT TEXT...

START is the run's start as seconds since the epoch (`date +%s.%N`), PID
the process whose end also ends the watch (QEMU's runner), LIMIT a bound
in seconds. Prints `SECONDS TEXT` for each TEXT when it first appears, in
order of appearance; stops once the last TEXT has appeared, the process
has ended (after a final read) or LIMIT has passed. Reads only what was
added since the last look, so watching costs next to nothing.
"""
import os
import sys
import time


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    log, start, pid, limit = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    texts = [t.encode() for t in sys.argv[5:]]
    seen = set()
    data = b""
    pos = 0
    keep = max(len(t) for t in texts)
    while True:
        running = alive(pid)
        try:
            with open(log, "rb") as f:
                f.seek(pos)
                new = f.read()
        except FileNotFoundError:
            new = b""
        if new:
            now = time.time()
            pos += len(new)
            data = data[-keep:] + new
            for t in texts:
                if t not in seen and t in data:
                    seen.add(t)
                    print(f"{now - start:.2f} {t.decode()}", flush=True)
        if texts[-1] in seen or not running or time.time() - start > limit:
            break
        time.sleep(0.02)


if __name__ == "__main__":
    main()
