#include "schedule/accounting.hpp"

#include <cassert>

#include "schedule/ist.hpp"

namespace resist {

Chunk ring_chunk(std::uint64_t elements, int n, int c) {
  assert(n > 0 && c >= 0 && c < n);
  const std::uint64_t base = elements / n, extra = elements % n;
  const std::uint64_t uc = std::uint64_t(c);
  return {uc * base + std::min(uc, extra), base + (uc < extra ? 1 : 0)};
}

std::vector<std::uint64_t> wire_sent(const CommOp& op, int workers) {
  std::vector<std::uint64_t> sent(workers, 0);
  const int n = int(op.ranks.size());
  switch (op.kind) {
    case OpKind::allreduce: {
      const std::uint64_t elements = op.bytes / 4;
      for (int i = 0; i < n; ++i) {
        // Reduce-scatter step s sends chunk (i - s) mod n, all-gather step s
        // sends chunk (i + 1 - s) mod n, for s = 0..n-2.
        for (int s = 0; s + 1 < n; ++s) {
          sent[op.ranks[i]] += 4 * ring_chunk(elements, n, ((i - s) % n + n) % n).count;
          sent[op.ranks[i]] += 4 * ring_chunk(elements, n, ((i + 1 - s) % n + n) % n).count;
        }
      }
      break;
    }
    case OpKind::reduce:
      for (int i = 1; i < n; ++i) sent[op.ranks[i]] += op.bytes;
      break;
    case OpKind::broadcast:
      for (int i = 0; i + 1 < n; ++i) sent[op.ranks[i]] += op.bytes;
      break;
    case OpKind::send:
      sent[op.ranks[0]] += op.bytes;
      break;
  }
  return sent;
}

std::uint64_t wire_total(const CommOp& op) {
  const std::uint64_t n = op.ranks.size();
  switch (op.kind) {
    case OpKind::allreduce: return n > 1 ? 2 * (n - 1) * (op.bytes / 4) * 4 : 0;
    case OpKind::reduce:
    case OpKind::broadcast: return n > 1 ? (n - 1) * op.bytes : 0;
    case OpKind::send: return op.bytes;
  }
  return 0;
}

RoundAccounting account(const ModelSpec& spec, const Schedule& header, const Round& round) {
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
    const auto sent = wire_sent(op, workers);
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
