// resist-train --profile: per-block forward and backward times of the full
// model at the batch size, the SGD step time per parameter, and the rest of
// an iteration, the per-round rebuild and reload of the network, and the
// per-byte cost of packing a sync op's values; the simulator's measured
// compute model (schedule/profile.hpp).
#include <algorithm>
#include <array>
#include <functional>
#include <iomanip>
#include <iostream>
#include <optional>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "models/error.hpp"
#include "models/torch_model.hpp"
#include "runtime/blas.hpp"
#include "runtime/context.hpp"
#include "runtime/data.hpp"
#include "runtime/dist.hpp"
#include "runtime/fused_sgd.hpp"
#include "runtime/param_store.hpp"
#include "runtime/trainer.hpp"
#include "schedule/ist.hpp"
#include "schedule/profile.hpp"
#include "schedule/rng.hpp"

namespace resist::runtime {

namespace {

constexpr int kWarmup = 2, kReps = 9;

void device_sync(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median forward and backward time of every block, each fed the previous
// block's output.
void time_blocks(const ModelSpec& spec, Net& net, torch::Tensor x, torch::Device device, Profile& p) {
  for (int b = 0; b < int(spec.blocks.size()); ++b) {
    auto& block = net->block(b);
    std::vector<double> fwd, bwd;
    torch::Tensor out;
    for (int rep = 0; rep < kWarmup + kReps; ++rep) {
      auto in = x.detach().requires_grad_(b > 0);
      device_sync(device);
      auto t = Clock::now();
      out = block.forward(in);
      device_sync(device);
      const double f = seconds_since(t);
      auto g = torch::ones_like(out);
      t = Clock::now();
      out.backward(g);
      device_sync(device);
      const double bk = seconds_since(t);
      if (rep >= kWarmup) {
        fwd.push_back(f);
        bwd.push_back(bk);
      }
    }
    p.blocks.push_back({spec.blocks[std::size_t(b)].name, median(fwd), median(bwd)});
    x = out.detach();
  }
}

// The optimizer resist-train's worker runs (its defaults' momentum and weight decay).
torch::optim::SGDOptions profile_sgd() { return torch::optim::SGDOptions(0.01).momentum(0.9).weight_decay(5e-4); }

// A training step's forward and backward as the worker runs them
// (trainer.cpp): the last step's gradients dropped, forward, loss,
// backward. Returns {logits, loss}; the SGD step is the caller's.
std::pair<torch::Tensor, torch::Tensor> forward_backward(Net& net, torch::optim::Optimizer& sgd,
                                                         const torch::Tensor& x, const torch::Tensor& y) {
  drop_gradients(sgd);
  auto logits = net->forward(x);
  auto loss = torch::nn::functional::cross_entropy(logits, y);
  loss.backward();
  return {logits, loss};
}

struct IterationTimes {
  double step_s = 0, iteration_s = 0, batch_s = 0;  // medians
  std::vector<double> iterations;                     // every timed iteration, in order
};

// Median optimizer-step, whole-iteration and batch-building times of the full model, the
// iteration as resist-train's worker runs it with its batches built on the
// training thread (trainer.cpp; --loader-threads 0, what ranks that fill the
// cores get): a batch of the training set built and augmented, the last
// step's gradients dropped (not zero-filled), forward, loss, backward, the
// loss and accuracy read back, the SGD step. Without the dataset (e.g.
// profiling CIFAR without its files) the batch is a fixed random tensor and
// the profile says so. Processes that share the cores time only while all
// of them iterate: before the timed iterations each goes on with untimed
// ones while `all_started` says some have not begun, and after them while
// `all_timed` says some are still timing (a barrier's release is staggered by
// milliseconds, and a process that runs ahead or finishes first leaves the
// others a core to themselves: those iterations would be timed as if they
// needed half the work).
IterationTimes time_iteration(Net& net, const Data* data, torch::Tensor x0, int batch, std::uint64_t seed,
                              torch::Device device, const std::function<bool()>& all_started = {},
                              const std::function<bool()>& all_timed = {}) {
  FusedSGD sgd(net->parameters(), profile_sgd());
  auto y0 = torch::zeros({batch}, torch::kInt64).to(device);
  Rng rng(seed, 0x9e0f11e);
  std::vector<double> step_s, iter_s, batch_s;
  const auto one = [&] {
    device_sync(device);
    auto t = Clock::now();
    torch::Tensor x = x0, y = y0;
    if (data) {
      std::vector<std::int64_t> index(static_cast<std::size_t>(batch));
      for (auto& i : index) i = std::int64_t(rng.below(std::uint64_t(data->train.size())));
      x = make_batch(*data, data->train, index, data->augment, rng).to(device);
      y = data->train.labels.index_select(0, torch::tensor(index, torch::kInt64)).to(device);
    }
    device_sync(device);
    const double batch_built = seconds_since(t);
    const auto [logits, loss] = forward_backward(net, sgd, x, y);
    const double loss_v = loss.item<double>();
    const auto correct = logits.argmax(1).eq(y).sum().item<std::int64_t>();
    (void)loss_v, (void)correct;
    device_sync(device);
    auto t1 = Clock::now();
    sgd.step();
    device_sync(device);
    return std::array<double, 3>{seconds_since(t1), seconds_since(t), batch_built};
  };
  constexpr int kIterWarmup = 3, kIterReps = 25;
  for (int rep = 0; rep < kIterWarmup; ++rep) one();
  while (all_started && !all_started()) one();
  for (int rep = 0; rep < kIterReps; ++rep) {
    const auto [step, whole, batch_built] = one();
    step_s.push_back(step);
    iter_s.push_back(whole);
    batch_s.push_back(batch_built);
  }
  while (all_timed && !all_timed()) one();
  return {median(step_s), median(iter_s), median(batch_s), iter_s};
}

// For `n` processes iterating at once, a time_iteration `all_started` or
// `all_timed`: the first call counts this process on the store's counter
// `key`, and each says whether all n have counted themselves. Alone: none.
std::function<bool()> all_counted(KeyValue* store, const std::string& key, int n) {
  if (!store || n <= 1) return {};
  return [store, key, n, counted = false]() mutable {
    const std::int64_t now = store->add(key, counted ? 0 : 1);
    counted = true;
    return now >= n;
  };
}

// Median per-round costs outside the iterations, for the whole model, as
// resist-train's block store pays them (param_store.cpp, with its own
// copy_into and flat_copy): a network built anew and a new optimizer; the
// held values copied in and taken out again.
// Which rounds pay which, for which blocks, the schedule says
// (schedule/round_setup.hpp).
std::pair<double, double> time_round_costs(const ModelSpec& spec, std::uint64_t seed, torch::Device device) {
  torch::NoGradGuard ng;
  Net net = make_full_net(spec, seed);
  net->to(device);
  std::vector<torch::Tensor> held;
  for (int b = 0; b < int(spec.blocks.size()); ++b) held.push_back(flat_copy(net->block_parameters(b)));
  std::vector<double> rebuild_s, reload_s;
  for (int rep = 0; rep < kWarmup + kReps; ++rep) {
    device_sync(device);
    auto t = Clock::now();
    Net fresh = make_full_net(spec, seed + std::uint64_t(rep));
    fresh->to(device);
    torch::optim::SGD sgd(fresh->parameters(), profile_sgd());
    device_sync(device);
    const double built = seconds_since(t);
    t = Clock::now();
    for (int b = 0; b < int(spec.blocks.size()); ++b) copy_into(fresh->block_parameters(b), held[std::size_t(b)]);
    for (int b = 0; b < int(spec.blocks.size()); ++b) held[std::size_t(b)] = flat_copy(fresh->block_parameters(b));
    device_sync(device);
    if (rep >= kWarmup) {
      rebuild_s.push_back(built);
      reload_s.push_back(seconds_since(t));
    }
  }
  return {median(rebuild_s), median(reload_s)};
}

// Median extra seconds of a network's first iteration after it is built
// anew (a new optimizer too: gradients and momentum buffers allocated, the
// kernels' first calls on it) over its next, steady ones: forward, loss,
// backward and SGD step on the fixed batch x0, as resist-train runs them
// after each rebuild (schedule/round_setup.hpp).
double time_first_iteration(const ModelSpec& spec, const torch::Tensor& x0, int batch, std::uint64_t seed,
                            torch::Device device) {
  const auto y0 = torch::zeros({batch}, torch::kInt64).to(device);
  std::vector<double> extra;
  for (int rep = 0; rep < kWarmup + kReps; ++rep) {
    Net net = make_full_net(spec, seed + std::uint64_t(rep));
    net->to(device);
    net->train();
    FusedSGD sgd(net->parameters(), profile_sgd());
    std::vector<double> t;
    for (int i = 0; i < 4; ++i) {
      device_sync(device);
      const auto t0 = Clock::now();
      forward_backward(net, sgd, x0, y0);
      sgd.step();
      device_sync(device);
      t.push_back(seconds_since(t0));
    }
    if (rep >= kWarmup) extra.push_back(t[0] - median({t[1], t[2], t[3]}));
  }
  return std::max(0.0, median(extra));
}

// Median seconds per payload byte to gather a sync op's values into one
// buffer and scatter them back, as resist-train's stores do
// (param_store.cpp): whole blocks (cat; a copy per block back) and, for an
// MLP, IST's slices: on each side the piece's element indices, then
// index_select (gather) or index_copy_ (scatter). The IST piece is what a
// decentralised sync sends between two workers (held in round 0 by worker 0,
// held in round 1 by worker 1). Returns {blocks, IST (0 unless an MLP)}.
std::pair<double, double> time_packing(const ModelSpec& spec, const Net& net, std::uint64_t seed) {
  torch::NoGradGuard ng;
  std::vector<std::vector<torch::Tensor>> params;
  std::vector<torch::Tensor> flat;
  for (int b = 0; b < int(spec.blocks.size()); ++b) {
    params.emplace_back();
    for (auto& p : net->block_parameters(b)) params.back().push_back(p.detach().clone());
    flat.push_back(flat_copy(net->block_parameters(b)));
  }
  std::vector<double> blocks_s, ist_s;
  std::int64_t ist_elements = 0;
  const IstPiece piece{{IstSetKind::held, 0, 0}, {IstSetKind::held, 1, 1}};
  std::optional<IstPlan> plan;
  if (spec.options.model == "mlp") plan.emplace(spec, 2, seed);
  const auto indices = [&](int b, int p) {
    return torch::tensor(plan->piece_indices(piece, b, p), torch::kInt64).to(params[std::size_t(b)][std::size_t(p)].device());
  };
  for (int rep = 0; rep < kWarmup + kReps; ++rep) {
    auto t = Clock::now();
    const auto bucket = torch::cat(flat);
    std::int64_t off = 0;
    for (auto& f : flat) {
      f = bucket.slice(0, off, off + f.numel()).clone();
      off += f.numel();
    }
    if (rep >= kWarmup) blocks_s.push_back(seconds_since(t));
    if (!plan) continue;
    t = Clock::now();
    std::vector<torch::Tensor> parts;
    for (int b = 0; b < int(params.size()); ++b)
      for (std::size_t p = 0; p < params[b].size(); ++p)
        parts.push_back(params[b][p].reshape({-1}).index_select(0, indices(b, int(p))));
    const auto values = torch::cat(parts).contiguous();
    off = 0;
    for (int b = 0; b < int(params.size()); ++b)
      for (std::size_t p = 0; p < params[b].size(); ++p) {
        const auto idx = indices(b, int(p));
        params[b][p].view({-1}).index_copy_(0, idx, values.slice(0, off, off + idx.numel()));
        off += idx.numel();
      }
    ist_elements = off;
    if (rep >= kWarmup) ist_s.push_back(seconds_since(t));
  }
  const double bytes = 4.0 * double(spec.param_count());
  return {median(blocks_s) / bytes, plan && ist_elements > 0 ? median(ist_s) / (4.0 * double(ist_elements)) : 0.0};
}

// Rank 0 gets the iteration times of ranks 0..n-1 through the store (every
// rank's, in rank order); the others get their own back.
std::vector<double> gather_iterations(KeyValue* store, const std::string& key, const std::vector<double>& mine,
                                      int rank, int n) {
  if (!store) return mine;
  if (rank != 0) {
    if (rank < n) store->set(key + "/" + std::to_string(rank), nlohmann::json(mine).dump());
    return mine;
  }
  std::vector<double> all = mine;
  for (int r = 1; r < n; ++r) {
    const auto theirs = nlohmann::json::parse(store->get(key + "/" + std::to_string(r))).get<std::vector<double>>();
    all.insert(all.end(), theirs.begin(), theirs.end());
  }
  return all;
}

// The iteration timed by processes 0..n-1 at once (the others wait), each
// timing only while all n iterate; every one's samples go to rank 0's
// profile (`iteration_samples` of n processes at once). Returns this
// process's times (none past the n-th).
IterationTimes time_iteration_on(KeyValue* store, const std::string& phase, int rank, int n, Net& net,
                                 const Data* data, const torch::Tensor& x0, int batch, std::uint64_t seed,
                                 torch::Device device, Profile& p) {
  IterationTimes it;
  if (rank < n)
    it = time_iteration(net, data, x0, batch, seed, device, all_counted(store, "profile/" + phase + "/started", n),
                        all_counted(store, "profile/" + phase + "/timed", n));
  p.iteration_samples.push_back({n, gather_iterations(store, "profile/samples/" + std::to_string(n), it.iterations,
                                                      rank, n)});
  return it;
}

// The simulator adds the step (per parameter) to the blocks and the rest of
// an iteration. The whole iteration, timed as the worker runs it, is the
// total: timed one by one, the blocks can add up to more than the network's
// forward and backward in one piece (a backward started per block, the other
// processes' phases not aligned with each block); then they keep their
// shares and are scaled down to what the iteration leaves after the step and
// the batch, and the rest is the batch. Returns the blocks' sum.
double fit_to_iteration(const IterationTimes& it, Profile& p) {
  double blocks_s = 0;
  for (const auto& b : p.blocks) blocks_s += b.forward_s + b.backward_s;
  p.blocks_timed_s = blocks_s;
  p.iteration_s = it.iteration_s;
  const double network_s = std::max(0.0, it.iteration_s - it.step_s - it.batch_s);
  if (blocks_s > network_s && blocks_s > 0) {
    const double scale = network_s / blocks_s;
    for (auto& b : p.blocks) b.forward_s *= scale, b.backward_s *= scale;
    p.iteration_overhead_s = it.batch_s;
    return network_s;
  }
  p.iteration_overhead_s = std::max(0.0, it.iteration_s - blocks_s - it.step_s);
  return blocks_s;
}

// The training set the iteration's batches come from; none (a fixed random
// batch, said on stderr) when it cannot be read.
std::optional<Data> profile_data(const TrainOptions& o) {
  const auto& c = o.schedule;
  try {
    DataOptions d;
    d.name = c.model.dataset;
    d.dir = o.data_dir;
    d.train_subset = o.train_subset;
    d.test_subset = 1;
    d.image_size = c.model.image_size;
    d.check_images = false;
    return load_data(d);
  } catch (const std::exception& e) {
    std::cerr << "resist-train: profile: no " << c.model.dataset << " data (" << e.what()
              << "); the iteration is timed on a fixed random batch, without building batches" << std::endl;
  }
  return std::nullopt;
}

}  // namespace

int profile(const TrainOptions& o) {
  const auto& c = o.schedule;
  const ModelSpec spec = build_model(c.model);
  // Launched as N processes on a machine (resist-launch -n N), all N time
  // the same steps at once, so that the cores are as busy as in a run of N
  // ranks there: they start every timed phase together (a barrier on the
  // launcher's store) and none leaves before all are done; rank 0 writes
  // the profile.
  const Env env = read_env();
  std::shared_ptr<KeyValue> store;
  if (env.world_size > 1) store = connect_store(env, std::chrono::milliseconds(std::int64_t(o.timeout_s * 1000)));
  const auto together = [&](const std::string& phase) {
    if (store) store->barrier("profile/" + phase, env.rank, env.world_size);
  };
  // The worker's threads, so that a matrix product is timed on as many
  // threads as training gives it.
  const int threads = set_worker_threads(o.threads, env.local_world_size);
  torch::Device device(torch::kCPU);
  if (o.device == "cuda") {
    if (!torch::cuda::is_available()) throw UserError("--device cuda: this LibTorch build has no usable CUDA device");
    device = torch::Device(torch::kCUDA, 0);
  }
  Net net = make_full_net(spec, c.seed);
  net->to(device);
  net->train();
  const auto& ds = spec.dataset;
  torch::manual_seed(c.seed);
  auto x0 = torch::randn({c.batch_size, ds.channels, ds.height, ds.width}).to(device);
  Profile p;
  p.model = c.model;
  p.batch_size = c.batch_size;
  p.device = device.is_cuda() ? "cuda" : "cpu";
  p.threads = torch::get_num_threads();
  p.blas_threads = blas_info().threads;
  // More processes than the cores hold (each with its threads): the first
  // ones, as many as fit, time every phase (the profile's figures, for ranks
  // that each have their share of a core); then all of them time the
  // iteration once more, for the simulator's variability at that many ranks
  // per machine (schedule/profile.hpp). The others wait meanwhile.
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  const int world = std::max(1, env.world_size);
  const int fit = device.is_cuda() ? world : std::min(world, core_slots(cores, threads));
  const bool timing = env.rank < fit;
  p.processes = fit;
  p.cores = cores;
  together("blocks");
  if (timing) time_blocks(spec, net, x0, device, p);
  const std::optional<Data> data = profile_data(o);
  together("iteration");
  const Data* batches = data ? &*data : nullptr;
  const IterationTimes it =
      time_iteration_on(store.get(), "iteration", env.rank, fit, net, batches, x0, c.batch_size, c.seed, device, p);
  if (world > fit) {
    together("iteration-all");
    time_iteration_on(store.get(), "iteration-all", env.rank, world, net, batches, x0, c.batch_size, c.seed, device, p);
  }
  p.optimizer_step_s_per_param = it.step_s / double(spec.param_count());
  const double blocks_s = fit_to_iteration(it, p);
  together("round-costs");
  if (timing) std::tie(p.rebuild_s, p.reload_s) = time_round_costs(spec, c.seed, device);
  if (timing) p.first_iteration_s = time_first_iteration(spec, x0, c.batch_size, c.seed, device);
  together("packing");
  if (timing) std::tie(p.pack_s_per_byte, p.ist_pack_s_per_byte) = time_packing(spec, net, c.seed);
  together("done");
  if (env.rank != 0) return 0;
  write_profile_file(p, o.profile);
  std::cerr << "resist-train: profile of " << spec.name << " at batch " << c.batch_size << " written to " << o.profile
            << " (" << std::setprecision(3) << blocks_s << " s forward+backward per iteration"
            << (p.processes > 1 ? ", " + std::to_string(p.processes) + " processes profiling at once" : std::string())
            << (world > fit ? "; the iteration also on all " + std::to_string(world) + " processes" : std::string())
            << ")" << std::endl;
  return 0;
}

}  // namespace resist::runtime
