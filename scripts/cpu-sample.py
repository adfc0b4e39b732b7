"""Where a run's CPU goes: samples every process's CPU time once a second until SIGTERM, then writes
[{pid, ppid, cmd, cwd, cpu, start, first_cpu}] to the file named first. scripts/cpu-report.py sums it up.

    python3 scripts/cpu-sample.py .work/cpu.json & sampler=$!; npm test; kill $sampler; python3 scripts/cpu-report.py .work/cpu.json

A process that lives under a second between samples is missed; one already running at the start counts
only what it spent after (first_cpu)."""

import json
import os
import signal
import sys
import time

seen: dict = {}


def look(first: bool) -> None:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        ppid, cpu, start = int(fields[1]), (int(fields[11]) + int(fields[12])) / 100, int(fields[19])
        key = f"{entry}:{start}"
        process = seen.get(key)
        if process is None:
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")[:400]
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                cmd, cwd = "", ""
            process = seen[key] = {
                "pid": int(entry),
                "ppid": ppid,
                "cmd": cmd,
                "cwd": cwd,
                "start": start,
                "first_cpu": cpu if first else 0.0,
            }
        process["cpu"] = cpu
        if process["ppid"] > 1:
            continue
        process["ppid"] = ppid  # keep the parent it had before it was reparented


def finish(*_) -> None:
    with open(sys.argv[1], "w") as f:
        json.dump(list(seen.values()), f)
    sys.exit(0)


signal.signal(signal.SIGTERM, finish)
look(first=True)
while True:
    time.sleep(1)
    look(first=False)
