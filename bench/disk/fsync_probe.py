#!/usr/bin/env python3
"""What one durable append costs this machine's disk, by size (docs/benchmarks.md).

Appends blocks of each size to a fresh file in DIR (default: the current directory,
i.e. where noema's data would live), with fdatasync after each, as SQLite's WAL commit
does, and prints the mean time per append and the bandwidth. The single-event figures
of bench/http/run.sh depend on it: a group commit of N events writes about N times the
"KB written to disk per event" that the script reports, then waits for one such sync.

usage: bench/disk/fsync_probe.py [DIR] [APPENDS]   (APPENDS per size, default 200)
"""
import os
import sys
import tempfile
import time

directory = sys.argv[1] if len(sys.argv) > 1 else "."
appends = int(sys.argv[2]) if len(sys.argv) > 2 else 200
sizes = [4 << 10, 16 << 10, 64 << 10, 256 << 10, 512 << 10, 1 << 20, 4 << 20]

print("| append size | ms per append + fdatasync | MB/s |")
print("|---:|---:|---:|")
with tempfile.TemporaryDirectory(dir=directory, prefix="noema-fsync-") as work:
    for size in sizes:
        path = os.path.join(work, "probe")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        block = os.urandom(size)
        count = max(10, min(appends, (256 << 20) // size))  # at most 256 MiB per size
        start = time.perf_counter()
        for _ in range(count):
            os.write(fd, block)
            os.fdatasync(fd)
        seconds = (time.perf_counter() - start) / count
        os.close(fd)
        os.unlink(path)
        print(f"| {size >> 10} KiB | {seconds * 1000:.3f} | {size / seconds / 1e6:.0f} |")
