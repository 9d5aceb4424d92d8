#include "runtime/inference.hpp"

#include <stdexcept>
#include <string>

namespace resist::runtime {

std::map<int, torch::Tensor> fold_branch_scales(const ModelSpec& spec, const std::vector<double>& eval_scale,
                                                const std::map<int, torch::Tensor>& values) {
  std::map<int, torch::Tensor> out = values;
  torch::NoGradGuard ng;
  for (auto& [b, flat] : out) {
    const auto& block = spec.blocks.at(std::size_t(b));
    const double s = eval_scale.at(std::size_t(b));
    if (s == 1.0 || (block.kind != BlockKind::basic && block.kind != BlockKind::bottleneck)) continue;
    const std::string last = block.name + (block.kind == BlockKind::basic ? ".conv2.weight" : ".conv3.weight");
    std::int64_t off = 0;
    bool found = false;
    flat = flat.clone();
    for (const auto& p : block.params) {
      const auto n = std::int64_t(p.numel());
      if (p.name == last) {
        flat.slice(0, off, off + n).mul_(s);
        found = true;
      }
      off += n;
    }
    if (!found) throw std::logic_error("fold_branch_scales: block " + block.name + " has no " + last);
  }
  return out;
}

}  // namespace resist::runtime
