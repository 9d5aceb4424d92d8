#include "runtime/host_memory.hpp"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace resist::runtime {

namespace {

// glibc's upper bound for M_MMAP_THRESHOLD on 64-bit (larger values are refused).
constexpr long kMmapThreshold = 32L << 20;
constexpr long kTrimThreshold = 1L << 30;

bool environment_sets_malloc() {
  for (const char* v : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_"})
    if (std::getenv(v)) return true;
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  return tunables && std::strstr(tunables, "glibc.malloc.");
}

MallocSettings apply() {
  MallocSettings s;
  if (const char* v = std::getenv("RESIST_MALLOC"); v && std::strcmp(v, "glibc") == 0) {
    s.reason = "RESIST_MALLOC=glibc: glibc's defaults";
    return s;
  }
  if (environment_sets_malloc()) {
    s.reason = "the environment sets glibc's malloc";
    return s;
  }
  if (mallopt(M_MMAP_THRESHOLD, int(kMmapThreshold)) != 1 || mallopt(M_TRIM_THRESHOLD, int(kTrimThreshold)) != 1) {
    s.reason = "mallopt refused the settings";
    return s;
  }
  s.set = true;
  s.reason = "freed blocks below 32 MiB kept in the heap, the heap not trimmed";
  s.mmap_threshold = kMmapThreshold;
  s.trim_threshold = kTrimThreshold;
  return s;
}

}  // namespace

MallocSettings keep_freed_memory() {
  static const MallocSettings settings = apply();
  return settings;
}

}  // namespace resist::runtime
