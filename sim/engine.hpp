#pragma once
// Runs rounds on a SimGrid S4U platform: one actor per worker, each a loop
// over its rounds: compute (a sleep of the round's compute time), then its
// part of every sync op that names it, in the schedule's order.
//
// Collectives are built from S4U mailbox communications and move exactly the
// bytes schedule/accounting.hpp documents:
//   allreduce  ring: reduce-scatter then all-gather, 2(n-1) steps; in step s
//              rank i sends ring_chunk (i-s) mod n, then (i+1-s) mod n, to i+1
//   reduce     pipelined chain ranks[n-1] -> ... -> ranks[0] (the root)
//   broadcast  pipelined chain ranks[0] -> ranks[1] -> ... -> ranks[n-1]
//   send       one message ranks[0] -> ranks[1]
// Chains cut the payload into ceil(M / chunk_bytes) nearly equal chunks
// (ring_chunk over fp32 elements); a rank forwards chunk c as soon as it has
// it. Reductions themselves are not timed (they run at GPU memory speed).
//
// Every simulation runs in a forked child process: SimGrid's engine is a
// process-wide singleton, and a child gives each simulation a fresh one.
#include <cstdint>
#include <vector>

#include "schedule/schedule.hpp"
#include "sim/platform.hpp"

namespace resist::sim {

struct RoundPlan {
  int round = 0;                   // schedule round index (for timelines and noise)
  std::vector<double> compute_s;   // per worker: the round's local iterations
  std::vector<double> backward_fraction;  // per worker; used with overlap
  int local_iters = 0;
  std::vector<CommOp> sync;
};

struct EngineOptions {
  std::uint64_t chunk_bytes = 4u << 20;     // broadcast / reduce pipelining
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
  int op = -1;           // index into the plan's sync; -1: compute
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

EngineResult run_engine(const Platform& platform, int ranks, const std::vector<RoundPlan>& plans,
                        const EngineOptions& options);

}  // namespace resist::sim
