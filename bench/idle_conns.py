#!/usr/bin/env python3
"""Opens N keep-alive connections, sends one request on each, reads the response, and holds
them idle; then prints the RSS (VmRSS, KiB) of the given server processes, summed.

usage: idle_conns.py HOST PORT N PATH [--token T] --pid PID [--pid PID ...]
prints: IDLE connections=<open> failed=<n> rss_kib=<sum> hwm_kib=<sum>
"""
import argparse
import asyncio
import resource
import sys


def rss(pids, field):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
    return total


async def open_one(host, port, request):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    lower = head.lower()
    if b"content-length:" in lower:
        length = int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
    elif b"transfer-encoding: chunked" in lower:
        await reader.readuntil(b"0\r\n\r\n")
    if status != 200:
        raise RuntimeError(f"status {status}")
    return reader, writer


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p.add_argument("path")
    p.add_argument("--token")
    p.add_argument("--pid", type=int, action="append", required=True)
    p.add_argument("--batch", type=int, default=250)
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.n + 1000)), hard))
    auth = f"Authorization: Bearer {a.token}\r\n" if a.token else ""
    request = f"GET {a.path} HTTP/1.1\r\nHost: {a.host}:{a.port}\r\n{auth}Connection: keep-alive\r\n\r\n".encode()
    conns, failed = [], 0
    for start in range(0, a.n, a.batch):
        results = await asyncio.gather(
            *(open_one(a.host, a.port, request) for _ in range(min(a.batch, a.n - start))), return_exceptions=True
        )
        for r in results:
            if isinstance(r, BaseException):
                failed += 1
                if failed <= 3:
                    print(f"connection failed: {r!r}", file=sys.stderr)
            else:
                conns.append(r)
    await asyncio.sleep(2)  # let the server settle (buffers returned, tasks parked)
    # Every connection must still be open (no idle timeout hit while we measured).
    alive = sum(1 for r, w in conns if not r.at_eof())
    print(f"IDLE connections={alive} failed={failed} rss_kib={rss(a.pid, 'VmRSS')} hwm_kib={rss(a.pid, 'VmHWM')}", flush=True)
    for _, w in conns:
        w.close()


if __name__ == "__main__":
    asyncio.run(main())
