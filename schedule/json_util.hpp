#pragma once
// Reading JSON files strictly: every failure is a UserError naming the JSON
// path ("rounds[1].sync[0].ranks[0]: must be in 0..3 (got 9)"). Writing them
// atomically (temporary file + rename), so no half-written file is left.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/error.hpp"

namespace resist::json_util {

using json = nlohmann::json;

struct Reader {
  const json& j;
  std::string path;

  [[noreturn]] void fail(const std::string& what) const;
  bool has(const std::string& key) const { return j.is_object() && j.contains(key); }
  Reader at(const std::string& key) const;
  Reader at(std::size_t i) const;
  std::size_t size() const;  // arrays only
  std::string str() const;
  std::int64_t integer(std::int64_t lo, std::int64_t hi) const;
  std::uint64_t uint() const;
  double number() const;
  double number(double lo, double hi) const;
  bool boolean() const;
  std::vector<int> ints(int lo, int hi) const;
  // One of `names` (the message lists them).
  std::string choice(const std::vector<std::string>& names) const;
};

constexpr std::int64_t kMaxInt = 2147483647;

// Checks {"format": format, "version": version}.
void expect_format(const Reader& root, const std::string& format, int version);

// Writes text to path via path.tmp + rename; throws UserError naming `flag`.
void write_atomic(const std::string& path, const std::string& text, const std::string& flag = "--out");
// Parses a JSON file; throws UserError naming `flag` and the path.
json read_file(const std::string& path, const std::string& flag);

}  // namespace resist::json_util
