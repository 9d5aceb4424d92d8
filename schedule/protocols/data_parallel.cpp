// Data-parallel SGD: every worker trains the whole model on its shard and the
// gradients are all-reduced after every iteration's backward pass (one local
// iteration per round), before the optimizer step.
#include "schedule/protocol.hpp"

namespace resist {

namespace {

class DataParallel : public ProtocolRules {
 public:
  void validate(const ModelSpec&, const ScheduleConfig& c) const override { reject_warmup(c); }
  int local_iters(const ScheduleConfig&) const override { return 1; }
  void init(const ModelSpec& spec, Schedule& header, int) override {
    header.shared_blocks = all_indices(int(spec.blocks.size()));
  }
  void sync(const ProtocolContext& ctx, Round& round, const std::vector<std::vector<int>>&) const override {
    add_allreduce_all(round, ctx.spec, ctx.header.config.workers, Payload::gradients, ctx.header.shared_blocks,
                      Phase::iteration);
  }
};

}  // namespace

std::unique_ptr<ProtocolRules> make_data_parallel(const ScheduleConfig&) { return std::make_unique<DataParallel>(); }

}  // namespace resist
