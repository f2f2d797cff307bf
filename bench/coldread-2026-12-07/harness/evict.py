#!/usr/bin/env python3
"""evict.py DIR TOPIC EVERY: drop one aligned MiB in every EVERY MiB of the topic's segments from the page
cache (EVERY=1: all of them), as other processes' page-cache churn does (whole folios: this kernel keeps
file pages in large folios, and DONTNEED of a smaller range inside one drops nothing). Prints pages resident before/after."""
import os, sys, glob
d, topic, every = sys.argv[1], sys.argv[2], int(sys.argv[3])
n = 0
for f in glob.glob(f"{d}/{topic}-*/*.log"):
    fd = os.open(f, os.O_RDONLY)
    size = os.fstat(fd).st_size
    if every == 1:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); n += size // 4096
    else:
        for off in range(0, size, (1 << 20) * every):
            os.posix_fadvise(fd, off, 1 << 20, os.POSIX_FADV_DONTNEED); n += 256
    os.close(fd)
print(n)
