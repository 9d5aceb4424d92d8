#include "runtime/fused_sgd.hpp"

#include <ATen/Parallel.h>
#include <c10/util/C++17.h>
#include <torch/torch.h>

namespace resist::runtime {

namespace {

// The key torch::optim's state map gives a parameter.
std::string state_key(const torch::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

bool plain_cpu_float(const torch::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous();
}

}  // namespace

void drop_gradients(torch::optim::Optimizer& optim) {
  for (auto& group : optim.param_groups())
    for (auto& p : group.params()) p.mutable_grad() = torch::Tensor();
}

// Every parameter with a gradient, with its momentum buffer, when all of
// them can take the loop: it, its gradient and its buffer contiguous fp32
// CPU tensors of one size, with momentum and without Nesterov. Empty
// otherwise (LibTorch's step then does it all).
std::vector<FusedSGD::Slot> FusedSGD::fusable() {
  std::vector<Slot> slots;
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::SGDOptions&>(group.options());
    if (o.momentum() == 0 || o.nesterov()) return {};
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const auto it = state_.find(state_key(p));
      if (it == state_.end()) return {};
      auto& buf = static_cast<torch::optim::SGDParamState&>(*it->second).momentum_buffer();
      if (!plain_cpu_float(p) || !plain_cpu_float(p.grad()) || !plain_cpu_float(buf) ||
          buf.numel() != p.numel() || p.grad().numel() != p.numel())
        return {};
      slots.push_back({&o, &p, &buf});
    }
  }
  return slots;
}

torch::Tensor FusedSGD::step(LossClosure closure) {
  const std::vector<Slot> slots = fusable();
  if (slots.empty()) return torch::optim::SGD::step(std::move(closure));
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode grad_on(true);
    loss = closure();
  }
  torch::NoGradGuard no_grad;
  for (const auto& [o, p, buf] : slots) {
    const float decay = float(o->weight_decay()), momentum = float(o->momentum());
    const float keep = float(1 - o->dampening()), lr = float(o->lr());
    float* __restrict w = p->data_ptr<float>();
    float* __restrict b = buf->data_ptr<float>();
    const float* __restrict g = p->grad().data_ptr<float>();
    // Grains of 32 Ki elements: the intra-op threads share a large tensor.
    at::parallel_for(0, p->numel(), 32768, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        const float d = g[i] + decay * w[i];
        b[i] = momentum * b[i] + keep * d;
        w[i] -= lr * b[i];
      }
    });
  }
  ++fused_steps_;
  return loss;
}

}  // namespace resist::runtime
