#include <gtest/gtest.h>

#include "models/error.hpp"
#include "models/spec.hpp"
#include "tests/support/models.hpp"

using namespace resist;
using resist::test::resnet;

namespace {
int count_kind(const ModelSpec& m, BlockKind k) {
  int n = 0;
  for (const auto& b : m.blocks) n += b.kind == k;
  return n;
}
}  // namespace

TEST(Spec, PaperResNet101HasPublishedParameterCount) {
  const auto m = resnet("preact-resnet101", "basic", "cifar100");
  EXPECT_EQ(m.param_count(), 41396900u);
  EXPECT_EQ(m.blocks[m.block_index("layer3.5")].param_count, 1180672u);
}

TEST(Spec, PaperResNet101PartitionsSectionThreeButItsFirstBlock) {
  const auto m = resnet("preact-resnet101", "basic", "cifar100");
  ASSERT_EQ(m.partitionable.size(), 22u);
  for (int i : m.partitionable) {
    EXPECT_EQ(m.blocks[i].section, 3);
    EXPECT_GT(m.blocks[i].index, 0);
    EXPECT_EQ(m.blocks[i].stride, 1);
  }
  EXPECT_FALSE(m.blocks[m.block_index("layer3.0")].partitionable);
  EXPECT_FALSE(m.blocks[m.block_index("stem")].partitionable);
  EXPECT_FALSE(m.blocks[m.block_index("head")].partitionable);
  EXPECT_EQ(m.shared.size() + m.partitionable.size(), m.blocks.size());
}

TEST(Spec, SectionLengthsAndDefaultBlockTypes) {
  const std::pair<int, std::array<int, 4>> depths[] = {{18, {2, 2, 2, 2}},  {34, {3, 4, 6, 3}},
                                                       {50, {3, 4, 6, 3}},  {101, {3, 4, 23, 3}},
                                                       {152, {3, 8, 36, 3}}, {200, {3, 24, 36, 3}}};
  for (const auto& [depth, sections] : depths) {
    const auto m = resnet("preact-resnet" + std::to_string(depth), "", "cifar10", 16);
    std::array<int, 4> seen{};
    for (const auto& b : m.blocks)
      if (b.section > 0) ++seen[b.section - 1];
    EXPECT_EQ(seen, sections) << depth;
    EXPECT_EQ(count_kind(m, depth >= 50 ? BlockKind::bottleneck : BlockKind::basic),
              sections[0] + sections[1] + sections[2] + sections[3]) << depth;
    EXPECT_EQ(int(m.partitionable.size()), sections[2] - 1);
  }
}

TEST(Spec, DatasetsFixInputAndStem) {
  const auto fm = resnet("preact-resnet18", "basic", "fashion-mnist");
  EXPECT_EQ(fm.blocks[0].in_channels, 1);
  EXPECT_EQ(fm.blocks[0].kernel, 3);
  EXPECT_EQ(fm.blocks.back().out_channels, 10);
  EXPECT_EQ(fm.blocks[0].out_hw, 28);
  EXPECT_EQ(fm.blocks[fm.blocks.size() - 2].out_hw, 4);  // 28 -> 14 -> 7 -> 4
  const auto in = resnet("preact-resnet18", "basic", "imagenet");
  EXPECT_EQ(in.blocks[0].kernel, 7);
  EXPECT_TRUE(in.blocks[0].maxpool);
  EXPECT_EQ(in.blocks[0].out_hw, 56);
  EXPECT_EQ(in.blocks[in.blocks.size() - 2].out_hw, 7);
  EXPECT_EQ(in.blocks.back().out_channels, 1000);
}

// Independent figures: thop's 555.42 M multiply-adds for the CIFAR ResNet-18
// (same convolutions as the pre-activation one), torchvision's 1.81 and 4.09
// G multiply-adds for ImageNet ResNet-18 and -50 (v1.5: stride on the 3x3).
TEST(Spec, FlopsMatchPublishedCounts) {
  EXPECT_EQ(resnet("preact-resnet18", "basic", "cifar10").flops_fwd(), 2ull * 555422720ull);
  EXPECT_NEAR(resnet("preact-resnet18", "basic", "imagenet").flops_fwd() / 2e9, 1.81, 0.01);
  EXPECT_NEAR(resnet("preact-resnet50", "bottleneck", "imagenet").flops_fwd() / 2e9, 4.09, 0.02);
}

TEST(Spec, EveryBlockHasCosts) {
  for (const auto& name : {"preact-resnet50", "preact-resnet101"}) {
    const auto m = resnet(name, "", "cifar100");
    for (const auto& b : m.blocks) {
      EXPECT_GT(b.param_count, 0u) << b.name;
      EXPECT_GT(b.flops_fwd, 0u) << b.name;
      EXPECT_GT(b.activation_bytes, 0u) << b.name;
      EXPECT_EQ(b.bytes(), 4 * b.param_count);
      for (const auto& p : b.params) EXPECT_EQ(p.name.rfind(b.name + ".", 0), 0u) << p.name;
    }
  }
}

TEST(Spec, BaseWidthScalesChannels) {
  const auto m = resnet("preact-resnet101", "basic", "cifar100", 8);
  EXPECT_EQ(m.blocks[m.block_index("layer4.2")].out_channels, 64);
  EXPECT_LT(m.param_count(), 41396900u / 50);
}

TEST(Spec, MlpMatchesClosedForm) {
  ModelOptions o;
  o.model = "mlp";
  o.dataset = "fashion-mnist";
  o.input = 4096;
  o.hidden = {8192, 4096};
  o.classes = 35;
  const auto m = build_model(o);
  const std::uint64_t expect = (4096ull * 8192 + 8192 + 2 * 8192) + (8192ull * 4096 + 4096 + 2 * 4096) + (4096ull * 35 + 35);
  EXPECT_EQ(m.param_count(), expect);
  EXPECT_TRUE(m.partitionable.empty());
}

// The IST paper's 2-layer speech model and the Fashion-MNIST MLP: every
// hidden block is linear + BN, the output a plain linear layer.
TEST(Spec, MlpSpeechAndFashionMnist) {
  ModelOptions o;
  o.model = "mlp";
  o.input = 4096;
  o.hidden = {4096};
  o.classes = 35;
  const auto speech = build_model(o);
  EXPECT_EQ(speech.name, "mlp-4096-4096-35");
  EXPECT_EQ(speech.param_count(), 4096ull * 4096 + 3 * 4096 + 4096ull * 35 + 35);
  EXPECT_EQ(speech.flops_fwd(), 2ull * (4096ull * 4096 + 4096ull * 35));
  ASSERT_EQ(speech.blocks.size(), 2u);
  EXPECT_EQ(speech.blocks[0].params.size(), 4u);  // linear weight, bias; BN weight, bias
  EXPECT_EQ(speech.blocks[1].params.size(), 2u);
  ModelOptions f;
  f.model = "mlp";
  f.dataset = "fashion-mnist";
  f.hidden = {512, 256};
  const auto fm = build_model(f);
  EXPECT_EQ(fm.name, "mlp-784-512-256-10");
  EXPECT_EQ(fm.param_count(), (784ull * 512 + 3 * 512) + (512ull * 256 + 3 * 256) + (256ull * 10 + 10));
}

TEST(Spec, BadInputNamesTheValue) {
  auto message = [](auto f) {
    try {
      f();
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  {
    const auto m = message([] { resnet("preact-resnet99", "", "cifar10"); });
    EXPECT_NE(m.find("preact-resnet99"), std::string::npos) << m;
    EXPECT_NE(m.find("preact-resnet101"), std::string::npos) << m;
  }
  EXPECT_NE(message([] { resnet("preact-resnet18", "fancy", "cifar10"); }).find("fancy"), std::string::npos);
  EXPECT_NE(message([] { resnet("preact-resnet18", "", "mnist"); }).find("'mnist'"), std::string::npos);
  EXPECT_NE(message([] { resnet("preact-resnet18", "", "cifar10", 0); }).find("--base-width"), std::string::npos);
}

TEST(Spec, ImageFolderTakesClassesAndInputSizeAndHasTheImageNetStem) {
  ModelOptions o;
  o.model = "preact-resnet18";
  o.dataset = "imagefolder";
  o.classes = 7;
  o.image_size = 64;
  const auto m = build_model(o);
  EXPECT_EQ(m.name, "preact-resnet18-basic-w64-imagefolder7-64px");
  EXPECT_EQ(m.dataset.height, 64);
  EXPECT_EQ(m.blocks.front().kernel, 7);
  EXPECT_TRUE(m.blocks.front().maxpool);
  EXPECT_EQ(m.blocks.front().out_hw, 16);  // 64 -> conv /2 -> pool /2
  EXPECT_EQ(m.blocks.back().out_channels, 7);
  // ImageNet at another size keeps its 1000 classes; 224 is the default.
  o.dataset = "imagenet";
  o.image_size = 160;
  EXPECT_EQ(build_model(o).blocks.back().out_channels, 1000);
  EXPECT_EQ(build_model(o).name, "preact-resnet18-basic-w64-imagenet-160px");
  o.image_size = 0;
  EXPECT_EQ(build_model(o).dataset.height, 224);
  // Bad combinations name the flag.
  auto error = [](const ModelOptions& bad) {
    try {
      build_model(bad);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  ModelOptions no_classes = o;
  no_classes.dataset = "imagefolder";
  no_classes.classes = 0;
  EXPECT_NE(error(no_classes).find("--classes"), std::string::npos);
  ModelOptions cifar = o;
  cifar.dataset = "cifar10";
  cifar.image_size = 64;
  EXPECT_NE(error(cifar).find("--image-size"), std::string::npos);
  ModelOptions tiny = o;
  tiny.image_size = 8;
  EXPECT_NE(error(tiny).find("16..2048"), std::string::npos);
}

// Auxiliary heads (layer-parallel training): one per possible stage start,
// producing exactly the target block's input shape, with hand-checked costs.
TEST(Spec, AuxHeadsReachEveryBlockInputShape) {
  for (const char* dataset : {"cifar10", "fashion-mnist", "imagenet"}) {
    const auto m = resnet("preact-resnet18", "basic", dataset, 16);
    for (int b = 1; b < int(m.blocks.size()); ++b) {
      const AuxHeadSpec a = aux_head(m, b, 8);
      EXPECT_EQ(a.out_channels, m.blocks[b].in_channels) << dataset << " " << b;
      EXPECT_EQ(a.out_hw, m.blocks[b].in_hw) << dataset << " " << b;
      EXPECT_EQ(a.output_bytes(), block_input_bytes(m, b));
      EXPECT_EQ(a.name, "aux." + m.blocks[b].name);
      EXPECT_EQ(a.params.size(), std::size_t(1 + 3 * (a.downsamples + 1)));
    }
  }
}

TEST(Spec, AuxHeadCostsByHand) {
  // CIFAR, width 16: layer2.0's input is 16 x 32 x 32 (no halving), layer3.0's
  // is 32 x 16 x 16 (one halving). Head width 4.
  const auto m = resnet("preact-resnet18", "basic", "cifar10", 16);
  const AuxHeadSpec a = aux_head(m, m.block_index("layer2.0"), 4);
  EXPECT_EQ(a.downsamples, 0);
  EXPECT_EQ(a.param_count, 3u * 4 * 9 + 2 * 4 + 4u * 16 * 9);
  EXPECT_EQ(a.flops_fwd, 2ull * 9 * 3 * 4 * 1024 + 2ull * 9 * 4 * 16 * 1024);
  EXPECT_EQ(a.activation_bytes, 4ull * 4 * 1024 + 2 * 4ull * 4 * 1024 + 4ull * 16 * 1024);
  const AuxHeadSpec b = aux_head(m, m.block_index("layer3.0"), 4);
  EXPECT_EQ(b.downsamples, 1);
  EXPECT_EQ(b.param_count, 3u * 4 * 9 + 2 * 4 + 4u * 4 * 9 + 2 * 4 + 4u * 32 * 9);
  EXPECT_EQ(b.flops_fwd, 2ull * 9 * 3 * 4 * 1024 + 2ull * 9 * 4 * 4 * 256 + 2ull * 9 * 4 * 32 * 256);
  EXPECT_EQ(b.params[3].name, "aux.layer3.0.conv1.weight");
  // Low capacity: far smaller than the network it feeds.
  EXPECT_LT(aux_head(m, m.block_index("head"), 16).param_count, m.param_count() / 10);
}

TEST(Spec, AuxHeadBadInput) {
  const auto m = resnet("preact-resnet18", "basic", "cifar10", 16);
  EXPECT_THROW(aux_head(m, 1, 0), UserError);
  EXPECT_THROW(aux_head(m, 1, 5000), UserError);
  ModelOptions o;
  o.model = "mlp";
  o.dataset = "fashion-mnist";
  const auto mlp = build_model(o);
  EXPECT_FALSE(has_aux_heads(mlp));
  EXPECT_TRUE(has_aux_heads(m));
  try {
    aux_head(mlp, 1, 8);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("--model"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("preact-resnet18"), std::string::npos);
  }
}
