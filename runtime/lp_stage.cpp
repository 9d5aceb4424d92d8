#include "runtime/lp_stage.hpp"

#include <stdexcept>

namespace resist::runtime {

LocalStep::LocalStep(Net& net, AuxHead& aux, int rank, double beta, double aux_step)
    : net_(net), aux_(aux), rank_(rank), beta_(beta), aux_step_(aux_step) {
  const auto held = net_->held();
  const int last = held.empty() ? -1 : held.back();
  if (last + 1 < int(net_->spec().blocks.size())) out_boundary_ = last + 1;
  if (!aux_.is_empty()) head_target_ = aux_->spec().target;
}

torch::Tensor LocalStep::forward(const torch::Tensor& x) {
  out_.clear();
  in_.clear();
  z_ = aux_.is_empty() ? x : aux_->forward(x);
  zin_ = aux_.is_empty() ? z_ : z_.detach().requires_grad_(aux_step_ > 0);
  y_ = net_->forward(zin_);
  if (head_target_ >= 0) out_[head_target_] = z_.detach().contiguous();
  if (out_boundary_ >= 0) out_[out_boundary_] = y_.detach().contiguous();
  return y_;
}

torch::Tensor LocalStep::stage_loss(const torch::Tensor& labels) {
  return holds_output() ? torch::nn::functional::cross_entropy(y_, labels)
                        : 0.5 * beta_ * torch::mse_loss(y_, incoming(out_boundary_));
}

torch::Tensor LocalStep::head_loss() {
  if (!has_head()) throw std::logic_error("head_loss() on a worker without an auxiliary head");
  if (aux_step_ <= 0) return torch::mse_loss(z_, incoming(head_target_));
  // The target moves along ∂L/∂z, which the stage's backward left in zin_.
  if (!zin_.grad().defined()) throw std::logic_error("head_loss() before the stage's backward (aux_step > 0)");
  const double scale = aux_step_ * double(zin_.numel()) / beta_;
  const auto target = incoming(head_target_) - scale * zin_.grad();
  return torch::mse_loss(z_, target);
}

std::int64_t LocalStep::count(const CommOp& op) {
  const auto it = out_.find(op.blocks.at(0));
  if (op.payload != Payload::activations || it == out_.end())
    throw std::logic_error("activations op at a boundary this worker does not have");
  return it->second.numel();
}

torch::Tensor LocalStep::gather(const CommOp& op) { return out_.at(op.blocks.at(0)).flatten(); }

void LocalStep::scatter(const CommOp& op, const torch::Tensor& values) {
  if (op.root() == rank_) return;  // the source keeps what it sent; nothing arrived
  const auto& shape = out_.at(op.blocks.at(0));
  in_[op.blocks.at(0)] = values.view(shape.sizes()).to(shape.device());
}

void AuxValues::check(const CommOp& op) const {
  if (op.payload != Payload::aux || aux_.is_empty() || op.blocks.size() != 1 || op.blocks[0] != aux_->spec().target)
    throw std::logic_error("aux op for a head this worker does not have");
}

std::int64_t AuxValues::count(const CommOp& op) {
  check(op);
  std::int64_t n = 0;
  for (const auto& p : aux_->parameters()) n += p.numel();
  return n;
}

torch::Tensor AuxValues::gather(const CommOp& op) {
  check(op);
  return flat_parameters(aux_);
}

void AuxValues::scatter(const CommOp& op, const torch::Tensor& values) {
  check(op);
  set_parameters(aux_, values);
}

torch::Tensor flat_parameters(AuxHead& aux) {
  std::vector<torch::Tensor> flat;
  for (const auto& p : aux->parameters()) flat.push_back(p.detach().flatten());
  return torch::cat(flat);
}

void set_parameters(AuxHead& aux, const torch::Tensor& flat) {
  torch::NoGradGuard no_grad;
  std::int64_t off = 0;
  for (auto& p : aux->parameters()) {
    p.copy_(flat.slice(0, off, off + p.numel()).view(p.sizes()).to(p.device()));
    off += p.numel();
  }
  if (off != flat.numel()) throw std::logic_error("auxiliary head: parameter count mismatch");
}

}  // namespace resist::runtime
