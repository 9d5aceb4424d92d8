#pragma once
// The communicator interface the trainer talks to, and the algorithms that
// carry out a schedule's CommOps over point-to-point messages.
//
// Buffers are flat fp32 arrays: one buffer per op (a bucket holding the op's
// blocks' parameters, or gradients, in the op's block order), never one call
// per tensor. Pointers are host memory for Gloo and device memory for NCCL.
//
// Ranks in an op are in algorithm order with the root first (schedule.hpp).
// Every rank calls prepare() for every op of the schedule, whether it takes
// part or not (the NCCL backend creates sub-communicators collectively); only
// participants call the op itself.
//
// No LibTorch here: sim/ never sees this header, but the NCCL TU includes it.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "schedule/collectives.hpp"
#include "schedule/schedule.hpp"

namespace resist::runtime {

// A failure of the communication with other ranks (a Gloo or NCCL message, a
// rendezvous or control-plane store request): the one kind of error after
// which resist-train says a peer may have died. Everything else is local.
class PeerFailure : public std::runtime_error {
 public:
  explicit PeerFailure(const std::string& what) : std::runtime_error(what) {}
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* backend() const = 0;

  virtual void prepare(const std::vector<int>& ranks) { (void)ranks; }
  // Every participant ends with the mean over `ranks` (bitwise identical).
  virtual void allreduce_mean(float* buf, std::size_t count, const std::vector<int>& ranks) = 0;
  // ranks[0] ends with the mean over `ranks`; the others' buffers are garbage after.
  virtual void reduce_mean(float* buf, std::size_t count, const std::vector<int>& ranks) = 0;
  // Everyone ends with ranks[0]'s buffer.
  virtual void broadcast(float* buf, std::size_t count, const std::vector<int>& ranks) = 0;
  virtual void send(const float* buf, std::size_t count, int dst) = 0;
  virtual void recv(float* buf, std::size_t count, int src) = 0;
  // Waits until the device has finished the ops issued so far (NCCL); no-op on CPU.
  virtual void synchronize() {}

  // Payload bytes this rank has put on the wire so far.
  std::uint64_t bytes_sent() const { return bytes_sent_; }

 protected:
  std::uint64_t bytes_sent_ = 0;
};

// The schedule's algorithms over tagged point-to-point messages: every op
// runs the steps of its CollectivePlan (schedule/collectives.hpp) under
// `collectives` (default: ring all-reduce, chain reduce and broadcast), so the
// bytes moved are exactly `wire_sent(op, workers, collectives)`. All-reduce
// and reduce average (the root of a reduce); broadcast copies the root's buffer.
// Subgroups need no process groups of their own: every message names its peer
// by world rank and carries the op's tag.
//
// How the steps are carried out (the plan's transfers and bytes unchanged):
// each transfer is cut into segments (Pipelining), and a rank works through
// its (step, segment) pieces in order with `window` of them in flight: it
// posts the receives of a piece before its sends, and finishes (waits for,
// adds or copies) a piece only `window` pieces later, so that a peer's data
// finds its receive already posted and the sum of one segment overlaps the
// transfer of the next. Ordering hazards are checked range by range: a send
// waits until every earlier receive into its range has been combined, and a
// receive is combined only after every send of its range has left; a copy is
// received straight into the buffer when nothing pending touches its range.
// window 1 with no segments is the plain step-by-step execution.
class P2PCommunicator : public Communicator {
 public:
  void prepare(const std::vector<int>& ranks) override;
  void allreduce_mean(float* buf, std::size_t count, const std::vector<int>& ranks) override;
  void reduce_mean(float* buf, std::size_t count, const std::vector<int>& ranks) override;
  void broadcast(float* buf, std::size_t count, const std::vector<int>& ranks) override;
  void send(const float* buf, std::size_t count, int dst) override;
  void recv(float* buf, std::size_t count, int src) override;

  // Algorithms and chain chunk; the same on every rank.
  CollectiveOptions collectives;

  // A transfer of B bytes goes as max(1, ⌈B / segment_bytes⌉) segments, and
  // at least two once B >= 2·min_segment_bytes (segment_bytes 0: never cut).
  // Must be the same on every rank (both ends cut a transfer alike).
  // The default is step by step: measured on the idle 2-core machine
  // (docs/performance.md, resist-bench-comm, 4 ranks), pipelining as in
  // kPipelined gained nothing on 2.8 M floats and took 1.8× as long on 175 K.
  struct Pipelining {
    std::uint64_t segment_bytes = 0, min_segment_bytes = 0;
    int window = 1;  // pieces in flight, >= 1
  };
  static constexpr Pipelining kPipelined{1u << 20, 64u << 10, 2};  // 1 MiB segments, two from 128 KiB on
  Pipelining pipelining;
  // Segments a transfer of `count` floats is cut into.
  int segments(std::uint64_t count) const;

 protected:
  // Transport: start a send / a receive and return its handle; wait(handle)
  // returns once that message has left (a send: its buffer may change) or
  // arrived (a receive). Every handle is waited for exactly once; receives
  // from one peer under one tag are waited for in the order they were started.
  virtual std::uint64_t start_send(const float* buf, std::size_t count, int dst, int tag) = 0;
  virtual std::uint64_t start_recv(float* buf, std::size_t count, int src, int tag) = 0;
  virtual void wait(std::uint64_t handle) = 0;

  int tag() const { return tag_; }

 private:
  class Pipeline;
  std::uint64_t post_send(const float* buf, std::size_t count, int dst);
  void execute(const CollectivePlan& plan, float* buf);
  int tag_ = 0;  // advanced by prepare(): the same on every rank for the same op
  std::vector<float> scratch_;  // received segments waiting to be added / copied
};

// Carries out this rank's part of one schedule op on a flat buffer of `count`
// floats (the op's payload) and waits for the device: all-reduce and reduce
// average, broadcast and send copy the root's buffer. The caller must take
// part in the op (op.involves(comm.rank())).
void run_op(Communicator& comm, const CommOp& op, float* buf, std::size_t count);

}  // namespace resist::runtime
