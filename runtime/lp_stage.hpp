#pragma once
// One worker's iteration, for every protocol: the network it trains (all or
// some of the spec's blocks, models/torch_model.hpp) and, in layer-parallel
// training (docs/layer-parallel.md), the auxiliary head that computes the
// network's input from the image. The schedule says which (Round::workers:
// blocks and aux_target); nothing here knows the protocol.
//
//   forward(x)   z = A(x) (no head: z = x); y = F(z), z detached when a head
//                made it (the head learns from its own loss only)
//   exchange     the round's Phase::forward ops (Payload::activations), run
//                by the trainer on this object as OpValues: across boundary
//                b (a block whose input the tensor is) a worker sends y when
//                b is its output boundary, A(x) when b is its head's target,
//                and receives the neighbour's tensor of the same shape
//   stage_loss(labels)
//                L: the cross-entropy of y when the network ends with the
//                model's output block; otherwise β/2 · mse(y, what arrived
//                at its output boundary)
//   head_loss()  when there is a head: mse(A(x), t), t = what arrived at the
//                head's target (the previous stage's output y') or, with
//                aux_step γ > 0, y' − γ·(N/β)·∂L/∂z (N = z's elements): y'
//                moved by the stage's own loss gradient at its input, the
//                penalty problem's first-order optimal auxiliary variable at
//                γ = 1. Targets carry no gradient back.
//
// The two losses share no graph (z is detached), so each backward pass
// reaches only its own parameters. The caller runs them, and orders them:
// with γ > 0 the head's target needs ∂L/∂z, so L's backward must run before
// head_loss() (head_needs_stage_backward()).
#include <cstdint>
#include <map>

#include <torch/torch.h>

#include "models/torch_model.hpp"
#include "runtime/param_store.hpp"

namespace resist::runtime {

class LocalStep : public OpValues {
 public:
  // `aux` may be empty (no head). `rank`: this worker, to tell a send's source.
  // `aux_step`: γ of the head's target (0: the previous stage's output as it arrived).
  LocalStep(Net& net, AuxHead& aux, int rank, double beta, double aux_step = 0);

  torch::Tensor forward(const torch::Tensor& images);  // y: logits when holds_output()
  torch::Tensor stage_loss(const torch::Tensor& labels);
  // Only when has_head(); after stage_loss's backward when head_needs_stage_backward()
  // (std::logic_error otherwise).
  torch::Tensor head_loss();
  bool holds_output() const { return out_boundary_ < 0; }
  bool has_head() const { return head_target_ >= 0; }
  bool head_needs_stage_backward() const { return has_head() && aux_step_ > 0; }

  // OpValues over the activations exchanged after forward().
  std::int64_t count(const CommOp& op) override;
  torch::Tensor gather(const CommOp& op) override;
  void scatter(const CommOp& op, const torch::Tensor& values) override;

  // The tensor this worker sends across `boundary`, and what arrived there.
  const torch::Tensor& outgoing(int boundary) const { return out_.at(boundary); }
  const torch::Tensor& incoming(int boundary) const { return in_.at(boundary); }

 private:
  Net& net_;
  AuxHead& aux_;
  int rank_;
  double beta_, aux_step_;
  int out_boundary_ = -1;  // the block after the network's last one; -1: it ends with the output
  int head_target_ = -1;   // the auxiliary head's target block; -1: none
  torch::Tensor z_, zin_, y_;  // zin_: the stage's input (z detached)
  std::map<int, torch::Tensor> out_, in_;
};

// An auxiliary head's parameters as one flat fp32 tensor (in the module's
// parameter order), and back: what an aux op carries and a checkpoint keeps.
torch::Tensor flat_parameters(AuxHead& aux);
void set_parameters(AuxHead& aux, const torch::Tensor& flat);

// The parameters of this worker's auxiliary head as OpValues, for the ops of
// Payload::aux (layer-parallel replicas averaging a stage's head): gather
// flattens them in the head's parameter order, scatter copies the result back.
class AuxValues : public OpValues {
 public:
  explicit AuxValues(AuxHead& aux) : aux_(aux) {}
  std::int64_t count(const CommOp& op) override;
  torch::Tensor gather(const CommOp& op) override;
  void scatter(const CommOp& op, const torch::Tensor& values) override;

 private:
  AuxHead& aux_;
  void check(const CommOp& op) const;
};

}  // namespace resist::runtime
