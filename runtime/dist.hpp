#pragma once
// Rendezvous following torchrun's environment contract, a key-value store
// for the control plane (NCCL unique id, metrics, checkpoints' barrier), and
// the communicators built on it. No LibTorch in this header.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "runtime/comm.hpp"

namespace resist::runtime {

// MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE.
// Without WORLD_SIZE the process runs alone (rank 0 of 1). Malformed values
// throw UserError. Under torchrun's elastic agent
// (TORCHELASTIC_USE_AGENT_STORE=True) the agent already serves the store at
// MASTER_ADDR:MASTER_PORT: every rank connects to it as a client, under a
// prefix of its run id and restart count.
struct Env {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  bool distributed = false;
  bool agent_store = false;  // TORCHELASTIC_USE_AGENT_STORE=True
  std::string run_id;        // TORCHELASTIC_RUN_ID
  int restart_count = 0;     // TORCHELASTIC_RESTART_COUNT
};
Env read_env();

// The control plane: small values by key, blocking get with a timeout.
class KeyValue {
 public:
  virtual ~KeyValue() = default;
  virtual void set(const std::string& key, const std::string& value) = 0;
  virtual std::string get(const std::string& key) = 0;  // waits for the key
  // Adds `amount` to the key's counter (0 if unset) and returns its new value.
  virtual std::int64_t add(const std::string& key, std::int64_t amount) = 0;
  // Every rank calls it with the same name; returns when all have (rank 0,
  // which serves the store, last: once the others have stopped asking).
  void barrier(const std::string& name, int rank, int world_size);
  // A second connection to the same store, for another thread (a
  // connection serves one thread at a time); nullptr: this one may be
  // shared (an in-process store).
  virtual std::shared_ptr<KeyValue> connect_again() { return nullptr; }
};

// TCPStore (rank 0 serves) or, alone, an in-process store.
std::shared_ptr<KeyValue> connect_store(const Env& env, std::chrono::milliseconds timeout);

// Gloo over TCP (c10d ProcessGroupGloo send/recv), P2P algorithms of comm.hpp.
std::unique_ptr<Communicator> make_gloo_communicator(const Env& env, const std::shared_ptr<KeyValue>& store,
                                                     std::chrono::milliseconds timeout);

}  // namespace resist::runtime
