#pragma once
// Datasets held in memory as uint8 images; batches are converted to
// normalised fp32 on the fly (with random crop + flip for CIFAR).
//   fashion-mnist: gzipped idx files (Debian's dataset-fashion-mnist, in
//                  /usr/share/datasets/fashion-mnist), 1x28x28, no augmentation;
//   cifar10:       data_batch_1..5.bin + test_batch.bin (1 label byte + 3072);
//   cifar100:      train.bin + test.bin (coarse + fine label bytes + 3072; fine used).
// Image folders (imagefolder, imagenet) are lists of JPEG/PNG files, decoded
// when a batch is built (runtime/loader.hpp, runtime/images.hpp):
//   DIR/train/<class>/**.{jpg,jpeg,png} and DIR/val/<class>/..., classes
//   sorted by name (label = position), as torchvision's ImageFolder; imagenet
//   is the same layout and must have the 1000 ImageNet classes.
// A missing or truncated file is a UserError naming its path.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "schedule/rng.hpp"

namespace resist::runtime {

struct DataSplit {
  torch::Tensor images;            // in memory: uint8 [N, C, H, W]; undefined for image folders
  torch::Tensor labels;            // int64 [N]
  std::vector<std::string> files;  // image folders: the file of each image
  std::int64_t size() const { return labels.size(0); }
};

struct Data {
  std::string name;
  DataSplit train, test;
  std::vector<float> mean, stddev;  // per channel, on the 0..1 scale
  bool augment = false;             // training batches are augmented (in memory: random crop, pad 4, + flip)
  // Image folders: the class names (label = index) and the side of the
  // square network input; training batches get a random-resized crop + flip,
  // evaluation batches a resize + centre crop (runtime/images.hpp).
  std::vector<std::string> classes;
  int image_size = 0;
  bool from_files() const { return image_size > 0; }
};

bool is_image_folder_dataset(const std::string& name);  // imagefolder, imagenet

struct DataOptions {
  std::string name, dir;                        // dir empty: the dataset's default location
  std::int64_t train_subset = 0, test_subset = 0;
  int image_size = 0;                           // image folders; 0: 224
  bool check_images = true;                     // image folders: header check of every file up front
  int threads = 1;                              // image folders: threads for that check
};
Data load_data(const DataOptions& options);

// `dir` empty: the dataset's default location. Subsets keep the first N
// images (0: all); for image folders N images spread evenly over the sorted
// list, so that every class keeps its share.
Data load_data(const std::string& name, const std::string& dir, std::int64_t train_subset, std::int64_t test_subset);
std::string default_data_dir(const std::string& name);

// One image as normalised fp32 C x H x W (sample_shape) written to `out`:
// in memory with `augment` (and d.augment) a padded random crop + flip;
// image files with `augment` a random-resized crop + flip, without it a
// resize + centre crop. Draws from `rng` only to augment. Image files throw
// ImageError (runtime/images.hpp) naming an unreadable or corrupt file.
void fill_sample(const Data& d, const DataSplit& split, std::int64_t i, bool augment, Rng& rng, float* out);
std::vector<std::int64_t> sample_shape(const Data& d);

// Normalised fp32 batch of the given images, one after the other from `rng`.
torch::Tensor make_batch(const Data& d, const DataSplit& split, const std::vector<std::int64_t>& index, bool augment,
                         Rng& rng);

// Writes tiny CIFAR-format files (tests).
void write_cifar_file(const std::string& path, int label_bytes, const torch::Tensor& images_u8,
                      const torch::Tensor& labels);

}  // namespace resist::runtime
