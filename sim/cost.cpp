#include "sim/cost.hpp"

#include "models/error.hpp"
#include "schedule/rng.hpp"

namespace resist::sim {

ComputeModel::ComputeModel(const ModelSpec& spec, const Platform& platform, int batch_size, double backward_factor,
                           std::optional<Profile> profile)
    : spec_(spec), platform_(platform), batch_size_(batch_size), backward_factor_(backward_factor),
      profile_(std::move(profile)) {
  if (!(backward_factor >= 0))
    throw UserError("--backward-factor: must be >= 0 (got " + std::to_string(backward_factor) + ")");
  if (!profile_) return;
  const double scale = double(batch_size) / profile_->batch_size;
  profile_fwd_s_.assign(spec.blocks.size(), -1);
  profile_bwd_s_.assign(spec.blocks.size(), -1);
  for (const auto& b : profile_->blocks) {
    const int i = spec.block_index(b.name);
    if (i < 0) throw UserError("--profile: block '" + b.name + "' is not in model " + spec.name);
    profile_fwd_s_[i] = b.forward_s * scale;
    profile_bwd_s_[i] = b.backward_s * scale;
  }
  for (std::size_t i = 0; i < spec.blocks.size(); ++i)
    if (profile_fwd_s_[i] < 0)
      throw UserError("--profile: no time for block '" + spec.blocks[i].name + "' of model " + spec.name);
}

double ComputeModel::block_fwd_s(int b, int rank) const {
  if (profile_) return profile_fwd_s_[b] / platform_.speed_factor(rank);
  return double(spec_.blocks[b].flops_fwd) * batch_size_ / (platform_.gpu_flops * platform_.speed_factor(rank));
}

double ComputeModel::block_bwd_s(int b, int rank) const {
  if (profile_) return profile_bwd_s_[b] / platform_.speed_factor(rank);
  return backward_factor_ * block_fwd_s(b, rank);
}

double ComputeModel::iteration_s(const std::vector<int>& blocks, int rank) const {
  double t = 0;
  std::uint64_t params = 0;
  for (int b : blocks) {
    t += block_fwd_s(b, rank) + block_bwd_s(b, rank);
    params += spec_.blocks[b].param_count;
  }
  const double overhead = profile_ ? profile_->iteration_overhead_s : platform_.iteration_overhead_s;
  const double step = profile_ ? profile_->optimizer_step_s_per_param : platform_.optimizer_s_per_param;
  return t + overhead + step * double(params);
}

double ComputeModel::backward_fraction(const std::vector<int>& blocks, int rank) const {
  double bwd = 0;
  for (int b : blocks) bwd += block_bwd_s(b, rank);
  const double total = iteration_s(blocks, rank);
  return total > 0 ? bwd / total : 0;
}

double ComputeModel::round_s(const std::vector<int>& blocks, int rank, int round, int local_iters) const {
  double t = local_iters * iteration_s(blocks, rank);
  if (platform_.straggler_probability > 0) {
    Rng rng(platform_.straggler_seed, std::uint64_t(round) * 1048576u + std::uint64_t(rank));
    if (rng.uniform() < platform_.straggler_probability) t *= platform_.straggler_slowdown;
  }
  return t;
}

}  // namespace resist::sim
