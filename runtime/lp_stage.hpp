#pragma once
// One stage of layer-parallel training (docs/layer-parallel.md): the
// stage's consecutive blocks and, for every stage but the first, the
// auxiliary head that computes the stage's input from the image.
//
// An iteration, on every stage at once:
//   forward(x)       z = A(x) (stage 0: z = x); y = F(z.detach())
//   exchange         boundary `first` (the stage's input): send A(x) back to
//                    the previous stage, receive its output y_prev;
//                    boundary `last + 1` (its output): send y forward,
//                    receive the next stage's A_next(x)
//   backward(labels) stage loss: β/2 · mse(y, A_next(x)), or the
//                    cross-entropy of y on the last stage; head loss:
//                    mse(A(x), y_prev); targets are received tensors, so
//                    nothing flows back through them
// The exchange buffers are addressed by boundary (a spec block index whose
// input the tensor is), so a backend moves them op by op without knowing
// which tensor is which.
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "models/torch_model.hpp"
#include "schedule/layer_parallel.hpp"

namespace resist::runtime {

class LayerParallelStage {
 public:
  LayerParallelStage(const ModelSpec& spec, Stage range, int aux_width, double beta, std::uint64_t init_seed);

  void forward(const torch::Tensor& images);
  // The tensor this stage sends across `boundary` (first or last + 1) after
  // forward(): A(x) at `first`, y at `last + 1`. Contiguous fp32.
  torch::Tensor& outgoing(int boundary);
  // Where what arrives across `boundary` goes; shaped like outgoing(boundary).
  torch::Tensor& incoming(int boundary);
  // Losses, backward (gradients accumulate; the caller zeroes and steps).
  // Returns the stage loss plus the head loss.
  double backward(const torch::Tensor& labels);

  const Stage& range() const { return range_; }
  bool last() const { return last_; }
  Net& net() { return net_; }
  // The auxiliary head (null on stage 0).
  AuxHead& aux() { return aux_; }
  // Every trainable tensor: the blocks' (spec order), then the head's.
  std::vector<torch::Tensor> parameters();

 private:
  Stage range_;
  bool last_;
  double beta_;
  Net net_{nullptr};
  AuxHead aux_{nullptr};
  torch::Tensor z_, y_;                  // A(x) (with its graph) and F(z)
  torch::Tensor in_prev_, in_next_;      // y_prev, A_next(x) as received
  torch::Tensor out_first_, out_last_;   // detached copies sent
};

}  // namespace resist::runtime
