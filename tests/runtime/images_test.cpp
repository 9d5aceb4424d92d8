// Image files, image folders and the prefetching loader, on small folders the
// tests write with the same libraries (libjpeg-turbo, libpng).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "models/error.hpp"
#include "runtime/data.hpp"
#include "runtime/images.hpp"
#include "runtime/loader.hpp"
#include "tests/support/images.hpp"
#include "tests/support/process.hpp"

namespace fs = std::filesystem;
using namespace resist::runtime;
using resist::test::TempDir;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const resist::UserError& e) {
    return e.what();
  }
  return "";
}

double mean_abs_diff(const Image& a, const Image& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.rgb.size(); ++i) s += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
  return s / double(a.rgb.size());
}

Data folder_data(const fs::path& root, int size, int threads = 2) {
  DataOptions o;
  o.name = "imagefolder";
  o.dir = root.string();
  o.image_size = size;
  o.threads = threads;
  return load_data(o);
}

void corrupt(const fs::path& p, std::size_t keep) {
  auto bytes = read_file_bytes(p.string());
  bytes.resize(std::min(bytes.size(), keep));
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(bytes.data()),
                                                             std::streamsize(bytes.size()));
}

}  // namespace

TEST(Images, JpegAndPngRoundTripThroughTheDecoders) {
  TempDir dir;
  const auto im = resist::test::class_image(1, 3, 37, 23);
  write_jpeg((dir.path / "a.jpg").string(), im, 95);
  write_png((dir.path / "b.png").string(), im);
  const auto j = load_image((dir.path / "a.jpg").string());
  const auto p = load_image((dir.path / "b.png").string());
  ASSERT_EQ(j.width, 37);
  ASSERT_EQ(j.height, 23);
  EXPECT_LT(mean_abs_diff(j, im), 8.0);  // lossy, but the same picture
  EXPECT_EQ(p.rgb, im.rgb);              // lossless
  // The signature decides, not the name: a PNG called .jpg decodes.
  fs::copy_file(dir.path / "b.png", dir.path / "c.jpg");
  EXPECT_EQ(load_image((dir.path / "c.jpg").string()).rgb, im.rgb);
}

TEST(Images, HeaderCheckAndDecodeNameTheBadFile) {
  TempDir dir;
  const auto im = resist::test::class_image(0, 0, 64, 48);
  const auto jpg = dir.path / "t.jpg", png = dir.path / "t.png", junk = dir.path / "junk.jpg",
             empty = dir.path / "empty.png";
  write_jpeg(jpg.string(), im);
  write_png(png.string(), im);
  std::ofstream(junk) << "this is not an image";
  std::ofstream{empty};
  EXPECT_NO_THROW(check_image_header(jpg.string()));
  EXPECT_NO_THROW(check_image_header(png.string()));
  for (const auto& bad : {junk, empty, dir.path / "missing.jpg"}) {
    const auto msg = error_of([&] { check_image_header(bad.string()); });
    EXPECT_NE(msg.find(bad.string()), std::string::npos) << msg;
  }
  // Truncated after the headers: the cheap check passes, decoding fails.
  corrupt(jpg, 700);
  corrupt(png, 120);
  for (const auto& bad : {jpg, png}) {
    EXPECT_NO_THROW(check_image_header(bad.string())) << bad;
    const auto msg = error_of([&] { load_image(bad.string()); });
    EXPECT_NE(msg.find(bad.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  }
}

TEST(Images, ResampleIsExactAtScaleOneAndFlipMirrors) {
  const auto im = resist::test::class_image(2, 1, 16, 16);
  const float mean[3] = {0, 0, 0}, sd[3] = {1, 1, 1};
  std::vector<float> out(3 * 16 * 16), flipped(3 * 16 * 16);
  resample_normalise(im, {0, 0, 16, 16, false}, 16, mean, sd, out.data());
  resample_normalise(im, {0, 0, 16, 16, true}, 16, mean, sd, flipped.data());
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 16; ++x) {
        const float v = im.rgb[std::size_t((y * 16 + x) * 3 + c)] / 255.0f;
        EXPECT_NEAR(out[std::size_t((c * 16 + y) * 16 + x)], v, 1e-5);
        EXPECT_NEAR(flipped[std::size_t((c * 16 + y) * 16 + 15 - x)], v, 1e-5);
      }
  // A flat image stays flat whatever the box and scale.
  Image flat{40, 30, std::vector<std::uint8_t>(40 * 30 * 3, 128)};
  std::vector<float> small(3 * 8 * 8);
  resample_normalise(flat, {3.5, 2.25, 30.5, 20, true}, 8, mean, sd, small.data());
  for (float v : small) EXPECT_NEAR(v, 128 / 255.0f, 1e-5);
}

TEST(Images, CropBoxesFollowTorchvision) {
  // Resize(256) + CenterCrop(224) of a 500 x 375 image: resized to 341 x 256,
  // crop offset round(117 / 2) = 58 (half to even) resized pixels.
  const auto c = center_crop(500, 375, 224);
  EXPECT_NEAR(c.x, 58 * 375.0 / 256, 1e-9);
  EXPECT_NEAR(c.y, 16 * 375.0 / 256, 1e-9);
  EXPECT_NEAR(c.w, 224 * 375.0 / 256, 1e-9);
  resist::Rng a(5, 6), b(5, 6);
  std::set<bool> flips;
  for (int i = 0; i < 200; ++i) {
    const auto box = random_resized_crop(300, 200, a);
    const auto again = random_resized_crop(300, 200, b);
    EXPECT_EQ(box.x, again.x);
    EXPECT_EQ(box.w, again.w);
    EXPECT_EQ(box.flip, again.flip);
    EXPECT_GE(box.x, 0);
    EXPECT_LE(box.x + box.w, 300);
    EXPECT_LE(box.y + box.h, 200);
    const double area = box.w * box.h / (300.0 * 200.0);
    EXPECT_GE(area, 0.08 - 0.01);
    EXPECT_LE(box.w / box.h, 4.0 / 3.0 + 0.05);
    EXPECT_GE(box.w / box.h, 3.0 / 4.0 - 0.05);
    flips.insert(box.flip);
  }
  EXPECT_EQ(flips.size(), 2u);
}

TEST(ImageFolder, ClassesAreSortedFolderNamesAndLabelsFollowThem) {
  TempDir dir;
  const std::vector<std::string> made = {"zebra", "apple", "mango"};
  resist::test::write_image_folder(dir.path, made, 4, 2, 24, 20, /*png=*/true);
  const auto d = folder_data(dir.path, 16);
  EXPECT_EQ(d.classes, (std::vector<std::string>{"apple", "mango", "zebra"}));
  ASSERT_EQ(d.train.size(), 12);
  ASSERT_EQ(d.test.size(), 6);
  EXPECT_EQ(std::count_if(d.train.files.begin(), d.train.files.end(),
                          [](const std::string& f) { return f.ends_with(".png"); }),
            3);
  for (const auto* split : {&d.train, &d.test})
    for (std::int64_t i = 0; i < split->size(); ++i) {
      const fs::path f = split->files[std::size_t(i)];
      const std::string cls = f.parent_path().filename().string();
      const auto label = split->labels[i].item<std::int64_t>();
      EXPECT_EQ(d.classes[std::size_t(label)], cls) << f;
      // The pixels are the ones written for that folder.
      const auto made_as = std::find(made.begin(), made.end(), cls) - made.begin();
      const auto im = load_image(f.string());
      const auto ref = resist::test::class_image(int(made_as), 0, 24, 20);
      double r = 0, rr = 0;
      for (std::size_t p = 0; p < im.rgb.size(); p += 3) r += im.rgb[p], rr += ref.rgb[p];
      EXPECT_NEAR(r / rr, 1.0, 0.25) << f;
    }
  EXPECT_EQ(resist::runtime::sample_shape(d), (std::vector<std::int64_t>{3, 16, 16}));
}

TEST(ImageFolder, BadLayoutsAndFilesAreOneLineNamingThePath) {
  TempDir dir;
  fs::create_directories(dir.path / "train");
  fs::create_directories(dir.path / "val");
  auto msg = error_of([&] { folder_data(dir.path, 16); });
  EXPECT_NE(msg.find((dir.path / "train").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("no class folders"), std::string::npos) << msg;

  resist::test::write_image_folder(dir.path, {"a", "b"}, 3, 1, 20, 20);
  fs::create_directories(dir.path / "train" / "c");
  std::ofstream(dir.path / "train" / "c" / "notes.txt") << "no images here";
  msg = error_of([&] { folder_data(dir.path, 16); });
  EXPECT_NE(msg.find((dir.path / "train" / "c").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("empty class folder"), std::string::npos) << msg;
  fs::remove_all(dir.path / "train" / "c");

  const auto bad = dir.path / "val" / "b" / "zz-broken.jpg";
  std::ofstream(bad) << "garbage";
  msg = error_of([&] { folder_data(dir.path, 16, 3); });
  EXPECT_NE(msg.find(bad.string()), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  fs::remove(bad);

  EXPECT_NO_THROW(folder_data(dir.path, 16));
  DataOptions o;
  o.name = "imagenet";
  o.dir = dir.path.string();
  msg = error_of([&] { load_data(o); });  // classes a, b: not WordNet IDs
  EXPECT_NE(msg.find((dir.path / "train" / "a").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("WordNet ID"), std::string::npos) << msg;

  TempDir wn;  // ImageNet-style names, but 2 classes instead of 1000
  resist::test::write_image_folder(wn.path, {"n01440764", "n01443537"}, 2, 1, 40, 30);
  o.dir = wn.path.string();
  msg = error_of([&] { load_data(o); });
  EXPECT_NE(msg.find("has 2 class folders, ImageNet has 1000"), std::string::npos) << msg;
}

TEST(Loader, BatchesAreTheSameForAnyThreadCountAndPrefetchAndDependOnTheSeed) {
  TempDir dir;
  resist::test::write_image_folder(dir.path, {"a", "b", "c"}, 6, 2, 40, 30, /*png=*/true);
  const auto d = folder_data(dir.path, 24);
  Sampler plan_sampler(d.train.size(), 1, 5, 4, 7);
  auto run = [&](int threads, int prefetch, std::uint64_t seed) {
    Sampler s(d.train.size(), 1, 5, 4, 7);
    LoaderOptions o;
    o.threads = threads;
    o.prefetch = prefetch;
    Loader loader(d, d.train, true, [&](std::int64_t t) { return s.batch(0, t); }, 0, 8, seed, o);
    std::vector<torch::Tensor> xs;
    for (std::int64_t t = 0; t < 8; ++t) {
      auto b = loader.next(t);
      EXPECT_EQ(b.index, plan_sampler.batch(0, t));
      EXPECT_EQ(b.x.sizes(), (std::vector<std::int64_t>{std::int64_t(b.index.size()), 3, 24, 24}));
      xs.push_back(b.x);
    }
    return torch::cat(xs);
  };
  const auto ref = run(0, 1, 11);
  EXPECT_TRUE(torch::equal(ref, run(1, 1, 11)));
  EXPECT_TRUE(torch::equal(ref, run(3, 4, 11)));
  EXPECT_TRUE(torch::equal(ref, run(4, 2, 11)));
  EXPECT_FALSE(torch::equal(ref, run(3, 4, 12)));
  // Evaluation batches are not augmented: the loader equals fill_sample.
  LoaderOptions o;
  o.threads = 2;
  Loader eval(d, d.test, false, [](std::int64_t) { return std::vector<std::int64_t>{0, 1, 2}; }, 0, 1, 99, o);
  const auto b = eval.next(0);
  std::vector<float> one(3 * 24 * 24);
  resist::Rng unused(0, 0);
  fill_sample(d, d.test, 2, false, unused, one.data());
  EXPECT_TRUE(torch::equal(b.x[2], torch::from_blob(one.data(), {3, 24, 24})));
  EXPECT_EQ(b.y[2].item<std::int64_t>(), d.test.labels[2].item<std::int64_t>());
}

TEST(Loader, EveryImageOfAnEpochIsSeenExactlyOnceAcrossWorkers) {
  // In memory (the same pipeline): 50 images, 3 workers, batch 4.
  Data d;
  d.name = "test";
  d.train.images = torch::arange(50 * 4, torch::kInt64).remainder(256).to(torch::kUInt8).reshape({50, 1, 2, 2});
  d.train.labels = torch::arange(50, torch::kInt64);
  d.mean = {0};
  d.stddev = {1};
  const int S = 3, B = 4;
  const int ipe = (50 + S * B - 1) / (S * B);
  for (std::int64_t epoch = 0; epoch < 3; ++epoch) {
    std::map<std::int64_t, int> seen;
    for (int w = 0; w < S; ++w) {
      Sampler s(50, S, B, ipe, 3);
      LoaderOptions o;
      o.threads = 3;
      o.prefetch = 2;
      Loader loader(d, d.train, false, [&](std::int64_t t) { return s.batch(w, t); }, epoch * ipe, (epoch + 1) * ipe,
                    1, o);
      const std::int64_t shard = 50 * (w + 1) / S - 50 * w / S;
      for (std::int64_t t = epoch * ipe; t < epoch * ipe + (shard + B - 1) / B; ++t) {
        const auto b = loader.next(t);
        for (std::size_t j = 0; j < b.index.size(); ++j) {
          ++seen[b.index[j]];
          EXPECT_EQ(b.y[std::int64_t(j)].item<std::int64_t>(), b.index[j]);  // labels travel with their image
        }
      }
    }
    EXPECT_EQ(seen.size(), 50u) << "epoch " << epoch;
    for (const auto& [i, n] : seen) EXPECT_EQ(n, 1) << "image " << i << " in epoch " << epoch;
  }
}

TEST(Loader, ACorruptImageMidEpochNamesItsPathOrIsSkippedAndCounted) {
  TempDir dir;
  resist::test::write_image_folder(dir.path, {"a", "b"}, 4, 1, 32, 32);
  const auto d = folder_data(dir.path, 16);  // header check passes
  const std::string bad = d.train.files[2];
  corrupt(bad, 600);  // now truncated
  const auto all = [](std::int64_t) { return std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7}; };
  LoaderOptions o;
  o.threads = 2;
  {
    Loader loader(d, d.train, true, all, 0, 1, 1, o);
    const auto msg = error_of([&] { loader.next(0); });
    EXPECT_NE(msg.find(bad), std::string::npos) << msg;
    EXPECT_NE(msg.find("--skip-bad-images"), std::string::npos) << msg;
  }
  o.skip_bad = true;
  Loader loader(d, d.train, true, all, 0, 1, 1, o);
  const auto b = loader.next(0);
  EXPECT_EQ(b.index, (std::vector<std::int64_t>{0, 1, 3, 4, 5, 6, 7}));
  EXPECT_EQ(b.x.size(0), 7);
  EXPECT_EQ(b.y.size(0), 7);
  EXPECT_EQ(loader.skipped(), 1);
}
