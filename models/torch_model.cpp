#include "models/torch_model.hpp"

#include <cassert>
#include <map>

namespace resist {

namespace nn = torch::nn;

namespace {

nn::Conv2d conv(int in, int out, int k, int stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(false));
}
nn::BatchNorm2d bn2d(int c) { return nn::BatchNorm2d(nn::BatchNorm2dOptions(c).track_running_stats(false)); }

struct Stem : BlockModule {
  nn::Conv2d conv_{nullptr};
  bool maxpool;
  explicit Stem(const BlockSpec& b) : maxpool(b.maxpool) {
    conv_ = register_module("conv", conv(b.in_channels, b.out_channels, b.kernel, b.stride));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = conv_(x);
    return maxpool ? torch::max_pool2d(x, 3, 2, 1) : x;
  }
};

// Pre-activation residual block: out = shortcut(x) + scale * branch(x); the
// branch is BN-ReLU-conv repeated; a 1x1 shortcut conv (when the shape
// changes) takes the pre-activated input, as in He et al. (2016).
struct Residual : BlockModule {
  std::vector<nn::BatchNorm2d> bns;
  std::vector<nn::Conv2d> convs;
  nn::Conv2d shortcut{nullptr};
  explicit Residual(const BlockSpec& b) {
    struct Layer { int in, out, k, stride; };
    std::vector<Layer> layers;
    if (b.kind == BlockKind::basic)
      layers = {{b.in_channels, b.mid_channels, 3, b.stride}, {b.mid_channels, b.mid_channels, 3, 1}};
    else
      layers = {{b.in_channels, b.mid_channels, 1, 1},
                {b.mid_channels, b.mid_channels, 3, b.stride},
                {b.mid_channels, b.out_channels, 1, 1}};
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const auto n = std::to_string(i + 1);
      bns.push_back(register_module("bn" + n, bn2d(layers[i].in)));
      convs.push_back(register_module("conv" + n, conv(layers[i].in, layers[i].out, layers[i].k, layers[i].stride)));
    }
    if (b.shortcut) shortcut = register_module("shortcut", conv(b.in_channels, b.out_channels, 1, b.stride));
  }
  torch::Tensor forward(torch::Tensor x) override {
    torch::Tensor out = torch::relu(bns[0](x));
    torch::Tensor identity = shortcut ? shortcut(out) : x;
    out = convs[0](out);
    for (std::size_t i = 1; i < convs.size(); ++i) out = convs[i](torch::relu(bns[i](out)));
    return branch_scale == 1.0 ? identity + out : identity + out * branch_scale;
  }
};

struct Head : BlockModule {
  nn::Linear fc{nullptr};
  explicit Head(const BlockSpec& b) { fc = register_module("fc", nn::Linear(b.in_channels, b.out_channels)); }
  torch::Tensor forward(torch::Tensor x) override {
    return fc(torch::flatten(torch::adaptive_avg_pool2d(x, {1, 1}), 1));
  }
};

struct Dense : BlockModule {
  nn::Linear linear{nullptr};
  nn::BatchNorm1d bn{nullptr};
  explicit Dense(const BlockSpec& b) {
    linear = register_module("linear", nn::Linear(b.in_channels, b.out_channels));
    if (b.kind == BlockKind::dense)
      bn = register_module("bn", nn::BatchNorm1d(nn::BatchNorm1dOptions(b.out_channels).track_running_stats(false)));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = linear(x.dim() > 2 ? torch::flatten(x, 1) : x);
    return bn ? torch::relu(bn(x)) : x;
  }
};

std::shared_ptr<BlockModule> make_block(const BlockSpec& b) {
  switch (b.kind) {
    case BlockKind::stem: return std::make_shared<Stem>(b);
    case BlockKind::basic:
    case BlockKind::bottleneck: return std::make_shared<Residual>(b);
    case BlockKind::head: return std::make_shared<Head>(b);
    case BlockKind::dense:
    case BlockKind::dense_out: return std::make_shared<Dense>(b);
  }
  return nullptr;
}

// Kaiming-normal (fan-out) convolutions as in torchvision's ResNets; BN weight
// 1, bias 0; linear layers keep LibTorch's default.
void initialise(BlockModule& m) {
  torch::NoGradGuard no_grad;
  for (auto& sub : m.modules(/*include_self=*/false)) {
    if (auto* c = sub->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* b = sub->as<nn::BatchNorm2d>()) {
      nn::init::ones_(b->weight);
      nn::init::zeros_(b->bias);
    } else if (auto* b1 = sub->as<nn::BatchNorm1d>()) {
      nn::init::ones_(b1->weight);
      nn::init::zeros_(b1->bias);
    }
  }
}

// A container so that names read "layer3.4.conv1.weight".
struct Section : torch::nn::Module {};

}  // namespace

NetImpl::NetImpl(const ModelSpec& spec, const std::vector<int>& held, std::uint64_t init_seed)
    : spec_(spec), blocks_(spec.blocks.size()) {
  std::map<int, std::shared_ptr<Section>> sections;
  std::vector<bool> want(spec.blocks.size(), false);
  for (int i : held) want.at(i) = true;
  for (int i = 0; i < int(spec.blocks.size()); ++i) {
    if (!want[i]) continue;
    const BlockSpec& b = spec.blocks[i];
    // Block i's initial weights depend only on (init_seed, i).
    torch::manual_seed(init_seed * 1000003ull + std::uint64_t(i));
    auto m = make_block(b);
    initialise(*m);
    blocks_[i] = m;
    if (b.section > 0) {
      auto& s = sections[b.section];
      if (!s) s = register_module("layer" + std::to_string(b.section), std::make_shared<Section>());
      s->register_module(std::to_string(b.index), m);
    } else {
      register_module(b.name, m);
    }
  }
}

torch::Tensor NetImpl::forward(torch::Tensor x) {
  for (auto& b : blocks_)
    if (b) x = b->forward(x);
  return x;
}

std::vector<int> NetImpl::held() const {
  std::vector<int> out;
  for (int i = 0; i < int(blocks_.size()); ++i)
    if (blocks_[i]) out.push_back(i);
  return out;
}

std::vector<torch::Tensor> NetImpl::block_parameters(int i) const {
  assert(blocks_.at(i));
  const auto named = blocks_[i]->named_parameters(/*recurse=*/true);
  std::vector<torch::Tensor> out;
  const std::string prefix = spec_.blocks[i].name + ".";
  for (const auto& p : spec_.blocks[i].params) out.push_back(named[p.name.substr(prefix.size())]);
  return out;
}

void NetImpl::set_branch_scales(const std::vector<double>& per_block) {
  for (int i = 0; i < int(blocks_.size()); ++i)
    if (blocks_[i]) blocks_[i]->branch_scale = per_block.at(i);
}

AuxHeadImpl::AuxHeadImpl(const AuxHeadSpec& a, std::uint64_t init_seed) : spec_(a) {
  // Seeds distinct from every block's (NetImpl uses init_seed * 1000003 + block).
  torch::manual_seed(init_seed * 1000003ull + 500000ull + std::uint64_t(a.target));
  convs_.push_back(register_module("conv0", conv(a.in_channels, a.width, 3, 1)));
  for (int i = 1; i <= a.downsamples + 1; ++i) {
    const bool last = i == a.downsamples + 1;
    const auto n = std::to_string(i);
    bns_.push_back(register_module("bn" + n, bn2d(a.width)));
    convs_.push_back(register_module("conv" + n, conv(a.width, last ? a.out_channels : a.width, 3, last ? 1 : 2)));
  }
  torch::NoGradGuard no_grad;
  for (auto& c : convs_) nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
  for (auto& b : bns_) {
    nn::init::ones_(b->weight);
    nn::init::zeros_(b->bias);
  }
}

torch::Tensor AuxHeadImpl::forward(torch::Tensor x) {
  x = convs_[0](x);
  for (std::size_t i = 0; i < bns_.size(); ++i) x = convs_[i + 1](torch::relu(bns_[i](x)));
  return x;
}

Net make_full_net(const ModelSpec& spec, std::uint64_t init_seed) {
  std::vector<int> all(spec.blocks.size());
  for (int i = 0; i < int(all.size()); ++i) all[i] = i;
  return Net(spec, all, init_seed);
}

}  // namespace resist
