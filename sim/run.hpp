#pragma once
// One simulated training run: the schedule's rounds executed on a platform.
//
// Fast path (default). Rounds whose plan is identical — same local
// iterations, same per-worker compute times, same sync ops (kind, ranks,
// bytes) — take the same time when each starts with all workers ready, so
// each distinct plan is simulated once (with a barrier before it) and reused:
// data-parallel and local SGD simulate two plans (a full round and the
// shorter last one). ResIST rounds differ (random partitions): each distinct
// plan is simulated, up to `max_simulated_rounds`; beyond that an evenly
// spaced sample of them is simulated and every other round takes its own
// compute time plus the sample's mean exposed communication (bytes for those
// rounds come from schedule/accounting.hpp, which the simulated rounds match
// exactly). Summing rounds assumes every round starts with all workers ready;
// it is exact when the per-worker compute of a round is equal (homogeneous
// GPUs, no stragglers) because every protocol's first sync op is an
// all-reduce over all ranks; otherwise it is an upper bound. `full = true`
// simulates every round back to back without barriers (tests compare both).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "schedule/profile.hpp"
#include "schedule/schedule.hpp"
#include "schedule/timeline.hpp"
#include "sim/engine.hpp"
#include "sim/platform.hpp"

namespace resist::sim {

struct RunOptions {
  ScheduleConfig schedule;
  // If set: simulate this schedule (e.g. read from a file) instead of
  // generating one from `schedule`.
  std::shared_ptr<const Schedule> file;
  double backward_factor = 2;
  std::optional<Profile> profile;
  EngineOptions engine;
  bool full = false;
  int max_simulated_rounds = 256;  // 0: simulate every distinct round
  bool timeline = false;
};

struct RoundRow {
  int round = 0, local_iters = 0;
  double start_s = 0, duration_s = 0, compute_s = 0, communication_s = 0, exposed_communication_s = 0;
  std::uint64_t wire_bytes = 0, bytes_per_round = 0;
  bool simulated = true;  // false: estimated from the sample
};

struct RunResult {
  double wall_clock_s = 0, compute_s = 0, communication_s = 0, exposed_communication_s = 0;
  int rounds = 0, distinct_rounds = 0, simulated_rounds = 0;
  std::uint64_t bytes_per_round = 0;   // Table 1 convention, largest round
  std::uint64_t wire_bytes_total = 0;  // simulated rounds: bytes moved; others: accounting
  std::int64_t total_iters = 0;
  std::vector<RoundRow> rows;
  Timeline timeline;  // filled when options.timeline
};

// Throws UserError for bad configurations (ranks above the platform's GPUs, ...).
RunResult simulate_run(const ModelSpec& spec, const Platform& platform, const RunOptions& options);

// One collective on ranks 0..n-1, like nccl-tests.
struct CollectiveResult {
  double time_s = 0, algbw_Bps = 0, busbw_Bps = 0;
  std::uint64_t wire_bytes = 0;
};
CollectiveResult simulate_collective(const Platform& platform, OpKind kind, std::uint64_t bytes, int ranks,
                                     const EngineOptions& options);

}  // namespace resist::sim
