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
// parameter at a time.
class Sgd {
 public:
  Sgd(std::vector<torch::Tensor> params, const Options& o)
      : params_(std::move(params)), lr_(o.lr), foreach_(o.sgd == "foreach") {
    if (foreach_)
      for (const auto& p : params_) bufs_.push_back(torch::zeros_like(p));
    else
      optim_ = std::make_unique<torch::optim::SGD>(
          params_, torch::optim::SGDOptions(lr_).momentum(kMomentum).weight_decay(kWeightDecay));
  }
  void zero_grad() {
    if (optim_) {
      optim_->zero_grad();
      return;
    }
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

// Dense n x n matrix-multiply throughput in the run's precision (FLOP/s).
// fp32 on CUDA: cuDNN convolutions run in TF32 by default (PyTorch's and
// LibTorch's default), so the fp32 peak is measured with TF32 matmuls
// allowed exactly when cuDNN allows TF32; the JSON says which.
double measure_matmul_peak(const Options& o, torch::Device device, int n, bool& tf32) {
  const auto dtype = o.precision == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  auto& ctx = at::globalContext();
  const bool saved = ctx.allowTF32CuBLAS();
  tf32 = on_cuda(o) && o.precision == "fp32" && ctx.allowTF32CuDNN();
  ctx.setAllowTF32CuBLAS(tf32);
  torch::NoGradGuard no_grad;
  auto a = torch::randn({n, n}, torch::TensorOptions().device(device).dtype(dtype));
  auto b = torch::randn({n, n}, torch::TensorOptions().device(device).dtype(dtype));
  auto c = torch::mm(a, b);
  synchronize(o);
  // Enough repetitions for ~0.2 s of work, judged from one timed product.
  auto t0 = Clock::now();
  c = torch::mm(a, b);
  synchronize(o);
  const double one_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const int reps = std::clamp(int(0.2 / std::max(one_s, 1e-6)), 3, 200);
  t0 = Clock::now();
  for (int i = 0; i < reps; ++i) c = torch::mm(a, b);
  synchronize(o);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  ctx.setAllowTF32CuBLAS(saved);
  return 2.0 * double(n) * n * n * reps / s;
}

std::uint64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return std::uint64_t(u.ru_maxrss) * 1024;  // Linux reports KiB
}

json software_versions() {
  json s = {{"libtorch", TORCH_VERSION}};
#ifdef RESIST_BENCH_CUDA
  if (torch::cuda::is_available()) {
    int v = 0;
    cudaRuntimeGetVersion(&v);
    s["cuda_runtime"] = std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
  }
#endif
  return s;
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
  if (o.sgd != "foreach" && o.sgd != "torch")
    throw UserError("--sgd: '" + o.sgd + "' is not one of foreach, torch");
  if (o.format != "table" && o.format != "json")
    throw UserError("--format: '" + o.format + "' is not one of table, json");
  if (o.batch < 1) throw UserError("--batch: must be >= 1 (got " + std::to_string(o.batch) + ")");
  if (o.iters < 1) throw UserError("--iters: must be >= 1 (got " + std::to_string(o.iters) + ")");
  if (o.warmup < 0) throw UserError("--warmup: must be >= 0 (got " + std::to_string(o.warmup) + ")");
  if (o.resist_workers < 0)
    throw UserError("--resist-workers: must be >= 0 (got " + std::to_string(o.resist_workers) + ")");
  if (o.matmul_size < -1 || o.matmul_size > 65536)
    throw UserError("--matmul-size: must be in 0..65536, or -1 for the device default (got " +
                    std::to_string(o.matmul_size) + ")");
}

std::string command_line(int argc, char** argv) {
  std::string s = "resist-bench";
  for (int i = 1; i < argc; ++i) s += std::string(" ") + argv[i];
  return s;
}

int run(int argc, char** argv) {
  namespace po = resist::cli::po;
  Options o;
  resist::ModelOptions m;
  m.model = "preact-resnet101";
  m.block = "basic";
  std::string hidden;
  po::options_description d("resist-bench options");
  resist::cli::add_model_options(d, m, hidden);
  d.add_options()
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
      ("seed", po::value(&o.seed)->default_value(o.seed), "seeds weights, data and the ResIST partition")
      ("sgd", po::value(&o.sgd)->default_value(o.sgd), "foreach (multi-tensor kernels) | torch (torch::optim::SGD)")
      ("lr", po::value(&o.lr)->default_value(o.lr), "learning rate")
      ("matmul-size", po::value(&o.matmul_size)->default_value(o.matmul_size),
       "n of the n x n matmul measuring the peak (-1: 8192 on cuda, 1024 on cpu; 0: skip MFU)")
      ("format", po::value(&o.format)->default_value(o.format), "table|json on stdout")
      ("out", po::value(&o.out), "also write the JSON result to this file");
  po::variables_map vm;
  if (!resist::cli::parse(argc, argv, d, vm,
                          "usage: resist-bench [options]\n"
                          "images/s, MFU and peak memory of forward + backward + SGD step"))
    return 0;
  resist::cli::finish_model_options(m, hidden);
  check(o);
  const auto spec = resist::build_model(m);
  if (m.model == "mlp") throw resist::UserError("--model: resist-bench times residual networks (got mlp)");

  // Which blocks the network holds.
  std::vector<int> held;
  int k = 0;
  if (o.resist_workers > 0) {
    // Worker 0's sub-ResNet in round 0 of a ResIST schedule.
    resist::ScheduleConfig c;
    c.protocol = resist::Protocol::resist;
    c.model = m;
    c.workers = o.resist_workers;
    c.min_depth = o.min_depth;
    c.seed = o.seed;
    c.rounds = 1;
    const resist::ScheduleGenerator gen(spec, c);
    const resist::Round round = gen.round(0);
    k = int(round.workers.at(0).blocks.size());
    held = resist::trained_blocks(gen.header(), round, 0);
    std::sort(held.begin(), held.end());
  } else {
    for (int i = 0; i < int(spec.blocks.size()); ++i) held.push_back(i);
  }
  std::uint64_t fwd_flops_per_sample = 0;
  for (int b : held) fwd_flops_per_sample += spec.blocks.at(b).flops_fwd;

  torch::manual_seed(o.seed);
  const torch::Device device(on_cuda(o) ? torch::kCUDA : torch::kCPU);
  if (on_cuda(o)) at::globalContext().setBenchmarkCuDNN(true);  // as torch.backends.cudnn.benchmark = True
  resist::Net net(spec, held, o.seed);
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
  auto step = [&] {
    sgd.zero_grad();
    if (bf16) set_autocast(o, true);
    auto loss = torch::nn::functional::cross_entropy(net->forward(x), y);
    if (bf16) set_autocast(o, false);
    loss.backward();
    sgd.step();
    last_loss = loss.detach();
  };

#ifdef RESIST_BENCH_CUDA
  if (on_cuda(o)) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
#endif
  for (int i = 0; i < o.warmup; ++i) step();
  synchronize(o);
  const auto t0 = Clock::now();
  for (int i = 0; i < o.iters; ++i) step();
  synchronize(o);
  const double elapsed_s = std::chrono::duration<double>(Clock::now() - t0).count();

  std::uint64_t peak_bytes = 0;
  std::string memory_kind = "peak-rss";
#ifdef RESIST_BENCH_CUDA
  if (on_cuda(o)) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    peak_bytes = std::uint64_t(stats.allocated_bytes[0].peak);  // [0]: StatType::AGGREGATE
    memory_kind = "cuda-max-allocated";
  }
#endif
  if (!on_cuda(o)) peak_bytes = peak_rss_bytes();

  const int n = o.matmul_size >= 0 ? o.matmul_size : (on_cuda(o) ? 8192 : 1024);
  bool tf32 = false;
  const double peak_flops = n > 0 ? measure_matmul_peak(o, device, n, tf32) : 0.0;

  const double step_s = elapsed_s / o.iters;
  const double train_flops = 3.0 * double(fwd_flops_per_sample) * o.batch;
  json r = {
      {"format", "resist-bench"},
      {"version", 1},
      {"impl", "resist"},
      {"mode", "libtorch"},
      {"model", spec.name},
      {"params", spec.param_count(held)},
      {"blocks_held", held.size()},
      {"resist_workers", o.resist_workers},
      {"blocks_per_worker", k},
      {"device", o.device},
      {"device_name", device_name(o)},
      {"precision", o.precision},
      {"channels_last", o.channels_last},
      {"sgd", o.sgd},
      {"batch", o.batch},
      {"warmup", o.warmup},
      {"iters", o.iters},
      {"elapsed_s", elapsed_s},
      {"final_loss", last_loss.item<double>()},  // after warmup + iters steps on the one batch
      {"step_s", step_s},
      {"images_per_s", o.batch / step_s},
      {"train_flops_per_step", train_flops},
      {"achieved_flops_per_s", train_flops / step_s},
      {"matmul_size", n},
      {"matmul_tf32", tf32},
      {"peak_matmul_flops_per_s", peak_flops},
      {"mfu", peak_flops > 0 ? train_flops / step_s / peak_flops : 0.0},
      {"peak_memory_bytes", peak_bytes},
      {"memory_kind", memory_kind},
      {"software", software_versions()},
      {"command", command_line(argc, argv)},
  };
  if (!o.out.empty()) resist::json_util::write_atomic(o.out, r.dump(2) + "\n", "--out");
  if (o.format == "json") {
    std::cout << r.dump(2) << "\n";
  } else {
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(1);
    s << spec.name << (o.resist_workers ? " (ResIST S=" + std::to_string(o.resist_workers) + ")" : "") << " on "
      << r["device_name"].get<std::string>() << ", " << o.precision << (o.channels_last ? ", channels-last" : "")
      << ", batch " << o.batch << ": " << o.batch / step_s << " images/s, " << step_s * 1e3 << " ms/step, ";
    s.precision(3);
    s << "MFU " << r["mfu"].get<double>() << " (peak " << peak_flops / 1e12 << " TFLOP/s), ";
    s.precision(1);
    s << "peak memory " << double(peak_bytes) / (1 << 20) << " MiB (" << memory_kind << ")\n";
    std::cout << s.str();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return resist::cli::guarded("resist-bench", [&] { return run(argc, argv); });
}
