#include "schedule/layer_parallel.hpp"

#include <algorithm>
#include <cassert>
#include <limits>

#include "models/error.hpp"

namespace resist {

std::vector<Stage> min_bottleneck_split(const std::vector<std::uint64_t>& cost,
                                        const std::vector<std::uint64_t>& start_cost, int k) {
  const int n = int(cost.size());
  assert(k >= 1 && k <= n && start_cost.size() == cost.size());
  std::vector<std::uint64_t> prefix(n + 1, 0);
  for (int i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + cost[i];
  auto stage_cost = [&](int i, int j) { return prefix[j] - prefix[i] + start_cost[i]; };  // items i..j-1
  constexpr auto inf = std::numeric_limits<std::uint64_t>::max();
  // best[m][j]: the smallest bottleneck of items 0..j-1 in m stages; from[m][j]: where the last starts.
  std::vector<std::vector<std::uint64_t>> best(k + 1, std::vector<std::uint64_t>(n + 1, inf));
  std::vector<std::vector<int>> from(k + 1, std::vector<int>(n + 1, -1));
  best[0][0] = 0;
  for (int m = 1; m <= k; ++m)
    for (int j = m; j <= n; ++j)
      for (int i = m - 1; i < j; ++i) {
        if (best[m - 1][i] == inf) continue;
        const std::uint64_t b = std::max(best[m - 1][i], stage_cost(i, j));
        if (b < best[m][j]) {
          best[m][j] = b;
          from[m][j] = i;
        }
      }
  std::vector<Stage> stages(k);
  for (int m = k, j = n; m >= 1; --m) {
    const int i = from[m][j];
    stages[m - 1] = {i, j - 1};
    j = i;
  }
  return stages;
}

std::uint64_t stage_train_flops(const ModelSpec& spec, const Stage& s, int aux_width) {
  std::uint64_t f = 0;
  for (int b = s.first; b <= s.last; ++b) f += spec.blocks.at(b).flops_fwd;
  if (s.first > 0) f += aux_head(spec, s.first, aux_width).flops_fwd;
  return 3 * f;
}

std::vector<Stage> layer_parallel_stages(const ModelSpec& spec, int stages, int aux_width) {
  const int n = int(spec.blocks.size());
  std::vector<std::uint64_t> cost(n), start(n, 0);
  for (int b = 0; b < n; ++b) {
    cost[b] = 3 * spec.blocks[b].flops_fwd;
    if (b > 0) start[b] = 3 * aux_head(spec, b, aux_width).flops_fwd;
  }
  return min_bottleneck_split(cost, start, stages);
}

void validate_layer_parallel(const ModelSpec& spec, int stages, int replicas, int aux_width, double beta) {
  if (spec.blocks.size() > 1) aux_head(spec, 1, aux_width);  // the model and the width
  const int n = int(spec.blocks.size());
  if (stages < 2 || stages > n)
    throw UserError("--stages: must be in 2.." + std::to_string(n) + " (the blocks of " + spec.name + "; got " +
                    std::to_string(stages) + ")");
  if (replicas < 1) throw UserError("--replicas: must be >= 1 (got " + std::to_string(replicas) + ")");
  if (!(beta > 0)) throw UserError("--lp-beta: must be > 0 (got " + std::to_string(beta) + ")");
}

void reject_layer_parallel_flag(const std::string& flag, const std::string& protocol) {
  throw UserError(flag + ": only with --protocol layer-parallel (got --protocol " + protocol + ")");
}

LayerParallelTimes layer_parallel_times(const std::vector<double>& block_train_s,
                                        const std::vector<double>& aux_train_s, double extra_s,
                                        double data_s) {
  LayerParallelTimes t;
  t.data_s = data_s;
  for (double s : block_train_s) t.serial_s += s;
  for (double s : aux_train_s) t.aux_s = std::max(t.aux_s, s);
  t.extra_s = extra_s;
  return t;
}

double layer_parallel_rho(const LayerParallelTimes& t, int k) {
  assert(k >= 1);
  return (t.data_s + t.serial_s) / (t.data_s + t.aux_s + t.extra_s + t.serial_s / k);
}

double layer_parallel_rho_limit(const LayerParallelTimes& t) {
  return (t.data_s + t.serial_s) / (t.data_s + t.aux_s + t.extra_s);
}

}  // namespace resist
