"""A plan (`Plan`: terms in bytes, chosen settings, fits or not) and the budget it is made
against: SAFETY · the device's free memory (`budget_of`)."""
from __future__ import annotations

from dataclasses import dataclass, field

SAFETY = 0.9  # plan against this share of the free memory [choice]


@dataclass
class Plan:
    """An estimate broken down by term (bytes), the chosen settings, and whether it fits.

    terms: name → bytes, summed by `total`; budget: the bytes planned against (SAFETY · free);
    settings: what the plan chose (probe_batch, eval_batch, gradient_checkpointing, lora_suggested,
    separate_retain_backward, form); notes: why, one line each.
    """

    method: str
    terms: dict[str, int]
    budget: int | None
    settings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.terms.values())

    @property
    def fits(self) -> bool:
        return self.budget is None or self.total <= self.budget

    def explain(self) -> str:
        """A readable breakdown: one line per term, the total against the budget, settings, notes."""
        lines = [f"memory plan for {self.method}:"]
        lines += [f"  {k:<24} {_gib(v)}" for k, v in self.terms.items()]
        budget = "no limit" if self.budget is None else _gib(self.budget)
        lines.append(f"  {'total':<24} {_gib(self.total)} of {budget} -> {'fits' if self.fits else 'DOES NOT FIT'}")
        if self.settings:
            lines.append("  settings: " + ", ".join(f"{k}={v}" for k, v in self.settings.items()))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def require(self) -> "Plan":
        """The plan itself when it fits; MemoryError with `explain()` otherwise."""
        if not self.fits:
            raise MemoryError(self.explain())
        return self


def _gib(n: int) -> str:
    return f"{n / 2**30:9.3f} GiB"


def free_bytes(device: str) -> int:
    """Free memory of `device`: cuda's mem_get_info, or MemAvailable of /proc/meminfo on the CPU."""
    if str(device).startswith("cuda"):
        import torch  # deferred: torch

        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil  # deferred: psutil

    return int(psutil.virtual_memory().available)


def budget_of(device: str) -> int:
    """SAFETY · free bytes of the device: what plans are made against."""
    return int(SAFETY * free_bytes(device))
