#include "schedule/json_util.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>

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

json read_file(const std::string& path, const std::string& flag) {
  std::ifstream in(path);
  if (!in) throw UserError(flag + ": cannot read '" + path + "'");
  try {
    return json::parse(in);
  } catch (const json::parse_error& e) {
    throw UserError(flag + ": '" + path + "' is not valid JSON (" + e.what() + ")");
  }
}

}  // namespace resist::json_util
