#include "schedule/round_setup.hpp"

#include <algorithm>
#include <set>

namespace resist {

namespace {
std::vector<int> sorted_trained(const Schedule& header, const Round& round, int worker) {
  std::vector<int> blocks = trained_blocks(header, round, worker);
  std::sort(blocks.begin(), blocks.end());
  blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  return blocks;
}
}  // namespace

RoundSetup round_setup(const Schedule& header, const Round* previous, const Round& round, int worker) {
  std::vector<int> now = sorted_trained(header, round, worker);
  if (header.holding == Holding::slices) return {true, std::move(now)};
  if (!previous) {
    if (round.index == 0) return {true, {}};  // the seeded initial weights are the values
    return {true, std::move(now)};
  }
  if (sorted_trained(header, *previous, worker) != now) return {true, std::move(now)};
  // The same network: copy in only what the previous round's ops replaced here.
  std::set<int> replaced;
  for (const auto& op : previous->sync)
    if (op.phase == Phase::round_end && op.payload != Payload::aux && op.involves(worker))
      replaced.insert(op.blocks.begin(), op.blocks.end());
  RoundSetup s;
  for (int b : now)
    if (replaced.count(b)) s.reload_blocks.push_back(b);
  return s;
}

}  // namespace resist
