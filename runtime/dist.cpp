// Rendezvous (c10d TCPStore) and the Gloo communicator (c10d ProcessGroupGloo).
#include "runtime/dist.hpp"

#include <cstdlib>
#include <functional>
#include <string>
#include <unordered_map>

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include "models/error.hpp"

namespace resist::runtime {

namespace {

// Runs a call that talks to other ranks; its failure becomes a PeerFailure
// (first line of the message, prefixed by `what`).
template <typename F>
void peer_call(const char* what, F&& call) {
  try {
    call();
  } catch (const PeerFailure&) {
    throw;
  } catch (const UserError&) {
    throw;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    throw PeerFailure(std::string(what) + ": " + msg.substr(0, msg.find('\n')));
  }
}

int env_int(const char* name, int fallback, int lo, int hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  std::size_t used = 0;
  long x = 0;
  try {
    x = std::stol(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != std::string(v).size() || x < lo || x > hi)
    throw UserError(std::string(name) + ": must be a whole number in " + std::to_string(lo) + ".." +
                    std::to_string(hi) + " (got '" + v + "')");
  return int(x);
}

using StoreFactory = std::function<c10::intrusive_ptr<c10d::Store>()>;

class StoreKV : public KeyValue {
 public:
  explicit StoreKV(c10::intrusive_ptr<c10d::Store> s, StoreFactory again = nullptr)
      : store(std::move(s)), again_(std::move(again)) {}
  std::shared_ptr<KeyValue> connect_again() override {
    if (!again_) return nullptr;
    c10::intrusive_ptr<c10d::Store> s;
    peer_call("the control-plane store", [&] { s = again_(); });
    return std::make_shared<StoreKV>(s, again_);
  }
  void set(const std::string& key, const std::string& value) override {
    const std::vector<std::uint8_t> bytes(value.begin(), value.end());
    peer_call("the control-plane store", [&] { store->set(key, bytes); });
  }
  std::string get(const std::string& key) override {
    std::vector<std::uint8_t> v;
    peer_call("the control-plane store", [&] { v = store->get(key); });
    return std::string(v.begin(), v.end());
  }
  std::int64_t add(const std::string& key, std::int64_t amount) override {
    std::int64_t n = 0;
    peer_call("the control-plane store", [&] { n = store->add(key, amount); });
    return n;
  }
  c10::intrusive_ptr<c10d::Store> store;

 private:
  StoreFactory again_;
};

class GlooCommunicator : public P2PCommunicator {
 public:
  GlooCommunicator(c10::intrusive_ptr<c10d::ProcessGroupGloo> pg, std::chrono::milliseconds timeout)
      : pg_(std::move(pg)), timeout_(timeout) {}
  int rank() const override { return pg_->getRank(); }
  int size() const override { return pg_->getSize(); }
  const char* backend() const override { return "gloo"; }

 protected:
  // c10d wants tensors: wrap the raw buffers without copying.
  std::uint64_t start_send(const float* buf, std::size_t count, int dst, int tag) override {
    std::vector<at::Tensor> t = {torch::from_blob(const_cast<float*>(buf), {std::int64_t(count)}, torch::kFloat32)};
    peer_call("Gloo send", [&] { pending_[next_] = pg_->send(t, dst, tag); });
    return next_++;
  }
  std::uint64_t start_recv(float* buf, std::size_t count, int src, int tag) override {
    std::vector<at::Tensor> t = {torch::from_blob(buf, {std::int64_t(count)}, torch::kFloat32)};
    peer_call("Gloo recv", [&] { pending_[next_] = pg_->recv(t, src, tag); });
    return next_++;
  }
  void wait(std::uint64_t handle) override {
    const auto it = pending_.find(handle);
    if (it == pending_.end()) return;
    auto work = std::move(it->second);
    pending_.erase(it);
    peer_call("Gloo", [&] { work->wait(timeout_); });
  }

 private:
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
  std::chrono::milliseconds timeout_;
  std::unordered_map<std::uint64_t, c10::intrusive_ptr<c10d::Work>> pending_;
  std::uint64_t next_ = 0;
};

}  // namespace

Env read_env() {
  Env e;
  e.distributed = std::getenv("WORLD_SIZE") != nullptr;
  if (!e.distributed) return e;
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", 29500, 1, 65535);
  e.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  e.rank = env_int("RANK", 0, 0, e.world_size - 1);
  e.local_rank = env_int("LOCAL_RANK", 0, 0, 1 << 20);
  e.local_world_size = env_int("LOCAL_WORLD_SIZE", 1, 1, 1 << 20);
  if (e.local_rank >= e.local_world_size && std::getenv("LOCAL_WORLD_SIZE"))
    throw UserError("LOCAL_RANK: must be below LOCAL_WORLD_SIZE " + std::to_string(e.local_world_size) + " (got " +
                    std::to_string(e.local_rank) + ")");
  if (const char* a = std::getenv("TORCHELASTIC_USE_AGENT_STORE")) e.agent_store = std::string(a) == "True";
  if (const char* id = std::getenv("TORCHELASTIC_RUN_ID")) e.run_id = id;
  e.restart_count = env_int("TORCHELASTIC_RESTART_COUNT", 0, 0, 1 << 20);
  return e;
}

void KeyValue::barrier(const std::string& name, int rank, int world_size) {
  const std::string key = "barrier/" + name + "/";
  set(key + std::to_string(rank), "1");
  for (int r = 0; r < world_size; ++r) get(key + std::to_string(r));
  // Rank 0 serves the store (resist-launch): it leaves last, once every
  // other rank has finished asking, so that no rank's last get finds the
  // server gone with rank 0's exit (seen as a profile rank's exit 1 under load).
  if (rank != 0) {
    set(key + "left/" + std::to_string(rank), "1");
    return;
  }
  for (int r = 1; r < world_size; ++r) get(key + "left/" + std::to_string(r));
}

namespace {

// This run's identity: resist-launch's RESIST_RUN_ID, torchrun's
// TORCHELASTIC_RUN_ID, or none.
std::string run_id() {
  for (const char* name : {"RESIST_RUN_ID", "TORCHELASTIC_RUN_ID"})
    if (const char* v = std::getenv(name); v && *v) return v;
  return "";
}

// A second run pointed at the same MASTER_ADDR:PORT must not join the first
// one's rendezvous (its ranks would take over the first run's Gloo keys and
// kill it): every rank claims its number once, and when the run has an id
// the server publishes it and the others compare. The intruder is refused.
void claim_rank(c10d::TCPStore& store, const Env& env) {
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  const std::string id = run_id();
  if (env.rank == 0) store.set("resist/run_id", std::vector<std::uint8_t>(id.begin(), id.end()));
  const auto v = store.get("resist/run_id");
  const std::string theirs(v.begin(), v.end());
  if (!id.empty() && !theirs.empty() && theirs != id)
    throw UserError("MASTER_PORT " + std::to_string(env.master_port) + ": the rendezvous at " + where +
                    " belongs to another run (run id " + theirs + ", this run's is " + id +
                    "); use another --master-port");
  if (store.add("resist/rank/" + std::to_string(env.rank), 1) != 1)
    throw UserError("MASTER_PORT " + std::to_string(env.master_port) + ": rank " + std::to_string(env.rank) +
                    " has already joined the rendezvous at " + where + " (another run on this port?)");
}

}  // namespace

std::shared_ptr<KeyValue> connect_store(const Env& env, std::chrono::milliseconds timeout) {
  if (!env.distributed) return std::make_shared<StoreKV>(c10::make_intrusive<c10d::HashStore>());
  c10d::TCPStoreOptions opts;
  opts.port = std::uint16_t(env.master_port);
  // torchrun's agent serves the store itself; otherwise rank 0 does.
  opts.isServer = !env.agent_store && env.rank == 0;
  if (!env.agent_store) opts.numWorkers = std::size_t(env.world_size);
  opts.waitWorkers = !env.agent_store;
  opts.timeout = timeout;
  c10::intrusive_ptr<c10d::TCPStore> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
    store->setTimeout(timeout);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    msg = msg.substr(0, msg.find('\n'));
    if (env.rank == 0 && msg.find("in use") != std::string::npos)
      throw UserError("MASTER_PORT " + std::to_string(env.master_port) + ": cannot serve the rendezvous (" + msg +
                      "); another run on this port? use another --master-port");
    throw PeerFailure("rendezvous at " + env.master_addr + ":" + std::to_string(env.master_port) + " failed: " + msg);
  }
  // torchrun's agent store outlives this attempt and holds its own keys:
  // this attempt's keys live under a prefix of its run id and restart count.
  const std::string prefix = "resist/" + env.run_id + "/attempt_" + std::to_string(env.restart_count);
  // Another client of the same server (no rendezvous, no rank claimed).
  StoreFactory again = [addr = env.master_addr, opts, timeout, prefix, agent = env.agent_store] {
    c10d::TCPStoreOptions o = opts;
    o.isServer = false;
    o.waitWorkers = false;
    o.numWorkers = c10::nullopt;
    auto s = c10::make_intrusive<c10d::TCPStore>(addr, o);
    s->setTimeout(timeout);
    if (!agent) return c10::intrusive_ptr<c10d::Store>(s);
    return c10::intrusive_ptr<c10d::Store>(c10::make_intrusive<c10d::PrefixStore>(prefix, s));
  };
  if (env.agent_store) {
    c10::intrusive_ptr<c10d::Store> prefixed = c10::make_intrusive<c10d::PrefixStore>(prefix, store);
    StoreKV kv(prefixed);
    kv.barrier("connect", env.rank, env.world_size);
    return std::make_shared<StoreKV>(prefixed, again);
  }
  peer_call("rendezvous", [&] { claim_rank(*store, env); });
  return std::make_shared<StoreKV>(store, again);
}

std::unique_ptr<Communicator> make_gloo_communicator(const Env& env, const std::shared_ptr<KeyValue>& kv,
                                                     std::chrono::milliseconds timeout) {
  auto* skv = dynamic_cast<StoreKV*>(kv.get());
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  const bool loopback = env.master_addr == "127.0.0.1" || env.master_addr == "localhost";
  opts->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                   : c10d::ProcessGroupGloo::createDefaultDevice());
  opts->threads = 2;
  auto store = c10::make_intrusive<c10d::PrefixStore>("gloo", skv->store);
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  peer_call("Gloo connection", [&] {
    pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, opts);
  });
  return std::make_unique<GlooCommunicator>(pg, timeout);
}

}  // namespace resist::runtime
