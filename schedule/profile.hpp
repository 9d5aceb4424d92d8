#pragma once
// A measured per-block time profile: the runtime writes it (resist-train
// --profile), the simulator reads it as its compute cost source.
//   {"format": "resist-profile", "version": 1, "model": {ModelOptions},
//    "batch_size": 128, "device": "cpu"|"cuda:NVIDIA H100 ...", "threads": 2,
//    "blas_threads": 2, "processes": 1,
//    "blocks": [{"name": "stem", "forward_s": ..., "backward_s": ...}, ...],
//    "optimizer_step_s_per_param": ..., "iteration_overhead_s": ...,
//    "rebuild_s": ..., "first_iteration_s": ..., "reload_s": ..., "pack_s_per_byte": ...,
//    "ist_pack_s_per_byte": ..., "iteration_s": ..., "blocks_timed_s": ...,
//    "cores": 2, "iteration_samples": [{"processes": 2, "iteration_s": [...]},
//    ...]}   (blas_threads, processes (1 if absent) and everything after
//    optimizer_step_s_per_param and iteration_overhead_s optional: 0 or
//    empty if absent)
// Times are per iteration at `batch_size`; block names are the spec's. A
// profile is bound to what it measured: the simulator refuses it for another
// model (depth, block, width, dataset) or another batch size.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/spec.hpp"

namespace resist {

struct BlockTime {
  std::string name;
  double forward_s = 0, backward_s = 0;
};

// Every timed iteration (seconds) of every process while `processes` of them
// ran the iteration at once on the machine.
struct IterationSamples {
  int processes = 0;
  std::vector<double> iteration_s;
};

struct Profile {
  ModelOptions model;
  int batch_size = 0;
  std::string device;
  int threads = 0;
  int blas_threads = 0;  // the BLAS's own threads it ran with (0: it has none or does not say)
  int processes = 1;     // processes that timed its figures at once on the machine (resist-launch -n N; at most the cores hold)
  std::vector<BlockTime> blocks;
  double optimizer_step_s_per_param = 0;  // SGD step time divided by parameters updated
  double iteration_overhead_s = 0;        // per iteration, besides blocks and step: building the batch, loss, bookkeeping
  // Per round, outside the iterations, for the whole model (the simulator
  // scales them by the fraction of its parameters a worker trains):
  double rebuild_s = 0;  // a network built anew (its modules, their initial weights) and a new optimizer
  // The first iteration of a network built anew beyond a steady one (its
  // gradients and momentum buffers allocated, its kernels' first calls).
  double first_iteration_s = 0;
  double reload_s = 0;   // the held values copied into the network, and taken out after training
  // Per sync op, on each participant, per byte of its payload: gathering the
  // values into one buffer and scattering them back: whole blocks, and (an
  // MLP only; 0 otherwise) IST's slices by element index.
  double pack_s_per_byte = 0, ist_pack_s_per_byte = 0;
  // What the blocks were fitted to (0: not recorded): the whole iteration as
  // the worker runs it (median), and the blocks' times as timed one by one
  // before they were scaled to it (resist-train --profile).
  double iteration_s = 0, blocks_timed_s = 0;
  // Variability (the simulator draws every iteration's time from it,
  // sim/cost.hpp): the machine's cores (hardware threads) and, for the
  // processes that profiled at once (and, launched as more processes than
  // the cores hold, for all of them), every iteration each of them timed.
  int cores = 0;
  std::vector<IterationSamples> iteration_samples;
};

// Processes of `threads` threads each sharing `cores` hardware threads:
// how many run at once without sharing a core (cores / threads, at least
// 1), and the even share's slowdown of each of `processes` of them
// (max(1, processes / that)). The profile times its figures on as many as
// run at once; the simulator and resist-bench-comm take the even share as
// given and count only what was measured beyond it.
int core_slots(int cores, int threads);
double even_share_slowdown(int processes, int cores, int threads);

nlohmann::json to_json(const Profile& p);
Profile profile_from_json(const nlohmann::json& j);  // throws UserError naming the path
void write_profile_file(const Profile& p, const std::string& path);  // atomic
Profile read_profile_file(const std::string& path);

}  // namespace resist
