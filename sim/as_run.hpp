#pragma once
// How a training program carries out a schedule's sync ops, when it is not
// the way resist's runtime does (docs/simulator.md, "As run"). The ResIST
// authors' implementation (../shared/REFERENCE.md) made every tensor its own
// NCCL call, created a process group afresh for every partitioned block
// every round (communicator set-up is paid at the group's first call), and
// synchronised local SGD's partitionable blocks like ResIST's: reduce to
// rank 0, then broadcast from rank 0, one block at a time.
//
// apply_as_run() rewrites a round's plan accordingly: the ops it runs and,
// per op, the seconds every participant spends before its part (launch
// latency per call, group set-up). Off by default: plans are then the
// schedule's ops unchanged. Per-iteration ops (data-parallel gradients) and
// evaluation gathers are left as they are. Costs are inputs, never fitted:
// docs/simulator.md says where the shipped figures come from.
#include <nlohmann/json_fwd.hpp>

#include "models/spec.hpp"
#include "schedule/schedule.hpp"
#include "sim/engine.hpp"

namespace resist::sim {

struct AsRun {
  bool enabled = false;
  // One call per op as scheduled (a flat bucket), per block, or per tensor.
  enum class Granularity { bucket, block, tensor };
  Granularity granularity = Granularity::bucket;
  // Every op on a partitioned block (reduce, hand-off) runs in a process
  // group created for it this round; a block held by one worker still gets
  // a one-rank group for its reduce.
  bool fresh_groups = false;
  // Round-end all-reduces that carry partitionable blocks (local SGD) keep
  // only the shared blocks; each partitionable block is reduced to the op's
  // first rank and broadcast from it.
  bool blocks_via_root = false;
  double launch_s = 0;            // per call, on every participant
  double setup_s = 0;             // per group created: base
  double setup_per_rank_s = 0;    // + per rank in the group
  double setup_per_host_s = 0;    // + per host it spans beyond the first
};

const char* to_string(AsRun::Granularity g);

// {"granularity": "tensor", "fresh_groups": true, "blocks_via_root": true,
//  "launch_latency": "20us", "group_setup": "1ms", "group_setup_per_rank": "0s",
//  "group_setup_per_host": "0s"}; every key optional; strict (UserError naming
// the JSON path). The result is enabled.
AsRun as_run_from_json(const nlohmann::json& j, const std::string& path);
nlohmann::json to_json(const AsRun& a);

// Seconds to create a group of `ranks` (global ranks; gpus_per_node of them per host).
double group_setup_s(const AsRun& a, const std::vector<int>& ranks, int gpus_per_node);

// Rewrites plan.sync (and fills plan.op_delay_s) for `round` as the
// implementation runs it. No-op when !a.enabled.
void apply_as_run(const ModelSpec& spec, const Round& round, int gpus_per_node, const AsRun& a, RoundPlan& plan);

}  // namespace resist::sim
