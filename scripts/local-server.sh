# Helpers for scripts that start a local `kiln serve` (benchmarks, conformance runs). Source it:
#   free_port                        prints a TCP port free on 127.0.0.1
#   wait_healthy PORT [PID] [SECS]   waits (default 60 s) until GET /health on PORT answers 200;
#                                    fails at once when the process PID (the server) has exited
# Python, not curl: the CI machine has the one for certain.

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_healthy() {
    python3 - "$1" "${2:-0}" "${3:-60}" <<'PY'
import os, sys, time, urllib.error, urllib.request
port, pid, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
url = f"http://127.0.0.1:{port}/health"
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    if pid:
        try:
            os.kill(pid, 0)
        except OSError:
            print(f"kiln (pid {pid}) exited before {url} answered", file=sys.stderr)
            sys.exit(1)
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except (urllib.error.URLError, OSError):
        pass
    time.sleep(0.1)
print(f"{url} did not answer 200 within {seconds:g} s", file=sys.stderr)
sys.exit(1)
PY
}
