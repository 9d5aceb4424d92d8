#pragma once
// A small image folder (DIR/train/<class>/*.jpg, DIR/val/<class>/*.jpg)
// written with the library the runtime decodes with: class k's images are
// noisy pictures dominated by one colour, so a network can tell them apart.
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/images.hpp"
#include "schedule/rng.hpp"

namespace resist::test {

inline runtime::Image class_image(int cls, int index, int width, int height) {
  static const int colours[][3] = {{220, 40, 40}, {40, 200, 60}, {50, 70, 230}, {230, 220, 40}, {200, 60, 210}};
  const int* c = colours[cls % 5];
  Rng rng(std::uint64_t(cls) * 7919 + 17, std::uint64_t(index));
  runtime::Image im;
  im.width = width;
  im.height = height;
  im.rgb.resize(std::size_t(width) * std::size_t(height) * 3);
  // A colour gradient across x and noise; the darker band's position varies.
  const int band = int(rng.below(std::uint64_t(height)));
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int k = 0; k < 3; ++k) {
        int v = c[k] * (64 + 192 * x / std::max(1, width - 1)) / 256 + int(rng.below(41)) - 20;
        if (std::abs(y - band) < height / 8) v /= 2;
        im.rgb[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * 3 + std::size_t(k)] =
            std::uint8_t(std::clamp(v, 0, 255));
      }
  return im;
}

// `classes` names (created in the given order), `train` and `val` images per
// class of width x height, as .jpg (every third one .png when `png`).
inline void write_image_folder(const std::filesystem::path& root, const std::vector<std::string>& classes, int train,
                               int val, int width, int height, bool png = false) {
  for (const char* split : {"train", "val"}) {
    const int n = std::string(split) == "train" ? train : val;
    for (std::size_t c = 0; c < classes.size(); ++c) {
      const auto dir = root / split / classes[c];
      std::filesystem::create_directories(dir);
      for (int i = 0; i < n; ++i) {
        const auto im = class_image(int(c), i + (split[0] == 'v' ? 100000 : 0), width, height);
        const std::string stem = (dir / ("img" + std::to_string(1000 + i))).string();
        if (png && i % 3 == 2) runtime::write_png(stem + ".png", im);
        else runtime::write_jpeg(stem + ".jpg", im, 92);
      }
    }
  }
}

}  // namespace resist::test
