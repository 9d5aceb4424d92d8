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
#include "sim/as_run.hpp"
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
  TraceRounds trace;  // which rounds the timeline keeps
  AsRun as_run;       // how the implementation runs the sync ops (sim/as_run.hpp); off by default
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

// Checks, before anything runs, that the platform is within what the
// simulator can time (check_durations): a round of the whole model on the
// slowest rank and an all-reduce of the whole model over every rank, bounds
// of anything the run simulates. Throws UserError naming the culprit.
void check_scale(const ModelSpec& spec, const Platform& platform, const RunOptions& options);

// Throws UserError for bad configurations (ranks above the platform's GPUs, ...).
RunResult simulate_run(const ModelSpec& spec, const Platform& platform, const RunOptions& options);

// The options' node size and the α–β figures `auto` uses, from the platform:
// ranks_per_node = gpus_per_node; inter: the route between the first GPUs of
// two nodes; intra: between two GPUs of one node.
CollectiveOptions fit_to_platform(CollectiveOptions c, const Platform& platform);

// One collective on ranks 0..n-1, like nccl-tests: algbw = M / time; busbw =
// algbw × 2(n-1)/n (allreduce), × (n-1)/n (allgather, reduce-scatter), × 1
// otherwise. `algorithm` may be automatic; the result names the one run.
struct CollectiveResult {
  Algorithm algorithm = Algorithm::ring;
  double time_s = 0, algbw_Bps = 0, busbw_Bps = 0;
  std::uint64_t wire_bytes = 0;
};
CollectiveResult simulate_collective(const Platform& platform, Collective c, Algorithm algorithm,
                                     std::uint64_t bytes, int ranks, const EngineOptions& options);
// The op kind with the options' algorithm for it.
CollectiveResult simulate_collective(const Platform& platform, OpKind kind, std::uint64_t bytes, int ranks,
                                     const EngineOptions& options);

}  // namespace resist::sim
