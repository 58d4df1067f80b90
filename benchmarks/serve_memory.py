"""Memory under parallel uploads: 48 x 7 MiB bodies at once against a real `qfsum serve` on loopback.

    python benchmarks/serve_memory.py [--pipeline extractive-bm25] [--uploads 48] [--mib 7]

Prints the server's resident memory before and at its peak (VmHWM), and the HTTP statuses.
"""

from __future__ import annotations

import argparse
import collections
import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

PARAGRAPH = "The council discussed the bridge budget and the library roof repairs at length. "


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith(key)).split()[1]) // 1024


def wait_healthy(url: str, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="extractive-bm25")
    parser.add_argument("--uploads", type=int, default=48)
    parser.add_argument("--mib", type=float, default=7.0)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "qfsum.cli", "serve", "--pipeline", args.pipeline,
                               "--port", str(port), "--log-level", "warning"], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        before = rss_mb(server.pid, "VmRSS:")
        count = int(args.mib * 2**20 // (len(PARAGRAPH) + 10))
        document = "\n\n".join(f"{i} {PARAGRAPH}" for i in range(count))
        payload = json.dumps({"document": document, "queries": ["What about the bridge?"]}).encode()

        def send(_: int) -> int | str:
            try:
                return httpx.post(url + "/v1/summarize", content=payload, timeout=120,
                                  headers={"content-type": "application/json"}).status_code
            except httpx.HTTPError as err:
                return type(err).__name__

        with ThreadPoolExecutor(args.uploads) as pool:
            statuses = collections.Counter(pool.map(send, range(args.uploads)))
        print(f"{args.uploads} uploads of {len(payload) / 2**20:.1f} MiB: RSS {before} MB before, "
              f"peak {rss_mb(server.pid, 'VmHWM:')} MB; statuses {dict(sorted(statuses.items(), key=str))}")
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
