#include "runtime/nccl_comm.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <nccl.h>

#include "schedule/accounting.hpp"

namespace resist::runtime {

namespace {

// A failed NCCL call is a communication failure (PeerFailure) unless NCCL
// says this process called it wrongly.
void check(ncclResult_t r, const char* what) {
  if (r == ncclSuccess || r == ncclInProgress) return;
  const std::string msg = std::string("NCCL ") + what + ": " + ncclGetErrorString(r);
  if (r == ncclInvalidArgument || r == ncclInvalidUsage) throw std::runtime_error(msg);
  throw PeerFailure(msg);
}
void check(cudaError_t r, const char* what) {
  if (r != cudaSuccess) throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(r));
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const Env& env, KeyValue& store, int device, cudaStream_t stream)
      : rank_(env.rank), size_(env.world_size), stream_(stream) {
    check(cudaSetDevice(device), "cudaSetDevice");
    ncclUniqueId id;
    if (rank_ == 0) {
      check(ncclGetUniqueId(&id), "ncclGetUniqueId");
      store.set("nccl/unique_id", std::string(reinterpret_cast<const char*>(&id), sizeof id));
    }
    const std::string got = store.get("nccl/unique_id");
    if (got.size() != sizeof id) throw std::runtime_error("NCCL unique id from the store has the wrong size");
    std::copy(got.begin(), got.end(), reinterpret_cast<char*>(&id));
    check(ncclCommInitRank(&world_, size_, id, rank_), "ncclCommInitRank");
  }
  ~NcclCommunicator() override {
    for (auto& [set, c] : subs_)
      if (c.comm) ncclCommDestroy(c.comm);
    ncclCommDestroy(world_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "nccl"; }

  void prepare(const std::vector<int>& ranks) override {
    auto key = ranks;
    std::sort(key.begin(), key.end());
    if (int(key.size()) == size_ || subs_.count(key)) return;
    // Collective over the world: members get color 0, the rest opt out.
    const auto it = std::find(key.begin(), key.end(), rank_);
    const bool member = it != key.end();
    Sub sub;
    check(ncclCommSplit(world_, member ? 0 : NCCL_SPLIT_NOCOLOR, member ? int(it - key.begin()) : 0, &sub.comm,
                        nullptr),
          "ncclCommSplit");
    subs_[key] = sub;
  }

  void allreduce_mean(float* buf, std::size_t count, const std::vector<int>& ranks) override {
    auto [comm, root] = group(ranks);
    (void)root;
    check(ncclAllReduce(buf, buf, count, ncclFloat, ncclAvg, comm, stream_), "ncclAllReduce");
    account(OpKind::allreduce, count, ranks);
  }
  void reduce_mean(float* buf, std::size_t count, const std::vector<int>& ranks) override {
    auto [comm, root] = group(ranks);
    check(ncclReduce(buf, buf, count, ncclFloat, ncclAvg, root, comm, stream_), "ncclReduce");
    account(OpKind::reduce, count, ranks);
  }
  void broadcast(float* buf, std::size_t count, const std::vector<int>& ranks) override {
    auto [comm, root] = group(ranks);
    check(ncclBroadcast(buf, buf, count, ncclFloat, root, comm, stream_), "ncclBroadcast");
    account(OpKind::broadcast, count, ranks);
  }
  void send(const float* buf, std::size_t count, int dst) override {
    check(ncclGroupStart(), "ncclGroupStart");
    check(ncclSend(buf, count, ncclFloat, dst, world_, stream_), "ncclSend");
    check(ncclGroupEnd(), "ncclGroupEnd");
    bytes_sent_ += 4 * std::uint64_t(count);
  }
  void recv(float* buf, std::size_t count, int src) override {
    check(ncclGroupStart(), "ncclGroupStart");
    check(ncclRecv(buf, count, ncclFloat, src, world_, stream_), "ncclRecv");
    check(ncclGroupEnd(), "ncclGroupEnd");
  }
  void synchronize() override { check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

 private:
  struct Sub {
    ncclComm_t comm = nullptr;  // null for ranks that opted out
  };
  // The communicator for `ranks` and the root's rank in it.
  std::pair<ncclComm_t, int> group(const std::vector<int>& ranks) {
    auto key = ranks;
    std::sort(key.begin(), key.end());
    if (int(key.size()) == size_) return {world_, ranks.front()};
    const auto it = subs_.find(key);
    if (it == subs_.end() || !it->second.comm) throw std::logic_error("NCCL: op without prepare()");
    return {it->second.comm, int(std::find(key.begin(), key.end(), ranks.front()) - key.begin())};
  }
  void account(OpKind kind, std::size_t count, const std::vector<int>& ranks) {
    CommOp op;
    op.kind = kind;
    op.ranks = ranks;
    op.bytes = 4 * std::uint64_t(count);
    bytes_sent_ += wire_sent(op, size_)[rank_];
  }

  int rank_, size_;
  cudaStream_t stream_;
  ncclComm_t world_ = nullptr;
  std::map<std::vector<int>, Sub> subs_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const Env& env, const std::shared_ptr<KeyValue>& store,
                                                     int device, void* stream) {
  return std::make_unique<NcclCommunicator>(env, *store, device, static_cast<cudaStream_t>(stream));
}

}  // namespace resist::runtime
