#pragma once
// One description per architecture. The analytic costs (parameters, FLOPs,
// activation bytes) and the LibTorch modules (models/torch_model.hpp) are both
// built from a ModelSpec, so they cannot drift apart.
//
// Costs are per sample at the dataset's input size:
//   flops_fwd        2 per multiply-add in convolutions and linear layers, and
//                    nothing else: BatchNorm, ReLU, residual additions and
//                    pooling are memory-bound and not counted.
//   activation_bytes fp32 bytes of every tensor the block produces in its
//                    forward pass (each BN, ReLU, conv, add, pool output), i.e.
//                    roughly what autograd keeps alive for the backward pass.
#include <cstdint>
#include <string>
#include <vector>

namespace resist {

struct Dataset {
  std::string name;
  int channels = 0, height = 0, width = 0, classes = 0;
};
// cifar10, cifar100, fashion-mnist, imagenet, imagefolder (a folder of
// images per class; its classes come from the data, 0 here). Throws
// UserError otherwise.
const Dataset& dataset_by_name(const std::string& name);
const std::vector<std::string>& dataset_names();

struct ParamSpec {
  std::string name;  // full name, e.g. "layer3.4.conv1.weight"
  std::vector<std::int64_t> shape;
  std::uint64_t numel() const;
};

enum class BlockKind {
  stem,        // conv (3x3/1 CIFAR-style, or 7x7/2 + 3x3/2 max-pool for imagenet)
  basic,       // pre-activation basic block: BN-ReLU-conv3x3, BN-ReLU-conv3x3
  bottleneck,  // pre-activation bottleneck: BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1 (x4)
  head,        // global average pool + linear
  dense,       // MLP hidden layer: linear + BatchNorm1d + ReLU
  dense_out,   // MLP output layer: linear
};
const char* to_string(BlockKind kind);

struct BlockSpec {
  std::string name;  // module path and parameter-name prefix: "stem", "layer3.4", "head", "fc1"
  BlockKind kind = BlockKind::basic;
  int section = 0;   // 1..4 for residual blocks, 0 otherwise
  int index = 0;     // position within the section
  int in_channels = 0, mid_channels = 0, out_channels = 0;  // features for dense layers
  int stride = 1;
  int kernel = 3;    // stem kernel
  bool maxpool = false;   // stem: 3x3/2 max-pool after the conv
  bool shortcut = false;  // 1x1 conv on the identity path
  int in_hw = 0, out_hw = 0;  // spatial size (inputs are square); 1 for dense layers
  bool partitionable = false; // ResIST may give it to a subset of workers
  std::vector<ParamSpec> params;
  std::uint64_t param_count = 0;
  std::uint64_t flops_fwd = 0;
  std::uint64_t activation_bytes = 0;
  std::uint64_t bytes() const { return 4 * param_count; }  // fp32
};

// What a user chooses on the command line; enough to rebuild the spec.
struct ModelOptions {
  std::string model = "preact-resnet101";  // preact-resnet{18,34,50,101,152,200} | mlp
  std::string block;                        // basic | bottleneck | "" (by depth)
  int base_width = 64;
  std::string dataset = "cifar100";
  // MLP only: input features (0 = from the dataset), hidden sizes.
  int input = 0;
  std::vector<int> hidden = {4096};
  // Output classes (0 = the dataset's): MLPs, and imagefolder, whose classes
  // come from the data (the runtime fills this in from the folder).
  int classes = 0;
  // imagenet / imagefolder: side of the square input (0 = 224). These get
  // the ImageNet stem (7x7/2 conv + 3x3/2 max-pool).
  int image_size = 0;
};

struct ModelSpec {
  ModelOptions options;
  std::string name;            // e.g. "preact-resnet101-basic-w64-cifar100"
  Dataset dataset;
  std::vector<BlockSpec> blocks;
  std::vector<int> partitionable;  // indices into blocks
  std::vector<int> shared;         // the others

  std::uint64_t param_count() const;
  std::uint64_t flops_fwd() const;
  std::uint64_t activation_bytes() const;
  std::uint64_t param_count(const std::vector<int>& block_indices) const;
  std::uint64_t bytes(const std::vector<int>& block_indices) const { return 4 * param_count(block_indices); }
  int block_index(const std::string& name) const;  // -1 if absent
};

// Layer-parallel training (docs/layer-parallel.md): an auxiliary head maps the
// input image to a tensor of the shape of block `target`'s input, so that the
// stage starting at `target` can run without waiting for the stages before it.
// A low-capacity network, `width` channels throughout:
//   conv0            conv3x3/1, image channels -> width, at the image size
//   bn{i}, conv{i}   BN-ReLU-conv3x3/2, width -> width, i = 1..downsamples,
//                    one per halving from the image size to the target's
//   bn{n+1}, conv{n+1}  BN-ReLU-conv3x3/1, width -> the target's channels
// (n = downsamples). Parameter names are "aux.<target block name>.<layer>...",
// e.g. "aux.layer3.0.conv1.weight". Costs follow BlockSpec's conventions.
struct AuxHeadSpec {
  std::string name;  // "aux.layer3.0"
  int target = 0;    // spec block index whose input the head produces
  int in_channels = 0, width = 0, out_channels = 0;
  int in_hw = 0, out_hw = 0;
  int downsamples = 0;
  std::vector<ParamSpec> params;
  std::uint64_t param_count = 0;
  std::uint64_t flops_fwd = 0;
  std::uint64_t activation_bytes = 0;
  std::uint64_t bytes() const { return 4 * param_count; }  // fp32
  // fp32 bytes per sample of the tensor it produces (= the target's input).
  std::uint64_t output_bytes() const { return 4ull * out_channels * out_hw * out_hw; }
};

// Whether the architecture has auxiliary heads (ResNets do, MLPs do not).
bool has_aux_heads(const ModelSpec& spec);
// The head producing block `target`'s input, 1 <= target < blocks.size().
// Throws UserError for a model without auxiliary heads or a width outside
// 1..4096 (flag --aux-width).
AuxHeadSpec aux_head(const ModelSpec& spec, int target, int width);
// fp32 bytes per sample of block `b`'s input (= block b-1's output).
std::uint64_t block_input_bytes(const ModelSpec& spec, int b);

// Throws UserError for an unknown model, block type or dataset, or a bad width.
ModelSpec build_model(const ModelOptions& options);
const std::vector<std::string>& model_names();

}  // namespace resist
