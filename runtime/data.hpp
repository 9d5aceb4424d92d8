#pragma once
// Datasets held in memory as uint8 images; batches are converted to
// normalised fp32 on the fly (with random crop + flip for CIFAR).
//   fashion-mnist: gzipped idx files (Debian's dataset-fashion-mnist, in
//                  /usr/share/datasets/fashion-mnist), 1x28x28, no augmentation;
//   cifar10:       data_batch_1..5.bin + test_batch.bin (1 label byte + 3072);
//   cifar100:      train.bin + test.bin (coarse + fine label bytes + 3072; fine used).
// A missing or truncated file is a UserError naming its path.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "schedule/rng.hpp"

namespace resist::runtime {

struct DataSplit {
  torch::Tensor images;  // uint8 [N, C, H, W]
  torch::Tensor labels;  // int64 [N]
  std::int64_t size() const { return labels.size(0); }
};

struct Data {
  std::string name;
  DataSplit train, test;
  std::vector<float> mean, stddev;  // per channel, on the 0..1 scale
  bool augment = false;             // random crop (pad 4) + horizontal flip for training batches
};

// `dir` empty: the dataset's default location. Subsets keep the first N
// images (0: all).
Data load_data(const std::string& name, const std::string& dir, std::int64_t train_subset, std::int64_t test_subset);
std::string default_data_dir(const std::string& name);

// Normalised fp32 batch of the given images; `rng` drives augmentation.
torch::Tensor make_batch(const Data& d, const DataSplit& split, const std::vector<std::int64_t>& index, bool augment,
                         Rng& rng);

// Writes tiny CIFAR-format files (tests).
void write_cifar_file(const std::string& path, int label_bytes, const torch::Tensor& images_u8,
                      const torch::Tensor& labels);

}  // namespace resist::runtime
