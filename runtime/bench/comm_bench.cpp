// resist-bench-comm: seconds per all-reduce (mean) of one flat fp32 buffer
// over Gloo on loopback, between the ranks resist-launch starts:
//
//   resist-launch -n 4 -- resist-bench-comm --floats 2800000 --iters 10 --repeats 5
//
// Variants, alternating in every repeat (the first one moves round):
//   step       resist's P2P ring (schedule/collectives), step by step: every
//              transfer whole, one step in flight (window 1, no segments)
//   pipelined  the same plan as resist-train runs it: transfers cut into
//              segments, receives posted ahead (P2PCommunicator::Pipelining)
//   gloo       c10d ProcessGroupGloo::allreduce (Gloo's own ring), then / n:
//              what PyTorch's DistributedDataParallel calls
// Rank 0 prints one JSON object: per variant the seconds per all-reduce of
// every repeat (its `iters` timed back to back after one untimed) and the median.
//
// --busy-ms B: every rank first computes for B ms of its own CPU time before
// each all-reduce, as training ranks do between syncs, so that an all-reduce
// starts and ends while the other ranks' work holds the cores (on a machine
// the ranks share, a rank that finishes its part waits for a core). Then
// s_per_iteration is the time per (compute + all-reduce) and s_per_allreduce
// that minus the compute's wall time at an even share of the cores: B ×
// max(1, ranks on this machine / cores).
//
// --pairs: every rank all-reduces with one partner instead (0 with 1, 2 with
// 3, ...; an even number of ranks), all pairs at once: each step is one
// exchange between two ranks, with no chain of ranks waiting on each other
// (validate-grid: the link's own latency and bandwidth with every rank running).
#include <time.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include "models/error.hpp"
#include "runtime/dist.hpp"
#include "schedule/profile.hpp"
#include "tools/cli.hpp"

namespace {

using namespace resist::runtime;
using Clock = std::chrono::steady_clock;

struct Options {
  std::int64_t floats = 2800000;
  int iters = 10, repeats = 5;
  std::string variants = "step,pipelined,gloo";
  double busy_ms = 0;
  bool pairs = false;
};

double thread_cpu_s() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// `seconds` of this thread's CPU time spent on arithmetic.
void compute_for(double seconds) {
  const double end = thread_cpu_s() + seconds;
  volatile double x = 1.0;
  while (thread_cpu_s() < end)
    for (int i = 0; i < 1000; ++i) x = x * 1.0000001 + 1e-9;
}

// Gloo's own all-reduce on a process group of its own (store on MASTER_PORT + 1).
c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo_group(const Env& env, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions so;
  so.port = std::uint16_t(env.master_port + 1);
  so.isServer = env.rank == 0;
  so.numWorkers = std::size_t(env.world_size);
  so.waitWorkers = true;
  so.timeout = timeout;
  auto store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  opts->threads = 2;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, opts);
}

int run(const Options& o) {
  const Env env = read_env();
  if (!env.distributed || env.world_size < 2)
    throw resist::UserError("WORLD_SIZE: run under resist-launch -n N with N >= 2");
  const auto variants = resist::cli::parse_list(o.variants);
  for (const auto& v : variants)
    if (v != "step" && v != "pipelined" && v != "gloo")
      throw resist::UserError("--variants: unknown variant '" + v + "' (accepted: step, pipelined, gloo)");
  const bool with_gloo = std::find(variants.begin(), variants.end(), "gloo") != variants.end();
  if (o.pairs && env.world_size % 2 != 0)
    throw resist::UserError("--pairs: needs an even number of ranks (got WORLD_SIZE " + std::to_string(env.world_size) +
                            ")");
  if (o.pairs && with_gloo)
    throw resist::UserError("--pairs: not with --variants gloo (Gloo's all-reduce spans every rank)");
  const std::chrono::milliseconds timeout(120000);
  auto kv = connect_store(env, timeout);
  auto comm = make_gloo_communicator(env, kv, timeout);
  auto& p2p = dynamic_cast<P2PCommunicator&>(*comm);
  // Gloo's own group only when asked for: its store takes another port.
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  if (with_gloo) pg = gloo_group(env, timeout);
  std::vector<int> ranks;
  if (o.pairs) ranks = {env.rank & ~1, env.rank | 1};
  else
    for (int r = 0; r < env.world_size; ++r) ranks.push_back(r);
  torch::Tensor buf = torch::rand({o.floats});
  const auto once = [&](const std::string& v) {
    if (v == "gloo") {
      std::vector<at::Tensor> t = {buf};
      pg->allreduce(t)->wait();
      buf.div_(double(env.world_size));
      return;
    }
    p2p.pipelining = v == "step" ? P2PCommunicator::Pipelining{0, 0, 1} : P2PCommunicator::kPipelined;
    p2p.prepare(ranks);
    p2p.allreduce_mean(buf.data_ptr<float>(), std::size_t(o.floats), ranks);
  };
  std::map<std::string, std::vector<double>> runs;
  for (int rep = 0; rep < o.repeats; ++rep)
    for (std::size_t i = 0; i < variants.size(); ++i) {
      const std::string& v = variants[(i + std::size_t(rep)) % variants.size()];
      once(v);
      kv->barrier("bench/" + std::to_string(rep) + "/" + v, env.rank, env.world_size);
      const auto t0 = Clock::now();
      for (int k = 0; k < o.iters; ++k) {
        if (o.busy_ms > 0) compute_for(o.busy_ms / 1000);
        once(v);
      }
      runs[v].push_back(std::chrono::duration<double>(Clock::now() - t0).count() / o.iters);
    }
  kv->barrier("bench/end", env.rank, env.world_size);
  if (env.rank != 0) return 0;
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  // The spin runs on one thread per rank.
  const double busy_wall_s = o.busy_ms / 1000 * resist::even_share_slowdown(env.local_world_size, cores, 1);
  nlohmann::json out = {{"world_size", env.world_size}, {"ranks_per_allreduce", ranks.size()},
                        {"floats", o.floats},           {"iters", o.iters},
                        {"threads", torch::get_num_threads()}, {"busy_s", o.busy_ms / 1000}, {"cores", cores}};
  for (auto& [v, r] : runs) {
    auto sorted = r;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];
    out["variants"][v] = {{"s_per_allreduce", std::max(0.0, median - busy_wall_s)}, {"runs", r}};
    if (o.busy_ms > 0) out["variants"][v]["s_per_iteration"] = median;
  }
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return resist::cli::guarded("resist-bench-comm", [&] {
    namespace po = boost::program_options;
    Options o;
    po::options_description d("resist-bench-comm options");
    d.add_options()("help", "this help")
        ("floats", po::value(&o.floats)->default_value(o.floats), "fp32 elements all-reduced")
        ("iters", po::value(&o.iters)->default_value(o.iters), "all-reduces timed per repeat")
        ("repeats", po::value(&o.repeats)->default_value(o.repeats), "rounds over the variants")
        ("variants", po::value(&o.variants)->default_value(o.variants), "step, pipelined, gloo (comma-separated)")
        ("busy-ms", po::value(&o.busy_ms)->default_value(o.busy_ms),
         "CPU time every rank computes before each all-reduce, as training does between syncs (0: none)")
        ("pairs", po::bool_switch(&o.pairs), "all-reduce within pairs of ranks (0-1, 2-3, ...), all pairs at once");
    po::variables_map vm;
    if (!resist::cli::parse(argc, argv, d, vm, "usage: resist-launch -n N -- resist-bench-comm [options]")) return 0;
    if (o.floats < 1 || o.floats > (std::int64_t(1) << 32))
      throw resist::UserError("--floats: must be in 1..4294967296 (got " + std::to_string(o.floats) + ")");
    if (o.iters < 1 || o.iters > 100000) throw resist::UserError("--iters: must be in 1..100000 (got " + std::to_string(o.iters) + ")");
    if (!(o.busy_ms >= 0 && o.busy_ms <= 60000))
      throw resist::UserError("--busy-ms: must be in 0..60000 (got " + std::to_string(o.busy_ms) + ")");
    if (o.repeats < 1 || o.repeats > 1000)
      throw resist::UserError("--repeats: must be in 1..1000 (got " + std::to_string(o.repeats) + ")");
    return run(o);
  });
}
