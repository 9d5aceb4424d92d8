#pragma once
// Layer-parallel training with auxiliary networks (REFERENCE.md, arXiv
// 2112.05387; docs/layer-parallel.md): the pure pieces the protocol, the
// simulator's study and the runtime share: how a ResNet is cut into K stages,
// what each stage trains, and the speedup bound ρ(K).
//
// Stage k holds the consecutive spec blocks first..last; every stage but the
// first also trains the auxiliary head producing its first block's input
// (models/spec.hpp, AuxHeadSpec). Stages train at the same time, so an
// iteration takes as long as the slowest stage: the split minimises the
// largest stage's training FLOPs (its blocks plus its auxiliary head).
#include <cstdint>
#include <string>
#include <vector>

#include "models/spec.hpp"

namespace resist {

struct Stage {
  int first = 0, last = 0;  // spec block indices, inclusive
  bool operator==(const Stage&) const = default;
};

// Splits items 0..n-1 into k consecutive non-empty stages minimising the
// largest stage cost, where a stage i..j costs cost[i] + ... + cost[j] +
// start_cost[i] (the price of starting a stage at i; start_cost[0] is
// normally 0). Exact: dynamic programming over (items, stages), O(k·n²).
// Among splits with the same bottleneck, the one whose stages end earliest
// (lexicographically smallest boundaries). Requires 1 <= k <= n.
std::vector<Stage> min_bottleneck_split(const std::vector<std::uint64_t>& cost,
                                        const std::vector<std::uint64_t>& start_cost, int k);

// The stage's training FLOPs per sample: its blocks' and (k >= 1) its
// auxiliary head's forward FLOPs, times 3 (backward = 2 x forward).
std::uint64_t stage_train_flops(const ModelSpec& spec, const Stage& stage, int aux_width);

// The model's split into `stages` stages (validate_layer_parallel first).
std::vector<Stage> layer_parallel_stages(const ModelSpec& spec, int stages, int aux_width);

// Throws UserError (one line naming the flag and what is accepted) for a
// model without auxiliary heads (MLPs), --stages outside 2..number of blocks,
// --replicas < 1, --aux-width outside 1..4096, --lp-beta <= 0.
void validate_layer_parallel(const ModelSpec& spec, int stages, int replicas, int aux_width, double beta);

// Throws UserError when a layer-parallel-only flag (`flag`, e.g. "--stages")
// was given with another protocol.
void reject_layer_parallel_flag(const std::string& flag, const std::string& protocol);

// The speedup bound of REFERENCE.md. Per-iteration times:
struct LayerParallelTimes {
  double data_s = 0;    // T_data: loading a batch (not shared out by the stages)
  double serial_s = 0;  // T_fwd + T_bwd: the whole network on one device
  double aux_s = 0;     // t_aux: an auxiliary head's forward + backward; every
                        // device runs its own at once, so the largest counts
  double extra_s = 0;   // t_extra: the method's own overhead (boundary exchanges)
};
// From per-block training times (forward + backward, one device) and the
// training time of each stage's auxiliary head (0 for stage 0).
LayerParallelTimes layer_parallel_times(const std::vector<double>& block_train_s,
                                        const std::vector<double>& aux_train_s, double extra_s,
                                        double data_s);
// ρ(K) = (T_data + T_fwd + T_bwd) / (T_data + t_aux + t_extra + (T_fwd + T_bwd) / K)
double layer_parallel_rho(const LayerParallelTimes& t, int k);
// The bound ρ(K) approaches as K grows: (T_data + T_fwd + T_bwd) / (T_data + t_aux + t_extra).
double layer_parallel_rho_limit(const LayerParallelTimes& t);

}  // namespace resist
