// Local SGD: every worker trains the whole model for ℓ local iterations on its
// shard; then the parameters are averaged with one all-reduce.
#include "schedule/protocol.hpp"

namespace resist {

namespace {

class LocalSgd : public ProtocolRules {
 public:
  void validate(const ModelSpec&, const ScheduleConfig& c) const override { reject_warmup(c); }
  void init(const ModelSpec& spec, Schedule& header, int) override {
    header.shared_blocks = all_indices(int(spec.blocks.size()));
  }
  void sync(const ProtocolContext& ctx, Round& round, const std::vector<std::vector<int>>&) const override {
    add_allreduce_all(round, ctx.spec, ctx.header.config.workers, Payload::shared, ctx.header.shared_blocks);
  }
};

}  // namespace

std::unique_ptr<ProtocolRules> make_local_sgd(const ScheduleConfig&) { return std::make_unique<LocalSgd>(); }

}  // namespace resist
