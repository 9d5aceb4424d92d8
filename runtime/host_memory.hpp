#pragma once
// How this process's C library hands memory back to the operating system.
// No LibTorch in this header.
#include <string>

namespace resist::runtime {

struct MallocSettings {
  bool set = false;              // false: left as the environment or glibc's defaults have them
  std::string reason;            // why (not) set, one phrase
  long mmap_threshold = 0;       // bytes; 0: glibc's (dynamic) default
  long trim_threshold = 0;       // bytes; 0: glibc's (dynamic) default
};

// A training step frees and allocates the same large tensors (activations,
// gradients) every iteration. With glibc's defaults, blocks from 128 KiB
// up to its dynamic threshold come from mmap and go back to the operating
// system when freed, and the top of the heap is trimmed: each iteration
// then pays page faults and zero-filling for the same memory again. Keeps
// freed blocks in the process instead (blocks below 32 MiB from the heap,
// the heap never trimmed), unless the environment already sets glibc's
// malloc (MALLOC_*_ variables, glibc.malloc tunables) or says
// RESIST_MALLOC=glibc (its defaults, as before). Once per process; later
// calls return the first call's answer.
MallocSettings keep_freed_memory();

}  // namespace resist::runtime
