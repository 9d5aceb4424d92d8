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
// wire bytes: what the algorithms below put on the wire, counted at the
//   sender (payload bytes only: no headers, no latency terms). With M the
//   op's payload and n = ranks.size():
//   - allreduce: ring reduce-scatter + all-gather; the M/4 floats are split
//     into n chunks (ring_chunk); each rank sends n-1 chunks per phase; in all
//     2(n-1)·M, i.e. 2(n-1)/n·M per rank.
//   - reduce: a chain ending at the root; every non-root rank sends M once.
//   - broadcast: a pipelined chain from the root; every rank but the last
//     sends M once (chunked for pipelining; the chunking moves no extra bytes).
//   - send: the source sends M.
//   IST ops carry a piece (CommOp::piece): M is 4 x its element count, exact.
// Both backends implement these algorithms and must move exactly these bytes.
#include <cstdint>
#include <vector>

#include "schedule/schedule.hpp"

namespace resist {

struct Chunk {
  std::uint64_t offset = 0, count = 0;  // in elements
};
// Chunk c of n over `elements`: the first elements % n chunks get one more.
Chunk ring_chunk(std::uint64_t elements, int n, int c);

// Bytes each rank (0..workers-1) sends for one op.
std::vector<std::uint64_t> wire_sent(const CommOp& op, int workers);
// Bytes each rank receives for one op (what its predecessor in the algorithm
// sends it): allreduce, rank i gets what ranks[i-1] sends; reduce, all but
// ranks[n-1]; broadcast, all but the root; send, ranks[1]. Timelines of both
// backends carry it for the receiving side of every transfer.
std::vector<std::uint64_t> wire_received(const CommOp& op, int workers);
std::uint64_t wire_total(const CommOp& op);

struct RoundAccounting {
  std::uint64_t bytes_per_round = 0;              // Table 1 convention
  std::uint64_t wire_bytes = 0;                   // all ranks, all ops
  std::vector<std::uint64_t> wire_sent_per_worker;
  std::vector<std::uint64_t> params_per_worker;   // parameters held this round
  // Training ops only: eval gathers (Payload::eval) are counted separately.
  std::uint64_t eval_wire_bytes = 0;
};
RoundAccounting account(const ModelSpec& spec, const Schedule& header, const Round& round);

}  // namespace resist
