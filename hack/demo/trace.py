"""A day-and-a-half of chat demand (requests/s per minute) for the demo's replay: a daily cycle
with an evening peak and noise, written as the `timestamp,value` CSV `greenmatrix lab replay` reads.

The shape only: real traces (ServeGen, Azure) are in ../shared/data for benchmarks.
"""

from __future__ import annotations

import math
import random
import sys

START = 1_767_225_600  # 2026-01-01T00:00:00Z
MINUTES = 36 * 60


def demand(minute: int, rng: random.Random) -> float:
    hour = (minute / 60) % 24
    daily = 0.5 - 0.5 * math.cos(2 * math.pi * (hour - 3) / 24)  # low at 03:00, high at 15:00
    return max(0.5, 6 + 22 * daily + rng.gauss(0, 1.0))


def main() -> None:
    rng = random.Random(7)
    out = sys.stdout
    out.write("timestamp,value\n")
    for minute in range(MINUTES):
        out.write(f"{START + 60 * minute},{demand(minute, rng):.3f}\n")


if __name__ == "__main__":
    main()
