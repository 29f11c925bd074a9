"""CPU accounting for load phases on Linux: the CPU seconds a server's processes, Postgres and the whole machine used
over a phase, from /proc, so a throughput figure says how much of the machine it got."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from threadline.bench.load import Load


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds so far of every process (pid → parent, name, seconds) and of the whole machine."""

    at: float
    machine_s: float
    processes: dict[int, tuple[int, str, float]]

    @classmethod
    def take(cls) -> CpuSample:
        ticks = os.sysconf("SC_CLK_TCK")
        found: dict[int, tuple[int, str, float]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                head, _, tail = stat.read_text().rpartition(")")
            except OSError:  # the process ended
                continue
            fields = tail.split()  # from the third field of proc(5)'s stat: state, ppid, ..., utime, stime
            found[int(stat.parent.name)] = (
                int(fields[1]),
                head.partition("(")[2],
                (int(fields[11]) + int(fields[12])) / ticks,
            )
        # user nice system idle iowait irq softirq steal: busy is all but idle and iowait
        jiffies = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return cls(time.perf_counter(), (sum(jiffies) - jiffies[3] - jiffies[4]) / ticks, found)

    def tree(self, root: int) -> list[int]:
        """`root` and its descendants."""
        pids, frontier = [root], [root]
        while frontier:
            frontier = [pid for pid, (parent, _, _) in self.processes.items() if parent in frontier]
            pids += frontier
        return pids

    def seconds(self, pids: list[int]) -> dict[int, float]:
        return {pid: self.processes[pid][2] for pid in pids if pid in self.processes}


@dataclass
class CpuUse:
    """CPU seconds a side got over its blocks: its server's processes, Postgres, the whole machine."""

    wall_s: float = 0.0
    machine_s: float = 0.0
    postgres_s: float = 0.0
    server_s: dict[int, float] = field(default_factory=dict)

    def add(self, before: CpuSample, after: CpuSample, root: int) -> None:
        self.wall_s += after.at - before.at
        self.machine_s += after.machine_s - before.machine_s
        pg_after = after.seconds([p for p, (_, name, _) in after.processes.items() if name == "postgres"])
        pg_before = before.seconds(list(pg_after))
        self.postgres_s += sum(pg_after.values()) - sum(pg_before.get(p, 0.0) for p in pg_after)
        ran, was = after.seconds(after.tree(root)), before.seconds(before.tree(root))
        for pid, seconds in ran.items():
            self.server_s[pid] = self.server_s.get(pid, 0.0) + seconds - was.get(pid, 0.0)

    def cores(self, load: Load) -> dict[str, Any]:
        """Each share in cores (1.0 = one core busy for the whole time); server processes biggest first."""
        per = sorted(self.server_s.values(), reverse=True)
        return {
            "client": load.client_cpu_s / self.wall_s,
            "server": sum(per) / self.wall_s,
            "server_processes": [round(s / self.wall_s, 3) for s in per],
            "postgres": self.postgres_s / self.wall_s,
            "machine": self.machine_s / self.wall_s,
        }
