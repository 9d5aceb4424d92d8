#include "schedule/accounting.hpp"

#include <map>
#include <tuple>

#include "schedule/ist.hpp"

namespace resist {

namespace {

// Per position, the bytes a plan sends. Plans other than hierarchical depend
// only on (collective, algorithm, n, elements, chunk), so a run's thousands of
// identical all-reduces are summed once.
// `received`: bytes into each position instead of out of it.
std::vector<std::uint64_t> plan_bytes(const CommOp& op, const CollectiveOptions& options, bool received = false) {
  const CollectivePlan plan(op, options);
  if (plan.algorithm() == Algorithm::hierarchical) return received ? plan.bytes_received() : plan.bytes_sent();
  using Key = std::tuple<int, int, int, std::uint64_t, std::uint64_t, bool>;
  thread_local std::map<Key, std::vector<std::uint64_t>> memo;
  const Key key{int(plan.collective()), int(plan.algorithm()), plan.size(), plan.elements(), options.chunk_bytes,
                received};
  auto it = memo.find(key);
  if (it == memo.end()) {
    if (memo.size() > 4096) memo.clear();
    it = memo.emplace(key, received ? plan.bytes_received() : plan.bytes_sent()).first;
  }
  return it->second;
}

}  // namespace

std::vector<std::uint64_t> wire_sent(const CommOp& op, int workers, const CollectiveOptions& options) {
  std::vector<std::uint64_t> sent(workers, 0);
  const auto per_position = plan_bytes(op, options);
  for (std::size_t i = 0; i < per_position.size(); ++i) sent[op.ranks[i]] += per_position[i];
  return sent;
}

std::vector<std::uint64_t> wire_received(const CommOp& op, int workers, const CollectiveOptions& options) {
  std::vector<std::uint64_t> got(workers, 0);
  const auto per_position = plan_bytes(op, options, true);
  for (std::size_t i = 0; i < per_position.size(); ++i) got[op.ranks[i]] += per_position[i];
  return got;
}

std::uint64_t wire_total(const CommOp& op, const CollectiveOptions& options) {
  std::uint64_t total = 0;
  for (auto b : plan_bytes(op, options)) total += b;
  return total;
}

RoundAccounting account(const ModelSpec& spec, const Schedule& header, const Round& round,
                        const CollectiveOptions& options) {
  const int workers = header.config.workers;
  RoundAccounting a;
  a.wire_sent_per_worker.assign(workers, 0);
  a.params_per_worker.assign(workers, 0);
  if (header.holding == Holding::slices) {
    // The subnet a worker trains: its neuron slices plus the shared output bias.
    const IstPlan plan(spec, workers, header.config.seed);
    const IstPartition p = plan.partition(round.index);
    for (int w = 0; w < workers; ++w) {
      a.params_per_worker[w] = plan.shared_params() + plan.trained_params(p, w);
      a.bytes_per_round += 2 * 4 * a.params_per_worker[w];
    }
  } else {
    const std::uint64_t shared = spec.param_count(header.shared_blocks);
    for (int w = 0; w < workers; ++w) {
      a.params_per_worker[w] = shared + spec.param_count(round.workers.at(w).blocks);
      a.bytes_per_round += 2 * 4 * a.params_per_worker[w];
    }
  }
  for (const auto& op : round.sync) {
    const auto sent = wire_sent(op, workers, options);
    std::uint64_t total = 0;
    for (int w = 0; w < workers; ++w) total += sent[w];
    if (op.payload == Payload::eval) {
      a.eval_wire_bytes += total;
      continue;
    }
    for (int w = 0; w < workers; ++w) a.wire_sent_per_worker[w] += sent[w];
    a.wire_bytes += total;
  }
  return a;
}

}  // namespace resist
