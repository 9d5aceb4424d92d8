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

// One segment of one of the plan's transfers, as this rank carries it out.
struct Piece {
  bool send = false;                    // else a receive
  int peer = 0;                         // world rank
  std::uint64_t offset = 0, count = 0;  // elements of the op's buffer
  bool add = false;                     // receive: add into the range (else copy)
  bool direct = false;                  // receive: straight into the buffer, not into scratch
  float* scratch = nullptr;
  std::uint64_t handle = 0;
  bool started = false, waited = false;
  bool overlaps(const Piece& o) const { return offset < o.offset + o.count && o.offset < offset + count; }
};

}  // namespace

// This rank's part of a plan as pieces grouped by (step, segment), in that
// order; see comm.hpp for how they are posted and finished.
class P2PCommunicator::Pipeline {
 public:
  Pipeline(P2PCommunicator& c, const CollectivePlan& plan, float* buf)
      : c_(c), buf_(buf), window_(std::size_t(std::max(1, c.pipelining.window))) {
    build(plan);
  }

  void run() {
    if (c_.scratch_.size() < window_ * slot_) c_.scratch_.resize(window_ * slot_);
    const std::size_t n = groups_.size();
    for (std::size_t u = 0; u < n + window_; ++u) {
      if (u >= window_) finish_through(u - window_);
      if (u < n) post(u);
    }
  }

 private:
  void build(const CollectivePlan& plan) {
    const auto& ranks = plan.ranks();
    const int pos = position(ranks, c_.rank());
    std::vector<Transfer> ts;
    for (int k = 0; k < plan.steps(); ++k) {
      ts.clear();
      plan.transfers(k, pos, ts);
      int segments = 0;
      for (const Transfer& t : ts)
        if (t.count > 0) segments = std::max(segments, c_.segments(t.count));
      for (int j = 0; j < segments; ++j) {
        std::vector<Piece> g;
        for (const Transfer& t : ts) {
          const int s = t.count > 0 ? c_.segments(t.count) : 0;
          if (j >= s) continue;
          const Chunk part = ring_chunk(t.count, s, j);
          Piece p;
          p.send = t.src == pos;
          p.peer = ranks[std::size_t(p.send ? t.dst : t.src)];
          p.offset = t.offset + part.offset;
          p.count = part.count;
          p.add = t.add;
          if (p.count > 0) g.push_back(p);
        }
        std::uint64_t incoming = 0;
        for (Piece& p : g) {
          if (p.send) continue;
          p.direct = !p.add && std::none_of(g.begin(), g.end(), [&](const Piece& o) { return o.send && o.overlaps(p); });
          if (!p.direct) incoming += p.count;
        }
        slot_ = std::max(slot_, incoming);
        groups_.push_back(std::move(g));
      }
    }
  }

  // Receives first (a peer's send then finds them posted), then sends.
  void post(std::size_t u) {
    float* slot = c_.scratch_.data() + (u % window_) * slot_;
    for (Piece& p : groups_[u]) {
      if (p.send) continue;
      if (p.direct) {  // nothing pending may still read or write the range
        wait_sends_over(p);
        finish_receives_over(p, u);
      } else {
        p.scratch = slot;
        slot += p.count;
      }
      p.handle = c_.start_recv(p.direct ? buf_ + p.offset : p.scratch, p.count, p.peer, c_.tag_);
      p.started = true;
    }
    for (Piece& p : groups_[u]) {
      if (!p.send) continue;
      finish_receives_over(p, u);  // it sends what earlier steps left in the range
      p.handle = c_.post_send(buf_ + p.offset, p.count, p.peer);
      p.started = true;
    }
  }

  void finish_through(std::size_t v) {
    for (; finished_ <= v; ++finished_) finish(groups_[finished_]);
  }

  void finish(std::vector<Piece>& g) {
    for (Piece& p : g) {
      if (p.send) continue;
      c_.wait(p.handle);
      p.waited = true;
      if (p.direct) continue;
      wait_sends_over(p);  // a send of the range must leave before the range changes
      float* dst = buf_ + p.offset;
      if (p.add)
        for (std::uint64_t i = 0; i < p.count; ++i) dst[i] += p.scratch[i];
      else
        std::copy(p.scratch, p.scratch + p.count, dst);
    }
    for (Piece& p : g)
      if (p.send && !p.waited) {
        c_.wait(p.handle);
        p.waited = true;
      }
  }

  // Waits for every started send that reads a range overlapping `q`'s.
  void wait_sends_over(const Piece& q) {
    for (std::size_t v = finished_; v < groups_.size(); ++v)
      for (Piece& p : groups_[v])
        if (p.send && p.started && !p.waited && p.overlaps(q)) {
          c_.wait(p.handle);
          p.waited = true;
        }
  }

  // Finishes the groups before `u` up to the last one with an unfinished
  // receive into a range overlapping `q`'s.
  void finish_receives_over(const Piece& q, std::size_t u) {
    std::size_t last = u;
    for (std::size_t v = finished_; v < u; ++v)
      for (const Piece& p : groups_[v])
        if (!p.send && p.overlaps(q)) last = v;
    if (last < u) finish_through(last);
  }

  P2PCommunicator& c_;
  float* buf_;
  std::size_t window_;
  std::vector<std::vector<Piece>> groups_;
  std::uint64_t slot_ = 0;     // floats of scratch per group in flight
  std::size_t finished_ = 0;   // groups [0, finished_) are finished
};

void P2PCommunicator::prepare(const std::vector<int>&) { tag_ = (tag_ + 1) & 0xffffff; }

int P2PCommunicator::segments(std::uint64_t count) const {
  const std::uint64_t bytes = 4 * count, seg = pipelining.segment_bytes, min = pipelining.min_segment_bytes;
  if (seg == 0 || count < 2) return 1;
  std::uint64_t s = (bytes + seg - 1) / seg;
  if (min > 0 && bytes >= 2 * min) s = std::max<std::uint64_t>(s, 2);
  return int(std::clamp<std::uint64_t>(s, 1, std::min<std::uint64_t>(count, 1u << 20)));
}

std::uint64_t P2PCommunicator::post_send(const float* buf, std::size_t count, int dst) {
  bytes_sent_ += 4 * std::uint64_t(count);
  return start_send(buf, count, dst, tag_);
}

void P2PCommunicator::execute(const CollectivePlan& plan, float* buf) { Pipeline(*this, plan, buf).run(); }

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
  if (count == 0) return;
  wait(post_send(buf, count, dst));
}

void P2PCommunicator::recv(float* buf, std::size_t count, int src) {
  if (count == 0) return;
  wait(start_recv(buf, count, src, tag_));
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
