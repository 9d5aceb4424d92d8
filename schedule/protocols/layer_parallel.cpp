// Layer-parallel training with auxiliary networks (docs/layer-parallel.md;
// the split and the bound in schedule/layer_parallel.hpp). K stages × R
// replicas: worker w trains stage w % K of replica w / K — the stage's
// consecutive blocks and, for k >= 1, the auxiliary head producing its
// input — on replica w / K's data shard, so the K stages of a replica see the
// same batches. A round is one iteration:
//   - after the forward pass (Phase::forward), at every boundary between
//     stages k-1 and k of a replica, two sends of batch × the boundary
//     tensor: stage k-1's output forward, stage k's auxiliary output back;
//   - every ℓ-th round with R > 1 (Phase::round_end), the R copies of each
//     stage average their blocks and their auxiliary head (local SGD within a
//     stage);
//   - evaluating rounds gather every stage's blocks at rank 0, where the
//     ordinary network (no auxiliary heads) is evaluated; after the last
//     round rank 0 keeps them (the final model).
#include "models/error.hpp"
#include "schedule/layer_parallel.hpp"
#include "schedule/protocol.hpp"

namespace resist {

namespace {

class LayerParallel : public ProtocolRules {
 public:
  explicit LayerParallel(const ScheduleConfig& c)
      : K_(c.stages), R_(c.replicas), width_(c.aux_width), ell_(c.local_iters) {}

  void validate(const ModelSpec& spec, const ScheduleConfig& c) const override {
    reject_warmup(c);
    validate_layer_parallel(spec, c.stages, c.replicas, c.aux_width, 1.0);
    if (c.workers != c.stages * c.replicas)
      throw UserError("--workers: layer-parallel runs --stages × --replicas = " +
                      std::to_string(c.stages * c.replicas) + " workers (got " + std::to_string(c.workers) + ")");
  }
  int local_iters(const ScheduleConfig&) const override { return 1; }
  int data_shards(const ScheduleConfig& c) const override { return c.replicas; }

  void init(const ModelSpec& spec, Schedule& header, int) override {
    header.shared_blocks.clear();
    stages_ = layer_parallel_stages(spec, K_, width_);
    header.stages = stages_;
    header.data_shard.resize(std::size_t(K_ * R_));
    for (int w = 0; w < K_ * R_; ++w) header.data_shard[std::size_t(w)] = w / K_;
  }

  std::vector<std::vector<int>> holdings(int) const override {
    std::vector<std::vector<int>> held(std::size_t(K_ * R_));
    for (int w = 0; w < K_ * R_; ++w)
      for (int b = stages_[w % K_].first; b <= stages_[w % K_].last; ++b) held[std::size_t(w)].push_back(b);
    return held;
  }

  void sync(const ProtocolContext& ctx, Round& round, const std::vector<std::vector<int>>&) const override {
    for (int w = 0; w < K_ * R_; ++w)
      round.workers[std::size_t(w)].aux_target = w % K_ > 0 ? stages_[w % K_].first : -1;
    exchanges(ctx, round);
    if (R_ > 1 && ((round.index + 1) % ell_ == 0 || round.index + 1 == ctx.num_rounds)) average(ctx, round);
    if (round.evaluate) gather(ctx, round);
  }

 private:
  int K_, R_, width_, ell_;
  std::vector<Stage> stages_;

  std::vector<int> blocks_of(int k) const {
    std::vector<int> v;
    for (int b = stages_[k].first; b <= stages_[k].last; ++b) v.push_back(b);
    return v;
  }

  void exchanges(const ProtocolContext& ctx, Round& round) const {
    const int batch = ctx.header.config.batch_size;
    for (int rep = 0; rep < R_; ++rep)
      for (int k = 1; k < K_; ++k) {
        const int b = stages_[k].first, lo = rep * K_ + k - 1, hi = rep * K_ + k;
        const std::uint64_t bytes = std::uint64_t(batch) * block_input_bytes(ctx.spec, b);
        for (auto ranks : {std::vector<int>{lo, hi}, std::vector<int>{hi, lo}}) {
          CommOp op{OpKind::send, Payload::activations, ranks, {b}, bytes};
          op.phase = Phase::forward;
          round.sync.push_back(std::move(op));
        }
      }
  }

  void average(const ProtocolContext& ctx, Round& round) const {
    for (int k = 0; k < K_; ++k) {
      std::vector<int> ranks;
      for (int rep = 0; rep < R_; ++rep) ranks.push_back(rep * K_ + k);
      const auto blocks = blocks_of(k);
      round.sync.push_back({OpKind::allreduce, Payload::partitioned, ranks, blocks, ctx.spec.bytes(blocks)});
      if (k > 0)
        round.sync.push_back({OpKind::allreduce, Payload::aux, ranks, {stages_[k].first},
                              aux_head(ctx.spec, stages_[k].first, width_).bytes()});
    }
  }

  void gather(const ProtocolContext& ctx, Round& round) const {
    const bool last = round.index + 1 == ctx.num_rounds;
    for (int k = 1; k < K_; ++k) {
      const auto blocks = blocks_of(k);
      round.sync.push_back({OpKind::send, last ? Payload::handoff : Payload::eval, {k, 0}, blocks,
                            ctx.spec.bytes(blocks)});
    }
  }
};

}  // namespace

std::unique_ptr<ProtocolRules> make_layer_parallel(const ScheduleConfig& c) {
  return std::make_unique<LayerParallel>(c);
}

}  // namespace resist
