#include "sim/engine.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include <simgrid/s4u.hpp>

#include "schedule/accounting.hpp"

namespace sg4 = simgrid::s4u;

namespace resist::sim {

namespace {

// ------------------------------------------------------------- platform

sg4::Link* duplex(sg4::NetZone* zone, const std::string& name, const LinkSpec& l) {
  return zone->create_split_duplex_link(name, l.bandwidth_Bps)->set_latency(l.latency_s)->seal();
}

void configure_network(const NetworkSettings& n) {
  sg4::Engine::set_config("network/model:" + n.model);
  sg4::Engine::set_config("network/latency-factor:" + std::to_string(n.latency_factor));
  sg4::Engine::set_config("network/bandwidth-factor:" + std::to_string(n.bandwidth_factor));
  sg4::Engine::set_config(std::string("network/crosstraffic:") + (n.crosstraffic ? "1" : "0"));
  sg4::Engine::set_config("network/TCP-gamma:" + std::to_string(n.tcp_gamma_bytes));
}

// Star zones all the way: a node is a star of its GPUs (each on its own
// `intra` link) with a router as gateway; nodes hang off the cluster switch
// (star) or off leaf switches that hang off a spine (fat-tree) by their NIC.
std::vector<sg4::Host*> build_platform(const Platform& p, int ranks) {
  const int gpn = p.gpus_per_node, nodes = (ranks + gpn - 1) / gpn;
  const bool fat_tree = p.topology == "fat-tree";
  auto* root = sg4::create_star_zone("cluster");
  std::vector<sg4::NetZone*> leaves;
  std::vector<simgrid::kernel::routing::NetPoint*> leaf_routers;
  if (fat_tree) {
    const int nleaves = (nodes + p.nodes_per_leaf - 1) / p.nodes_per_leaf;
    for (int l = 0; l < nleaves; ++l) {
      auto* leaf = sg4::create_star_zone("leaf" + std::to_string(l));
      leaf->set_parent(root);
      leaves.push_back(leaf);
      leaf_routers.push_back(leaf->create_router("leaf" + std::to_string(l) + "-switch"));
    }
  }
  std::vector<sg4::Host*> hosts;
  for (int n = 0; n < nodes; ++n) {
    sg4::NetZone* parent = fat_tree ? leaves[n / p.nodes_per_leaf] : root;
    const std::string node = "node" + std::to_string(n);
    auto* zone = sg4::create_star_zone(node);
    zone->set_parent(parent);
    auto* router = zone->create_router(node + "-switch");
    for (int g = 0; g < gpn && n * gpn + g < ranks; ++g) {
      const int rank = n * gpn + g;
      auto* host = zone->create_host(node + "-gpu" + std::to_string(g), p.gpu_flops * p.speed_factor(rank));
      host->seal();
      if (gpn > 1) {
        auto* link = duplex(zone, node + "-gpu" + std::to_string(g) + "-link", p.intra);
        zone->add_route(host->get_netpoint(), nullptr, nullptr, nullptr,
                        {sg4::LinkInRoute(link, sg4::LinkInRoute::Direction::UP)}, true);
      }
      hosts.push_back(host);
    }
    zone->seal();
    auto* nic = duplex(parent, node + "-nic", p.nic);
    parent->add_route(zone->get_netpoint(), nullptr, router, nullptr,
                      {sg4::LinkInRoute(nic, sg4::LinkInRoute::Direction::UP)}, true);
  }
  for (std::size_t l = 0; l < leaves.size(); ++l) {
    leaves[l]->seal();
    auto* up = duplex(root, "leaf" + std::to_string(l) + "-uplink", p.uplink);
    root->add_route(leaves[l]->get_netpoint(), nullptr, leaf_routers[l], nullptr,
                    {sg4::LinkInRoute(up, sg4::LinkInRoute::Direction::UP)}, true);
  }
  root->seal();
  return hosts;
}

// ------------------------------------------------------------- messages

int dummy_payload = 0;  // SimGrid 3.32 aborts on a null payload; only sizes matter here
std::unordered_map<std::uint64_t, sg4::Mailbox*> mailboxes;

// One mailbox per (source, destination, tag): messages between two ranks are
// matched in the order both sides walk the schedule.
sg4::Mailbox* mailbox(int src, int dst, int tag) {
  const std::uint64_t key = (std::uint64_t(src) << 42) | (std::uint64_t(dst) << 21) | std::uint64_t(tag);
  auto it = mailboxes.find(key);
  if (it != mailboxes.end()) return it->second;
  auto* m = sg4::Mailbox::by_name(std::to_string(src) + ">" + std::to_string(dst) + "#" + std::to_string(tag));
  mailboxes.emplace(key, m);
  return m;
}

sg4::CommPtr send_async(int src, int dst, int tag, std::uint64_t bytes) {
  return mailbox(src, dst, tag)->put_async(&dummy_payload, bytes);
}
void recv(int src, int dst, int tag) { mailbox(src, dst, tag)->get<int>(); }

int position(const std::vector<int>& ranks, int w) {
  return int(std::find(ranks.begin(), ranks.end(), w) - ranks.begin());
}

// Ring all-reduce of `elements` fp32 values; returns the bytes w sent.
std::uint64_t ring_allreduce(const std::vector<int>& ranks, std::uint64_t elements, int w, int tag) {
  const int n = int(ranks.size()), i = position(ranks, w);
  if (n < 2) return 0;
  const int next = ranks[(i + 1) % n], prev = ranks[(i + n - 1) % n];
  std::uint64_t sent = 0;
  for (int phase = 0; phase < 2; ++phase)  // 0: reduce-scatter, 1: all-gather
    for (int s = 0; s + 1 < n; ++s) {
      const int c = ((i + phase - s) % n + n) % n;
      const std::uint64_t bytes = 4 * ring_chunk(elements, n, c).count;
      auto out = send_async(w, next, tag, bytes);
      recv(prev, w, tag);
      out->wait();
      sent += bytes;
    }
  return sent;
}

int chunk_count(std::uint64_t elements, std::uint64_t chunk_bytes) {
  const std::uint64_t per = std::max<std::uint64_t>(1, chunk_bytes / 4);
  return int(std::max<std::uint64_t>(1, (elements + per - 1) / per));
}

// Pipelined chain along `order` (towards higher positions). Returns bytes w sent.
std::uint64_t chain(const std::vector<int>& order, std::uint64_t elements, std::uint64_t chunk_bytes, int w,
                    int tag) {
  const int n = int(order.size()), i = position(order, w);
  if (n < 2) return 0;
  const int chunks = chunk_count(elements, chunk_bytes);
  std::vector<sg4::CommPtr> pending;
  std::uint64_t sent = 0;
  for (int c = 0; c < chunks; ++c) {
    if (i > 0) recv(order[i - 1], w, tag);
    if (i + 1 < n) {
      const std::uint64_t bytes = 4 * ring_chunk(elements, chunks, c).count;
      pending.push_back(send_async(w, order[i + 1], tag, bytes));
      sent += bytes;
    }
  }
  for (auto& p : pending) p->wait();
  return sent;
}

std::uint64_t run_op(const CommOp& op, int w, const EngineOptions& opt, int tag) {
  const std::uint64_t elements = op.bytes / 4;
  switch (op.kind) {
    case OpKind::allreduce: return ring_allreduce(op.ranks, elements, w, tag);
    case OpKind::broadcast: return chain(op.ranks, elements, opt.chunk_bytes, w, tag);
    case OpKind::reduce: {
      const std::vector<int> towards_root(op.ranks.rbegin(), op.ranks.rend());
      return chain(towards_root, elements, opt.chunk_bytes, w, tag);
    }
    case OpKind::send:
      if (w == op.ranks[0]) {
        send_async(w, op.ranks[1], tag, op.bytes)->wait();
        return op.bytes;
      }
      recv(op.ranks[0], w, tag);
      return 0;
  }
  return 0;
}

// ------------------------------------------------------------- workers

struct Shared {
  const std::vector<RoundPlan>* plans;
  EngineOptions options;
  sg4::BarrierPtr barrier;
  EngineResult result;
};

// Compute with the plan's per-iteration gradient all-reduce overlapped (like
// PyTorch DDP): forward, then backward producing gradient buckets evenly in
// time (last layers first); each bucket's ring all-reduce starts when its
// gradients exist and runs alongside the rest of backward.
void compute_overlapped(Shared* sh, int w, int p, const CommOp& op) {
  const RoundPlan& plan = (*sh->plans)[p];
  auto& res = sh->result;
  const double t0 = sg4::Engine::get_clock(), compute = plan.compute_s[w];
  const std::uint64_t elements = op.bytes / 4;
  const int buckets = chunk_count(elements, sh->options.bucket_bytes);
  const double bwd = compute * plan.backward_fraction[w];
  sg4::this_actor::sleep_for(compute - bwd);
  std::vector<sg4::ActorPtr> helpers;
  auto sent = std::make_shared<std::uint64_t>(0);
  double comm_start = 0;
  for (int b = 0; b < buckets; ++b) {
    sg4::this_actor::sleep_for(bwd / buckets);
    if (b == 0) comm_start = sg4::Engine::get_clock();
    const std::uint64_t count = ring_chunk(elements, buckets, b).count;
    helpers.push_back(sg4::Actor::create("bucket", sg4::this_actor::get_host(), [&op, count, w, b, sent] {
      *sent += ring_allreduce(op.ranks, count, w, 1 + b);
    }));
  }
  res.events.push_back({w, p, -1, -1, t0, sg4::Engine::get_clock(), 0});
  for (auto& h : helpers) h->join();
  res.events.push_back({w, p, 0, int(op.kind), comm_start, sg4::Engine::get_clock(), *sent});
}

// Whether worker w overlaps op 0 of the plan with its backward pass: with
// --overlap, when that op is a per-iteration gradient all-reduce it takes part in.
bool overlaps(const Shared* sh, const RoundPlan& plan, int w) {
  if (!sh->options.overlap || plan.sync.empty()) return false;
  const CommOp& op = plan.sync[0];
  return op.phase == Phase::iteration && op.kind == OpKind::allreduce && op.involves(w);
}

// The worker actor: a plain loop over its rounds: compute, then its part of
// every op that names it, in the schedule's order. It never asks which
// protocol made the rounds.
void worker(Shared* sh, int w) {
  const auto& plans = *sh->plans;
  auto& res = sh->result;
  for (int p = 0; p < int(plans.size()); ++p) {
    const RoundPlan& plan = plans[p];
    if (sh->barrier) {
      sh->barrier->wait();
      if (w == 0) res.plan_start_s[p] = sg4::Engine::get_clock();
    }
    int first_op = 0;
    if (overlaps(sh, plan, w)) {
      compute_overlapped(sh, w, p, plan.sync[0]);
      first_op = 1;
    } else {
      const double t0 = sg4::Engine::get_clock();
      sg4::this_actor::sleep_for(plan.compute_s[w]);
      res.events.push_back({w, p, -1, -1, t0, sg4::Engine::get_clock(), 0});
    }
    for (int i = first_op; i < int(plan.sync.size()); ++i) {
      const CommOp& op = plan.sync[i];
      if (!op.involves(w)) continue;
      const double s = sg4::Engine::get_clock();
      const std::uint64_t sent = run_op(op, w, sh->options, 0);
      res.events.push_back({w, p, i, int(op.kind), s, sg4::Engine::get_clock(), sent});
    }
    res.plan_end_s[p] = std::max(res.plan_end_s[p], sg4::Engine::get_clock());
  }
}

EngineResult simulate_here(const Platform& platform, int ranks, const std::vector<RoundPlan>& plans,
                           const EngineOptions& options) {
  int argc = 2;
  char arg0[] = "resist-sim", arg1[] = "--log=root.thres:critical";
  char* argv[] = {arg0, arg1, nullptr};
  sg4::Engine engine(&argc, argv);
  configure_network(platform.network);
  sg4::Engine::set_config("contexts/stack-size:256");
  if (const char* extra = std::getenv("RESIST_SIMGRID_CFG")) sg4::Engine::set_config(extra);
  const auto hosts = build_platform(platform, ranks);
  Shared sh;
  sh.plans = &plans;
  sh.options = options;
  if (options.barrier) sh.barrier = sg4::Barrier::create(ranks);
  sh.result.plan_start_s.assign(plans.size(), 0);
  sh.result.plan_end_s.assign(plans.size(), 0);
  for (int w = 0; w < ranks; ++w) sg4::Actor::create("worker" + std::to_string(w), hosts[w], [&sh, w] { worker(&sh, w); });
  engine.run();
  auto& res = sh.result;
  res.end_s = sg4::Engine::get_clock();
  res.plan_bytes.assign(plans.size(), 0);
  if (!options.barrier) std::fill(res.plan_start_s.begin(), res.plan_start_s.end(), 1e300);
  for (const auto& e : res.events) {
    res.plan_bytes[e.plan] += e.bytes;
    if (!options.barrier && e.op < 0) res.plan_start_s[e.plan] = std::min(res.plan_start_s[e.plan], e.start_s);
  }
  return res;
}

// ------------------------------------------------------------- fork

void write_all(int fd, const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t k = ::write(fd, p, n);
    if (k <= 0) _exit(3);
    p += k;
    n -= std::size_t(k);
  }
}
template <typename T>
void write_vec(int fd, const std::vector<T>& v) {
  const std::uint64_t n = v.size();
  write_all(fd, &n, sizeof n);
  write_all(fd, v.data(), n * sizeof(T));
}
template <typename T>
std::vector<T> read_vec(const std::string& buf, std::size_t& at) {
  std::uint64_t n = 0;
  if (at + sizeof n > buf.size()) throw std::runtime_error("simulation child: truncated result");
  std::memcpy(&n, buf.data() + at, sizeof n);
  at += sizeof n;
  if (at + n * sizeof(T) > buf.size()) throw std::runtime_error("simulation child: truncated result");
  std::vector<T> v(n);
  std::memcpy(v.data(), buf.data() + at, n * sizeof(T));
  at += n * sizeof(T);
  return v;
}

}  // namespace

EngineResult run_engine(const Platform& platform, int ranks, const std::vector<RoundPlan>& plans,
                        const EngineOptions& options) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::close(fds[0]);
    std::uint64_t status = 0;
    try {
      const EngineResult r = simulate_here(platform, ranks, plans, options);
      write_all(fds[1], &status, sizeof status);
      write_vec(fds[1], r.plan_start_s);
      write_vec(fds[1], r.plan_end_s);
      write_vec(fds[1], r.plan_bytes);
      write_vec(fds[1], r.events);
      write_all(fds[1], &r.end_s, sizeof r.end_s);
    } catch (const std::exception& e) {
      status = 1;
      write_all(fds[1], &status, sizeof status);
      write_all(fds[1], e.what(), std::strlen(e.what()));
    }
    ::close(fds[1]);
    _exit(0);
  }
  ::close(fds[1]);
  std::string buf;
  char tmp[1 << 16];
  ssize_t k;
  while ((k = ::read(fds[0], tmp, sizeof tmp)) > 0) buf.append(tmp, std::size_t(k));
  ::close(fds[0]);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  if (buf.size() < 8) throw std::runtime_error("simulation child died (status " + std::to_string(wstatus) + ")");
  std::uint64_t status = 0;
  std::memcpy(&status, buf.data(), 8);
  if (status != 0) throw std::runtime_error("simulation failed: " + buf.substr(8));
  std::size_t at = 8;
  EngineResult r;
  r.plan_start_s = read_vec<double>(buf, at);
  r.plan_end_s = read_vec<double>(buf, at);
  r.plan_bytes = read_vec<std::uint64_t>(buf, at);
  r.events = read_vec<EngineEvent>(buf, at);
  if (at + sizeof r.end_s > buf.size()) throw std::runtime_error("simulation child: truncated result");
  std::memcpy(&r.end_s, buf.data() + at, sizeof r.end_s);
  return r;
}

}  // namespace resist::sim
