#include "tools/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace resist::tools {

void Progress::step(const std::string& what) {
  ++done_;
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  const bool tty = ::isatty(2);
  if (!tty && only_on_terminal_) return;
  if (tty || done_ == total_ || done_ * 10 / total_ != (done_ - 1) * 10 / total_)
    std::fprintf(stderr, "[%s %d/%d %.1fs] %s\n", title_.c_str(), done_, total_, el, what.c_str());
}

}  // namespace resist::tools
