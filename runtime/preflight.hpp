#pragma once
// What resist-train checks before the rendezvous, so that bad input ends
// the rank that finds it with one line and exit code 2 before any rank has
// written a file (and is never reported later as a peer's failure).
#include <string>

#include "models/spec.hpp"
#include "runtime/data.hpp"

namespace resist::runtime {

// The data fits the model and the workers: every label (training and test)
// is below the model's number of outputs, an MLP takes the images' size,
// and every worker gets at least one training image.
void check_data_fits(const Data& data, const ModelSpec& spec, int workers);

// --out DIR of one run. check(): DIR is a directory, or one can be made
// there, and it is writable; an existing DIR is locked at once. acquire():
// makes DIR and locks it if that has not happened yet. The lock (flock on
// DIR itself, held until the process ends; on a file system that cannot lock
// a directory, on DIR/.resist-lock) refuses a second run with the same --out
// while the first runs; the first is not touched.
class OutputLock {
 public:
  OutputLock() = default;
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  void check(const std::string& dir, bool lock);
  void acquire(const std::string& dir);

 private:
  void lock(const std::string& dir);
  int fd_ = -1;
};

}  // namespace resist::runtime
