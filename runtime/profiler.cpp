// resist-train --profile: per-block forward and backward times of the full
// model at the batch size, the SGD step time per parameter, and the rest of
// an iteration; the simulator's measured compute model (schedule/profile.hpp).
#include <algorithm>
#include <iomanip>
#include <iostream>

#include <torch/torch.h>

#include "models/error.hpp"
#include "models/torch_model.hpp"
#include "runtime/context.hpp"
#include "runtime/trainer.hpp"
#include "schedule/profile.hpp"

namespace resist::runtime {

namespace {

constexpr int kWarmup = 2, kReps = 5;

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

// Median optimizer-step and whole-iteration times of the full model.
std::pair<double, double> time_iteration(Net& net, torch::Tensor x0, int batch, torch::Device device) {
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9).weight_decay(5e-4));
  auto y = torch::zeros({batch}, torch::kInt64).to(device);
  std::vector<double> step_s, iter_s;
  for (int rep = 0; rep < kWarmup + kReps; ++rep) {
    sgd.zero_grad();
    device_sync(device);
    auto t = Clock::now();
    auto loss = torch::nn::functional::cross_entropy(net->forward(x0), y);
    loss.backward();
    device_sync(device);
    auto t1 = Clock::now();
    sgd.step();
    device_sync(device);
    if (rep >= kWarmup) {
      step_s.push_back(seconds_since(t1));
      iter_s.push_back(seconds_since(t));
    }
  }
  return {median(step_s), median(iter_s)};
}

}  // namespace

int profile(const TrainOptions& o) {
  const auto& c = o.schedule;
  const ModelSpec spec = build_model(c.model);
  if (o.threads > 0) torch::set_num_threads(o.threads);
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
  time_blocks(spec, net, x0, device, p);
  const auto [step, iter] = time_iteration(net, x0, c.batch_size, device);
  p.optimizer_step_s_per_param = step / double(spec.param_count());
  double blocks_s = 0;
  for (const auto& b : p.blocks) blocks_s += b.forward_s + b.backward_s;
  p.iteration_overhead_s = std::max(0.0, iter - blocks_s);
  write_profile_file(p, o.profile);
  std::cerr << "resist-train: profile of " << spec.name << " at batch " << c.batch_size << " written to " << o.profile
            << " (" << std::setprecision(3) << blocks_s << " s forward+backward per iteration)" << std::endl;
  return 0;
}

}  // namespace resist::runtime
