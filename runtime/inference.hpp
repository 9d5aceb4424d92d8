#pragma once
// The inference model: ResIST evaluates the full network with every
// partitioned residual branch scaled by the schedule's eval_scale
// (out = x + s * branch(x)). The branch ends in a convolution without bias,
// so s can be folded into that convolution's weights; the result is a plain
// network, the one model.pt holds and the one the runtime evaluates.
#include <map>
#include <vector>

#include <torch/torch.h>

#include "models/spec.hpp"

namespace resist::runtime {

// `values`: block -> flat parameters in spec order. Returns a copy in which
// every residual block b with eval_scale[b] != 1 has its branch's last
// convolution (conv2 of a basic block, conv3 of a bottleneck) multiplied by
// eval_scale[b]. Other blocks are shared, not copied.
std::map<int, torch::Tensor> fold_branch_scales(const ModelSpec& spec, const std::vector<double>& eval_scale,
                                                const std::map<int, torch::Tensor>& values);

}  // namespace resist::runtime
