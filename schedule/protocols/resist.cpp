// ResIST: every round each worker trains a shallow sub-ResNet: the shared
// blocks plus k = max(ceil(B/S), d_min) of the B partitionable blocks, dealt
// at random (resist_partition). At the end of a round the shared blocks are
// all-reduced; each partitioned block is averaged among the workers that
// trained it (a reduce at a holder that keeps it), then handed to the workers
// that train it next round. Optional warm-up: local-SGD rounds first.
#include <algorithm>
#include <cassert>

#include "models/error.hpp"
#include "schedule/protocol.hpp"

namespace resist {

namespace {

class Resist : public ProtocolRules {
 public:
  Resist(int workers, std::uint64_t seed) : S_(workers), seed_(seed) {}

  void validate(const ModelSpec& spec, const ScheduleConfig& c) const override {
    const int B = int(spec.partitionable.size());
    if (B == 0) throw UserError("--protocol resist: model " + spec.name + " has no partitionable blocks");
    if (c.min_depth < 1 || c.min_depth > B)
      throw UserError("--min-depth: must be in 1.." + std::to_string(B) + " for " + spec.name + " (got " +
                      std::to_string(c.min_depth) + ")");
  }

  void init(const ModelSpec& spec, Schedule& header, int num_rounds) override {
    const auto& c = header.config;
    header.shared_blocks = spec.shared;
    partitionable_ = spec.partitionable;
    const int B = int(partitionable_.size());
    k_ = resist_blocks_per_worker(B, S_, c.min_depth);
    // The authors' code: max(1/S, d_min/B) when a minimum depth is set.
    const double scale = std::min(1.0, std::max(1.0 / S_, double(c.min_depth) / B));
    for (int b : spec.partitionable) header.eval_scale[b] = scale;
    const std::int64_t warmup_iters = std::int64_t(c.warmup_epochs) * header.iters_per_epoch;
    const int ell = c.local_iters;
    warmup_rounds_ = int(std::min<std::int64_t>(num_rounds, (warmup_iters + ell - 1) / ell));
  }

  std::vector<std::vector<int>> holdings(int r) const override {
    std::vector<std::vector<int>> held(S_);
    if (r < warmup_rounds_) {  // local-SGD warm-up: everyone trains the whole model
      for (auto& h : held) h = partitionable_;
      return held;
    }
    const auto parts = resist_partition(int(partitionable_.size()), S_, k_, seed_, r);
    for (int w = 0; w < S_; ++w)
      for (int pos : parts[w]) held[w].push_back(partitionable_[pos]);
    return held;
  }

  void sync(const ProtocolContext& ctx, Round& round, const std::vector<std::vector<int>>& next) const override {
    if (round.index < warmup_rounds_) {
      // Warm-up: average the whole model; every worker then has every block
      // it may hold next round, so no hand-off follows.
      add_allreduce_all(round, ctx.spec, S_, Payload::shared, all_indices(int(ctx.spec.blocks.size())));
      return;
    }
    add_allreduce_all(round, ctx.spec, S_, Payload::shared, ctx.header.shared_blocks);
    const bool eval = round.evaluate && round.index + 1 < ctx.num_rounds;
    std::vector<CommOp> eval_ops;
    for (int b : partitionable_) sync_block(ctx, round, next, b, eval, eval_ops);
    round.sync.insert(round.sync.end(), eval_ops.begin(), eval_ops.end());
  }

  bool fresh_optimizer() const override { return true; }
  void check_keep_optimizer() const override {
    throw UserError("--optimizer-state keep: only for local-sgd and data-parallel (ResIST re-creates it every round, "
                    "as the authors do)");
  }
  int warmup_rounds() const override { return warmup_rounds_; }

 private:
  // Block b: reduce among this round's holders, then hand to next round's
  // owners; an evaluation also needs it at rank 0.
  void sync_block(const ProtocolContext& ctx, Round& round, const std::vector<std::vector<int>>& next, int b,
                  bool eval, std::vector<CommOp>& eval_ops) const {
    std::vector<int> holders, owners;
    for (int w = 0; w < S_; ++w) {
      if (contains(round.workers[w].blocks, b)) holders.push_back(w);
      if (contains(next[w], b)) owners.push_back(w);
    }
    assert(!holders.empty() && !owners.empty());
    // Average at a holder that keeps the block next round, if any, so that
    // one fewer copy has to travel.
    int root = holders.front();
    for (int h : holders)
      if (contains(owners, h)) {
        root = h;
        break;
      }
    const std::vector<int> blocks = {b};
    const std::uint64_t bytes = ctx.spec.bytes(blocks);
    if (holders.size() > 1) {
      std::vector<int> group = {root};
      for (int h : holders)
        if (h != root) group.push_back(h);
      round.sync.push_back({OpKind::reduce, Payload::partitioned, group, blocks, bytes});
    }
    std::vector<int> dest = {root};
    for (int o : owners)
      if (o != root) dest.push_back(o);
    if (dest.size() == 2) round.sync.push_back({OpKind::send, Payload::handoff, dest, blocks, bytes});
    if (dest.size() > 2) round.sync.push_back({OpKind::broadcast, Payload::handoff, dest, blocks, bytes});
    if (eval && root != 0 && !contains(owners, 0))
      eval_ops.push_back({OpKind::send, Payload::eval, {root, 0}, blocks, bytes});
  }

  int S_;
  std::uint64_t seed_;
  std::vector<int> partitionable_;
  int k_ = 0, warmup_rounds_ = 0;
};

}  // namespace

std::unique_ptr<ProtocolRules> make_resist(const ScheduleConfig& c) {
  return std::make_unique<Resist>(c.workers, c.seed);
}

}  // namespace resist
