#include "sim/units.hpp"

#include <cmath>
#include <utility>
#include <vector>

#include "models/error.hpp"

namespace resist::sim {

namespace {

using Suffixes = std::vector<std::pair<const char*, double>>;

const Suffixes& suffixes(Unit unit) {
  static const Suffixes bandwidth = {
      {"bps", 1.0 / 8},  {"kbps", 1e3 / 8},  {"Mbps", 1e6 / 8},  {"Gbps", 1e9 / 8},  {"Tbps", 1e12 / 8},
      {"Bps", 1.0},      {"kBps", 1e3},      {"KBps", 1e3},      {"MBps", 1e6},      {"GBps", 1e9},
      {"TBps", 1e12},    {"KiBps", 1024.0},  {"MiBps", 1048576.0}, {"GiBps", 1073741824.0}};
  static const Suffixes time = {{"s", 1.0}, {"ms", 1e-3}, {"us", 1e-6}, {"ns", 1e-9}, {"min", 60.0}};
  static const Suffixes flops = {{"f", 1.0},    {"kf", 1e3},      {"Mf", 1e6},      {"Gf", 1e9},
                                 {"Tf", 1e12},  {"Pf", 1e15},     {"flops", 1.0},   {"GFLOPS", 1e9},
                                 {"TFLOPS", 1e12}, {"PFLOPS", 1e15}, {"Gflops", 1e9}, {"Tflops", 1e12}};
  static const Suffixes bytes = {{"B", 1.0},           {"kB", 1e3},           {"KB", 1e3},
                                 {"MB", 1e6},          {"GB", 1e9},           {"KiB", 1024.0},
                                 {"MiB", 1048576.0},   {"GiB", 1073741824.0}};
  switch (unit) {
    case Unit::bandwidth: return bandwidth;
    case Unit::time: return time;
    case Unit::flops: return flops;
    case Unit::bytes: return bytes;
  }
  return bytes;
}

}  // namespace

double parse_quantity(const std::string& text, Unit unit, const std::string& what) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    throw UserError(what + ": '" + text + "' is not a number with a unit (e.g. 10Gbps, 1.25GBps, 50us, 15Tf, 4MiB)");
  }
  const std::string suffix = text.substr(used);
  if (suffix.empty()) return v;
  std::string accepted;
  for (const auto& [name, scale] : suffixes(unit)) {
    if (suffix == name) return v * scale;
    accepted += (accepted.empty() ? "" : ", ") + std::string(name);
  }
  throw UserError(what + ": unknown unit '" + suffix + "' in '" + text + "' (accepted: " + accepted + ")");
}

std::uint64_t parse_bytes(const std::string& text, const std::string& what) {
  const double v = parse_quantity(text, Unit::bytes, what);
  if (!(v >= 0) || v > 1e18 || v != std::floor(v))
    throw UserError(what + ": must be a whole number of bytes >= 0 (got '" + text + "')");
  return std::uint64_t(v);
}

}  // namespace resist::sim
