// resist-bench: how fast one training step of a spec-built network runs.
//
// One step = forward + cross-entropy loss + backward + SGD (momentum 0.9,
// weight decay 5e-4), on a fixed random batch that already lives on the
// device: no data loading is timed. After `--warmup` steps, `--iters` steps
// run back to back between two device synchronisations; images/s is
// iters * batch / elapsed. scripts/bench_pytorch.py measures the same network
// written in plain PyTorch the same way and writes the same JSON fields.
//
// Model FLOP utilisation (MFU) = the spec's training FLOPs per second over
// the device's *measured* dense matrix-multiply peak in the same precision.
// Training FLOPs per step = 3 x forward FLOPs (forward, plus backward w.r.t.
// activations and w.r.t. weights, each as costly as the forward) x batch,
// summed over the blocks the network holds; the spec counts 2 FLOPs per
// multiply-add of convolutions and linear layers only.
//
// `--resist-workers S` builds the sub-ResNet one ResIST worker trains: the
// shared blocks plus k = max(ceil(B/S), d_min) partitionable blocks (worker
// 0's blocks in round 0 of a schedule with this seed), to compare its peak
// memory with the full model's.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/autocast_mode.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <torch/version.h>

#ifdef RESIST_BENCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "models/error.hpp"
#include "models/torch_model.hpp"
#include "runtime/blas.hpp"
#include "runtime/fused_sgd.hpp"
#include "runtime/host_memory.hpp"
#include "tools/cli.hpp"
#include "schedule/json_util.hpp"
#include "schedule/schedule.hpp"

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string device = "cpu";
  std::string precision = "fp32";
  bool channels_last = false;
  int batch = 128;
  int warmup = 5;
  int iters = 20;
  int resist_workers = 0;  // 0: the full model
  int min_depth = 4;
  std::uint64_t seed = 1;
  std::string sgd = "foreach";
  int matmul_size = -1;  // -1: by device; 0: skip
  double lr = 0.1;
  std::string format = "table";
  std::string out;
};

constexpr int kMinMatmul = 512;  // smallest n x n matmul accepted as a peak measurement

bool on_cuda(const Options& o) { return o.device == "cuda"; }

void synchronize(const Options& o) {
  if (on_cuda(o)) torch::cuda::synchronize();
}

// Autocast on (or off) for the run's device type. LibTorch 2.4 replaced the
// per-device setters (set_enabled = CUDA, set_cpu_enabled = CPU) by ones
// taking a device type.
void set_autocast(const Options& o, bool enabled) {
  const auto dtype = at::kBFloat16;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  const auto type = on_cuda(o) ? at::kCUDA : at::kCPU;
  at::autocast::set_autocast_dtype(type, dtype);
  at::autocast::set_autocast_enabled(type, enabled);
#else
  if (on_cuda(o)) {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(enabled);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(enabled);
  }
#endif
  // Autocast caches the low-precision copy of every weight it casts; the
  // copies go stale when the optimizer steps, so drop them after each use
  // (Python's torch.autocast does this when the outermost region exits).
  if (!enabled) at::autocast::clear_cache();
}

// SGD with momentum and weight decay as torch.optim.SGD computes it
// (dampening 0, no Nesterov): g += wd * p; buf = momentum * buf + g; p -= lr * buf.
// "foreach" updates all parameters with a handful of multi-tensor kernels,
// as PyTorch's default SGD does on CUDA; "torch" is torch::optim::SGD, one
// parameter at a time; "fused" is resist-train's (runtime/fused_sgd.hpp: one
// pass over each parameter's memory on the CPU).
class Sgd {
 public:
  Sgd(std::vector<torch::Tensor> params, const Options& o)
      : params_(std::move(params)), lr_(o.lr), foreach_(o.sgd == "foreach") {
    const auto options = torch::optim::SGDOptions(lr_).momentum(kMomentum).weight_decay(kWeightDecay);
    if (foreach_)
      for (const auto& p : params_) bufs_.push_back(torch::zeros_like(p));
    else if (o.sgd == "fused")
      optim_ = std::make_unique<resist::runtime::FusedSGD>(params_, options);
    else
      optim_ = std::make_unique<torch::optim::SGD>(params_, options);
  }
  // The gradients dropped, not zero-filled (as resist-train does, and
  // PyTorch's zero_grad(set_to_none=True)): backward then writes them
  // rather than adding to zeros, for every variant alike.
  void zero_grad() {
    for (auto& p : params_) p.mutable_grad().reset();
  }
  void step() {
    if (optim_) {
      optim_->step();
      return;
    }
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> grads;
    grads.reserve(params_.size());
    for (auto& p : params_) grads.push_back(p.grad());
    at::_foreach_add_(grads, params_, kWeightDecay);
    at::_foreach_mul_(bufs_, kMomentum);  // zero on the first step, so buf = g as in torch
    at::_foreach_add_(bufs_, grads);
    at::_foreach_add_(params_, bufs_, -lr_);
  }

 private:
  static constexpr double kMomentum = 0.9, kWeightDecay = 5e-4;
  std::vector<torch::Tensor> params_, bufs_;
  double lr_;
  bool foreach_;
  std::unique_ptr<torch::optim::SGD> optim_;
};

// FLOP/s of `op` (which does `flops` FLOPs): repeated for ~0.2 s of work
// (judged from one timed call, at least 3 times), best of 3 such trials, so
// that a busy moment does not pass for the device's speed.
double flops_per_s(const Options& o, const std::function<void()>& op, double flops) {
  op();
  synchronize(o);
  auto t0 = Clock::now();
  op();
  synchronize(o);
  const double one_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const int reps = std::clamp(int(0.2 / std::max(one_s, 1e-6)), 3, 200);
  double best = 0;
  for (int trial = 0; trial < 3; ++trial) {
    t0 = Clock::now();
    for (int i = 0; i < reps; ++i) op();
    synchronize(o);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, flops * reps / s);
  }
  return best;
}

// The device's dense peak in the run's precision: the faster of two fixed,
// large problems, each measured: an n x n matrix multiply (BLAS / cuBLAS)
// and a 3x3 convolution, 128 -> 128 channels on a 32 x 32 batch (oneDNN /
// cuDNN). A network's convolutions may run on a faster library than its
// matrix multiplies (Debian's LibTorch: oneDNN vs. the reference BLAS), so a
// matmul alone can be slower than the model, and MFU came out above 1.
// fp32 on CUDA: cuDNN convolutions run in TF32 by default (PyTorch's and
// LibTorch's default), so the fp32 matmul is measured with TF32 allowed
// exactly when cuDNN allows TF32; the JSON says which.
struct Peak {
  double matmul = 0, conv = 0;
  bool tf32 = false;
  double best() const { return std::max(matmul, conv); }
  const char* kind() const { return matmul >= conv ? "matmul" : "conv3x3"; }
};

Peak measure_peak(const Options& o, torch::Device device, int n) {
  Peak p;
  const auto dtype = o.precision == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  const auto topt = torch::TensorOptions().device(device).dtype(dtype);
  auto& ctx = at::globalContext();
  const bool saved = ctx.allowTF32CuBLAS();
  p.tf32 = on_cuda(o) && o.precision == "fp32" && ctx.allowTF32CuDNN();
  ctx.setAllowTF32CuBLAS(p.tf32);
  torch::NoGradGuard no_grad;
  {
    auto a = torch::randn({n, n}, topt), b = torch::randn({n, n}, topt);
    torch::Tensor c;
    p.matmul = flops_per_s(o, [&] { c = torch::mm(a, b); }, 2.0 * double(n) * n * n);
  }
  ctx.setAllowTF32CuBLAS(saved);
  const std::int64_t batch = on_cuda(o) ? 256 : 16, ch = 128, hw = 32;
  auto x = torch::randn({batch, ch, hw, hw}, topt), w = torch::randn({ch, ch, 3, 3}, topt);
  torch::Tensor y;
  p.conv = flops_per_s(o, [&] { y = torch::conv2d(x, w, {}, 1, 1); }, 2.0 * 9 * ch * ch * hw * hw * double(batch));
  return p;
}

std::uint64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return std::uint64_t(u.ru_maxrss) * 1024;  // Linux reports KiB
}

json software_versions() {
  const auto memory = resist::runtime::keep_freed_memory();
  json s = {{"libtorch", TORCH_VERSION},
            {"malloc", {{"set_by_resist", memory.set}, {"why", memory.reason}}}};
#ifdef RESIST_BENCH_CUDA
  if (torch::cuda::is_available()) {
    int v = 0;
    cudaRuntimeGetVersion(&v);
    s["cuda_runtime"] = std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
  }
#endif
  return s;
}

json blas_json() {
  const auto b = resist::runtime::blas_info();
  return {{"name", b.name}, {"library", b.library}, {"optimised", b.optimised}, {"threads", b.threads}};
}

std::string device_name(const Options& o) {
#ifdef RESIST_BENCH_CUDA
  if (on_cuda(o)) return at::cuda::getCurrentDeviceProperties()->name;
#endif
  return o.device == "cuda" ? "cuda" : "cpu (" + std::to_string(torch::get_num_threads()) + " threads)";
}

void check(const Options& o) {
  using resist::UserError;
  if (o.device != "cpu" && o.device != "cuda")
    throw UserError("--device: '" + o.device + "' is not one of cpu, cuda");
  if (o.device == "cuda" && !torch::cuda::is_available())
    throw UserError("--device: cuda requested but this LibTorch sees no CUDA device");
  if (o.precision != "fp32" && o.precision != "bf16")
    throw UserError("--precision: '" + o.precision + "' is not one of fp32, bf16");
  if (o.sgd != "foreach" && o.sgd != "torch" && o.sgd != "fused")
    throw UserError("--sgd: '" + o.sgd + "' is not one of foreach, torch, fused");
  if (o.format != "table" && o.format != "json")
    throw UserError("--format: '" + o.format + "' is not one of table, json");
  if (o.batch < 1 || o.batch > (1 << 20))
    throw UserError("--batch: must be in 1..1048576 (got " + std::to_string(o.batch) + ")");
  if (o.iters < 1 || o.iters > 1000000)
    throw UserError("--iters: must be in 1..1000000 (got " + std::to_string(o.iters) + ")");
  if (o.warmup < 0 || o.warmup > 1000000)
    throw UserError("--warmup: must be in 0..1000000 (got " + std::to_string(o.warmup) + ")");
  if (!(o.lr > 0 && o.lr <= 1e6)) throw UserError("--lr: must be > 0 (got " + std::to_string(o.lr) + ")");
  if (o.resist_workers < 0)
    throw UserError("--resist-workers: must be >= 0 (got " + std::to_string(o.resist_workers) + ")");
  if (o.matmul_size < -1 || o.matmul_size > 32768)
    throw UserError("--matmul-size: must be in 0..32768, or -1 for the device default (got " +
                    std::to_string(o.matmul_size) + ")");
  if (o.matmul_size > 0 && o.matmul_size < kMinMatmul)
    throw UserError("--matmul-size: below " + std::to_string(kMinMatmul) +
                    " a matmul measures call overhead, not a peak; give >= " + std::to_string(kMinMatmul) +
                    ", 0 to skip MFU or -1 for the device default (got " + std::to_string(o.matmul_size) + ")");
}

// Bytes the device can still give: MemAvailable on the CPU, free memory on
// CUDA; 0 when unknown.
std::uint64_t available_bytes(const Options& o) {
#ifdef RESIST_BENCH_CUDA
  if (on_cuda(o)) {
    std::size_t free = 0, total = 0;
    return cudaMemGetInfo(&free, &total) == cudaSuccess ? free : 0;
  }
#endif
  (void)o;
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return 0;
}

std::string gib(double bytes) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(1);
  s << bytes / double(1ull << 30) << " GiB";
  return s.str();
}

// Refuses what would not fit instead of letting the kernel's OOM killer (or
// the CUDA allocator) end the run: a training step keeps about twice the
// forward activations (saved tensors and their gradients) plus weights,
// gradients and momentum; the matmul peak holds three n x n matrices.
void check_memory(const Options& o, const resist::ModelSpec& spec, const std::vector<int>& held) {
  using resist::UserError;
  const std::uint64_t avail = available_bytes(o);
  if (avail == 0) return;
  std::uint64_t act = 0;
  for (int b : held) act += spec.blocks.at(std::size_t(b)).activation_bytes;
  const double step = 2.0 * double(act) * o.batch + 4.0 * double(spec.bytes(held)) +
                      4.0 * o.batch * spec.dataset.channels * spec.dataset.height * spec.dataset.width;
  if (step > 0.9 * double(avail))
    throw UserError("--batch: " + std::to_string(o.batch) + " images need about " + gib(step) + " for one step of " +
                    spec.name + ", more than the " + gib(double(avail)) + " available on " + o.device);
  const double n = o.matmul_size > 0 ? o.matmul_size : 0;
  const double mm = 3.0 * n * n * (o.precision == "bf16" ? 2 : 4);
  if (mm > 0.5 * double(avail))
    throw UserError("--matmul-size: " + std::to_string(o.matmul_size) + " needs " + gib(mm) +
                    " for its three matrices, more than half the " + gib(double(avail)) + " available on " + o.device);
}

std::string command_line(int argc, char** argv) {
  std::string s = "resist-bench";
  for (int i = 1; i < argc; ++i) s += std::string(" ") + argv[i];
  return s;
}

// The network resist-bench times: its spec and the blocks it holds.
struct Network {
  resist::ModelSpec spec;
  std::vector<int> held;  // sorted
  int blocks_per_worker = 0;  // --resist-workers: k, the partitionable blocks of the sub-ResNet
};

// Parses the command line into `o`, `m` and `vm`; false: --help was printed.
bool parse_options(int argc, char** argv, Options& o, resist::ModelOptions& m, resist::cli::po::variables_map& vm) {
  namespace po = resist::cli::po;
  m.model = "preact-resnet101";
  m.block = "basic";
  std::string hidden;
  po::options_description d("resist-bench options");
  resist::cli::add_model_options(d, m, hidden);
  d.add_options()
      ("help,h", "this help")
      ("device", po::value(&o.device)->default_value(o.device), "cpu|cuda")
      ("precision", po::value(&o.precision)->default_value(o.precision),
       "fp32|bf16 (bf16: autocast to bfloat16 on the device, weights and optimizer stay fp32)")
      ("channels-last", po::bool_switch(&o.channels_last), "NHWC memory format for input and conv weights")
      ("batch", po::value(&o.batch)->default_value(o.batch), "images per step")
      ("warmup", po::value(&o.warmup)->default_value(o.warmup), "untimed steps first")
      ("iters", po::value(&o.iters)->default_value(o.iters), "timed steps")
      ("resist-workers", po::value(&o.resist_workers)->default_value(0),
       "S > 0: time one ResIST worker's sub-ResNet for S workers instead of the full model")
      ("min-depth", po::value(&o.min_depth)->default_value(o.min_depth), "ResIST d_min (with --resist-workers)")
      ("seed", resist::cli::seed_value(o.seed), "seeds weights, data and the ResIST partition")
      ("sgd", po::value(&o.sgd)->default_value(o.sgd), "foreach (multi-tensor kernels) | torch (torch::optim::SGD) | fused (resist-train's)")
      ("lr", po::value(&o.lr)->default_value(o.lr), "learning rate")
      ("matmul-size", po::value(&o.matmul_size)->default_value(o.matmul_size),
       "n of the n x n matmul measuring the peak, >= 512 (-1: 8192 on cuda, 1024 on cpu; 0: skip MFU); "
       "the peak is the faster of it and a fixed 3x3 convolution")
      ("format", po::value(&o.format)->default_value(o.format), "table|json on stdout")
      ("out", po::value(&o.out), "also write the JSON result to this file");
  if (!resist::cli::parse(argc, argv, d, vm,
                          "usage: resist-bench [options]\n"
                          "images/s, MFU and peak memory of forward + backward + SGD step"))
    return false;
  resist::cli::finish_model_options(m, hidden);
  return true;
}

// The whole model, or (--resist-workers S) worker 0's sub-ResNet in round 0
// of a ResIST schedule for S workers; sets o.min_depth to the d_min used.
Network network(Options& o, const resist::ModelOptions& m, const resist::cli::po::variables_map& vm) {
  Network net{resist::build_model(m), {}, 0};
  if (m.model == "mlp") throw resist::UserError("--model: resist-bench times residual networks (got mlp)");
  if (o.resist_workers > 0) {
    resist::ScheduleConfig c;
    c.protocol = resist::Protocol::resist;
    c.model = m;
    c.workers = o.resist_workers;
    c.min_depth = o.min_depth;
    resist::cli::cap_default_min_depth(vm, net.spec, c);
    o.min_depth = c.min_depth;
    c.seed = o.seed;
    c.rounds = 1;
    const resist::ScheduleGenerator gen(net.spec, c);
    const resist::Round round = gen.round(0);
    net.blocks_per_worker = int(round.workers.at(0).blocks.size());
    net.held = resist::trained_blocks(gen.header(), round, 0);
    std::sort(net.held.begin(), net.held.end());
  } else {
    for (int i = 0; i < int(net.spec.blocks.size()); ++i) net.held.push_back(i);
  }
  return net;
}

// What the timed steps measured.
struct Timing {
  double elapsed_s = 0, final_loss = 0;
  double sgd_step_s = -1;  // mean of the timed steps' SGD updates; CPU only (-1: not timed)
  std::uint64_t peak_bytes = 0;
  std::string memory_kind = "peak-rss";
};

// Builds the network on the device and times o.iters steps after o.warmup.
Timing time_steps(const Options& o, const Network& n, torch::Device device) {
  const auto& spec = n.spec;
  torch::manual_seed(o.seed);
  if (on_cuda(o)) at::globalContext().setBenchmarkCuDNN(true);  // as torch.backends.cudnn.benchmark = True
  resist::Net net(spec, n.held, o.seed);
  net->to(device);
  const auto memory_format = o.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  if (o.channels_last)
    for (auto& p : net->parameters())
      if (p.dim() == 4) p.set_data(p.data().contiguous(memory_format));
  Sgd sgd(net->parameters(), o);
  const auto fopt = torch::TensorOptions().device(device);
  const auto x = torch::randn({o.batch, spec.dataset.channels, spec.dataset.height, spec.dataset.width}, fopt)
                     .contiguous(memory_format);
  const auto y = torch::randint(spec.dataset.classes, {o.batch}, fopt.dtype(torch::kLong));
  const bool bf16 = o.precision == "bf16";

  torch::Tensor last_loss;
  double sgd_s = 0;  // the SGD updates' seconds (on the CPU, where they finish when the call returns)
  auto step = [&] {
    sgd.zero_grad();
    if (bf16) set_autocast(o, true);
    auto loss = torch::nn::functional::cross_entropy(net->forward(x), y);
    if (bf16) set_autocast(o, false);
    loss.backward();
    const auto s0 = Clock::now();
    sgd.step();
    sgd_s += std::chrono::duration<double>(Clock::now() - s0).count();
    last_loss = loss.detach();
  };

#ifdef RESIST_BENCH_CUDA
  if (on_cuda(o)) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
#endif
  for (int i = 0; i < o.warmup; ++i) step();
  synchronize(o);
  const auto t0 = Clock::now();
  sgd_s = 0;
  for (int i = 0; i < o.iters; ++i) step();
  synchronize(o);
  Timing t;
  t.elapsed_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!on_cuda(o)) t.sgd_step_s = sgd_s / o.iters;
#ifdef RESIST_BENCH_CUDA
  if (on_cuda(o)) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    t.peak_bytes = std::uint64_t(stats.allocated_bytes[0].peak);  // [0]: StatType::AGGREGATE
    t.memory_kind = "cuda-max-allocated";
  }
#endif
  if (!on_cuda(o)) t.peak_bytes = peak_rss_bytes();
  t.final_loss = last_loss.item<double>();  // after warmup + iters steps on the one batch
  return t;
}

json result_json(const Options& o, const Network& n, const Timing& t, const Peak& peak, const std::string& command) {
  std::uint64_t fwd_flops_per_sample = 0;
  for (int b : n.held) fwd_flops_per_sample += n.spec.blocks.at(b).flops_fwd;
  const double peak_flops = peak.best();
  const double step_s = t.elapsed_s / o.iters;
  const double train_flops = 3.0 * double(fwd_flops_per_sample) * o.batch;
  return {
      {"format", "resist-bench"},
      {"version", 1},
      {"impl", "resist"},
      {"mode", "libtorch"},
      {"model", n.spec.name},
      {"params", n.spec.param_count(n.held)},
      {"blocks_held", n.held.size()},
      {"resist_workers", o.resist_workers},
      {"blocks_per_worker", n.blocks_per_worker},
      {"device", o.device},
      {"device_name", device_name(o)},
      {"precision", o.precision},
      {"channels_last", o.channels_last},
      {"sgd", o.sgd},
      {"batch", o.batch},
      {"warmup", o.warmup},
      {"iters", o.iters},
      {"elapsed_s", t.elapsed_s},
      {"final_loss", t.final_loss},
      {"step_s", step_s},
      {"sgd_step_s", t.sgd_step_s >= 0 ? json(t.sgd_step_s) : json(nullptr)},
      {"images_per_s", o.batch / step_s},
      {"train_flops_per_step", train_flops},
      {"achieved_flops_per_s", train_flops / step_s},
      {"matmul_size", o.matmul_size},
      {"matmul_tf32", peak.tf32},
      {"peak_matmul_flops_per_s", peak.matmul},
      {"peak_conv_flops_per_s", peak.conv},
      {"peak_flops_per_s", peak_flops},
      {"peak_kind", o.matmul_size > 0 ? peak.kind() : "none"},
      {"mfu", peak_flops > 0 ? train_flops / step_s / peak_flops : 0.0},
      {"peak_memory_bytes", t.peak_bytes},
      {"memory_kind", t.memory_kind},
      {"threads", torch::get_num_threads()},
      {"blas", blas_json()},
      {"software", software_versions()},
      {"command", command},
  };
}

// The one-line summary (and, on the CPU, the BLAS) on stdout.
void print_table(const Options& o, const json& r) {
  const double step_s = r["step_s"].get<double>();
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(1);
  s << r["model"].get<std::string>() << (o.resist_workers ? " (ResIST S=" + std::to_string(o.resist_workers) + ")" : "")
    << " on " << r["device_name"].get<std::string>() << ", " << o.precision << (o.channels_last ? ", channels-last" : "")
    << ", batch " << o.batch << ": " << o.batch / step_s << " images/s, " << step_s * 1e3 << " ms/step, ";
  s.precision(3);
  s << "MFU " << r["mfu"].get<double>() << " (peak " << r["peak_flops_per_s"].get<double>() / 1e12 << " TFLOP/s, "
    << r["peak_kind"].get<std::string>() << "), ";
  s.precision(1);
  s << "peak memory " << double(r["peak_memory_bytes"].get<std::uint64_t>()) / (1 << 20) << " MiB ("
    << r["memory_kind"].get<std::string>() << ")\n";
  if (!on_cuda(o)) s << "BLAS: " << resist::runtime::describe(resist::runtime::blas_info()) << "\n";
  std::cout << s.str();
}

int run(int argc, char** argv) {
  Options o;
  resist::ModelOptions m;
  resist::cli::po::variables_map vm;
  if (!parse_options(argc, argv, o, m, vm)) return 0;
  check(o);
  resist::runtime::keep_freed_memory();  // as resist-train does
  const Network n = network(o, m, vm);
  if (o.matmul_size < 0) o.matmul_size = on_cuda(o) ? 8192 : 1024;
  check_memory(o, n.spec, n.held);
  const torch::Device device(on_cuda(o) ? torch::kCUDA : torch::kCPU);
  const Timing t = time_steps(o, n, device);
  const Peak peak = o.matmul_size > 0 ? measure_peak(o, device, o.matmul_size) : Peak{};
  const json r = result_json(o, n, t, peak, command_line(argc, argv));
  if (!o.out.empty()) resist::json_util::write_atomic(o.out, r.dump(2) + "\n", "--out");
  if (o.format == "json") std::cout << r.dump(2) << "\n";
  else print_table(o, r);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return resist::cli::guarded("resist-bench", [&] { return run(argc, argv); });
}
