#pragma once
// A training protocol: the rules that turn a ScheduleConfig into rounds.
//
// Each protocol is one file under schedule/protocols/ implementing this
// interface, registered in schedule/protocols/registry.cpp. The generator
// (schedule.cpp) does what every protocol shares — round count, local
// iterations, which rounds evaluate, the optimizer policy — and asks the
// protocol for the rest. Nothing in sim/ or runtime/ knows which protocol
// produced a round: adding one means adding a file here and registering it.
#include <memory>
#include <vector>

#include "schedule/schedule.hpp"

namespace resist {

// What a protocol sees when it makes a round: the model, the header (config,
// shared blocks) and the run's length.
struct ProtocolContext {
  const ModelSpec& spec;
  const Schedule& header;
  int num_rounds = 0;
};

class ProtocolRules {
 public:
  virtual ~ProtocolRules() = default;
  // Throws UserError for a configuration this protocol cannot run (the
  // protocol-independent checks have passed).
  virtual void validate(const ModelSpec& spec, const ScheduleConfig& config) const = 0;
  // Training-data shards (data-parallel degree): workers unless stated.
  virtual int data_shards(const ScheduleConfig& config) const { return config.workers; }
  // Local iterations per round actually used (data-parallel: 1).
  virtual int local_iters(const ScheduleConfig& config) const { return config.local_iters; }
  // Fills header.shared_blocks and header.eval_scale (preset to 1 per block);
  // called once, with the run's length known.
  virtual void init(const ModelSpec& spec, Schedule& header, int num_rounds) = 0;
  // The blocks each worker holds in round r (r < num_rounds) besides the
  // shared ones; default: none.
  virtual std::vector<std::vector<int>> holdings(int r) const;
  // Adds round.sync. `round` has its index, local iterations, workers' blocks
  // and evaluate flag set; `next` is what every worker holds in the next
  // round (after the last: the final model at rank 0).
  virtual void sync(const ProtocolContext& ctx, Round& round, const std::vector<std::vector<int>>& next) const = 0;
  // The optimizer policy of OptimizerState::automatic: true re-creates every
  // worker's optimizer at the start of every round.
  virtual bool fresh_optimizer() const { return false; }
  // Whether --optimizer-state keep makes sense; throws UserError if not.
  virtual void check_keep_optimizer() const {}
  // IST only: the neuron partitions (schedule/ist.hpp).
  virtual const IstPlan* ist() const { return nullptr; }
  // ResIST only: rounds 0..warmup_rounds()-1 are local-SGD warm-up rounds.
  virtual int warmup_rounds() const { return 0; }
};

// The registry: a fresh rules object for `p` (schedule/protocols/registry.cpp).
std::unique_ptr<ProtocolRules> make_protocol(const ScheduleConfig& config);

// Whether `p` runs the local iterations it is given (--local-iters); false for
// a protocol that fixes them itself (data-parallel), which a grid over ℓ
// (tools/grid.hpp) therefore runs once. (schedule.cpp)
bool takes_local_iters(Protocol p);

// Helpers the protocols share.
std::vector<int> all_indices(int n);  // 0..n-1
bool contains(const std::vector<int>& v, int x);
// Appends an all-reduce of `blocks` over every rank (nothing with one worker).
void add_allreduce_all(Round& round, const ModelSpec& spec, int workers, Payload payload,
                       const std::vector<int>& blocks, Phase phase = Phase::round_end);
// Throws UserError: --warmup-epochs is ResIST's.
void reject_warmup(const ScheduleConfig& c);

}  // namespace resist
