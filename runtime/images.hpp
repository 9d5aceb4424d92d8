#pragma once
// Image files for the image-folder datasets: JPEG (libjpeg-turbo's TurboJPEG
// API) and PNG (libpng) decoding to 8-bit RGB, a cheap header check, the
// training and evaluation transforms, and writers (tests, benchmarks).
// No LibTorch here: the loader (runtime/loader.hpp) fills its batch tensors
// through raw float pointers.
//
// Transforms follow torchvision's definitions:
//   training:   RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3)) +
//               RandomHorizontalFlip, then Normalize(mean, std);
//   evaluation: Resize(size * 256 / 224) of the shorter side + CenterCrop(size).
// A crop box is resampled straight to size x size with an antialiased
// bilinear (triangle) filter, as PIL's bilinear resize does, in one pass per
// axis; the output is normalised fp32, channels first.
#include <cstdint>
#include <string>
#include <vector>

#include "models/error.hpp"
#include "schedule/rng.hpp"

namespace resist::runtime {

struct Image {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;  // height x width x 3, row-major
};

// An unreadable or undecodable image file: the message names the path.
struct ImageError : UserError {
  ImageError(const std::string& path, const std::string& reason)
      : UserError("bad image " + path + ": " + reason), path(path), reason(reason) {}
  std::string path, reason;
};

enum class ImageFormat { jpeg, png, unknown };
ImageFormat sniff_format(const std::uint8_t* data, std::size_t size);

// Reads a whole file (at most `limit` bytes when limit > 0). Throws ImageError.
std::vector<std::uint8_t> read_file_bytes(const std::string& path, std::size_t limit = 0);

// Decodes JPEG or PNG bytes (recognised by their signature, whatever the file
// name says) to RGB; grey, palette, 16-bit and CMYK inputs are converted.
// `out` keeps its capacity between calls. Throws ImageError naming `path`
// for anything undecodable, including a truncated file.
void decode_image(const std::vector<std::uint8_t>& bytes, const std::string& path, Image& out);
Image load_image(const std::string& path);

// Up-front check without decoding the pixels: the file opens, has a JPEG or
// PNG signature and a parseable header with a non-empty size. Reads only the
// first few KiB unless the JPEG header lies further in. Throws ImageError.
void check_image_header(const std::string& path);

void write_jpeg(const std::string& path, const Image& image, int quality = 90);
void write_png(const std::string& path, const Image& image);

// A region of the source image (pixels, may be fractional) and whether the
// output is mirrored left-right.
struct CropBox {
  double x = 0, y = 0, w = 0, h = 0;
  bool flip = false;
};
// torchvision's RandomResizedCrop parameters (10 tries, then a centre crop
// with the ratio clamped), and a flip with probability 1/2, from `rng`.
CropBox random_resized_crop(int width, int height, Rng& rng);
// The region that Resize(shorter side -> size * 256 / 224) followed by
// CenterCrop(size) keeps.
CropBox center_crop(int width, int height, int size);

// Resamples `box` of `image` to size x size and writes
// (v / 255 - mean[c]) / stddev[c] as 3 x size x size floats to `out`.
void resample_normalise(const Image& image, const CropBox& box, int size, const float mean[3], const float stddev[3],
                        float* out);

}  // namespace resist::runtime
