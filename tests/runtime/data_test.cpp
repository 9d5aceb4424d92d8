// Dataset readers on small files the test writes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "models/error.hpp"
#include "runtime/data.hpp"
#include "tests/support/process.hpp"

namespace fs = std::filesystem;
using resist::runtime::load_data;

namespace {
torch::Tensor images(int n, int seed) {
  torch::manual_seed(seed);
  return torch::randint(0, 256, {n, 3, 32, 32}).to(torch::kUInt8);
}
}  // namespace

TEST(Data, Cifar10ReadsAllBatchesAndSubsets) {
  resist::test::TempDir dir;
  std::vector<torch::Tensor> all;
  for (int b = 1; b <= 5; ++b) {
    auto im = images(3, b);
    all.push_back(im);
    resist::runtime::write_cifar_file((dir.path / ("data_batch_" + std::to_string(b) + ".bin")).string(), 1, im,
                                      torch::full({3}, b, torch::kInt64));
  }
  resist::runtime::write_cifar_file((dir.path / "test_batch.bin").string(), 1, images(4, 9), torch::arange(4));
  auto d = load_data("cifar10", dir.path.string(), 0, 0);
  EXPECT_EQ(d.train.size(), 15);
  EXPECT_EQ(d.test.size(), 4);
  EXPECT_TRUE(torch::equal(d.train.images, torch::cat(all)));
  EXPECT_EQ(d.train.labels[14].item<std::int64_t>(), 5);
  EXPECT_EQ(d.test.labels[3].item<std::int64_t>(), 3);
  auto sub = load_data("cifar10", dir.path.string(), 7, 2);
  EXPECT_EQ(sub.train.size(), 7);
  EXPECT_EQ(sub.test.size(), 2);
}

TEST(Data, Cifar100UsesTheFineLabel) {
  resist::test::TempDir dir;
  auto im = images(2, 1);
  // The writer repeats the label in both label bytes; write a custom one.
  {
    std::ofstream f(dir.path / "train.bin", std::ios::binary);
    for (int i = 0; i < 2; ++i) {
      f.put(char(3)).put(char(42 + i));
      f.write(reinterpret_cast<const char*>(im[i].contiguous().data_ptr<std::uint8_t>()), 3072);
    }
  }
  resist::runtime::write_cifar_file((dir.path / "test.bin").string(), 2, im, torch::tensor({7, 8}));
  auto d = load_data("cifar100", dir.path.string(), 0, 0);
  EXPECT_EQ(d.train.labels[0].item<std::int64_t>(), 42);
  EXPECT_EQ(d.train.labels[1].item<std::int64_t>(), 43);
  EXPECT_TRUE(d.augment);
}

TEST(Data, TruncatedOrMissingFilesNameThePath) {
  resist::test::TempDir dir;
  resist::runtime::write_cifar_file((dir.path / "train.bin").string(), 2, images(2, 1), torch::tensor({1, 2}));
  fs::resize_file(dir.path / "train.bin", 3074 + 100);
  try {
    load_data("cifar100", dir.path.string(), 0, 0);
    FAIL();
  } catch (const resist::UserError& e) {
    EXPECT_NE(std::string(e.what()).find((dir.path / "train.bin").string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos);
  }
  try {
    load_data("cifar10", dir.path.string(), 0, 0);
    FAIL();
  } catch (const resist::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("data_batch_1.bin"), std::string::npos) << e.what();
  }
}

TEST(Data, AugmentedBatchesAreShiftedOrFlippedCopiesAndSeeded) {
  resist::test::TempDir dir;
  resist::runtime::write_cifar_file((dir.path / "train.bin").string(), 2, images(4, 1), torch::tensor({1, 2, 3, 4}));
  resist::runtime::write_cifar_file((dir.path / "test.bin").string(), 2, images(1, 2), torch::tensor({1}));
  auto d = load_data("cifar100", dir.path.string(), 0, 0);
  resist::Rng a(1, 2), b(1, 2);
  const std::vector<std::int64_t> idx = {0, 1, 2, 3};
  auto x = resist::runtime::make_batch(d, d.train, idx, true, a);
  auto y = resist::runtime::make_batch(d, d.train, idx, true, b);
  EXPECT_EQ(x.sizes(), (std::vector<std::int64_t>{4, 3, 32, 32}));
  EXPECT_TRUE(torch::equal(x, y));
  auto plain = resist::runtime::make_batch(d, d.train, idx, false, a);
  EXPECT_FALSE(torch::equal(x, plain));
}

TEST(Data, FashionMnistFromTheDebianPackage) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) GTEST_SKIP();
  auto d = load_data("fashion-mnist", "", 100, 50);
  EXPECT_EQ(d.train.images.sizes(), (std::vector<std::int64_t>{100, 1, 28, 28}));
  EXPECT_EQ(d.test.size(), 50);
  EXPECT_LE(d.train.labels.max().item<std::int64_t>(), 9);
}
