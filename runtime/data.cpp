#include "runtime/data.hpp"

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "models/error.hpp"
#include "runtime/images.hpp"

namespace resist::runtime {

namespace fs = std::filesystem;

namespace {

std::string read_gz(const std::string& path) {
  if (!fs::exists(path)) throw UserError("dataset file not found: " + path);
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw UserError("cannot open dataset file: " + path);
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, std::size_t(n));
  int err = 0;
  const char* msg = gzerror(f, &err);
  const bool bad = n < 0 || (err != Z_OK && err != Z_STREAM_END);
  const std::string what = bad ? std::string(msg) : "";
  gzclose(f);
  if (bad) throw UserError("dataset file is corrupt or truncated: " + path + " (" + what + ")");
  return out;
}

std::uint32_t be32(const std::string& s, std::size_t at) {
  return std::uint32_t(std::uint8_t(s[at])) << 24 | std::uint32_t(std::uint8_t(s[at + 1])) << 16 |
         std::uint32_t(std::uint8_t(s[at + 2])) << 8 | std::uint32_t(std::uint8_t(s[at + 3]));
}

// idx format: magic (0x0000 08 ndim), ndim big-endian sizes, uint8 data.
torch::Tensor read_idx(const std::string& path, int ndim) {
  const std::string s = read_gz(path);
  const std::size_t header = 4 + 4 * std::size_t(ndim);
  if (s.size() < header || be32(s, 0) != 0x800u + std::uint32_t(ndim))
    throw UserError("not an idx file with " + std::to_string(ndim) + " dimensions: " + path);
  std::vector<std::int64_t> shape;
  std::size_t total = 1;
  for (int i = 0; i < ndim; ++i) {
    shape.push_back(be32(s, 4 + 4 * std::size_t(i)));
    total *= std::size_t(shape.back());
  }
  if (s.size() != header + total)
    throw UserError("dataset file is truncated: " + path + " (" + std::to_string(s.size() - header) + " of " +
                    std::to_string(total) + " data bytes)");
  auto t = torch::empty(shape, torch::kUInt8);
  std::memcpy(t.data_ptr(), s.data() + header, total);
  return t;
}

DataSplit read_fashion(const std::string& dir, const std::string& prefix) {
  DataSplit d;
  d.images = read_idx(dir + "/" + prefix + "-images-idx3-ubyte.gz", 3).unsqueeze(1);
  d.labels = read_idx(dir + "/" + prefix + "-labels-idx1-ubyte.gz", 1).to(torch::kInt64);
  if (d.images.size(0) != d.labels.size(0))
    throw UserError("image and label counts differ in " + dir + "/" + prefix + "-*.gz");
  return d;
}

DataSplit read_cifar(const std::vector<std::string>& paths, int label_bytes) {
  const std::size_t record = std::size_t(label_bytes) + 3072;
  std::vector<torch::Tensor> images, labels;
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw UserError("dataset file not found: " + path);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (s.empty() || s.size() % record != 0)
      throw UserError("dataset file is truncated: " + path + " (" + std::to_string(s.size()) +
                      " bytes, not a multiple of the " + std::to_string(record) + "-byte record)");
    const std::int64_t n = std::int64_t(s.size() / record);
    auto raw = torch::from_blob(s.data(), {n, std::int64_t(record)}, torch::kUInt8).clone();
    labels.push_back(raw.select(1, label_bytes - 1).to(torch::kInt64));
    images.push_back(raw.slice(1, label_bytes).reshape({n, 3, 32, 32}).contiguous());
  }
  DataSplit d;
  d.images = torch::cat(images);
  d.labels = torch::cat(labels);
  return d;
}

void keep_first(DataSplit& d, std::int64_t n) {
  if (n > 0 && n < d.size()) {
    d.images = d.images.slice(0, 0, n).contiguous();
    d.labels = d.labels.slice(0, 0, n).contiguous();
  }
}

// ------------------------------------------------------------ image folders

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return (ext == ".jpg" || ext == ".jpeg" || ext == ".png") && p.filename().string()[0] != '.';
}

std::vector<std::string> class_folders(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw UserError("image folder not found: " + dir.string());
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && e.path().filename().string()[0] != '.') names.push_back(e.path().filename().string());
  if (ec) throw UserError("cannot list " + dir.string() + " (" + ec.message() + ")");
  if (names.empty())
    throw UserError("image folder " + dir.string() + " has no class folders (expected " + dir.string() +
                    "/<class>/*.jpg)");
  std::sort(names.begin(), names.end());
  return names;
}

// ImageNet (ILSVRC-2012) names its 1000 class folders by WordNet ID, 'n'
// and eight digits (n01440764 ... n15075141); sorted, they give the usual
// label numbering. Anything else is not ImageNet's layout.
bool is_wordnet_id(const std::string& name) {
  if (name.size() != 9 || name[0] != 'n') return false;
  return std::all_of(name.begin() + 1, name.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void check_imagenet_classes(const fs::path& dir, const std::vector<std::string>& classes) {
  for (const auto& c : classes)
    if (!is_wordnet_id(c))
      throw UserError("--dataset imagenet: class folder " + (dir / c).string() +
                      " is not an ImageNet WordNet ID (n + 8 digits, e.g. n01440764); "
                      "--dataset imagefolder takes any class names");
  if (classes.size() != 1000)
    throw UserError("--dataset imagenet: " + dir.string() + " has " + std::to_string(classes.size()) +
                    " class folders, ImageNet has 1000 (--dataset imagefolder takes any number)");
}

// Every image of every class, in class order then path order.
DataSplit scan_split(const fs::path& dir, const std::vector<std::string>& classes) {
  DataSplit d;
  std::vector<std::int64_t> labels;
  for (std::size_t c = 0; c < classes.size(); ++c) {
    const fs::path cdir = dir / classes[c];
    std::error_code ec;
    if (!fs::is_directory(cdir, ec)) continue;  // a class without validation images
    std::vector<std::string> files;
    for (auto it = fs::recursive_directory_iterator(cdir, fs::directory_options::follow_directory_symlink, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (!it->is_directory() && is_image_file(it->path())) files.push_back(it->path().string());
    if (ec) throw UserError("cannot list " + cdir.string() + " (" + ec.message() + ")");
    if (files.empty()) throw UserError("empty class folder " + cdir.string() + " (no .jpg, .jpeg or .png files)");
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      d.files.push_back(std::move(f));
      labels.push_back(std::int64_t(c));
    }
  }
  d.labels = torch::tensor(labels, torch::kInt64);
  return d;
}

// The header of every file, checked by `threads` threads; the error names
// the first bad file in list order, whichever thread found it.
void check_headers(const std::vector<std::string>& files, int threads) {
  std::atomic<std::size_t> next{0}, first_bad{files.size()};
  std::vector<std::string> reasons(files.size());
  auto work = [&] {
    for (std::size_t i; (i = next++) < files.size() && i < first_bad.load();) {
      try {
        check_image_header(files[i]);
      } catch (const ImageError& e) {
        reasons[i] = e.what();
        for (std::size_t cur = first_bad.load(); i < cur && !first_bad.compare_exchange_weak(cur, i);) {
        }
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::max(1, threads); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (first_bad < files.size()) throw UserError(reasons[first_bad]);
}

void keep_spread(DataSplit& d, std::int64_t n) {
  const std::int64_t total = d.size();
  if (n <= 0 || n >= total) return;
  std::vector<std::int64_t> keep;
  for (std::int64_t i = 0; i < n; ++i) keep.push_back(i * total / n);
  std::vector<std::string> files;
  for (auto k : keep) files.push_back(d.files[std::size_t(k)]);
  d.files = std::move(files);
  d.labels = d.labels.index_select(0, torch::tensor(keep, torch::kInt64)).contiguous();
}

Data load_image_folder(const DataOptions& o, const std::string& dir) {
  Data d;
  d.name = o.name;
  d.image_size = o.image_size > 0 ? o.image_size : 224;
  d.mean = {0.485f, 0.456f, 0.406f};  // ImageNet's, as torchvision's examples use
  d.stddev = {0.229f, 0.224f, 0.225f};
  d.augment = true;
  const fs::path root(dir);
  d.classes = class_folders(root / "train");
  if (o.name == "imagenet") check_imagenet_classes(root / "train", d.classes);
  for (const auto& c : class_folders(root / "val"))
    if (!std::binary_search(d.classes.begin(), d.classes.end(), c))
      throw UserError("class folder " + (root / "val" / c).string() + " has no counterpart in " +
                      (root / "train").string());
  d.train = scan_split(root / "train", d.classes);
  d.test = scan_split(root / "val", d.classes);
  keep_spread(d.train, o.train_subset);
  keep_spread(d.test, o.test_subset);
  if (o.check_images) {
    check_headers(d.train.files, o.threads);
    check_headers(d.test.files, o.threads);
  }
  return d;
}

}  // namespace

bool is_image_folder_dataset(const std::string& name) { return name == "imagefolder" || name == "imagenet"; }

std::string default_data_dir(const std::string& name) {
  if (name == "fashion-mnist") return "/usr/share/datasets/fashion-mnist";
  if (name == "cifar10") return "data/cifar-10-batches-bin";
  if (name == "cifar100") return "data/cifar-100-binary";
  if (name == "imagefolder") return "data/images";
  return "data/" + name;
}

Data load_data(const std::string& name, const std::string& dir, std::int64_t train_subset,
               std::int64_t test_subset) {
  DataOptions o;
  o.name = name;
  o.dir = dir;
  o.train_subset = train_subset;
  o.test_subset = test_subset;
  return load_data(o);
}

Data load_data(const DataOptions& o) {
  const std::string& name = o.name;
  const std::string dir = o.dir.empty() ? default_data_dir(name) : o.dir;
  if (is_image_folder_dataset(name)) return load_image_folder(o, dir);
  if (o.image_size > 0)
    throw UserError("--image-size: only for the image-folder datasets imagefolder and imagenet (not '" + name + "')");
  Data d;
  d.name = name;
  if (name == "fashion-mnist") {
    d.train = read_fashion(dir, "train");
    d.test = read_fashion(dir, "t10k");
    d.mean = {0.2860f};
    d.stddev = {0.3530f};
  } else if (name == "cifar10") {
    std::vector<std::string> train;
    for (int i = 1; i <= 5; ++i) train.push_back(dir + "/data_batch_" + std::to_string(i) + ".bin");
    d.train = read_cifar(train, 1);
    d.test = read_cifar({dir + "/test_batch.bin"}, 1);
    d.mean = {0.4914f, 0.4822f, 0.4465f};
    d.stddev = {0.2470f, 0.2435f, 0.2616f};
    d.augment = true;
  } else if (name == "cifar100") {
    d.train = read_cifar({dir + "/train.bin"}, 2);
    d.test = read_cifar({dir + "/test.bin"}, 2);
    d.mean = {0.5071f, 0.4865f, 0.4409f};
    d.stddev = {0.2673f, 0.2564f, 0.2762f};
    d.augment = true;
  } else {
    throw UserError("--dataset: the runtime reads fashion-mnist, cifar10, cifar100, imagefolder and imagenet (got '" +
                    name + "')");
  }
  keep_first(d.train, o.train_subset);
  keep_first(d.test, o.test_subset);
  return d;
}

std::vector<std::int64_t> sample_shape(const Data& d) {
  if (d.from_files()) return {3, d.image_size, d.image_size};
  return {d.train.images.size(1), d.train.images.size(2), d.train.images.size(3)};
}

namespace {

// In memory: with `augment`, a random crop of the image padded by 4 zero
// pixels, then a random horizontal flip (draws: dy, dx, flip).
void fill_tensor_sample(const Data& d, const DataSplit& split, std::int64_t i, bool augment, Rng& rng, float* out) {
  const std::int64_t C = split.images.size(1), H = split.images.size(2), W = split.images.size(3);
  const std::uint8_t* src = split.images.data_ptr<std::uint8_t>() + i * C * H * W;
  std::int64_t dy = 4, dx = 4;
  bool flip = false;
  if (augment) {
    dy = std::int64_t(rng.below(9));
    dx = std::int64_t(rng.below(9));
    flip = rng.below(2) == 1;
  }
  for (std::int64_t c = 0; c < C; ++c) {
    const float mean = d.mean[std::size_t(c)], sd = d.stddev[std::size_t(c)];
    const float zero = (0.0f - mean) / sd;
    for (std::int64_t y = 0; y < H; ++y) {
      const std::int64_t sy = y + dy - 4;
      float* row = out + (c * H + y) * W;
      for (std::int64_t x = 0; x < W; ++x) {
        const std::int64_t sx = (flip ? W - 1 - x : x) + dx - 4;
        row[x] = (sy < 0 || sy >= H || sx < 0 || sx >= W)
                     ? zero
                     : (float(src[(c * H + sy) * W + sx]) / 255.0f - mean) / sd;
      }
    }
  }
}

}  // namespace

void fill_sample(const Data& d, const DataSplit& split, std::int64_t i, bool augment, Rng& rng, float* out) {
  if (!d.from_files()) return fill_tensor_sample(d, split, i, augment, rng, out);
  thread_local Image image;
  thread_local std::vector<std::uint8_t> bytes;
  const std::string& path = split.files.at(std::size_t(i));
  bytes = read_file_bytes(path);
  decode_image(bytes, path, image);
  const CropBox box = augment ? random_resized_crop(image.width, image.height, rng)
                              : center_crop(image.width, image.height, d.image_size);
  resample_normalise(image, box, d.image_size, d.mean.data(), d.stddev.data(), out);
}

torch::Tensor make_batch(const Data& d, const DataSplit& split, const std::vector<std::int64_t>& index, bool augment,
                         Rng& rng) {
  auto shape = sample_shape(d);
  const std::int64_t per = shape[0] * shape[1] * shape[2];
  shape.insert(shape.begin(), std::int64_t(index.size()));
  auto out = torch::empty(shape, torch::kFloat32);
  float* p = out.data_ptr<float>();
  for (std::size_t j = 0; j < index.size(); ++j) fill_sample(d, split, index[j], augment, rng, p + std::int64_t(j) * per);
  return out;
}

void write_cifar_file(const std::string& path, int label_bytes, const torch::Tensor& images_u8,
                      const torch::Tensor& labels) {
  std::ofstream out(path, std::ios::binary);
  auto img = images_u8.contiguous();
  for (std::int64_t i = 0; i < img.size(0); ++i) {
    for (int b = 0; b < label_bytes; ++b) out.put(char(labels[i].item<std::int64_t>()));
    out.write(reinterpret_cast<const char*>(img[i].data_ptr<std::uint8_t>()), 3072);
  }
}

}  // namespace resist::runtime
