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
// An output directory that ends complete or as it was. Files are written
// into a staging folder inside it (DIR/.staging-PID) and moved into place by
// commit(); without commit() (an error half-way) the staging folder goes,
// and DIR too if this created it, so nothing half-written is left behind.
class OutputDir {
 public:
  explicit OutputDir(std::string dir, std::string flag = "--out");
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;
  const std::string& path() const { return dir_; }
  // Where to write DIR/name for now (its folder exists); moved by commit().
  std::string staged(const std::string& name);
  // Writes DIR/name (staged) atomically.
  void write(const std::string& name, const std::string& text);
  void commit();

 private:
  std::string dir_, flag_, stage_;
  std::vector<std::string> names_, created_;
  bool committed_ = false;
};

// Parses a JSON file; throws UserError naming `flag` and the path.
json read_file(const std::string& path, const std::string& flag);

}  // namespace resist::json_util
