"""The funnel walk over one person's ordered events, in Python: the SQLite aggregate uses it
(PostgreSQL runs the same steps in the plpgsql function of migration 0002).

Each event carries a bit mask: bit k (k < n) when it matches step k, bit n + j when it matches
exclusion j. Every step-1 event (before `start_before`) starts a chain; a chain advances to its
next step on the first later event matching it within `window_us` of its step-1 time; in strict
mode a chain dies on any event that isn't its next step. An exclusion event (from_step a,
to_step b) spoils every chain that has reached step a but not step b and is still inside its
window; spoiled chains count nowhere. The person's result is the chain that reached the most
steps, the latest-started one on a tie: (steps reached, the time of each step reached).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Chain:
    start: int  # index of its step-1 event
    times: list[int] = field(default_factory=list)
    spoiled: bool = False

    @property
    def reached(self) -> int:
        return len(self.times)


def funnel_walk(
    events: Sequence[tuple[int, int]],
    *,
    n: int,
    window_us: int,
    strict: bool,
    start_before: int,
    exclusions: Sequence[tuple[int, int]] = (),
) -> tuple[int, list[int]]:
    """`events`: (time in microseconds, mask) in event order. Returns (reached, times)."""
    chains: list[_Chain] = []
    best: _Chain | None = None

    def record(chain: _Chain) -> None:
        nonlocal best
        if chain.spoiled:
            return
        if best is None or (chain.reached, chain.start) > (best.reached, best.start):
            best = chain

    prune = not exclusions
    for index, (ts, mask) in enumerate(events):
        kept: list[_Chain] = []
        for chain in chains:
            if ts - chain.times[0] > window_us:
                record(chain)
                continue
            reached = chain.reached
            for j, (low, high) in enumerate(exclusions):
                if mask >> (n + j) & 1 and low < reached <= high:
                    chain.spoiled = True
            if reached < n and mask >> reached & 1:
                chain.times.append(ts)
            elif strict:
                record(chain)
                continue
            if chain.reached == n:  # complete: no exclusion can reach past the last step
                record(chain)
                continue
            kept.append(chain)
        chains = kept
        if mask & 1 and ts < start_before:
            chains.append(_Chain(start=index, times=[ts]))
        if prune and len(chains) > 1:
            # Without exclusions a later chain at the same step has every future the earlier
            # one has (same events ahead, a later window end): keep only the latest.
            latest: dict[int, _Chain] = {}
            for chain in chains:
                previous = latest.get(chain.reached)
                if previous is not None:
                    older, chain = sorted((previous, chain), key=lambda c: c.start)
                    record(older)
                latest[chain.reached] = chain
            chains = list(latest.values())
    for chain in chains:
        record(chain)
    if best is None:
        return 0, []
    return best.reached, list(best.times)
