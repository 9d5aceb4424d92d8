#pragma once
// What every part of a worker process shares: its rank, the control-plane
// store, the communicator, the run's clock and its timeline. No LibTorch.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "runtime/comm.hpp"
#include "runtime/dist.hpp"
#include "schedule/timeline.hpp"

namespace resist::runtime {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct RunContext {
  int rank = 0, world = 1;
  std::shared_ptr<KeyValue> kv;
  std::unique_ptr<Communicator> comm;
  Timeline timeline;
  Clock::time_point t0;
  double wall_offset_s = 0;        // wall time of the run before a resume
  std::uint64_t bytes_offset = 0;  // bytes sent before a resume
  std::int64_t images = 0;         // training images this rank has seen
  // Seconds since the run started, resumed runs included.
  double now() const { return seconds_since(t0) + wall_offset_s; }
};

// Ends the process with one line on stderr (exit code 1). Communication
// threads of a broken process group may block destructors, hence _Exit.
[[noreturn]] void die(int rank, const std::string& msg);

// FNV-1a helpers shared by the sync checks and the report.
constexpr std::uint64_t kFnvOffset = 1469598103934665603ull;
constexpr std::uint64_t kFnvPrime = 1099511628211ull;

}  // namespace resist::runtime
