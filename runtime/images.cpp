#include "runtime/images.hpp"

#include <png.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

namespace resist::runtime {

namespace {

// One TurboJPEG handle per thread and direction, created on first use.
struct TjHandle {
  tjhandle h = nullptr;
  ~TjHandle() {
    if (h) tjDestroy(h);
  }
};
thread_local TjHandle t_decompressor;
tjhandle decompressor() {
  if (!t_decompressor.h) t_decompressor.h = tjInitDecompress();
  if (!t_decompressor.h) throw std::runtime_error("TurboJPEG: cannot create a decompressor");
  return t_decompressor.h;
}
// After an error TurboJPEG leaves the handle mid-header: the next file would
// be parsed from that state. Start again with a fresh one.
ImageError jpeg_error(const std::string& path, const std::string& what) {
  std::string msg = what + " (" + tjGetErrorStr2(t_decompressor.h) + ")";
  tjDestroy(t_decompressor.h);
  t_decompressor.h = nullptr;
  return ImageError(path, msg);
}

struct File {
  std::FILE* f = nullptr;
  ~File() {
    if (f) std::fclose(f);
  }
};

std::string errno_text() { return std::strerror(errno); }

void decode_jpeg(const std::vector<std::uint8_t>& bytes, const std::string& path, Image& out) {
  tjhandle h = decompressor();
  int w = 0, hgt = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(h, bytes.data(), (unsigned long)bytes.size(), &w, &hgt, &subsamp, &colorspace) != 0)
    throw jpeg_error(path, "not a readable JPEG");
  if (w <= 0 || hgt <= 0) throw ImageError(path, "JPEG with an empty size");
  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  const int channels = cmyk ? 4 : 3;
  std::vector<std::uint8_t> cmyk_buf;
  out.width = w;
  out.height = hgt;
  out.rgb.resize(std::size_t(w) * std::size_t(hgt) * 3);
  unsigned char* dst = out.rgb.data();
  if (cmyk) {
    cmyk_buf.resize(std::size_t(w) * std::size_t(hgt) * 4);
    dst = cmyk_buf.data();
  }
  const int rc = tjDecompress2(h, bytes.data(), (unsigned long)bytes.size(), dst, w, w * channels, hgt,
                               cmyk ? TJPF_CMYK : TJPF_RGB, 0);
  if (rc != 0) {
    // Warnings (e.g. extraneous bytes before a marker) leave a usable image,
    // as PIL accepts them; a fatal error or a truncated file does not.
    const std::string msg = tjGetErrorStr2(h);
    if (tjGetErrorCode(h) == TJERR_FATAL || msg.find("Premature end") != std::string::npos)
      throw jpeg_error(path, "corrupt or truncated JPEG");
  }
  if (cmyk) {  // Adobe-style inverted CMYK, as Photoshop writes it
    const std::size_t n = std::size_t(w) * std::size_t(hgt);
    for (std::size_t i = 0; i < n; ++i) {
      const unsigned k = cmyk_buf[4 * i + 3];
      for (int c = 0; c < 3; ++c) out.rgb[3 * i + std::size_t(c)] = std::uint8_t(cmyk_buf[4 * i + std::size_t(c)] * k / 255);
    }
  }
}

void decode_png(const std::vector<std::uint8_t>& bytes, const std::string& path, Image& out) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, bytes.data(), bytes.size()))
    throw ImageError(path, std::string("not a readable PNG (") + img.message + ")");
  img.format = PNG_FORMAT_RGB;
  if (img.width == 0 || img.height == 0) {
    png_image_free(&img);
    throw ImageError(path, "PNG with an empty size");
  }
  out.width = int(img.width);
  out.height = int(img.height);
  out.rgb.resize(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, out.rgb.data(), 0, nullptr)) {
    const std::string msg = img.message;
    png_image_free(&img);
    throw ImageError(path, "corrupt or truncated PNG (" + msg + ")");
  }
}

// torchvision's CenterCrop fallback of RandomResizedCrop: the whole image
// with its aspect ratio clamped to [3/4, 4/3].
CropBox clamped_whole(int width, int height) {
  const double ratio = double(width) / double(height);
  double w = width, h = height;
  if (ratio < 3.0 / 4.0) h = std::round(w / (3.0 / 4.0));
  else if (ratio > 4.0 / 3.0) w = std::round(h * (4.0 / 3.0));
  return {std::floor((width - w) / 2.0), std::floor((height - h) / 2.0), w, h, false};
}

// Per output pixel of one axis: the first source pixel and the normalised
// weights of the triangle filter, widened by the scale when shrinking.
struct Taps {
  std::vector<int> first, count;
  std::vector<float> weights;  // count.size() x max_taps
  int max_taps = 0;
};

Taps make_taps(double start, double length, int in_size, int out_size) {
  Taps t;
  const double scale = length / out_size, support = std::max(scale, 1.0);
  t.max_taps = int(std::ceil(support)) * 2 + 1;
  t.first.resize(std::size_t(out_size));
  t.count.resize(std::size_t(out_size));
  t.weights.assign(std::size_t(out_size) * std::size_t(t.max_taps), 0.0f);
  for (int i = 0; i < out_size; ++i) {
    const double center = start + (i + 0.5) * scale;
    int lo = std::max(int(std::floor(center - support + 0.5)), 0);
    int hi = std::min(int(std::floor(center + support + 0.5)), in_size);
    if (hi <= lo) {  // a box entirely outside the image: nearest edge pixel
      lo = std::clamp(int(center), 0, in_size - 1);
      hi = lo + 1;
    }
    hi = std::min(hi, lo + t.max_taps);
    float* w = &t.weights[std::size_t(i) * std::size_t(t.max_taps)];
    double sum = 0;
    for (int j = lo; j < hi; ++j) {
      const double x = std::abs((j + 0.5 - center) / support);
      w[j - lo] = float(x < 1 ? 1 - x : 0);
      sum += w[j - lo];
    }
    if (sum <= 0) {
      w[0] = 1;
      hi = lo + 1;
      sum = 1;
    }
    for (int j = lo; j < hi; ++j) w[j - lo] = float(w[j - lo] / sum);
    t.first[std::size_t(i)] = lo;
    t.count[std::size_t(i)] = hi - lo;
  }
  return t;
}

}  // namespace

ImageFormat sniff_format(const std::uint8_t* p, std::size_t n) {
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return ImageFormat::jpeg;
  static const std::uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (n >= 8 && std::memcmp(p, png_sig, 8) == 0) return ImageFormat::png;
  return ImageFormat::unknown;
}

std::vector<std::uint8_t> read_file_bytes(const std::string& path, std::size_t limit) {
  File f{std::fopen(path.c_str(), "rb")};
  if (!f.f) throw ImageError(path, "cannot open (" + errno_text() + ")");
  std::vector<std::uint8_t> out;
  if (std::fseek(f.f, 0, SEEK_END) != 0) throw ImageError(path, "cannot read (" + errno_text() + ")");
  const long size = std::ftell(f.f);
  if (size < 0 || std::fseek(f.f, 0, SEEK_SET) != 0) throw ImageError(path, "cannot read (" + errno_text() + ")");
  std::size_t n = std::size_t(size);
  if (limit > 0) n = std::min(n, limit);
  out.resize(n);
  if (n > 0 && std::fread(out.data(), 1, n, f.f) != n) throw ImageError(path, "cannot read (" + errno_text() + ")");
  return out;
}

void decode_image(const std::vector<std::uint8_t>& bytes, const std::string& path, Image& out) {
  switch (sniff_format(bytes.data(), bytes.size())) {
    case ImageFormat::jpeg: return decode_jpeg(bytes, path, out);
    case ImageFormat::png: return decode_png(bytes, path, out);
    case ImageFormat::unknown: break;
  }
  throw ImageError(path, bytes.empty() ? "empty file" : "neither a JPEG nor a PNG file");
}

Image load_image(const std::string& path) {
  Image im;
  decode_image(read_file_bytes(path), path, im);
  return im;
}

void check_image_header(const std::string& path) {
  constexpr std::size_t kFirst = 16 * 1024;
  auto bytes = read_file_bytes(path, kFirst);
  switch (sniff_format(bytes.data(), bytes.size())) {
    case ImageFormat::png: {
      // Signature, then the IHDR chunk: length 13, "IHDR", width, height.
      if (bytes.size() < 24 || std::memcmp(&bytes[12], "IHDR", 4) != 0)
        throw ImageError(path, "PNG without an IHDR header");
      auto be = [&](std::size_t at) {
        return std::uint32_t(bytes[at]) << 24 | std::uint32_t(bytes[at + 1]) << 16 |
               std::uint32_t(bytes[at + 2]) << 8 | std::uint32_t(bytes[at + 3]);
      };
      if (be(16) == 0 || be(20) == 0) throw ImageError(path, "PNG with an empty size");
      return;
    }
    case ImageFormat::jpeg: {
      std::string why;
      auto header_ok = [&] {
        int w = 0, hgt = 0, subsamp = 0, cs = 0;
        if (tjDecompressHeader3(decompressor(), bytes.data(), (unsigned long)bytes.size(), &w, &hgt, &subsamp,
                                &cs) == 0)
          return w > 0 && hgt > 0;
        why = jpeg_error(path, "not a readable JPEG").reason;  // also resets the handle
        return false;
      };
      if (header_ok()) return;
      if (bytes.size() == kFirst) {  // the frame header may follow large metadata
        bytes = read_file_bytes(path);
        if (header_ok()) return;
      }
      throw ImageError(path, why.empty() ? "JPEG with an empty size" : why);
    }
    case ImageFormat::unknown: break;
  }
  throw ImageError(path, bytes.empty() ? "empty file" : "neither a JPEG nor a PNG file");
}

void write_jpeg(const std::string& path, const Image& im, int quality) {
  std::unique_ptr<void, int (*)(tjhandle)> h(tjInitCompress(), tjDestroy);
  if (!h) throw std::runtime_error("TurboJPEG: cannot create a compressor");
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  if (tjCompress2(h.get(), im.rgb.data(), im.width, im.width * 3, im.height, TJPF_RGB, &buf, &size, TJSAMP_420,
                  quality, 0) != 0) {
    if (buf) tjFree(buf);
    throw UserError("cannot encode JPEG " + path + ": " + tjGetErrorStr2(h.get()));
  }
  File f{std::fopen(path.c_str(), "wb")};
  const bool ok = f.f && std::fwrite(buf, 1, size, f.f) == size;
  tjFree(buf);
  if (!ok) throw UserError("cannot write " + path + " (" + errno_text() + ")");
}

void write_png(const std::string& path, const Image& im) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = png_uint_32(im.width);
  img.height = png_uint_32(im.height);
  img.format = PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&img, path.c_str(), 0, im.rgb.data(), 0, nullptr))
    throw UserError("cannot write PNG " + path + ": " + img.message);
}

CropBox random_resized_crop(int width, int height, Rng& rng) {
  const double area = double(width) * double(height);
  const double log_lo = std::log(3.0 / 4.0), log_hi = std::log(4.0 / 3.0);
  CropBox box;
  bool found = false;
  for (int attempt = 0; attempt < 10 && !found; ++attempt) {
    const double target = area * (0.08 + rng.uniform() * (1.0 - 0.08));
    const double ratio = std::exp(log_lo + rng.uniform() * (log_hi - log_lo));
    const int w = int(std::lround(std::sqrt(target * ratio)));
    const int h = int(std::lround(std::sqrt(target / ratio)));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      box = {double(rng.below(std::uint64_t(width - w + 1))), double(rng.below(std::uint64_t(height - h + 1))),
             double(w), double(h), false};
      found = true;
    }
  }
  if (!found) box = clamped_whole(width, height);
  box.flip = rng.below(2) == 1;
  return box;
}

CropBox center_crop(int width, int height, int size) {
  // The shorter side becomes size * 256 / 224 (PIL's Resize truncates the longer side).
  const double resized_short = std::floor(size * 256.0 / 224.0);
  const double scale = double(std::min(width, height)) / resized_short;  // source pixels per resized pixel
  const double rw = width <= height ? resized_short : std::floor(resized_short * width / height);
  const double rh = width <= height ? std::floor(resized_short * height / width) : resized_short;
  // Python's round() (half to even), as CenterCrop computes the offsets.
  const double left = std::nearbyint((rw - size) / 2.0), top = std::nearbyint((rh - size) / 2.0);
  return {left * scale, top * scale, size * scale, size * scale, false};
}

void resample_normalise(const Image& im, const CropBox& box, int size, const float mean[3], const float stddev[3],
                        float* out) {
  const Taps tx = make_taps(box.x, box.w, im.width, size);
  const Taps ty = make_taps(box.y, box.h, im.height, size);
  // Rows of the source the vertical pass reads.
  int row_lo = im.height, row_hi = 0;
  for (int i = 0; i < size; ++i) {
    row_lo = std::min(row_lo, ty.first[std::size_t(i)]);
    row_hi = std::max(row_hi, ty.first[std::size_t(i)] + ty.count[std::size_t(i)]);
  }
  thread_local std::vector<float> tmp;  // (row_hi - row_lo) x size x 3
  tmp.resize(std::size_t(row_hi - row_lo) * std::size_t(size) * 3);
  for (int r = row_lo; r < row_hi; ++r) {
    const std::uint8_t* src = &im.rgb[std::size_t(r) * std::size_t(im.width) * 3];
    float* dst = &tmp[std::size_t(r - row_lo) * std::size_t(size) * 3];
    for (int i = 0; i < size; ++i) {
      const float* w = &tx.weights[std::size_t(i) * std::size_t(tx.max_taps)];
      const std::uint8_t* s = src + std::size_t(tx.first[std::size_t(i)]) * 3;
      float a = 0, b = 0, c = 0;
      for (int k = 0; k < tx.count[std::size_t(i)]; ++k, s += 3) {
        a += w[k] * s[0];
        b += w[k] * s[1];
        c += w[k] * s[2];
      }
      dst[3 * i] = a;
      dst[3 * i + 1] = b;
      dst[3 * i + 2] = c;
    }
  }
  float scale[3], shift[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.0f / (255.0f * stddev[c]);
    shift[c] = -mean[c] / stddev[c];
  }
  const std::size_t plane = std::size_t(size) * std::size_t(size), row = std::size_t(size) * 3;
  thread_local std::vector<float> acc;
  acc.resize(row);
  for (int o = 0; o < size; ++o) {
    const float* w = &ty.weights[std::size_t(o) * std::size_t(ty.max_taps)];
    const int first = ty.first[std::size_t(o)] - row_lo, count = ty.count[std::size_t(o)];
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int k = 0; k < count; ++k) {
      const float* s = &tmp[std::size_t(first + k) * row];
      const float wk = w[k];
      for (std::size_t e = 0; e < row; ++e) acc[e] += wk * s[e];
    }
    float* dst = out + std::size_t(o) * std::size_t(size);
    for (int i = 0; i < size; ++i) {
      const int col = box.flip ? size - 1 - i : i;
      for (int c = 0; c < 3; ++c) dst[std::size_t(c) * plane + std::size_t(col)] = acc[3 * std::size_t(i) + std::size_t(c)] * scale[c] + shift[c];
    }
  }
}

}  // namespace resist::runtime
