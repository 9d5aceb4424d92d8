#include "runtime/data.hpp"

#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "models/error.hpp"

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
  return {torch::cat(images), torch::cat(labels)};
}

void keep_first(DataSplit& d, std::int64_t n) {
  if (n > 0 && n < d.size()) {
    d.images = d.images.slice(0, 0, n).contiguous();
    d.labels = d.labels.slice(0, 0, n).contiguous();
  }
}

}  // namespace

std::string default_data_dir(const std::string& name) {
  if (name == "fashion-mnist") return "/usr/share/datasets/fashion-mnist";
  if (name == "cifar10") return "data/cifar-10-batches-bin";
  if (name == "cifar100") return "data/cifar-100-binary";
  return "data/" + name;
}

Data load_data(const std::string& name, const std::string& dir_in, std::int64_t train_subset,
               std::int64_t test_subset) {
  const std::string dir = dir_in.empty() ? default_data_dir(name) : dir_in;
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
    throw UserError("--dataset: the runtime reads fashion-mnist, cifar10 and cifar100 (got '" + name + "')");
  }
  keep_first(d.train, train_subset);
  keep_first(d.test, test_subset);
  return d;
}

torch::Tensor make_batch(const Data& d, const DataSplit& split, const std::vector<std::int64_t>& index, bool augment,
                         Rng& rng) {
  auto idx = torch::from_blob(const_cast<std::int64_t*>(index.data()), {std::int64_t(index.size())}, torch::kInt64);
  auto x = split.images.index_select(0, idx);
  if (augment) {
    // Random crop with 4 pixels of zero padding, then a random horizontal flip.
    const std::int64_t H = x.size(2), W = x.size(3);
    auto padded = torch::constant_pad_nd(x, {4, 4, 4, 4}, 0);
    auto out = torch::empty_like(x);
    for (std::int64_t i = 0; i < x.size(0); ++i) {
      const auto dy = std::int64_t(rng.below(9)), dx = std::int64_t(rng.below(9));
      auto crop = padded[i].slice(1, dy, dy + H).slice(2, dx, dx + W);
      if (rng.below(2)) crop = crop.flip({2});
      out[i].copy_(crop);
    }
    x = out;
  }
  auto xf = x.to(torch::kFloat32).div_(255.0f);
  const auto C = std::int64_t(d.mean.size());
  auto mean = torch::from_blob(const_cast<float*>(d.mean.data()), {1, C, 1, 1}, torch::kFloat32);
  auto sd = torch::from_blob(const_cast<float*>(d.stddev.data()), {1, C, 1, 1}, torch::kFloat32);
  return xf.sub_(mean).div_(sd);
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
