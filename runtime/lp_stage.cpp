#include "runtime/lp_stage.hpp"

#include <cassert>

namespace resist::runtime {

namespace {
std::vector<int> range_blocks(const Stage& s) {
  std::vector<int> v;
  for (int b = s.first; b <= s.last; ++b) v.push_back(b);
  return v;
}
torch::Tensor mse(const torch::Tensor& a, const torch::Tensor& target) {
  return torch::mse_loss(a, target.detach());
}
}  // namespace

LayerParallelStage::LayerParallelStage(const ModelSpec& spec, Stage range, int aux_width, double beta,
                                       std::uint64_t init_seed)
    : range_(range), last_(range.last == int(spec.blocks.size()) - 1), beta_(beta) {
  net_ = Net(spec, range_blocks(range), init_seed);
  if (range.first > 0) aux_ = AuxHead(aux_head(spec, range.first, aux_width), init_seed);
}

void LayerParallelStage::forward(const torch::Tensor& x) {
  z_ = !aux_.is_empty() ? aux_->forward(x) : x;
  y_ = net_->forward(z_.detach());
  if (!aux_.is_empty()) {
    out_first_ = z_.detach().contiguous();
    in_prev_ = torch::empty_like(out_first_);
  }
  if (!last_) {
    out_last_ = y_.detach().contiguous();
    in_next_ = torch::empty_like(out_last_);
  }
}

torch::Tensor& LayerParallelStage::outgoing(int boundary) {
  if (boundary == range_.first && !aux_.is_empty()) return out_first_;
  assert(boundary == range_.last + 1 && !last_);
  return out_last_;
}

torch::Tensor& LayerParallelStage::incoming(int boundary) {
  if (boundary == range_.first && !aux_.is_empty()) return in_prev_;
  assert(boundary == range_.last + 1 && !last_);
  return in_next_;
}

double LayerParallelStage::backward(const torch::Tensor& labels) {
  torch::Tensor loss = last_ ? torch::nn::functional::cross_entropy(y_, labels) : 0.5 * beta_ * mse(y_, in_next_);
  if (!aux_.is_empty()) loss = loss + mse(z_, in_prev_);
  loss.backward();
  return loss.item<double>();
}

std::vector<torch::Tensor> LayerParallelStage::parameters() {
  std::vector<torch::Tensor> out;
  for (int b = range_.first; b <= range_.last; ++b)
    for (auto& p : net_->block_parameters(b)) out.push_back(p);
  if (!aux_.is_empty())
    for (auto& p : aux_->parameters()) out.push_back(p);
  return out;
}

}  // namespace resist::runtime
