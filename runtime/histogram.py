"""A fixed-size, mergeable histogram of milliseconds: bounded memory for per-frame samples."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


#: 0.1 ms resolution up to 100 ms; anything slower lands in the last (overflow) bucket.
BUCKET_MS = 0.1
BUCKETS = 1001


@dataclass
class MsHistogram:
    counts: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    total: int = 0
    max_ms: float = 0.0

    def add(self, ms: float) -> None:
        self.counts[min(BUCKETS - 1, max(0, int(ms / BUCKET_MS)))] += 1
        self.total += 1
        self.max_ms = max(self.max_ms, ms)

    def merge(self, other: MsHistogram) -> None:
        for i, count in enumerate(other.counts):
            self.counts[i] += count
        self.total += other.total
        self.max_ms = max(self.max_ms, other.max_ms)

    def percentile(self, q: float) -> float:
        """Upper edge of the bucket holding the q-th percentile (0 when empty)."""
        if not self.total:
            return 0.0
        rank = q / 100 * self.total
        seen = 0
        for i, count in enumerate(self.counts):
            seen += count
            if seen >= rank and count:
                return min(self.max_ms, (i + 1) * BUCKET_MS)
        return self.max_ms

    def to_dict(self) -> dict[str, object]:
        """Sparse form for JSON: only the non-empty buckets."""
        return {
            "bucket_ms": BUCKET_MS,
            "max_ms": self.max_ms,
            "buckets": {str(i): c for i, c in enumerate(self.counts) if c},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> MsHistogram:
        histogram = cls()
        buckets = data.get("buckets", {})
        assert isinstance(buckets, dict)
        for index, count in buckets.items():
            histogram.counts[int(index)] = int(count)
            histogram.total += int(count)
        max_ms = data.get("max_ms", 0.0)
        histogram.max_ms = float(max_ms) if isinstance(max_ms, int | float) else 0.0
        return histogram
