#include "models/spec.hpp"

#include <numeric>
#include <stdexcept>

#include "models/error.hpp"

namespace resist {

namespace {

const std::vector<Dataset>& datasets() {
  static const std::vector<Dataset> all = {
      {"cifar10", 3, 32, 32, 10},
      {"cifar100", 3, 32, 32, 100},
      {"fashion-mnist", 1, 28, 28, 10},
      {"imagenet", 3, 224, 224, 1000},
      {"imagefolder", 3, 224, 224, 0},
  };
  return all;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

struct Depth {
  int depth;
  int sections[4];
};
constexpr Depth kDepths[] = {
    {18, {2, 2, 2, 2}},  {34, {3, 4, 6, 3}},   {50, {3, 4, 6, 3}},
    {101, {3, 4, 23, 3}}, {152, {3, 8, 36, 3}}, {200, {3, 24, 36, 3}},
};

int conv_out(int hw, int kernel, int stride, int pad) { return (hw + 2 * pad - kernel) / stride + 1; }

// Helpers that append a layer's parameters and costs to a block.
struct BlockBuilder {
  BlockSpec& b;
  void param(const std::string& local, std::vector<std::int64_t> shape) {
    b.params.push_back({b.name + "." + local, std::move(shape)});
  }
  // A convolution without bias producing out_hw x out_hw.
  void conv(const std::string& local, int cin, int cout, int k, int out_hw) {
    param(local + ".weight", {cout, cin, k, k});
    b.flops_fwd += 2ull * k * k * cin * cout * std::uint64_t(out_hw) * out_hw;
    b.activation_bytes += 4ull * cout * out_hw * out_hw;
  }
  void bn(const std::string& local, int c, int hw) {
    param(local + ".weight", {c});
    param(local + ".bias", {c});
    b.activation_bytes += 2 * 4ull * c * hw * hw;  // BN output, ReLU output
  }
  void linear(const std::string& local, int in, int out) {
    param(local + ".weight", {out, in});
    param(local + ".bias", {out});
    b.flops_fwd += 2ull * in * out;
    b.activation_bytes += 4ull * out;
  }
};

void finish(BlockSpec& b) {
  b.param_count = 0;
  for (const auto& p : b.params) b.param_count += p.numel();
}

BlockSpec residual_block(bool bottleneck, int section, int index, int in_ch, int width, int stride,
                         int in_hw) {
  BlockSpec b;
  b.name = "layer" + std::to_string(section) + "." + std::to_string(index);
  b.kind = bottleneck ? BlockKind::bottleneck : BlockKind::basic;
  b.section = section;
  b.index = index;
  b.in_channels = in_ch;
  b.mid_channels = width;
  b.out_channels = bottleneck ? 4 * width : width;
  b.stride = stride;
  b.in_hw = in_hw;
  b.out_hw = conv_out(in_hw, 3, stride, 1);
  b.shortcut = stride != 1 || in_ch != b.out_channels;
  BlockBuilder bb{b};
  if (!bottleneck) {
    bb.bn("bn1", in_ch, in_hw);
    bb.conv("conv1", in_ch, width, 3, b.out_hw);
    bb.bn("bn2", width, b.out_hw);
    bb.conv("conv2", width, width, 3, b.out_hw);
  } else {
    bb.bn("bn1", in_ch, in_hw);
    bb.conv("conv1", in_ch, width, 1, in_hw);
    bb.bn("bn2", width, in_hw);
    bb.conv("conv2", width, width, 3, b.out_hw);
    bb.bn("bn3", width, b.out_hw);
    bb.conv("conv3", width, 4 * width, 1, b.out_hw);
  }
  if (b.shortcut) bb.conv("shortcut", in_ch, b.out_channels, 1, b.out_hw);
  b.activation_bytes += 4ull * b.out_channels * b.out_hw * b.out_hw;  // residual add
  finish(b);
  return b;
}

ModelSpec build_resnet(const ModelOptions& o, const Dataset& ds, const Depth& d) {
  bool bottleneck;
  if (o.block.empty()) bottleneck = d.depth >= 50;
  else if (o.block == "basic") bottleneck = false;
  else if (o.block == "bottleneck") bottleneck = true;
  else throw UserError("--block: unknown block type '" + o.block + "' (accepted: basic, bottleneck)");
  if (o.base_width < 1 || o.base_width > 4096)
    throw UserError("--base-width: must be in 1..4096 (got " + std::to_string(o.base_width) + ")");

  ModelSpec m;
  m.options = o;
  m.options.block = bottleneck ? "bottleneck" : "basic";
  m.dataset = ds;
  m.name = o.model + "-" + m.options.block + "-w" + std::to_string(o.base_width) + "-" + ds.name;
  if (ds.name == "imagefolder") m.name += std::to_string(ds.classes);
  if (ds.height != dataset_by_name(ds.name).height) m.name += "-" + std::to_string(ds.height) + "px";

  const bool imagenet = ds.name == "imagenet" || ds.name == "imagefolder";
  BlockSpec stem;
  stem.name = "stem";
  stem.kind = BlockKind::stem;
  stem.in_channels = ds.channels;
  stem.out_channels = o.base_width;
  stem.kernel = imagenet ? 7 : 3;
  stem.stride = imagenet ? 2 : 1;
  stem.maxpool = imagenet;
  stem.in_hw = ds.height;
  int conv_hw = conv_out(ds.height, stem.kernel, stem.stride, stem.kernel / 2);
  stem.out_hw = imagenet ? conv_out(conv_hw, 3, 2, 1) : conv_hw;
  {
    BlockBuilder bb{stem};
    bb.conv("conv", ds.channels, o.base_width, stem.kernel, conv_hw);
    if (imagenet) stem.activation_bytes += 4ull * o.base_width * stem.out_hw * stem.out_hw;
  }
  finish(stem);
  m.blocks.push_back(stem);

  int ch = o.base_width, hw = stem.out_hw;
  for (int s = 0; s < 4; ++s) {
    const int width = o.base_width << s;
    for (int i = 0; i < d.sections[s]; ++i) {
      const int stride = (s > 0 && i == 0) ? 2 : 1;
      BlockSpec b = residual_block(bottleneck, s + 1, i, ch, width, stride, hw);
      // ResIST partitions the third section, except its first (strided) block.
      b.partitionable = (s == 2 && i > 0);
      ch = b.out_channels;
      hw = b.out_hw;
      m.blocks.push_back(std::move(b));
    }
  }

  BlockSpec head;
  head.name = "head";
  head.kind = BlockKind::head;
  head.in_channels = ch;
  head.out_channels = ds.classes;
  head.in_hw = hw;
  head.out_hw = 1;
  {
    BlockBuilder bb{head};
    head.activation_bytes += 4ull * ch;  // pooled features
    bb.linear("fc", ch, ds.classes);
  }
  finish(head);
  m.blocks.push_back(head);
  return m;
}

ModelSpec build_mlp(const ModelOptions& o, const Dataset& ds) {
  const int input = o.input > 0 ? o.input : ds.channels * ds.height * ds.width;
  const int classes = o.classes > 0 ? o.classes : ds.classes;
  if (o.hidden.empty()) throw UserError("--hidden: an MLP needs at least one hidden layer");
  for (int h : o.hidden)
    if (h < 1) throw UserError("--hidden: sizes must be >= 1 (got " + std::to_string(h) + ")");
  if (o.input < 0) throw UserError("--input: must be >= 1 (got " + std::to_string(o.input) + ")");
  if (o.classes < 0) throw UserError("--classes: must be >= 1 (got " + std::to_string(o.classes) + ")");
  ModelSpec m;
  m.options = o;
  m.options.block.clear();
  m.dataset = ds;
  m.name = "mlp-";
  m.name += std::to_string(input);
  for (int h : o.hidden) m.name.append("-").append(std::to_string(h));
  m.name.append("-").append(std::to_string(classes));
  int in = input;
  for (std::size_t i = 0; i < o.hidden.size(); ++i) {
    BlockSpec b;
    b.name = "fc" + std::to_string(i + 1);
    b.kind = BlockKind::dense;
    b.index = int(i);
    b.in_channels = in;
    b.out_channels = o.hidden[i];
    b.in_hw = b.out_hw = 1;
    BlockBuilder bb{b};
    bb.linear("linear", in, o.hidden[i]);
    bb.bn("bn", o.hidden[i], 1);
    finish(b);
    m.blocks.push_back(std::move(b));
    in = o.hidden[i];
  }
  BlockSpec out;
  out.name = "out";
  out.kind = BlockKind::dense_out;
  out.index = int(o.hidden.size());
  out.in_channels = in;
  out.out_channels = classes;
  out.in_hw = out.out_hw = 1;
  BlockBuilder bb{out};
  bb.linear("linear", in, classes);
  finish(out);
  m.blocks.push_back(std::move(out));
  return m;
}

// Copies what BlockBuilder accumulated into an auxiliary head.
void take_costs(AuxHeadSpec& a, BlockSpec& scratch) {
  a.params = std::move(scratch.params);
  finish(scratch);
  a.param_count = 0;
  for (const auto& p : a.params) a.param_count += p.numel();
  a.flops_fwd = scratch.flops_fwd;
  a.activation_bytes = scratch.activation_bytes;
}

}  // namespace

std::uint64_t ParamSpec::numel() const {
  std::uint64_t n = 1;
  for (auto d : shape) n *= std::uint64_t(d);
  return n;
}

const char* to_string(BlockKind kind) {
  switch (kind) {
    case BlockKind::stem: return "stem";
    case BlockKind::basic: return "basic";
    case BlockKind::bottleneck: return "bottleneck";
    case BlockKind::head: return "head";
    case BlockKind::dense: return "dense";
    case BlockKind::dense_out: return "dense_out";
  }
  return "?";
}

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& d : datasets()) v.push_back(d.name);
    return v;
  }();
  return names;
}

const Dataset& dataset_by_name(const std::string& name) {
  for (const auto& d : datasets())
    if (d.name == name) return d;
  throw UserError("--dataset: unknown dataset '" + name + "' (accepted: " + join(dataset_names()) + ")");
}

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& d : kDepths) v.push_back("preact-resnet" + std::to_string(d.depth));
    v.push_back("mlp");
    return v;
  }();
  return names;
}

namespace {

// The dataset with the image size and classes of the options applied.
Dataset shaped_dataset(const ModelOptions& o) {
  Dataset ds = dataset_by_name(o.dataset);
  const bool images = ds.name == "imagenet" || ds.name == "imagefolder";
  if (o.image_size != 0) {
    if (!images) throw UserError("--image-size: only for imagenet and imagefolder (got --dataset " + ds.name + ")");
    if (o.image_size < 16 || o.image_size > 2048)
      throw UserError("--image-size: must be in 16..2048 (got " + std::to_string(o.image_size) + ")");
    ds.height = ds.width = o.image_size;
  }
  if (ds.name == "imagefolder") {
    if (o.classes < 1)
      throw UserError("--dataset imagefolder: the number of classes comes from the data (give --classes N "
                      "where there is none)");
    ds.classes = o.classes;
  }
  return ds;
}

}  // namespace

ModelSpec build_model(const ModelOptions& o) {
  const Dataset ds = shaped_dataset(o);
  ModelSpec m;
  if (o.model == "mlp") {
    m = build_mlp(o, ds);
  } else {
    const Depth* depth = nullptr;
    for (const auto& d : kDepths)
      if (o.model == "preact-resnet" + std::to_string(d.depth)) depth = &d;
    if (!depth)
      throw UserError("--model: unknown model '" + o.model + "' (accepted: " + join(model_names()) + ")");
    m = build_resnet(o, ds, *depth);
  }
  for (int i = 0; i < int(m.blocks.size()); ++i)
    (m.blocks[i].partitionable ? m.partitionable : m.shared).push_back(i);
  return m;
}

std::uint64_t ModelSpec::param_count() const {
  std::uint64_t n = 0;
  for (const auto& b : blocks) n += b.param_count;
  return n;
}
std::uint64_t ModelSpec::flops_fwd() const {
  std::uint64_t n = 0;
  for (const auto& b : blocks) n += b.flops_fwd;
  return n;
}
std::uint64_t ModelSpec::activation_bytes() const {
  std::uint64_t n = 0;
  for (const auto& b : blocks) n += b.activation_bytes;
  return n;
}
std::uint64_t ModelSpec::param_count(const std::vector<int>& idx) const {
  std::uint64_t n = 0;
  for (int i : idx) n += blocks.at(i).param_count;
  return n;
}
int ModelSpec::block_index(const std::string& name) const {
  for (int i = 0; i < int(blocks.size()); ++i)
    if (blocks[i].name == name) return i;
  return -1;
}

}  // namespace resist

namespace resist {

bool has_aux_heads(const ModelSpec& spec) {
  return !spec.blocks.empty() && spec.blocks.front().kind == BlockKind::stem;
}

std::uint64_t block_input_bytes(const ModelSpec& spec, int b) {
  const BlockSpec& blk = spec.blocks.at(b);
  return 4ull * blk.in_channels * blk.in_hw * blk.in_hw;
}

AuxHeadSpec aux_head(const ModelSpec& spec, int target, int width) {
  if (!has_aux_heads(spec)) {
    std::vector<std::string> resnets = model_names();
    resnets.pop_back();  // "mlp"
    throw UserError("--model: layer-parallel training needs auxiliary heads, which only ResNets have (got '" +
                    spec.options.model + "'; accepted: " + join(resnets) + ")");
  }
  if (width < 1 || width > 4096)
    throw UserError("--aux-width: must be in 1..4096 (got " + std::to_string(width) + ")");
  if (target < 1 || target >= int(spec.blocks.size()))
    throw std::logic_error("aux_head: target block " + std::to_string(target) + " out of range");
  const BlockSpec& t = spec.blocks[target];
  const Dataset& ds = spec.dataset;
  AuxHeadSpec a;
  a.name = "aux." + t.name;
  a.target = target;
  a.in_channels = ds.channels;
  a.width = width;
  a.out_channels = t.in_channels;
  a.in_hw = ds.height;
  a.out_hw = t.in_hw;
  BlockSpec scratch;
  scratch.name = a.name;
  BlockBuilder bb{scratch};
  int hw = ds.height;
  bb.conv("conv0", ds.channels, width, 3, hw);
  int layer = 1;
  for (; hw > t.in_hw; ++layer) {
    const auto n = std::to_string(layer);
    bb.bn("bn" + n, width, hw);  // BN-ReLU at the input size
    hw = conv_out(hw, 3, 2, 1);
    bb.conv("conv" + n, width, width, 3, hw);
  }
  if (hw != t.in_hw) throw std::logic_error("aux_head: cannot reach " + std::to_string(t.in_hw) + " by halving");
  a.downsamples = layer - 1;
  const auto n = std::to_string(layer);
  bb.bn("bn" + n, width, hw);
  bb.conv("conv" + n, width, t.in_channels, 3, hw);
  take_costs(a, scratch);
  return a;
}

}  // namespace resist
