#include "agent/footprint.h"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

namespace medic::agent {

void UseOneMallocArena() { ::mallopt(M_ARENA_MAX, 1); }

void KeepOnlyExecutedCodeResident() {
  FILE* maps = std::fopen("/proc/self/maps", "re");
  if (maps == nullptr) {
    return;
  }
  char line[512];
  while (std::fgets(line, sizeof(line), maps) != nullptr) {
    // start-end perms offset dev inode [path]
    uintptr_t start = 0;
    uintptr_t end = 0;
    char perms[8] = "";
    unsigned long long inode = 0;
    if (std::sscanf(line, "%lx-%lx %7s %*s %*s %llu", &start, &end, perms, &inode) != 4) {
      continue;
    }
    // File-backed code only: never data (relocated or written pages would be lost).
    if (inode == 0 || std::strcmp(perms, "r-xp") != 0 || end <= start) {
      continue;
    }
    void* addr = reinterpret_cast<void*>(start);
    const size_t len = end - start;
    ::madvise(addr, len, MADV_RANDOM);
    ::madvise(addr, len, MADV_DONTNEED);
  }
  std::fclose(maps);
}

}  // namespace medic::agent
