#!/usr/bin/env python3
"""Types keys into a QEMU guest when texts appear on its serial console.

Usage: qmp-keys.py SOCKET LOG LIMIT [TEXT COUNT KEYS]...

SOCKET is QEMU's QMP socket (-qmp unix:SOCKET,server=on,wait=off), LOG the
serial console log that grows as the guest runs. For each step in order:
wait until TEXT occurs at least COUNT times in LOG, then press KEYS (each
character one key on the PS/2 keyboard, which OVMF reads as console
input; '\\n' is Enter). Gives up after LIMIT seconds or when QEMU goes
away. Exit status 0 when every step's keys were sent.
"""
import json
import os
import socket
import sys
import time

QCODES = {"\n": "ret", " ": "spc", "-": "minus", ".": "dot", "/": "slash"}


def qcode(c):
    if c in QCODES:
        return QCODES[c]
    if c.isalnum():
        return c.lower()
    raise SystemExit(f"qmp-keys: no key for {c!r}")


class Qmp:
    def __init__(self, path, deadline):
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.time() > deadline:
                    raise SystemExit("qmp-keys: cannot connect to " + path)
                time.sleep(0.1)
        self.f = self.s.makefile("rwb")
        self.read_reply()  # greeting
        self.cmd("qmp_capabilities")

    def read_reply(self):
        while True:
            line = self.f.readline()
            if not line:
                raise SystemExit("qmp-keys: QEMU went away")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.f.write(json.dumps(req).encode() + b"\n")
        self.f.flush()
        reply = self.read_reply()
        if "error" in reply:
            raise SystemExit(f"qmp-keys: {name}: {reply['error']}")
        return reply


def main():
    if len(sys.argv) < 4 or (len(sys.argv) - 4) % 3:
        sys.exit(__doc__)
    sock, log, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
    steps = sys.argv[4:]
    deadline = time.time() + limit
    qmp = Qmp(sock, deadline)
    for i in range(0, len(steps), 3):
        text, count, keys = steps[i].encode(), int(steps[i + 1]), steps[i + 2]
        while True:
            try:
                with open(log, "rb") as f:
                    if f.read().count(text) >= count:
                        break
            except FileNotFoundError:
                pass
            if time.time() > deadline:
                sys.exit(f"qmp-keys: {steps[i]!r} did not appear {count} time(s)")
            if not os.path.exists(sock):
                sys.exit("qmp-keys: QEMU went away")
            time.sleep(0.1)
        for c in keys.replace("\\n", "\n"):
            qmp.cmd("send-key", keys=[{"type": "qcode", "data": qcode(c)}])
            time.sleep(0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main())
