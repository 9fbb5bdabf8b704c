"""The op profiler: `with profile() as p: ...` times every op's forward and backward by op type.

It sets the engine's one hook (`engine.OP_HOOK`), through which every Function's forward and
backward then run; outside the block nothing is timed and the hook costs one global lookup.
"""
import time

from . import engine


class profile:
    """Context manager timing every op's forward and backward by op type: `with profile() as p: ...`.

    `p.stats` maps op name -> [forward calls, forward seconds, backward calls, backward seconds];
    `p.table()` formats it, slowest first. On a GPU pass `sync` (e.g. a device synchronize) so
    each time covers the kernels, not just their launch.
    """

    def __init__(self, sync=None):
        self.stats, self.sync = {}, sync or (lambda: None)

    def __enter__(self):
        self.prev, engine.OP_HOOK = engine.OP_HOOK, self.run
        return self

    def __exit__(self, *exc):
        engine.OP_HOOK = self.prev

    def run(self, name, backward, f, *args):
        """Call f(*args), adding its time to op `name`'s forward (backward=0) or backward (1) row."""
        self.sync()
        t0 = time.perf_counter()
        out = f(*args)
        self.sync()
        row = self.stats.setdefault(name, [0, 0.0, 0, 0.0])
        row[2 * backward] += 1
        row[2 * backward + 1] += time.perf_counter() - t0
        return out

    def table(self, steps=1):
        """Per-step milliseconds by op, forward and backward, slowest total first."""
        rows = sorted(self.stats.items(), key=lambda kv: -(kv[1][1] + kv[1][3]))
        total = sum(r[1] + r[3] for _, r in rows) or 1.0
        lines = [f"{'op':<14}{'calls':>7}{'fwd ms':>10}{'bwd ms':>10}{'share':>8}"]
        for name, (nf, tf, nb, tb) in rows:
            lines.append(f"{name:<14}{nf // steps:>7}{1e3 * tf / steps:>10.2f}{1e3 * tb / steps:>10.2f}"
                         f"{100 * (tf + tb) / total:>7.1f}%")
        lines.append(f"{'total':<14}{'':>7}{1e3 * sum(r[1] for _, r in rows) / steps:>10.2f}"
                     f"{1e3 * sum(r[3] for _, r in rows) / steps:>10.2f}")
        return "\n".join(lines)
