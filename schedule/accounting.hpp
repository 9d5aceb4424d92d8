#pragma once
// Communication accounting: which bytes are counted, exactly.
//
// bytes_per_round (the ResIST paper's Table 1 convention): every machine
//   receives the fp32 parameters of its (sub-)model at the start of a round
//   and sends them back at its end; the figure is the sum over workers of
//   bytes received plus bytes sent = sum_w 2 * 4 * params(model of w).
//   Local SGD: the whole model per machine; data-parallel: per iteration (one
//   round is one iteration). IST: a machine's model is its subnet (its neuron
//   slices, IstPlan::trained_params, plus the shared output bias); with the
//   parameter-server variant rank 0 also keeps the whole model, which is not
//   counted here (it does not travel).
//   params_per_worker: the parameters of the (sub-)model each machine trains.
//
// wire bytes: what the algorithms put on the wire, counted at the sender
//   (payload bytes only: no headers, no latency terms): the sum of the
//   transfers of the op's CollectivePlan (schedule/collectives.hpp) under the
//   run's CollectiveOptions (default: ring all-reduce, chain reduce and
//   broadcast). With M the op's payload and n = ranks.size():
//   - allreduce ring 2(n-1)·M in all (2(n-1)/n·M per rank); tree 2(n-1)·M;
//     hd 2(p-1)·M + 2r·M (p the largest power of two ≤ n, r = n - p);
//     hierarchical: the intra-node trees' (m-1)·M per node and direction, plus
//     the leaders' ring;
//   - reduce, broadcast (chain or tree): every rank but one sends M once;
//   - send: the source sends M.
//   IST ops carry a piece (CommOp::piece): M is 4 x its element count, exact.
// Both backends implement these algorithms and must move exactly these bytes.
#include <cstdint>
#include <vector>

#include "schedule/collectives.hpp"
#include "schedule/schedule.hpp"

namespace resist {

// Bytes each rank (0..workers-1) sends for one op.
std::vector<std::uint64_t> wire_sent(const CommOp& op, int workers, const CollectiveOptions& options = {});
// Bytes each rank receives for one op: the sum of the plan's transfers into
// it (ring all-reduce: what its predecessor sends). Timelines of both backends
// carry it for the receiving side of every transfer.
std::vector<std::uint64_t> wire_received(const CommOp& op, int workers, const CollectiveOptions& options = {});
std::uint64_t wire_total(const CommOp& op, const CollectiveOptions& options = {});

struct RoundAccounting {
  std::uint64_t bytes_per_round = 0;              // Table 1 convention
  std::uint64_t wire_bytes = 0;                   // all ranks, all ops
  std::vector<std::uint64_t> wire_sent_per_worker;
  std::vector<std::uint64_t> params_per_worker;   // parameters held this round
  // Training ops only: eval gathers (Payload::eval) are counted separately.
  std::uint64_t eval_wire_bytes = 0;
};
RoundAccounting account(const ModelSpec& spec, const Schedule& header, const Round& round,
                        const CollectiveOptions& options = {});

}  // namespace resist
