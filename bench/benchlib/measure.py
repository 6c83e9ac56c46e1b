"""A measured phase (cold apply, no-op, destroy) of one tool for N containers."""

from dataclasses import dataclass, field


@dataclass
class Phase:
    n: int  # containers
    wall: float = 0.0  # seconds: one process, or the sum over one process per container
    procs: int = 0  # processes the harness spawned for it
    maxrss_kib: int = 0  # largest peak RSS among those processes
    counters: dict = field(default_factory=dict)  # summed tool counters (netprov --json)
    majflt: int = 0  # major page faults over those processes: files read back from disk

    def add(self, run):
        self.wall += run.wall
        self.procs += 1
        self.maxrss_kib = max(self.maxrss_kib, run.maxrss_kib)
        self.majflt += run.majflt

    def count(self, key, value):
        self.counters[key] = self.counters.get(key, 0) + value

    @property
    def per_container(self):
        return self.wall / self.n if self.n else 0.0

    def to_json(self):
        return {
            "n": self.n, "wall_s": self.wall, "per_container_s": self.per_container,
            "procs": self.procs, "maxrss_kib": self.maxrss_kib, "majflt": self.majflt,
            "counters": self.counters,
        }
