// Fuzzing the four file formats users hand to resist (platform, profile,
// study, schedule): seeded mutations of a valid file, each fed to the real
// program that reads it. Every run must end with exit 0 or 2 (never a
// signal, never 1), one line on stderr when it exits 2, and nothing left in
// its output directory when it exits 2.
//
// RESIST_FUZZ_CASES=N sets the mutations per format (default 250; the IST
// schedule, a second schedule base, gets half);
// RESIST_FUZZ_SEED=S the seed (default 16).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/spec.hpp"
#include "schedule/profile.hpp"
#include "tests/support/process.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using resist::test::bin;
using resist::test::run;
using resist::test::TempDir;

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

const int kCases = env_int("RESIST_FUZZ_CASES", 250);
const std::uint64_t kSeed = std::uint64_t(env_int("RESIST_FUZZ_SEED", 16));

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// Every value in a JSON document, as JSON pointers.
void pointers(const json& j, const json::json_pointer& at, std::vector<json::json_pointer>& out) {
  out.push_back(at);
  if (j.is_object())
    for (const auto& [k, v] : j.items()) pointers(v, at / k, out);
  else if (j.is_array())
    for (std::size_t i = 0; i < j.size(); ++i) pointers(j[i], at / i, out);
}

class Mutator {
 public:
  Mutator(std::string text, std::uint64_t seed) : text_(std::move(text)), doc_(json::parse(text_)), rng_(seed) {
    pointers(doc_, json::json_pointer(), all_);
    for (const auto& p : all_)
      if (doc_.at(p).is_number_integer()) ints_.push_back(p);
  }

  // One mutated file and what was done (for failure messages).
  std::pair<std::string, std::string> next() {
    switch (pick(10)) {
      case 0: return {text_.substr(0, pick(text_.size())), "truncated"};
      case 1: return flip_bytes();
      case 2: return deep_nesting();
      case 3: return padding();
      case 4: return pick(2) ? std::make_pair("\xEF\xBB\xBF" + text_, std::string("BOM"))
                             : std::make_pair(insert_at(std::string(1 + pick(3), '\0')), std::string("NUL"));
      case 5: return number_text();
      case 6: return delete_key();
      case 7: return swap_type();
      default: return out_of_range_int();
    }
  }

 private:
  std::string text_;
  json doc_;
  std::mt19937_64 rng_;
  std::vector<json::json_pointer> all_, ints_;

  std::size_t pick(std::size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }
  std::string insert_at(const std::string& what) {
    std::string t = text_;
    t.insert(pick(t.size() + 1), what);
    return t;
  }
  std::pair<std::string, std::string> flip_bytes() {
    std::string t = text_;
    const std::size_t n = 1 + pick(4);
    for (std::size_t i = 0; i < n; ++i) t[pick(t.size())] = char(pick(256));
    return {t, "flipped " + std::to_string(n) + " bytes"};
  }
  std::pair<std::string, std::string> deep_nesting() {
    const std::size_t depth = 1000 + pick(20000);
    json d = doc_;
    const auto& p = all_[pick(all_.size())];
    std::string nested = std::string(depth, '[') + "1" + std::string(depth, ']');
    if (p.empty()) return {nested, "nesting " + std::to_string(depth) + " deep"};
    d[p] = 0;
    std::string t = d.dump();
    // Replace the first "0" value written for p by the nest (a rough splice).
    const std::string key = p.back();
    const auto at = t.find("\"" + key + "\":0");
    if (at != std::string::npos) t.replace(at + key.size() + 3, 1, nested);
    return {t, "nesting " + std::to_string(depth) + " deep at " + p.to_string()};
  }
  std::pair<std::string, std::string> padding() {
    const std::size_t n = (1 + pick(8)) << 17;  // 128 KiB .. 1 MiB
    if (pick(2)) {  // whitespace between tokens
      const auto at = text_.find(',', pick(text_.size()));
      std::string t = text_;
      t.insert(at == std::string::npos ? 0 : at + 1, std::string(n, ' '));
      return {t, "padding " + std::to_string(n)};
    }
    json d = doc_;  // a huge string value
    const auto& p = all_[pick(all_.size())];
    d[p] = std::string(n, 'x');
    return {d.dump(), "huge string at " + p.to_string()};
  }
  std::pair<std::string, std::string> number_text() {
    static const char* kNumbers[] = {"1e400", "-1e400", "1e-400", "1e308", "-0", "18446744073709551616",
                                     "-9223372036854775809", "NaN", "Infinity", "0.5"};
    const std::string num = kNumbers[pick(std::size(kNumbers))];
    if (all_.size() < 2) return {num, "number " + num};
    json d = doc_;
    const auto& p = all_[1 + pick(all_.size() - 1)];
    d[p] = "@@NUMBER@@";
    std::string t = d.dump(1);
    t.replace(t.find("\"@@NUMBER@@\""), 12, num);
    return {t, "number " + num + " at " + p.to_string()};
  }
  std::pair<std::string, std::string> delete_key() {
    json d = doc_;
    for (int tries = 0; tries < 20; ++tries) {
      const auto& p = all_[pick(all_.size())];
      if (p.empty()) continue;
      d.at(p.parent_pointer()).is_object() ? (void)d.at(p.parent_pointer()).erase(p.back())
                                           : d.at(p.parent_pointer()).erase(std::stoul(p.back()));
      return {d.dump(1), "deleted " + p.to_string()};
    }
    return {text_, "unchanged"};
  }
  std::pair<std::string, std::string> swap_type() {
    static const json kValues[] = {"x", "", 0, -1, 1.5, 1e300, -1e300, true, nullptr, json::array(), json::object(),
                                   json::array({1, 2}), 9223372036854775807LL, 18446744073709551615ULL};
    json d = doc_;
    const auto& p = all_[pick(all_.size())];
    const json& v = kValues[pick(std::size(kValues))];
    d[p] = v;
    return {d.dump(1), "set " + p.to_string() + " = " + v.dump()};
  }
  std::pair<std::string, std::string> out_of_range_int() {
    static const long long kInts[] = {-1, 0, 1, 2, 3, 4, 7, 64, 1000, 65536, 2147483647, 2147483648LL, -2147483649LL,
                                      1LL << 40};
    if (ints_.empty()) return swap_type();
    json d = doc_;
    const auto& p = ints_[pick(ints_.size())];
    d[p] = kInts[pick(std::size(kInts))];
    return {d.dump(1), "set " + p.to_string() + " = " + d[p].dump()};
  }
};

std::string read_text(const fs::path& p) { return resist::test::read_text(p); }

bool empty_or_absent(const fs::path& dir) {
  std::error_code ec;
  return !fs::exists(dir, ec) || fs::is_empty(dir, ec);
}

// Runs `cases` mutations of `base` through command(file, out_dir).
void fuzz(const std::string& what, const std::string& base, std::uint64_t seed, int cases,
          const std::function<std::string(const std::string&, const std::string&)>& command,
          const fs::path& dir) {
  Mutator m(base, seed);
  int exits[3] = {0, 0, 0};
  for (int i = 0; i < cases; ++i) {
    const auto [text, how] = m.next();
    const fs::path file = dir / ("case-" + what + ".json");
    const fs::path out = dir / ("out-" + std::to_string(i));
    write_text(file, text);
    const auto r = run("exec timeout -s KILL 60 " + command(file.string(), out.string()));
    const std::string ctx = what + " case " + std::to_string(i) + " (" + how + ")";
    ASSERT_TRUE(r.code == 0 || r.code == 2) << ctx << ": exit " << r.code << "\n" << r.err.substr(0, 3000);
    ++exits[r.code];
    if (r.code == 2) {
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << ctx << ":\n" << r.err.substr(0, 3000);
      EXPECT_TRUE(empty_or_absent(out)) << ctx << ": output left in " << out;
    }
    fs::remove_all(out);
  }
  std::printf("%s: %d mutations, %d accepted, %d refused with exit 2\n", what.c_str(), cases, exits[0], exits[2]);
  EXPECT_GT(exits[2], cases / 4) << "most mutations should be refused";
}

const std::string sim = bin("sim/resist-sim");

// A platform exercising every section: fat-tree, speed factors, stragglers, network settings.
const char* kPlatform = R"({
  "format": "resist-platform", "version": 1, "name": "fuzz", "description": "two leaves",
  "nodes": 2, "gpus_per_node": 2,
  "gpu": {"flops": "10Tf", "iteration_overhead": "1ms", "optimizer_step_per_param": "0.03ns"},
  "intra": {"bandwidth": "25GBps", "latency": "5us"},
  "nic": {"bandwidth": "10Gbps", "latency": "25us"},
  "topology": {"kind": "fat-tree", "nodes_per_leaf": 1, "uplink": {"bandwidth": "100Gbps", "latency": "1us"}},
  "speed_factors": [1, 1, 0.5, 1],
  "straggler": {"probability": 0.5, "slowdown": 2, "seed": 3},
  "network": {"model": "CM02", "latency_factor": 1, "bandwidth_factor": 1, "crosstraffic": false, "tcp_gamma": 4194304}
})";

const std::string kSmallRun =
    " --model preact-resnet18 --base-width 8 --dataset cifar10 --min-depth 1 --batch-size 32 --local-iters 2";

}  // namespace

TEST(Fuzz, PlatformFiles) {
  TempDir dir;
  fuzz("platform", kPlatform, kSeed, kCases, [](const std::string& f, const std::string& out) {
    return sim + " run --platform " + f + kSmallRun + " --protocol resist --machines 4 --rounds 2 --out " + out;
  }, dir.path);
}

TEST(Fuzz, ProfileFiles) {
  TempDir dir;
  resist::ModelOptions m;
  m.model = "preact-resnet18";
  m.base_width = 8;
  m.dataset = "cifar10";
  const auto spec = resist::build_model(m);
  resist::Profile p;
  p.model = m;
  p.batch_size = 32;
  p.device = "cpu";
  p.threads = 1;
  for (const auto& b : spec.blocks) p.blocks.push_back({b.name, 1e-3, 2e-3});
  p.optimizer_step_s_per_param = 1e-9;
  p.iteration_overhead_s = 1e-3;
  fuzz("profile", resist::to_json(p).dump(1), kSeed + 1, kCases, [](const std::string& f, const std::string& out) {
    return sim + " run --profile " + f + kSmallRun + " --protocol resist --machines 2 --rounds 2 --out " + out;
  }, dir.path);
}

TEST(Fuzz, StudyFiles) {
  TempDir dir;
  write_text(dir.path / "platform.json", kPlatform);
  const json study = {{"format", "resist-study"}, {"version", 1}, {"kind", "paper-cifar"}, {"name", "fuzz"},
                      {"description", "a small grid"}, {"seed", 1},
                      {"model", {{"model", "preact-resnet18"}, {"base_width", 8}, {"dataset", "cifar10"}}},
                      {"protocols", {"local-sgd", "resist"}}, {"machines", {2}}, {"local_iters", {2}},
                      {"batch_size", 64}, {"min_depth", 1}, {"epochs", 1}, {"train_size", 512},
                      {"max_simulated_rounds", 2}, {"platform", "platform.json"},
                      {"platform_overrides", {"nic.bandwidth=1Gbps"}}};
  // No figures: the point is reading the file and running the study.
  fuzz("study", study.dump(1), kSeed + 2, kCases, [](const std::string& f, const std::string& out) {
    return "env RESIST_PYTHON=true " + bin("experiments/resist-study") + " run " + f + " --out " + out;
  }, dir.path);
}

TEST(Fuzz, ScheduleFiles) {
  TempDir dir;
  const auto base = dir.path / "base.json";
  const auto r = run(sim + " schedule" + kSmallRun + " --protocol resist --machines 3 --rounds 3 --eval-every 2 --out " +
                     base.string());
  ASSERT_EQ(r.code, 0) << r.err;
  fuzz("schedule", read_text(base), kSeed + 3, kCases, [](const std::string& f, const std::string&) {
    return sim + " schedule --check " + f;
  }, dir.path);
}

TEST(Fuzz, IstScheduleFiles) {
  TempDir dir;
  const auto base = dir.path / "base.json";
  const auto r = run(sim + " schedule --model mlp --dataset fashion-mnist --hidden 64,32 --protocol ist --machines 3 "
                           "--rounds 2 --eval-every 1 --local-iters 2 --out " + base.string());
  ASSERT_EQ(r.code, 0) << r.err;
  fuzz("ist-schedule", read_text(base), kSeed + 4, kCases / 2, [](const std::string& f, const std::string&) {
    return sim + " schedule --check " + f;
  }, dir.path);
}
