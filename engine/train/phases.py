"""Wall-clock time per phase of a run (loading, evaluating, training, saving), for its record and progress."""
from __future__ import annotations

import time

PHASES = ("loading", "evaluating", "training", "saving")


class PhaseClock:
    """Adds the time since the last `enter` to the phase that was current; `seconds()` sums them.

        clock = PhaseClock(); clock.enter("loading"); ...; clock.enter("training"); ...; clock.seconds()
    """

    def __init__(self, clock=time.perf_counter):
        self._clock = clock
        self._totals = {p: 0.0 for p in PHASES}
        self.current: str | None = None
        self._since = clock()

    def enter(self, phase: str) -> None:
        """Close the current phase and start `phase` (one of PHASES)."""
        if phase not in self._totals:
            raise ValueError(f"unknown run phase {phase!r}; one of {PHASES}")
        self.stop()
        self.current = phase

    def stop(self) -> None:
        now = self._clock()
        if self.current is not None:
            self._totals[self.current] += now - self._since
        self._since = now
        self.current = None

    def seconds(self) -> dict[str, float]:
        """Seconds per phase so far (the current one included), to 0.1 s."""
        totals = dict(self._totals)
        if self.current is not None:
            totals[self.current] += self._clock() - self._since
        return {p: round(t, 1) for p, t in totals.items()}
