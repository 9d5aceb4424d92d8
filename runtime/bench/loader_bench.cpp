// resist-bench-loader: how fast the data pipeline (runtime/loader.hpp)
// decodes and augments an image folder, per thread and for a pool.
//
//   resist-bench-loader --generate DIR [--images N --classes C --width W --height H]
//       writes a synthetic ImageNet-shaped folder (JPEG, quality 90) and exits;
//   resist-bench-loader --data-dir DIR [--threads 1,2] [--batch-size 64] [--batches 20]
//       for each thread count: a Loader over DIR/train (training transforms:
//       random-resized crop to --image-size, flip, normalise), `--warmup`
//       batches, then `--batches` batches timed back to back; prints
//       images/s for the pool and per thread (pool / threads).
//
// scripts/bench_loader_torchvision.py runs this and torchvision's
// ImageFolder + DataLoader with the same transforms, alternating.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "runtime/data.hpp"
#include "runtime/images.hpp"
#include "runtime/loader.hpp"
#include "tools/cli.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace resist::runtime;

struct Options {
  std::string data_dir, generate, threads = "1,2", format = "table";
  int images = 1024, classes = 8, width = 500, height = 375;
  int image_size = 224, batch = 64, batches = 20, warmup = 2, prefetch = 4;
  bool eval = false;
};

// A photo-like picture: smooth waves per channel plus fine texture, so that
// JPEG files come out about the size of ImageNet's (~100 KB at 500 x 375).
Image synthetic(int cls, int index, int w, int h) {
  resist::Rng rng(std::uint64_t(cls) + 1, std::uint64_t(index));
  Image im{w, h, std::vector<std::uint8_t>(std::size_t(w) * std::size_t(h) * 3)};
  double fx[3], fy[3], ph[3];
  for (int c = 0; c < 3; ++c) {
    fx[c] = 0.005 + 0.05 * rng.uniform();
    fy[c] = 0.005 + 0.05 * rng.uniform();
    ph[c] = 6.28 * rng.uniform();
  }
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const double v = 128 + 60 * std::sin(fx[c] * x + ph[c]) * std::cos(fy[c] * y) + 30 * std::sin(0.3 * (x + y) + c) +
                         double(rng.below(25)) - 12;
        im.rgb[(std::size_t(y) * std::size_t(w) + std::size_t(x)) * 3 + std::size_t(c)] =
            std::uint8_t(std::clamp(v, 0.0, 255.0));
      }
  return im;
}

int generate(const Options& o) {
  std::uint64_t bytes = 0;
  for (const char* split : {"train", "val"}) {
    const int n = std::string(split) == "train" ? o.images : std::max(1, o.images / 10);
    for (int i = 0; i < n; ++i) {
      const int cls = i % o.classes;
      const fs::path dir = fs::path(o.generate) / split / ("class" + std::to_string(cls));
      fs::create_directories(dir);
      const fs::path file = dir / ("img" + std::to_string(i) + ".jpg");
      write_jpeg(file.string(), synthetic(cls, i, o.width, o.height), 90);
      bytes += fs::file_size(file);
    }
  }
  std::cerr << "resist-bench-loader: wrote " << o.images << " training images (" << o.width << "x" << o.height
            << ", mean " << bytes / std::uint64_t(o.images + std::max(1, o.images / 10)) / 1024 << " KiB) to "
            << o.generate << std::endl;
  return 0;
}

// Images per second of `threads` decoder threads over `batches` timed batches.
double measure(const Data& d, const Options& o, int threads) {
  resist::runtime::Sampler sampler(d.train.size(), 1, o.batch, int((d.train.size() + o.batch - 1) / o.batch), 1);
  LoaderOptions lo;
  lo.threads = threads;
  lo.prefetch = o.prefetch;
  const std::int64_t total = o.warmup + o.batches;
  Loader loader(d, d.train, !o.eval, [&](std::int64_t t) { return sampler.batch(0, t); }, 0, total, 7, lo);
  for (int t = 0; t < o.warmup; ++t) loader.next(t);
  const auto t0 = Clock::now();
  std::int64_t images = 0;
  for (std::int64_t t = o.warmup; t < total; ++t) images += loader.next(t).x.size(0);
  return double(images) / std::chrono::duration<double>(Clock::now() - t0).count();
}

int run(const Options& o) {
  if (!o.generate.empty()) return generate(o);
  if (o.data_dir.empty()) throw resist::UserError("--data-dir: needed (or --generate DIR to make a folder)");
  DataOptions dopt;
  dopt.name = "imagefolder";
  dopt.dir = o.data_dir;
  dopt.image_size = o.image_size;
  dopt.check_images = false;
  const Data d = load_data(dopt);
  nlohmann::json rows = nlohmann::json::array();
  for (int threads : resist::cli::parse_int_list("--threads", o.threads)) {
    if (threads < 0) throw resist::UserError("--threads: must be >= 0 (got " + std::to_string(threads) + ")");
    const double rate = measure(d, o, threads);
    rows.push_back({{"threads", threads},
                    {"images_per_s", rate},
                    {"images_per_s_per_thread", rate / std::max(1, threads)},
                    {"batch_size", o.batch},
                    {"batches", o.batches},
                    {"image_size", o.image_size},
                    {"transform", o.eval ? "eval" : "train"},
                    {"train_images", d.train.size()}});
  }
  if (o.format == "json") {
    std::cout << rows.dump(2) << std::endl;
    return 0;
  }
  std::cout << "| threads | images/s (pool) | images/s per thread |\n|---:|---:|---:|\n";
  for (const auto& r : rows)
    std::cout << "| " << r["threads"] << " | " << std::fixed << std::setprecision(1)
              << r["images_per_s"].get<double>() << " | " << r["images_per_s_per_thread"].get<double>() << " |\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return resist::cli::guarded("resist-bench-loader", [&] {
    namespace po = boost::program_options;
    Options o;
    po::options_description d("resist-bench-loader options");
    d.add_options()("help,h", "this help")
        ("data-dir", po::value(&o.data_dir), "image folder (DIR/train/<class>/*.jpg) to read")
        ("generate", po::value(&o.generate), "write a synthetic image folder here and exit")
        ("images", po::value(&o.images)->default_value(o.images), "--generate: training images (val: a tenth)")
        ("classes", po::value(&o.classes)->default_value(o.classes), "--generate: classes")
        ("width", po::value(&o.width)->default_value(o.width), "--generate: image width")
        ("height", po::value(&o.height)->default_value(o.height), "--generate: image height")
        ("threads", po::value(&o.threads)->default_value(o.threads), "decoder thread counts to measure, e.g. 1,2,4")
        ("image-size", po::value(&o.image_size)->default_value(o.image_size), "network input side")
        ("batch-size", po::value(&o.batch)->default_value(o.batch), "images per batch")
        ("batches", po::value(&o.batches)->default_value(o.batches), "timed batches")
        ("warmup", po::value(&o.warmup)->default_value(o.warmup), "untimed batches first")
        ("prefetch", po::value(&o.prefetch)->default_value(o.prefetch), "batches built ahead")
        ("eval", po::bool_switch(&o.eval), "evaluation transform (resize + centre crop) instead of training's")
        ("format", po::value(&o.format)->default_value(o.format), "table | json");
    po::variables_map vm;
    if (!resist::cli::parse(argc, argv, d, vm, "usage: resist-bench-loader --data-dir DIR | --generate DIR [options]"))
      return 0;
    if (o.format != "table" && o.format != "json")
      throw resist::UserError("--format: unknown value '" + o.format + "' (accepted: table, json)");
    for (auto [name, v] : {std::pair{"--images", o.images}, {"--classes", o.classes}, {"--width", o.width},
                           {"--height", o.height}, {"--batch-size", o.batch}, {"--batches", o.batches},
                           {"--prefetch", o.prefetch}})
      if (v < 1) throw resist::UserError(std::string(name) + ": must be >= 1 (got " + std::to_string(v) + ")");
    if (o.warmup < 0) throw resist::UserError("--warmup: must be >= 0");
    return run(o);
  });
}
