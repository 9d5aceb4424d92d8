// The worker's optimizer step: SGD with momentum and weight decay in one
// pass over each parameter's memory on the CPU, and the gradients dropped
// before each backward.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/optim/sgd.h>

namespace resist::runtime {

// torch::optim::SGD's update, the same state (momentum buffers), options
// and checkpoint format, with its common case fused: once a parameter has a
// momentum buffer, a contiguous fp32 CPU parameter is updated in one loop
// (decay added to the gradient, the buffer moved, the parameter stepped)
// instead of LibTorch's four tensor operations and a temporary, each a
// pass over the parameter's memory. The first step of each buffer, and any
// parameter the loop does not cover (another device or type, Nesterov), go
// through torch::optim::SGD::step unchanged.
// The last step's gradients dropped before backward, as PyTorch's
// zero_grad(set_to_none=True) (LibTorch 1.13's zero_grad() fills them with
// zeros): backward then hands each parameter its fresh gradient instead of
// adding it to zeros, two passes over the model's size less per iteration.
// resist-train's worker and its profile do this before every backward.
void drop_gradients(torch::optim::Optimizer& optim);

class FusedSGD : public torch::optim::SGD {
 public:
  using torch::optim::SGD::SGD;
  torch::Tensor step(LossClosure closure = nullptr) override;
  // Steps that took the fused loop for every parameter (a test's check).
  std::int64_t fused_steps() const { return fused_steps_; }

 private:
  struct Slot {
    const torch::optim::SGDOptions* options;
    torch::Tensor* param;
    torch::Tensor* momentum;
  };
  std::vector<Slot> fusable();
  std::int64_t fused_steps_ = 0;
};

}  // namespace resist::runtime
