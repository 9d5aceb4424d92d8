// IST (independent subnet training) for MLPs: every round the hidden neurons
// of each layer are partitioned among the workers; each trains its subnet
// (a neuron slice of every block) and the pieces are exchanged so that each
// worker holds next round's slice, decentralised or through a parameter
// server at rank 0 (docs/ist.md, schedule/ist.hpp).
#include "models/error.hpp"
#include "schedule/ist.hpp"
#include "schedule/protocol.hpp"

namespace resist {

namespace {

class Ist : public ProtocolRules {
 public:
  Ist(int workers, std::uint64_t seed) : S_(workers), seed_(seed) {}

  void validate(const ModelSpec& spec, const ScheduleConfig& c) const override {
    reject_warmup(c);
    validate_ist(spec, c.workers);
  }
  void init(const ModelSpec& spec, Schedule& header, int num_rounds) override {
    // No block is held whole: every worker trains a neuron slice of each.
    plan_ = std::make_shared<const IstPlan>(spec, S_, seed_);
    nblocks_ = int(spec.blocks.size());
    num_rounds_ = num_rounds;
    header.holding = Holding::slices;
  }
  std::vector<std::vector<int>> holdings(int) const override {
    return std::vector<std::vector<int>>(std::size_t(S_), all_indices(nblocks_));
  }
  void sync(const ProtocolContext& ctx, Round& round, const std::vector<std::vector<int>>&) const override;
  bool fresh_optimizer() const override { return true; }
  void check_keep_optimizer() const override {
    throw UserError("--optimizer-state keep: not for IST (every round trains a different subnet)");
  }
  const IstPlan* ist() const override { return plan_.get(); }

 private:
  int S_;
  std::uint64_t seed_;
  std::shared_ptr<const IstPlan> plan_;
  int nblocks_ = 0, num_rounds_ = 0;
};

// Every op carries a piece: the elements in both piece.from and piece.to;
// op.blocks lists the blocks it touches.
void Ist::sync(const ProtocolContext& ctx, Round& round, const std::vector<std::vector<int>>&) const {
  const auto& c = ctx.header.config;
  const IstPlan& plan = *plan_;
  const int r = round.index;
  const bool last = r + 1 >= ctx.num_rounds;
  const bool eval = round.evaluate && !last;
  if (S_ == 1) return;
  const IstPartition now = plan.partition(r), next = plan.partition(r + 1);
  auto add = [&](OpKind kind, Payload payload, std::vector<int> ranks, IstPiece piece) {
    const IstPartition& pf = piece.from.round == r + 1 ? next : now;
    const IstPartition& pt = piece.to.round == r + 1 ? next : now;
    CommOp op{kind, payload, std::move(ranks), {}, 0, piece};
    for (int b = 0; b < nblocks_; ++b)
      if (const std::uint64_t n = plan.piece_numel(piece, b, pf, pt); n > 0) {
        op.blocks.push_back(b);
        op.bytes += 4 * n;
      }
    if (op.bytes > 0) round.sync.push_back(std::move(op));
  };
  using K = IstSetKind;
  const IstSet all{K::all}, shared{K::shared};
  add(OpKind::allreduce, Payload::shared, all_indices(S_), {shared, shared});
  if (c.ist_sync == IstSync::parameter_server) {
    // Rank 0 keeps the whole model: gather what everyone trained, then
    // scatter next round's subnets.
    for (int w = 1; w < S_; ++w) add(OpKind::send, Payload::partitioned, {w, 0}, {{K::trained, r, w}, all});
    if (!last)
      for (int w = 1; w < S_; ++w) add(OpKind::send, Payload::handoff, {0, w}, {all, {K::trained, r + 1, w}});
    return;
  }
  // Decentralised: held(r, ·) -> held(r + 1, ·), or everything to rank 0
  // after the last round. Phase k: worker w sends to w + k, so in each phase
  // every worker sends one piece and receives one.
  for (int k = 1; k < S_; ++k)
    for (int w = 0; w < S_; ++w) {
      const int to = (w + k) % S_;
      if (last && to != 0) continue;
      add(OpKind::send, Payload::handoff, {w, to}, {{K::held, r, w}, last ? all : IstSet{K::held, r + 1, to}});
    }
  if (eval)
    for (int w = 1; w < S_; ++w) add(OpKind::send, Payload::eval, {w, 0}, {{K::held, r + 1, w}, all});
}

}  // namespace

std::unique_ptr<ProtocolRules> make_ist(const ScheduleConfig& c) { return std::make_unique<Ist>(c.workers, c.seed); }

}  // namespace resist
