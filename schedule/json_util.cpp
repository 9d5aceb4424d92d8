#include "schedule/json_util.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace resist::json_util {

void Reader::fail(const std::string& what) const { throw UserError((path.empty() ? "(top level)" : path) + ": " + what); }

Reader Reader::at(const std::string& key) const {
  if (!j.is_object()) fail("must be an object");
  const std::string p = path.empty() ? key : path + "." + key;
  auto it = j.find(key);
  if (it == j.end()) throw UserError(p + ": missing");
  return {*it, p};
}

Reader Reader::at(std::size_t i) const { return {j.at(i), path + "[" + std::to_string(i) + "]"}; }

std::size_t Reader::size() const {
  if (!j.is_array()) fail("must be an array");
  return j.size();
}

std::string Reader::str() const {
  if (!j.is_string()) fail("must be a string");
  return j.get<std::string>();
}

std::int64_t Reader::integer(std::int64_t lo, std::int64_t hi) const {
  if (!j.is_number_integer()) fail("must be an integer");
  if (j.is_number_unsigned() && j.get<std::uint64_t>() > std::uint64_t(hi))
    fail("must be in " + std::to_string(lo) + ".." + std::to_string(hi));
  const auto v = j.get<std::int64_t>();
  if (v < lo || v > hi)
    fail("must be in " + std::to_string(lo) + ".." + std::to_string(hi) + " (got " + std::to_string(v) + ")");
  return v;
}

std::uint64_t Reader::uint() const {
  if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<std::int64_t>() >= 0))
    fail("must be a non-negative integer");
  return j.get<std::uint64_t>();
}

double Reader::number() const {
  if (!j.is_number()) fail("must be a number");
  return j.get<double>();
}

double Reader::number(double lo, double hi) const {
  const double v = number();
  if (!(v >= lo && v <= hi)) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "must be in %g..%g (got %g)", lo, hi, v);
    fail(buf);
  }
  return v;
}

bool Reader::boolean() const {
  if (!j.is_boolean()) fail("must be true or false");
  return j.get<bool>();
}

std::vector<int> Reader::ints(int lo, int hi) const {
  std::vector<int> v(size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = int(at(i).integer(lo, hi));
  return v;
}

std::string Reader::choice(const std::vector<std::string>& names) const {
  const std::string s = str();
  std::string accepted;
  for (const auto& n : names) {
    if (n == s) return s;
    accepted += (accepted.empty() ? "" : ", ") + n;
  }
  fail("unknown value '" + s + "' (accepted: " + accepted + ")");
}

void expect_format(const Reader& root, const std::string& format, int version) {
  if (!root.j.is_object()) root.fail("must be a JSON object");
  const std::string f = root.at("format").str();
  if (f != format) root.at("format").fail("must be \"" + format + "\" (got \"" + f + "\")");
  const auto v = root.at("version").integer(0, kMaxInt);
  if (v != version)
    root.at("version").fail("unsupported version " + std::to_string(v) + " (accepted: " + std::to_string(version) + ")");
}

void write_atomic(const std::string& path, const std::string& text, const std::string& flag) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw UserError(flag + ": cannot write '" + path + "'");
    out << text;
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      throw UserError(flag + ": cannot write '" + path + "'");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw UserError(flag + ": cannot write '" + path + "' (" + ec.message() + ")");
  }
}

namespace {
// Creates path and its parents; returns the ones that did not exist, outermost first.
std::vector<std::string> make_dirs(const std::string& path, const std::string& flag) {
  namespace fs = std::filesystem;
  std::vector<std::string> missing;
  std::error_code ec;
  for (fs::path p = fs::path(path).lexically_normal(); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.insert(missing.begin(), p.string());
    if (p == p.parent_path()) break;
  }
  fs::create_directories(path, ec);
  if (ec || !fs::is_directory(path, ec))
    throw UserError(flag + ": cannot create directory '" + path + "'" + (ec ? " (" + ec.message() + ")" : ""));
  return missing;
}
}  // namespace

OutputDir::OutputDir(std::string dir, std::string flag) : dir_(std::move(dir)), flag_(std::move(flag)) {
  created_ = make_dirs(dir_, flag_);
  stage_ = dir_ + "/.staging-" + std::to_string(::getpid());
  make_dirs(stage_, flag_);
}

OutputDir::~OutputDir() {
  std::error_code ec;
  std::filesystem::remove_all(stage_, ec);
  if (committed_) return;
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) std::filesystem::remove(*it, ec);  // if empty
}

std::string OutputDir::staged(const std::string& name) {
  const std::filesystem::path p = std::filesystem::path(stage_) / name;
  make_dirs(p.parent_path().string(), flag_);
  // A name staged twice is written twice (the last write stays) and moved once.
  if (std::find(names_.begin(), names_.end(), name) == names_.end()) names_.push_back(name);
  return p.string();
}

void OutputDir::write(const std::string& name, const std::string& text) { write_atomic(staged(name), text, flag_); }

void OutputDir::commit() {
  namespace fs = std::filesystem;
  for (const auto& name : names_) {
    const fs::path to = fs::path(dir_) / name;
    make_dirs(to.parent_path().string(), flag_);
    std::error_code ec;
    fs::rename(fs::path(stage_) / name, to, ec);
    if (ec) throw UserError(flag_ + ": cannot write '" + to.string() + "' (" + ec.message() + ")");
  }
  committed_ = true;
}

json read_file(const std::string& path, const std::string& flag) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw UserError(flag + ": '" + path + "' is a directory (a JSON file is needed)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(flag + ": cannot read '" + path + "'");
  std::string text;
  try {
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::exception&) {
    throw UserError(flag + ": cannot read '" + path + "'");
  }
  if (in.bad()) throw UserError(flag + ": cannot read '" + path + "'");
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    // parse errors and out-of-range numbers such as 1e400 alike
    throw UserError(flag + ": '" + path + "' is not valid JSON (" + e.what() + ")");
  }
}

}  // namespace resist::json_util
