#pragma once
// The progress display of the programs that run many configurations
// (resist-study, resist-sim sweep): on stderr, a line per step on a
// terminal; otherwise about every tenth step, so that logs stay short (or
// nothing, with only_on_terminal).
#include <chrono>
#include <string>

namespace resist::tools {

class Progress {
 public:
  Progress(std::string title, int total, bool only_on_terminal = false)
      : title_(std::move(title)), total_(total), only_on_terminal_(only_on_terminal) {}
  // One step done; `what` names it.
  void step(const std::string& what);

 private:
  std::string title_;
  int total_, done_ = 0;
  bool only_on_terminal_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

}  // namespace resist::tools
