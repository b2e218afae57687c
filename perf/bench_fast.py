"""Micro-benchmarks of zray._fast, compiled vs pure-Python twin.

    python perf/bench_fast.py            # everything
    python perf/bench_fast.py alloc      # allocator only
    python perf/bench_fast.py copy       # copy_into only
    python perf/bench_fast.py populate   # pre-faulting a fresh shm file

allocate/free: steady state with N live allocations of mixed sizes -- each step frees a random
live allocation and allocates a new one (2 ops).  copy_into: GB/s into an already-written
("warm") shared mmap.  The pure twin's copy is one memcpy (memoryview slice assignment), so for
sizes >= 32 MiB cython-vs-python is also 2-threads-vs-1.
"""

import mmap
import os
import random
import sys
import tempfile
import time

import numpy as np

sys.path.insert(
    0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)  # run from a checkout
import zray._fast as fast  # noqa: E402


def bench_alloc(impls, live_counts=(1_000, 100_000), steps=200_000):
    print("allocate+free, steady state (ops/s, 1 op = one allocate or one free)")
    for n in live_counts:
        for label, module in impls:
            rng = random.Random(0)
            sizes = [rng.choice((64, 100, 1000, 4096, 70_000)) for _ in range(n + steps)]
            victims = [rng.random() for _ in range(steps)]
            a = module.Allocator(sum(sizes[:n]) * 2 + (1 << 24))
            live = [a.allocate(s) for s in sizes[:n]]
            k = steps if label == "cython" or n <= 1000 else steps // 10
            t0 = time.perf_counter()
            for i in range(k):
                j = int(victims[i] * n)
                a.free(live[j])
                live[j] = a.allocate(sizes[n + i])
            dt = time.perf_counter() - t0
            t0 = time.perf_counter()
            for i in range(k):  # the same loop without the calls: interpreter overhead
                j = int(victims[i] * n)
                live[j] = live[j] + sizes[n + i] * 0
            overhead = time.perf_counter() - t0
            print(
                f"  {label:7s} live={n:>7,d}  {2 * k / dt / 1e6:6.2f} M ops/s  "
                f"({dt / (2 * k) * 1e9:5.0f} ns/op, of which ~{overhead / (2 * k) * 1e9:.0f} "
                f"ns loop overhead)"
            )


def bench_copy(
    impls,
    sizes=(
        1 << 10,
        64 << 10,
        1 << 20,
        16 << 20,
        32 << 20,
        64 << 20,
        128 << 20,
        256 << 20,
        512 << 20,
    ),
):
    print("copy_into a warm shared mmap (GB/s, median)")
    cap = max(sizes)
    arena = mmap.mmap(-1, cap)  # MAP_SHARED anonymous, like the shm arena
    arena.write(b"\1" * cap)  # warm every page
    src_all = np.random.default_rng(0).integers(0, 255, cap, dtype=np.uint8)
    for size in sizes:
        src = src_all[:size]
        reps = max(5, min(2000, (1 << 30) // size))
        row = []
        for label, module in impls:
            module.copy_into(arena, 0, src)  # warm caches and the code path
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                module.copy_into(arena, 0, src)
                times.append(time.perf_counter() - t0)
            times.sort()
            row.append(f"{label} {size / times[len(times) // 2] / 1e9:6.2f}")
        print(f"  {size / 2**20:8.3f} MiB   " + "   ".join(row))
    del src
    arena.close()


def bench_populate(impls, size=256 << 20):
    print(
        f"{size >> 20} MiB into a new mapping of a shm file, fresh or fallocated beforehand (as "
        "the node pre-faults): copy directly vs populate then copy (GB/s of the whole write)"
    )
    src = np.ones(size, dtype=np.uint8)
    for label, module in impls:
        for fallocated in (False, True):
            row = []
            for prefault in (False, True):
                # Unlinked at once: no leftovers, and no race with zray's stale-arena cleanup.
                fd, path = tempfile.mkstemp(prefix="bench-fast-", dir="/dev/shm")
                os.unlink(path)
                try:
                    os.ftruncate(fd, size)
                    if fallocated:
                        os.posix_fallocate(fd, 0, size)
                    with mmap.mmap(fd, size) as m:
                        t0 = time.perf_counter()
                        if prefault:
                            module.populate(m, 0, size)
                        t1 = time.perf_counter()
                        module.copy_into(m, 0, src)
                        t2 = time.perf_counter()
                finally:
                    os.close(fd)
                if prefault:
                    row.append(
                        f"populate {size / (t1 - t0) / 1e9:5.2f} + copy "
                        f"{size / (t2 - t1) / 1e9:5.2f} = {size / (t2 - t0) / 1e9:5.2f}"
                    )
                else:
                    row.append(f"direct {size / (t2 - t1) / 1e9:5.2f}")
            kind = "fallocated" if fallocated else "fresh"
            print(f"  {label:7s} {kind:10s} " + "   ".join(row))


def main(argv):
    pairs = fast.implementations()
    impls = lambda name: [
        (label, mod) for label, mod in zip(("cython", "python"), pairs[name]) if mod is not None
    ]
    what = set(argv[1:]) or {"alloc", "copy", "populate"}
    if "alloc" in what:
        bench_alloc(impls("allocator"))
    if "copy" in what:
        bench_copy(impls("buffers"))
    if "populate" in what and os.path.isdir("/dev/shm"):
        bench_populate(impls("buffers"))


if __name__ == "__main__":
    main(sys.argv)
