#pragma once

// The agent's resident memory, kept small (docs/BENCHMARKS.md "Agent footprint").

namespace medic::agent {

// One malloc arena for every thread (the agent's threads allocate little; an arena each would
// keep pages of its own resident). Call before any thread starts.
void UseOneMallocArena();

// Code pages, resident only when executed: for every file-backed executable mapping of this
// process (the agent's own code, libc, libm), the kernel is told not to map neighbouring pages
// on a fault (MADV_RANDOM: no fault-around), and the pages mapped so far (start-up code) are
// dropped (MADV_DONTNEED; unmodified file pages, so they come back from the page cache when
// next run). Without it, fault-around makes nearly all of the 3.5 MB of code resident. Only
// code (r-xp) is dropped, never data. Failures are ignored: it only costs memory.
void KeepOnlyExecutedCodeResident();

}  // namespace medic::agent
