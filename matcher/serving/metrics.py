"""Request counts and latency histograms of the service, in Prometheus' text format."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestMetrics:
    """Counts per route and status, and a latency histogram per route."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
        self._sums: dict[str, float] = defaultdict(float)

    def observe(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._counts[(route, status)] += 1
            self._buckets[route][bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
            self._sums[route] += seconds

    def prometheus(self, **gauges: float) -> str:
        """The exposition text: ``matcher_requests_total``, ``matcher_request_seconds`` and one gauge per keyword."""
        lines = ["# TYPE matcher_requests_total counter"]
        with self._lock:
            for (route, status), n in sorted(self._counts.items()):
                lines.append(f'matcher_requests_total{{route="{route}",status="{status}"}} {n}')
            lines.append("# TYPE matcher_request_seconds histogram")
            for route, counts in sorted(self._buckets.items()):
                running = 0
                for bound, n in zip([*LATENCY_BUCKETS_S, "+Inf"], counts):
                    running += n
                    lines.append(f'matcher_request_seconds_bucket{{route="{route}",le="{bound}"}} {running}')
                lines.append(f'matcher_request_seconds_sum{{route="{route}"}} {self._sums[route]:.6f}')
                lines.append(f'matcher_request_seconds_count{{route="{route}"}} {running}')
        for name, value in gauges.items():
            lines += [f"# TYPE matcher_{name} gauge", f"matcher_{name} {value}"]
        return "\n".join(lines) + "\n"
