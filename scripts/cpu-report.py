"""Sums scripts/cpu-sample.py's file by owner: each TorchServe (by its working folder under .work), pytest
and each vitest project, with what they started; and the ten processes that spent most."""

import collections
import json
import re
import sys

with open(sys.argv[1]) as handle:
    processes = json.load(handle)
by_pid = {p["pid"]: p for p in processes}
spent = lambda p: p["cpu"] - p.get("first_cpu", 0.0)  # noqa: E731


def owner_name(p: dict) -> str | None:
    cmd = p["cmd"]
    if cmd.startswith("java") and "ModelServer" in cmd:
        found = re.search(r"\.work/([\w-]+)", cmd)
        return f"TorchServe {found.group(1) if found else p['cwd']}"
    if "pytest" in cmd and "timeout" not in cmd:
        return "pytest"
    found = re.search(r"vitest run --project (\S+)", cmd)
    return f"vitest {found.group(1)}" if found else None


def owner(p: dict) -> str:
    for _ in range(40):
        name = owner_name(p)
        if name:
            return name
        if p["ppid"] not in by_pid:
            return "other"
        p = by_pid[p["ppid"]]
    return "other"


totals = collections.Counter()
for p in processes:
    totals[owner(p)] += spent(p)
print(f"{sum(totals.values()):8.0f} CPU-s sampled")
for name, cpu in totals.most_common():
    print(f"{cpu:8.1f}  {name}")
print("\nmost:")
for p in sorted(processes, key=spent, reverse=True)[:10]:
    print(f"{spent(p):8.1f}  {p['cmd'][:110]}")
