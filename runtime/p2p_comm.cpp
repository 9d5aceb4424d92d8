#include <algorithm>
#include <cassert>
#include <vector>

#include "runtime/comm.hpp"
#include "schedule/collectives.hpp"

namespace resist::runtime {

namespace {
int position(const std::vector<int>& ranks, int r) {
  const auto it = std::find(ranks.begin(), ranks.end(), r);
  assert(it != ranks.end());
  return int(it - ranks.begin());
}
}  // namespace

void P2PCommunicator::prepare(const std::vector<int>&) { tag_ = (tag_ + 1) & 0xffffff; }

void P2PCommunicator::post_send(const float* buf, std::size_t count, int dst) {
  if (count == 0) return;
  start_send(buf, count, dst, tag_);
  bytes_sent_ += 4 * std::uint64_t(count);
}

// This rank's part of the plan (schedule/collectives.hpp): per step, post its
// sends, receive into scratch, wait, then add or copy what arrived. Every
// message is one of the plan's transfers, so the bytes sent are wire_sent's.
void P2PCommunicator::execute(const CollectivePlan& plan, float* buf) {
  const auto& ranks = plan.ranks();
  const int pos = position(ranks, rank());
  std::vector<Transfer> transfers;
  std::vector<float> scratch;
  for (int k = 0; k < plan.steps(); ++k) {
    transfers.clear();
    plan.transfers(k, pos, transfers);
    std::size_t incoming = 0;
    for (const Transfer& t : transfers)
      if (t.dst == pos) incoming += t.count;
    scratch.resize(std::max(scratch.size(), incoming));
    for (const Transfer& t : transfers)
      if (t.src == pos) post_send(buf + t.offset, t.count, ranks[t.dst]);
    std::size_t at = 0;
    for (const Transfer& t : transfers)
      if (t.dst == pos && t.count > 0) {
        start_recv(scratch.data() + at, t.count, ranks[t.src], tag_);
        at += t.count;
      }
    if (transfers.empty()) continue;
    wait_all();
    at = 0;
    for (const Transfer& t : transfers) {
      if (t.dst != pos) continue;
      float* dst = buf + t.offset;
      const float* in = scratch.data() + at;
      if (t.add)
        for (std::uint64_t i = 0; i < t.count; ++i) dst[i] += in[i];
      else
        std::copy(in, in + t.count, dst);
      at += t.count;
    }
  }
}

// Every participant ends with the same sum (each element is summed by one
// rank and copied to the others), then divides by n.
void P2PCommunicator::allreduce_mean(float* buf, std::size_t count, const std::vector<int>& ranks) {
  if (ranks.size() <= 1) return;
  execute(CollectivePlan(Collective::allreduce, collectives.allreduce, ranks, count, collectives), buf);
  const float inv = 1.0f / float(ranks.size());
  for (std::size_t k = 0; k < count; ++k) buf[k] *= inv;
}

void P2PCommunicator::reduce_mean(float* buf, std::size_t count, const std::vector<int>& ranks) {
  if (ranks.size() <= 1) return;
  execute(CollectivePlan(Collective::reduce, collectives.reduce, ranks, count, collectives), buf);
  if (rank() != ranks[0]) return;
  const float inv = 1.0f / float(ranks.size());
  for (std::size_t k = 0; k < count; ++k) buf[k] *= inv;
}

void P2PCommunicator::broadcast(float* buf, std::size_t count, const std::vector<int>& ranks) {
  if (ranks.size() <= 1) return;
  execute(CollectivePlan(Collective::broadcast, collectives.broadcast, ranks, count, collectives), buf);
}

void P2PCommunicator::send(const float* buf, std::size_t count, int dst) {
  post_send(buf, count, dst);
  wait_all();
}

void P2PCommunicator::recv(float* buf, std::size_t count, int src) {
  if (count == 0) return;
  start_recv(buf, count, src, tag_);
  wait_all();
}

void run_op(Communicator& comm, const CommOp& op, float* buf, std::size_t count) {
  assert(op.involves(comm.rank()));
  switch (op.kind) {
    case OpKind::allreduce: comm.allreduce_mean(buf, count, op.ranks); break;
    case OpKind::reduce: comm.reduce_mean(buf, count, op.ranks); break;
    case OpKind::broadcast: comm.broadcast(buf, count, op.ranks); break;
    case OpKind::send:
      if (op.root() == comm.rank())
        comm.send(buf, count, op.ranks[1]);
      else
        comm.recv(buf, count, op.ranks[0]);
      break;
  }
  comm.synchronize();
}

}  // namespace resist::runtime
