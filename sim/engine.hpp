#pragma once
// Runs rounds on a SimGrid S4U platform: one actor per worker, each a loop
// over its rounds: compute (a sleep of the round's compute time), then its
// part of every sync op that names it, in the schedule's order.
//
// Collectives execute the steps of their CollectivePlan
// (schedule/collectives.hpp) with S4U mailbox communications: per step, a
// rank posts its sends (put_async) and receives (get_async) and waits for
// them, so they move exactly the bytes schedule/accounting.hpp counts.
// Reductions themselves are not timed (they run at GPU memory speed).
//
// Two executors: SimGrid (every message a flow in its network model, links
// shared), and the α–β replay (sim/replay.hpp): the same steps, each message
// taking α + bytes/B from the moment both its ends are ready, which is what
// SimGrid computes whenever no two messages ever share a link. `automatic`
// picks the replay exactly then: one GPU per node on a star, CM02 with unit
// factors, no cross-traffic, no overlap (tests check both agree).
//
// Every simulation runs in a forked child process: SimGrid's engine is a
// process-wide singleton, and a child gives each simulation a fresh one.
#include <cstdint>
#include <string>
#include <vector>

#include "schedule/collectives.hpp"
#include "schedule/schedule.hpp"
#include "sim/platform.hpp"

namespace resist::sim {

struct RoundPlan {
  int round = 0;                   // schedule round index (for timelines and noise)
  std::vector<double> compute_s;   // per worker: the round's local iterations
  std::vector<double> backward_fraction;  // per worker; used with overlap
  int local_iters = 0;
  std::vector<CommOp> sync;
  // Optional, one per sync op: the plan to execute instead of the one the
  // options choose for the op (`resist-sim collective` runs all-gathers and
  // reduce-scatters this way, which no schedule op describes).
  std::vector<CollectivePlan> collectives;
  // Optional, one per sync op: seconds every participant spends before its
  // part (per-call launch latency, group set-up; sim/as_run.hpp; packing the
  // payload, sim/run.cpp): host work, on the node's shared cores where it has
  // them (as compute). Empty: none.
  std::vector<double> op_delay_s;
  // Optional, per worker: seconds of host work before the round's compute
  // (the network reloaded or rebuilt, sim/cost.hpp), on the same processor
  // as the compute; traced as events with op = kSetupOp. Empty: none.
  std::vector<double> setup_s;
  // Optional, per worker: seconds it waits after its compute before its
  // first sync op (Platform::sync_entry_delay_s), inside that op's span (a
  // gradient all-reduce overlapped with backward: before its last buckets
  // can end). Empty: none.
  std::vector<double> entry_wait_s;
};

// EngineEvent::op of a worker's round set-up (RoundPlan::setup_s); -1 is compute.
constexpr int kSetupOp = -2;

enum class EngineKind { automatic, simgrid, alpha_beta };
const char* to_string(EngineKind k);
EngineKind parse_engine_kind(const std::string& s);  // throws UserError naming --engine

struct EngineOptions {
  CollectiveOptions collectives;            // algorithms and chain chunk
  EngineKind kind = EngineKind::automatic;
  // Ops of Phase::iteration (per-iteration gradient all-reduce, e.g.
  // data-parallel): start them in buckets during backward (like PyTorch DDP)
  // instead of after it.
  bool overlap = false;
  std::uint64_t bucket_bytes = 25u << 20;
  // true: all workers wait for each other before every plan, so each plan's
  // times are those of the round run on its own (the fast path's unit).
  bool barrier = false;
};

struct EngineEvent {
  int worker = 0, plan = 0;
  int op = -1;           // index into the plan's sync; -1: compute; kSetupOp: round set-up
  int kind = -1;         // OpKind as int; -1: compute
  double start_s = 0, end_s = 0;
  std::uint64_t bytes = 0;  // sent by this worker
};

struct EngineResult {
  std::vector<double> plan_start_s;   // barrier release (or first compute start)
  std::vector<double> plan_end_s;     // last worker done
  std::vector<std::uint64_t> plan_bytes;  // bytes actually put on the wire
  std::vector<EngineEvent> events;
  double end_s = 0;
};

// Throws UserError when a plan's compute time or an op's time over the
// platform's slowest link is not finite or beyond what SimGrid simulates
// faithfully (1e12 s): SimGrid aborts the process on a non-finite duration.
// run_engine() checks its plans; callers may check earlier.
void check_durations(const Platform& platform, const std::vector<RoundPlan>& plans, const EngineOptions& options);
// Per plan, per sync op: the CollectivePlan the engine executes.
std::vector<std::vector<CollectivePlan>> collective_plans(const std::vector<RoundPlan>& plans,
                                                          const EngineOptions& options);

EngineResult run_engine(const Platform& platform, int ranks, const std::vector<RoundPlan>& plans,
                        const EngineOptions& options);

}  // namespace resist::sim
