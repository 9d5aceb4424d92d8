#include "sim/cost.hpp"

#include <algorithm>

#include "models/error.hpp"
#include "schedule/rng.hpp"

namespace resist::sim {

ComputeModel::ComputeModel(const ModelSpec& spec, const Platform& platform, int batch_size, double backward_factor,
                           std::optional<Profile> profile, int workers)
    : spec_(spec), platform_(platform), batch_size_(batch_size), backward_factor_(backward_factor),
      profile_(std::move(profile)) {
  if (!(backward_factor >= 0 && backward_factor <= 1000))
    throw UserError("--backward-factor: must be in 0..1000 (got " + std::to_string(backward_factor) + ")");
  if (!profile_) return;
  // A profile is bound to what it measured: per-block times of another
  // network (depth, block, width, dataset) or batch say nothing about this one.
  const std::string measured = build_model(profile_->model).name;
  if (measured != spec.name)
    throw UserError("--profile: measured on model " + measured + ", but this run simulates " + spec.name +
                    " (profile the same model, block, width and dataset)");
  if (profile_->batch_size != batch_size)
    throw UserError("--profile: measured at batch " + std::to_string(profile_->batch_size) +
                    ", but this run uses batch " + std::to_string(batch_size) + " (profile at the run's batch size)");
  profile_fwd_s_.assign(spec.blocks.size(), -1);
  profile_bwd_s_.assign(spec.blocks.size(), -1);
  for (const auto& b : profile_->blocks) {
    const int i = spec.block_index(b.name);
    if (i < 0) throw UserError("--profile: block '" + b.name + "' is not in model " + spec.name);
    profile_fwd_s_[i] = b.forward_s;
    profile_bwd_s_[i] = b.backward_s;
  }
  for (std::size_t i = 0; i < spec.blocks.size(); ++i)
    if (profile_fwd_s_[i] < 0)
      throw UserError("--profile: no time for block '" + spec.blocks[i].name + "' of model " + spec.name);
  set_variability(workers);
}

void ComputeModel::set_variability(int workers) {
  const Profile& p = *profile_;
  if (workers <= 0 || !(p.iteration_s > 0) || p.iteration_samples.empty()) return;
  const int per_node = std::max(1, platform_.gpus_per_node);
  variability_of_rank_.assign(std::size_t(workers), 0);
  for (int r = 0; r < workers; ++r) {
    // Processes at once on this rank's machine: the node's ranks on a CPU node, else one.
    const int node = r / per_node;
    const int at_once = platform_.cores_per_node > 0 ? std::min(per_node, workers - node * per_node) : 1;
    const IterationSamples* best = nullptr;
    for (const auto& set : p.iteration_samples)
      if (set.processes <= at_once && !set.iteration_s.empty() && (!best || set.processes > best->processes))
        best = &set;
    if (!best) continue;
    if (!variability_.count(best->processes)) {
      // No cores recorded: no sharing to take out.
      const double even_share = p.cores > 0 ? even_share_slowdown(best->processes, p.cores, p.threads) : 1.0;
      std::vector<double> f;
      for (double v : best->iteration_s) f.push_back(v / (p.iteration_s * even_share));
      variability_.emplace(best->processes, std::move(f));
    }
    variability_of_rank_[std::size_t(r)] = best->processes;
  }
}

namespace {
// The subnet's share of block b's FLOPs (1 without a subnet).
double flops_ratio(const ModelSpec& spec, const ModelSpec* subnet, int b) {
  if (!subnet || spec.blocks[b].flops_fwd == 0) return 1.0;
  return double(subnet->blocks[b].flops_fwd) / double(spec.blocks[b].flops_fwd);
}
}  // namespace

double ComputeModel::block_fwd_s(int b, int rank, const ModelSpec* subnet) const {
  if (profile_) return profile_fwd_s_[b] * flops_ratio(spec_, subnet, b) / platform_.speed_factor(rank);
  const ModelSpec& m = subnet ? *subnet : spec_;
  return double(m.blocks[b].flops_fwd) * batch_size_ / (platform_.gpu_flops * platform_.speed_factor(rank));
}

double ComputeModel::block_bwd_s(int b, int rank, const ModelSpec* subnet) const {
  if (profile_) return profile_bwd_s_[b] * flops_ratio(spec_, subnet, b) / platform_.speed_factor(rank);
  return backward_factor_ * block_fwd_s(b, rank, subnet);
}

double ComputeModel::iteration_s(const std::vector<int>& blocks, int rank, const ModelSpec* subnet) const {
  const ModelSpec& m = subnet ? *subnet : spec_;
  double t = 0;
  std::uint64_t params = 0;
  for (int b : blocks) {
    t += block_fwd_s(b, rank, subnet) + block_bwd_s(b, rank, subnet);
    params += m.blocks[b].param_count;
  }
  const double overhead = profile_ ? profile_->iteration_overhead_s : platform_.iteration_overhead_s;
  const double step = profile_ ? profile_->optimizer_step_s_per_param : platform_.optimizer_s_per_param;
  return t + overhead + step * double(params);
}

double ComputeModel::aux_head_s(const AuxHeadSpec& a, int rank) const {
  const double flops = double(a.flops_fwd) * batch_size_;
  double s_per_flop = 1.0 / (platform_.gpu_flops * platform_.speed_factor(rank));
  double train = (1 + backward_factor_) * flops * s_per_flop;
  if (profile_) {
    double t = 0, f = 0;
    for (std::size_t b = 0; b < spec_.blocks.size(); ++b) {
      t += profile_fwd_s_[b] + profile_bwd_s_[b];
      f += double(spec_.blocks[b].flops_fwd) * batch_size_;
    }
    train = f > 0 ? flops * t / f / platform_.speed_factor(rank) : 0;
  }
  const double step = profile_ ? profile_->optimizer_step_s_per_param : platform_.optimizer_s_per_param;
  return train + step * double(a.param_count);
}

double ComputeModel::backward_fraction(const std::vector<int>& blocks, int rank, const ModelSpec* subnet) const {
  double bwd = 0;
  for (int b : blocks) bwd += block_bwd_s(b, rank, subnet);
  const double total = iteration_s(blocks, rank, subnet);
  return total > 0 ? bwd / total : 0;
}

double ComputeModel::round_setup_s(const std::vector<int>& trained, const RoundSetup& setup, int rank,
                                   const ModelSpec* subnet) const {
  if (!profile_ || spec_.param_count() == 0) return 0;
  const ModelSpec& m = subnet ? *subnet : spec_;
  // The share of the whole model's parameters in `blocks` (of the subnet's, if any).
  auto share = [&](const std::vector<int>& blocks) {
    std::uint64_t params = 0;
    for (int b : blocks) params += m.blocks[b].param_count;
    return double(params) / double(spec_.param_count());
  };
  // IST's slices go in by element index (index_select) and come out the same
  // way (index_copy_; param_store.cpp's SliceStore): the profile's per-byte
  // cost of that, not its contiguous copy of whole blocks.
  double reload = share(setup.reload_blocks) * profile_->reload_s;
  if (subnet && profile_->ist_pack_s_per_byte > 0) {
    std::uint64_t params = 0;
    for (int b : setup.reload_blocks) params += m.blocks[b].param_count;
    reload = 4.0 * double(params) * profile_->ist_pack_s_per_byte;
  }
  // A network built anew also pays its first iteration's extra (inside the
  // runtime's compute; charged here, with the rebuild it follows).
  const double rebuild = setup.rebuild ? share(trained) * (profile_->rebuild_s + profile_->first_iteration_s) : 0.0;
  return (reload + rebuild) / platform_.speed_factor(rank);
}

double ComputeModel::pack_s_per_byte(bool ist) const {
  if (!profile_) return 0;
  return ist ? profile_->ist_pack_s_per_byte : profile_->pack_s_per_byte;
}

double ComputeModel::round_s(const std::vector<int>& blocks, int rank, int round, int local_iters,
                             const ModelSpec* subnet) const {
  double t = local_iters * iteration_s(blocks, rank, subnet);
  if (rank < int(variability_of_rank_.size()) && variability_of_rank_[std::size_t(rank)] > 0 && local_iters > 0) {
    // The mean of the round's draws (of at most 64: beyond, the mean hardly moves).
    const auto& f = variability_.at(variability_of_rank_[std::size_t(rank)]);
    Rng rng(0x7a11a6e5u, std::uint64_t(round) * 1048576u + std::uint64_t(rank));
    const int n = std::min(local_iters, 64);
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += f[rng.below(f.size())];
    t *= sum / n;
  }
  if (platform_.straggler_probability > 0) {
    Rng rng(platform_.straggler_seed, std::uint64_t(round) * 1048576u + std::uint64_t(rank));
    if (rng.uniform() < platform_.straggler_probability) t *= platform_.straggler_slowdown;
  }
  return t;
}

}  // namespace resist::sim
