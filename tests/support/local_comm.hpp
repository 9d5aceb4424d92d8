#pragma once
// An in-process transport for the P2P algorithms (threads as ranks), for unit
// tests of the communication logic: messages are queued per (src, dst, tag).
#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "runtime/comm.hpp"

namespace resist::test {

using resist::runtime::P2PCommunicator;

struct Wires {
  std::mutex m;
  std::condition_variable cv;
  std::map<std::tuple<int, int, int>, std::deque<std::vector<float>>> boxes;  // (src, dst, tag)
};

class LocalComm : public P2PCommunicator {
 public:
  LocalComm(Wires& w, int rank, int size) : w_(w), rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "local"; }

 protected:
  std::uint64_t start_send(const float* buf, std::size_t count, int dst, int tag) override {
    std::lock_guard<std::mutex> l(w_.m);
    w_.boxes[{rank_, dst, tag}].emplace_back(buf, buf + count);
    w_.cv.notify_all();
    return next_++;  // buffered: done at once
  }
  std::uint64_t start_recv(float* buf, std::size_t count, int src, int tag) override {
    recvs_[next_] = {buf, count, src, tag};
    return next_++;
  }
  // A receive takes the oldest message from its peer under its tag when it
  // is waited for (P2PCommunicator waits for them in the order it posted them).
  void wait(std::uint64_t handle) override {
    const auto it = recvs_.find(handle);
    if (it == recvs_.end()) return;
    const Recv r = it->second;
    recvs_.erase(it);
    std::unique_lock<std::mutex> l(w_.m);
    auto& box = w_.boxes[{r.src, rank_, r.tag}];
    w_.cv.wait(l, [&] { return !box.empty(); });
    ASSERT_EQ(box.front().size(), r.count);
    std::copy(box.front().begin(), box.front().end(), r.buf);
    box.pop_front();
  }

 private:
  struct Recv {
    float* buf;
    std::size_t count;
    int src, tag;
  };
  Wires& w_;
  int rank_, size_;
  std::map<std::uint64_t, Recv> recvs_;
  std::uint64_t next_ = 0;
};

}  // namespace resist::test
