#include <algorithm>
#include <cassert>
#include <vector>

#include "runtime/comm.hpp"
#include "schedule/accounting.hpp"

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

// Ring all-reduce over n ranks: the buffer is cut into n chunks
// (ring_chunk). Reduce-scatter: at step s rank i sends chunk (i - s) to its
// successor and adds the chunk (i - s - 1) it gets from its predecessor; after
// n-1 steps rank i holds the full sum of chunk (i + 1), which it divides by n.
// All-gather: at step s rank i sends chunk (i + 1 - s) and stores chunk (i - s).
// Each rank sends 2(n-1) chunks: the accounting's 2(n-1)/n·M.
void P2PCommunicator::allreduce_mean(float* buf, std::size_t count, const std::vector<int>& ranks) {
  const int n = int(ranks.size());
  if (n <= 1) return;
  const int i = position(ranks, rank());
  const int next = ranks[(i + 1) % n], prev = ranks[(i + n - 1) % n];
  auto chunk = [&](int c) { return ring_chunk(count, n, ((c % n) + n) % n); };
  std::vector<float> incoming(chunk(0).count);
  for (int s = 0; s + 1 < n; ++s) {
    const Chunk out = chunk(i - s), in = chunk(i - s - 1);
    post_send(buf + out.offset, out.count, next);
    if (in.count) start_recv(incoming.data(), in.count, prev, tag_);
    wait_all();
    float* dst = buf + in.offset;
    for (std::uint64_t k = 0; k < in.count; ++k) dst[k] += incoming[k];
  }
  const Chunk mine = chunk(i + 1);
  const float inv = 1.0f / float(n);
  for (std::uint64_t k = 0; k < mine.count; ++k) buf[mine.offset + k] *= inv;
  for (int s = 0; s + 1 < n; ++s) {
    const Chunk out = chunk(i + 1 - s), in = chunk(i - s);
    post_send(buf + out.offset, out.count, next);
    if (in.count) start_recv(buf + in.offset, in.count, prev, tag_);
    wait_all();
  }
}

// Chain reduce: ranks[n-1] sends its buffer to ranks[n-2], which adds and
// passes the partial sum on, ..., until ranks[0] holds the sum and divides.
void P2PCommunicator::reduce_mean(float* buf, std::size_t count, const std::vector<int>& ranks) {
  const int n = int(ranks.size());
  if (n <= 1) return;
  const int i = position(ranks, rank());
  if (i + 1 < n) {
    std::vector<float> incoming(count);
    start_recv(incoming.data(), count, ranks[i + 1], tag_);
    wait_all();
    for (std::size_t k = 0; k < count; ++k) buf[k] += incoming[k];
  }
  if (i > 0) {
    post_send(buf, count, ranks[i - 1]);
    wait_all();
  } else {
    const float inv = 1.0f / float(n);
    for (std::size_t k = 0; k < count; ++k) buf[k] *= inv;
  }
}

// Pipelined chain broadcast: each chunk travels ranks[0] -> ranks[1] -> ...;
// a rank forwards chunk c while it receives chunk c+1. Every rank but the
// last sends M once.
void P2PCommunicator::broadcast(float* buf, std::size_t count, const std::vector<int>& ranks) {
  const int n = int(ranks.size());
  if (n <= 1) return;
  const int i = position(ranks, rank());
  const std::size_t step = std::max<std::size_t>(1, broadcast_chunk);
  for (std::size_t off = 0; off < count; off += step) {
    const std::size_t len = std::min(step, count - off);
    if (i > 0) {
      start_recv(buf + off, len, ranks[i - 1], tag_);
      wait_all();
    }
    if (i + 1 < n) post_send(buf + off, len, ranks[i + 1]);
  }
  wait_all();
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
