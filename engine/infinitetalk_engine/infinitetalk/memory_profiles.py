"""Which memory profile the engine loads with: the one asked for (`--engine-option memory_profile=…`), or with
`auto` the first of resident, fp8, offload whose planned peak at 480p (`memory_plan.plan`) fits in the GPU's free
memory. Offload also needs its pinned host memory (every DiT block's bf16 copy) to be available on the host: that is
checked before loading, with an error that says how much is needed and how much there is.
"""

from __future__ import annotations

from dataclasses import dataclass

from .memory_plan import GIB, ModelSizes, plan

CHOICES = ("auto", "resident", "fp8", "offload")
ORDER = ("resident", "fp8", "offload")  # most resident first: fastest
# Free memory kept aside for the allocator's fragmentation and other processes on the GPU.
HEADROOM = 0.05


@dataclass(frozen=True)
class ProfileChoice:
    profile: str
    reason: str


def choose_profile(
    requested: str,
    device_type: str,
    free_bytes: int | None,
    total_bytes: int | None,
    sizes: ModelSizes | None,
    two_speakers: bool = False,
    host_available_bytes: int | None = None,
) -> ProfileChoice:
    """The profile to load, and why; raises ValueError for an unknown profile, when none fits the GPU, or when the
    host lacks the pinned memory offload needs (`host_available_bytes`: `None` is not checked)."""
    if requested not in CHOICES:
        raise ValueError(f"unknown memory_profile {requested!r}; expected one of {', '.join(CHOICES)}")
    if requested != "auto":
        if requested == "offload" and device_type == "cuda" and sizes is not None:
            check_host_memory(plan(sizes, "offload", "480p", two_speakers).pinned_host, host_available_bytes)
        return ProfileChoice(requested, "asked for (memory_profile)")
    if device_type != "cuda" or free_bytes is None or sizes is None:
        return ProfileChoice("resident", f"on {device_type}: weights in host memory")
    usable = free_bytes * (1 - HEADROOM)
    needs = {}
    for profile in ORDER:
        planned = plan(sizes, profile, "480p", two_speakers)
        needs[profile] = planned.peak_vram
        if needs[profile] <= usable:
            if profile == "offload":
                check_host_memory(planned.pinned_host, host_available_bytes)
            total = f" of {total_bytes / GIB:.1f}" if total_bytes else ""
            return ProfileChoice(
                profile,
                f"planned peak {needs[profile] / GIB:.1f} GiB at 480p fits in {free_bytes / GIB:.1f}{total} GiB free",
            )
    raise ValueError(
        f"the GPU has {free_bytes / GIB:.1f} GiB free; the smallest profile, offload, plans "
        f"{needs['offload'] / GIB:.1f} GiB at 480p: free the GPU of other processes, or use a GPU with more memory"
    )


def check_host_memory(pinned_bytes: float, available_bytes: int | None) -> None:
    """Raises ValueError when the host has less memory available than offload pins (plus a margin for the rest)."""
    if available_bytes is None:
        return
    needed = pinned_bytes * (1 + HEADROOM)
    if needed > available_bytes:
        raise ValueError(
            f"the offload memory profile keeps the DiT's blocks in {pinned_bytes / GIB:.1f} GiB of pinned host "
            f"memory, and this machine has {available_bytes / GIB:.1f} GiB available: close other programs, add "
            "memory, or use a GPU with room for the fp8 profile"
        )


def host_available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (Linux), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None
