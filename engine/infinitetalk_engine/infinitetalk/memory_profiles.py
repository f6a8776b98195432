"""Which memory profile the engine loads with: the one asked for (`--engine-option memory_profile=…`), or with
`auto` the first of resident, fp8 whose planned peak at 480p (`memory_plan.plan`) fits in the GPU's free memory.

Only resident and fp8 exist so far; offload (blocks streamed from pinned host memory, for 12-24 GB cards) is planned
and refused with a message that says what the GPU would need.
"""

from __future__ import annotations

from dataclasses import dataclass

from .memory_plan import GIB, ModelSizes, plan

CHOICES = ("auto", "resident", "fp8", "offload")
IMPLEMENTED = ("resident", "fp8")
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
) -> ProfileChoice:
    """The profile to load, and why; raises ValueError for an unknown or unimplemented profile, or when none fits."""
    if requested not in CHOICES:
        raise ValueError(f"unknown memory_profile {requested!r}; expected one of {', '.join(CHOICES)}")
    if requested == "offload":
        raise ValueError(
            "the offload memory profile (for 12-24 GB GPUs) is not implemented yet; use resident or fp8 on a GPU "
            "with the memory `make memory-plan` lists"
        )
    if requested != "auto":
        return ProfileChoice(requested, "asked for (memory_profile)")
    if device_type != "cuda" or free_bytes is None or sizes is None:
        return ProfileChoice("resident", f"on {device_type}: weights in host memory")
    usable = free_bytes * (1 - HEADROOM)
    needs = {}
    for profile in IMPLEMENTED:
        needs[profile] = plan(sizes, profile, "480p", two_speakers).peak_vram
        if needs[profile] <= usable:
            total = f" of {total_bytes / GIB:.1f}" if total_bytes else ""
            return ProfileChoice(
                profile,
                f"planned peak {needs[profile] / GIB:.1f} GiB at 480p fits in {free_bytes / GIB:.1f}{total} GiB free",
            )
    raise ValueError(
        f"the GPU has {free_bytes / GIB:.1f} GiB free; the smallest profile available, fp8, plans "
        f"{needs['fp8'] / GIB:.1f} GiB at 480p. The offload profile for smaller GPUs is not implemented yet: free "
        "the GPU of other processes, or use a GPU with more memory"
    )
