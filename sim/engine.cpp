// The S4U executor (engine.hpp). Start reading at worker(): the loop every
// simulated GPU runs over its rounds, asking nothing about the protocol.
#include "sim/engine.hpp"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <memory>
#include <string>
#include <unordered_map>

#include <simgrid/s4u.hpp>

#include "models/error.hpp"
#include "schedule/accounting.hpp"
#include "schedule/collectives.hpp"
#include "sim/replay.hpp"

namespace sg4 = simgrid::s4u;

namespace resist::sim {

namespace {

// ------------------------------------------------------------- platform

sg4::Link* duplex(sg4::NetZone* zone, const std::string& name, const LinkSpec& l) {
  return zone->create_split_duplex_link(name, l.bandwidth_Bps)->set_latency(l.latency_s)->seal();
}

// Exact decimal text of a double (std::to_string's "%f" turns 1e-7 into 0).
std::string exact(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

void configure_network(const NetworkSettings& n) {
  sg4::Engine::set_config("network/model:" + n.model);
  sg4::Engine::set_config("network/latency-factor:" + exact(n.latency_factor));
  sg4::Engine::set_config("network/bandwidth-factor:" + exact(n.bandwidth_factor));
  sg4::Engine::set_config(std::string("network/crosstraffic:") + (n.crosstraffic ? "1" : "0"));
  sg4::Engine::set_config("network/TCP-gamma:" + exact(n.tcp_gamma_bytes));
}

// A multi-rail node (nic.rails > 1): a full zone of its GPUs and a router.
// GPU i reaches GPU j over intra_i, intra_j; it reaches the router (the way
// out) over its rail's NIC link, which the star above then adds nothing to.
sg4::NetZone* multi_rail_node(const Platform& p, sg4::NetZone* parent, int n, int ranks,
                              std::vector<sg4::Host*>& hosts) {
  const int gpn = p.gpus_per_node;
  const std::string node = "node" + std::to_string(n);
  auto* zone = sg4::create_full_zone(node);
  zone->set_parent(parent);
  auto* router = zone->create_router(node + "-switch");
  std::vector<sg4::Link*> rails, intra;
  for (int k = 0; k < p.nic_rails; ++k) rails.push_back(duplex(zone, node + "-nic" + std::to_string(k), p.nic));
  std::vector<sg4::Host*> mine;
  for (int g = 0; g < gpn && n * gpn + g < ranks; ++g) {
    auto* host = zone->create_host(node + "-gpu" + std::to_string(g), p.gpu_flops * p.speed_factor(n * gpn + g));
    host->seal();
    mine.push_back(host);
    intra.push_back(duplex(zone, node + "-gpu" + std::to_string(g) + "-link", p.intra));
  }
  using Dir = sg4::LinkInRoute::Direction;
  for (std::size_t i = 0; i < mine.size(); ++i) {
    zone->add_route(mine[i]->get_netpoint(), router, nullptr, nullptr,
                    {sg4::LinkInRoute(rails[i % rails.size()], Dir::UP)}, true);
    for (std::size_t j = i + 1; j < mine.size(); ++j)
      zone->add_route(mine[i]->get_netpoint(), mine[j]->get_netpoint(), nullptr, nullptr,
                      {sg4::LinkInRoute(intra[i], Dir::UP), sg4::LinkInRoute(intra[j], Dir::DOWN)}, true);
  }
  zone->seal();
  hosts.insert(hosts.end(), mine.begin(), mine.end());
  parent->add_route(zone->get_netpoint(), nullptr, router, nullptr, {}, true);
  return zone;
}

// Star zones all the way: a node is a star of its GPUs (each on its own
// `intra` link) with a router as gateway; nodes hang off the cluster switch
// (star) or off leaf switches that hang off a spine (fat-tree) by their NIC.
// CPU nodes (cores_per_node > 0): one extra host per node, of that many cores,
// on which the node's ranks compute (their own hosts only communicate).
sg4::Host* node_cpu(const Platform& p, sg4::NetZone* zone, const std::string& node) {
  return zone->create_host(node + "-cpu", p.gpu_flops)->set_core_count(p.cores_per_node)->seal();
}

std::vector<sg4::Host*> build_platform(const Platform& p, int ranks, std::vector<sg4::Host*>& cpus) {
  const int gpn = p.gpus_per_node, nodes = (ranks + gpn - 1) / gpn;
  // A leaf of one node is that node's NIC and uplink in series; it is built
  // so (SimGrid 3.32 fails to route through a star zone with one child zone
  // of several hosts: unordered_map::at during Comm::start).
  const bool single_leaves = p.topology == "fat-tree" && p.nodes_per_leaf == 1;
  const bool fat_tree = p.topology == "fat-tree" && !single_leaves;
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
    if (p.nic_rails > 1 && gpn > 1) {
      multi_rail_node(p, parent, n, ranks, hosts);
      continue;
    }
    const std::string node = "node" + std::to_string(n);
    auto* zone = sg4::create_star_zone(node);
    zone->set_parent(parent);
    auto* router = zone->create_router(node + "-switch");
    sg4::Host* cpu = p.cores_per_node > 0 ? node_cpu(p, zone, node) : nullptr;
    for (int g = 0; g < gpn && n * gpn + g < ranks; ++g) {
      const int rank = n * gpn + g;
      if (cpu) cpus.push_back(cpu);
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
    std::vector<sg4::LinkInRoute> up = {sg4::LinkInRoute(nic, sg4::LinkInRoute::Direction::UP)};
    if (single_leaves)
      up.emplace_back(duplex(parent, "leaf" + std::to_string(n) + "-uplink", p.uplink), sg4::LinkInRoute::Direction::UP);
    parent->add_route(zone->get_netpoint(), nullptr, router, nullptr, up, true);
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

int position(const std::vector<int>& ranks, int w) {
  return int(std::find(ranks.begin(), ranks.end(), w) - ranks.begin());
}

// World rank w's part of `plan` (schedule/collectives.hpp): per step, wait
// `step_wait_s` (Platform::collective_step_wait_s), post its sends and
// receives, then wait for all of them. Returns the bytes w sent.
std::uint64_t execute(const CollectivePlan& plan, int w, int tag, double step_wait_s) {
  const auto& ranks = plan.ranks();
  const int pos = position(ranks, w);
  std::vector<Transfer> transfers;
  std::vector<sg4::CommPtr> comms;
  int* sink = nullptr;
  std::uint64_t sent = 0;
  for (int k = 0; k < plan.steps(); ++k) {
    transfers.clear();
    plan.transfers(k, pos, transfers);
    if (transfers.empty()) continue;
    if (step_wait_s > 0) sg4::this_actor::sleep_for(step_wait_s);
    comms.clear();
    for (const Transfer& t : transfers)
      if (t.src == pos) {
        comms.push_back(send_async(w, ranks[t.dst], tag, 4 * t.count));
        sent += 4 * t.count;
      }
    for (const Transfer& t : transfers)
      if (t.dst == pos) comms.push_back(mailbox(ranks[t.src], w, tag)->get_async<int>(&sink));
    for (auto& c : comms) c->wait();
  }
  return sent;
}

// ------------------------------------------------------------- workers

struct Shared {
  const Platform* platform = nullptr;
  const std::vector<RoundPlan>* plans;
  std::vector<sg4::Host*> cpus;  // per rank, CPU nodes only: the node's shared processor
  std::vector<std::vector<CollectivePlan>> collectives;  // per plan, per sync op
  EngineOptions options;
  sg4::BarrierPtr barrier;
  EngineResult result;
};

// `seconds` of compute on rank w's own processor (a sleep), or on its node's
// shared cores (an execution that SimGrid slows down while more ranks than
// cores compute there).
void compute_for(Shared* sh, int w, double seconds) {
  if (sh->cpus.empty()) {
    sg4::this_actor::sleep_for(seconds);
    return;
  }
  if (!(seconds > 0)) return;
  sg4::Host* cpu = sh->cpus[std::size_t(w)];
  sg4::ExecPtr e = sg4::this_actor::exec_init(seconds * cpu->get_speed());
  e->set_host(cpu);
  e->start();
  e->wait();
}

// Compute with the plan's per-iteration gradient all-reduce overlapped (like
// PyTorch DDP): forward, then backward producing gradient buckets evenly in
// time (last layers first); each bucket's ring all-reduce starts when its
// gradients exist and runs alongside the rest of backward (each bucket with the
// options' all-reduce algorithm).
void compute_overlapped(Shared* sh, int w, int p, const CommOp& op) {
  const RoundPlan& plan = (*sh->plans)[p];
  auto& res = sh->result;
  const double t0 = sg4::Engine::get_clock(), compute = plan.compute_s[w];
  const std::uint64_t elements = op.bytes / 4;
  const int buckets = chain_chunks(elements, sh->options.bucket_bytes);
  const double bwd = compute * plan.backward_fraction[w];
  const double wait = sh->platform->step_wait_s(op.ranks);  // every bucket's ring alike
  compute_for(sh, w, compute - bwd);
  std::vector<sg4::ActorPtr> helpers;
  auto sent = std::make_shared<std::uint64_t>(0);
  double comm_start = 0;
  for (int b = 0; b < buckets; ++b) {
    compute_for(sh, w, bwd / buckets);
    if (b == 0) comm_start = sg4::Engine::get_clock();
    const std::uint64_t count = ring_chunk(elements, buckets, b).count;
    auto bucket = std::make_shared<CollectivePlan>(Collective::allreduce, sh->options.collectives.allreduce, op.ranks,
                                                   count, sh->options.collectives);
    helpers.push_back(sg4::Actor::create("bucket", sg4::this_actor::get_host(), [bucket, w, b, sent, wait] {
      *sent += execute(*bucket, w, 1 + b, wait);
    }));
  }
  res.events.push_back({w, p, -1, -1, t0, sg4::Engine::get_clock(), 0});
  // Its compute done, the rank's part of the last buckets waits (Platform::sync_entry_delay_s).
  if (!plan.entry_wait_s.empty() && plan.entry_wait_s[w] > 0) sg4::this_actor::sleep_for(plan.entry_wait_s[w]);
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
    if (!plan.setup_s.empty() && plan.setup_s[w] > 0) {
      const double t0 = sg4::Engine::get_clock();
      compute_for(sh, w, plan.setup_s[w]);
      res.events.push_back({w, p, kSetupOp, -1, t0, sg4::Engine::get_clock(), 0});
    }
    int first_op = 0;
    if (overlaps(sh, plan, w)) {
      compute_overlapped(sh, w, p, plan.sync[0]);
      first_op = 1;
    } else {
      const double t0 = sg4::Engine::get_clock();
      compute_for(sh, w, plan.compute_s[w]);
      res.events.push_back({w, p, -1, -1, t0, sg4::Engine::get_clock(), 0});
    }
    double entry_wait = plan.entry_wait_s.empty() || first_op > 0 ? 0.0 : plan.entry_wait_s[w];  // overlapped: waited there
    for (int i = first_op; i < int(plan.sync.size()); ++i) {
      const CommOp& op = plan.sync[i];
      if (!op.involves(w)) continue;
      const double s = sg4::Engine::get_clock();
      if (entry_wait > 0) sg4::this_actor::sleep_for(entry_wait);
      entry_wait = 0;
      // Host work (packing, launches, group set-up): it shares the node's
      // cores with the ranks computing there, as compute does.
      if (!plan.op_delay_s.empty() && plan.op_delay_s[i] > 0) compute_for(sh, w, plan.op_delay_s[i]);
      const std::uint64_t sent = execute(sh->collectives[p][i], w, 0, sh->platform->step_wait_s(op.ranks));
      res.events.push_back({w, p, i, int(op.kind), s, sg4::Engine::get_clock(), sent});
    }
    res.plan_end_s[p] = std::max(res.plan_end_s[p], sg4::Engine::get_clock());
  }
}

// Built with AddressSanitizer (-DRESIST_SANITIZE=ON), SimGrid runs every
// actor on a thread of its own: its default contexts switch between stacks
// ASan does not know, which makes ASan warn in every simulation process
// ("ignoring requested __asan_handle_no_return") and can give it false
// reports. The factory is chosen when the engine starts, hence an argument.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kThreadContexts = true;
#else
constexpr bool kThreadContexts = false;
#endif

EngineResult simulate_here(const Platform& platform, int ranks, const std::vector<RoundPlan>& plans,
                           const EngineOptions& options) {
  char arg0[] = "resist-sim", arg1[] = "--log=root.thres:critical", arg2[] = "--cfg=contexts/factory:thread";
  char* argv[] = {arg0, arg1, kThreadContexts ? arg2 : nullptr, nullptr};
  int argc = kThreadContexts ? 3 : 2;
  sg4::Engine engine(&argc, argv);
  configure_network(platform.network);
  sg4::Engine::set_config("contexts/stack-size:256");
  if (const char* extra = std::getenv("RESIST_SIMGRID_CFG")) sg4::Engine::set_config(extra);
  Shared sh;
  const auto hosts = build_platform(platform, ranks, sh.cpus);
  sh.platform = &platform;
  sh.plans = &plans;
  sh.options = options;
  sh.collectives = collective_plans(plans, options);
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

// SimGrid aborts the process on a non-finite duration and loses precision
// long before: every compute time and every op's time over the slowest link
// must stay below kMaxDuration_s. Checked before anything is simulated, so a
// far too slow platform (gpu.flops = 1e-300, nic.bandwidth = 1e-300B/s) is a
// user error naming the culprit, not an abort.
constexpr double kMaxDuration_s = 1e12;  // ~31,700 years

std::string g(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

void check_durations(const Platform& p, const std::vector<RoundPlan>& plans, const EngineOptions& o) {
  for (const auto& plan : plans)
    for (std::size_t w = 0; w < plan.compute_s.size(); ++w)
      if (!(plan.compute_s[w] >= 0 && plan.compute_s[w] <= kMaxDuration_s))
        throw UserError("platform: round " + std::to_string(plan.round) + " would compute for " +
                        g(plan.compute_s[w]) + " s on rank " + std::to_string(w) + " (at most " + g(kMaxDuration_s) +
                        " s are simulated): gpu.flops, speed_factors, straggler.slowdown or the profile is out of scale");
  double bw = std::min(p.nic.bandwidth_Bps, p.gpus_per_node > 1 ? p.intra.bandwidth_Bps : 1e300);
  if (p.topology == "fat-tree") bw = std::min(bw, p.uplink.bandwidth_Bps);
  bw *= p.network.bandwidth_factor;
  const double latency = 2 * (p.intra.latency_s + p.nic.latency_s + p.uplink.latency_s) * p.network.latency_factor;
  for (const auto& plan : plans)
    for (const auto& op : plan.sync) {
      const double chunks = double(op.bytes) / double(std::max<std::uint64_t>(4, o.collectives.chunk_bytes));
      if (op.kind != OpKind::allreduce && op.kind != OpKind::send && chunks > 1e6)
        throw UserError("--chunk-bytes: " + std::to_string(o.collectives.chunk_bytes) + " cuts a " + std::to_string(op.bytes) +
                        "-byte op into more than 1000000 chunks");
      const double t = 2.0 * double(op.bytes) / bw + latency * (double(op.ranks.size()) + chunks);
      if (!(t <= kMaxDuration_s))
        throw UserError("platform: a " + std::to_string(op.bytes) + "-byte " + to_string(op.kind) + " over " +
                        std::to_string(op.ranks.size()) + " ranks would take about " + g(t) + " s (at most " +
                        g(kMaxDuration_s) + " s are simulated): nic, intra or uplink bandwidth/latency is out of scale");
    }
}

std::vector<std::vector<CollectivePlan>> collective_plans(const std::vector<RoundPlan>& plans,
                                                          const EngineOptions& options) {
  std::vector<std::vector<CollectivePlan>> out;
  for (const auto& plan : plans) {
    if (!plan.collectives.empty()) {
      out.push_back(plan.collectives);
      continue;
    }
    out.emplace_back();
    for (const auto& op : plan.sync) out.back().emplace_back(op, options.collectives);
  }
  return out;
}

const char* to_string(EngineKind k) {
  switch (k) {
    case EngineKind::automatic: return "auto";
    case EngineKind::simgrid: return "simgrid";
    case EngineKind::alpha_beta: return "alpha-beta";
  }
  return "?";
}

EngineKind parse_engine_kind(const std::string& s) {
  for (EngineKind k : {EngineKind::automatic, EngineKind::simgrid, EngineKind::alpha_beta})
    if (s == to_string(k)) return k;
  throw UserError("--engine: unknown value '" + s + "' (accepted: auto, simgrid, alpha-beta)");
}

EngineResult run_engine(const Platform& platform, int ranks, const std::vector<RoundPlan>& plans,
                        const EngineOptions& options) {
  check_durations(platform, plans, options);
  if (options.kind == EngineKind::alpha_beta ||
      (options.kind == EngineKind::automatic && alpha_beta_exact(platform, options)))
    return replay_alpha_beta(platform, ranks, plans, options);
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  std::fflush(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // The simulation dies with resist-sim (killed or not): no orphan keeps
    // a core busy. The getppid() check covers a parent gone before prctl.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(1);
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
  while ((k = ::read(fds[0], tmp, sizeof tmp)) > 0 || (k < 0 && errno == EINTR))
    if (k > 0) buf.append(tmp, std::size_t(k));
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
