// resist-study: runs what-if studies (experiments/studies/*.json) and writes
// results, a report and figures.
//   resist-study run FILE.json [FILE.json ...] --out DIR
//   resist-study run --all [--studies DIR] --out DIR
// The study kinds are in study.cpp (validate, the real runs, in validate.cpp);
// the simulated grid that paper-cifar, what-if and scale share with
// `resist-sim sweep` is tools/grid.hpp.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/study.hpp"
#include "models/error.hpp"
#include "tools/cli.hpp"
#include "schedule/json_util.hpp"

namespace fs = std::filesystem;
using namespace resist;

namespace {

const char* kUsage =
    "usage: resist-study run STUDY.json [STUDY.json ...] --out DIR\n"
    "       resist-study run --all [--studies DIR] [--skip KIND] --out DIR\n"
    "       ... [--jobs N] [--shard K/N]\n"
    "       resist-study merge --out DIR SHARD_DIR [SHARD_DIR ...]\n\n"
    "Runs what-if studies (see docs/studies.md): writes CSV/JSON results, report.md and figures (PNG, SVG) under\n"
    "DIR (one subdirectory per study when there are several), prints the headline tables and the report's path.\n"
    "--all runs every study in --studies (default: the source tree's experiments/studies); `validate` is skipped\n"
    "when the LibTorch runtime is not built. --skip KIND (repeatable) leaves a kind out of --all.\n"
    "--jobs N simulates a grid's configurations in N processes (default: the machine's cores); the results are\n"
    "those of --jobs 1. --shard K/N runs only the K-th of N slices of every simulated grid (paper-cifar, what-if,\n"
    "scale) into DIR (no report); `merge` joins the N shard directories into DIR with the same report as one run\n"
    "(kinds that are not grids, table1 and validate, run during the merge).\n";

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// "K/N" with 1 <= K <= N.
std::pair<int, int> parse_shard(const std::string& text) {
  int k = 0, n = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%d/%d%c", &k, &n, &tail) != 2 || n < 1 || n > 100000 || k < 1 || k > n)
    throw UserError("--shard: '" + text + "' is not K/N with 1 <= K <= N (e.g. 3/8)");
  return {k - 1, n};
}

int parse_jobs(const std::string& text) {
  char* end = nullptr;
  const long j = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != 0 || j < 1 || j > 4096)
    throw UserError("--jobs: '" + text + "' is not a number of processes in 1..4096");
  return int(j);
}

// merge: the shard directories' shard.json, all of one run split N ways.
// Returns the study files to read; `given` gets them as the first run was given
// them (the report names them so).
std::vector<std::string> read_shards(const std::vector<std::string>& dirs, bool& all, std::vector<std::string>& given) {
  std::vector<std::string> files;
  std::vector<bool> seen;
  for (const auto& d : dirs) {
    const auto j = json_util::read_file(d + "/shard.json", "merge");
    const auto these = j.at("studies").get<std::vector<std::string>>();
    const int k = j.at("shard").get<int>(), n = j.at("shards").get<int>();
    if (seen.empty()) {
      seen.assign(std::size_t(n), false), files = these, all = j.at("all").get<bool>();
      given = j.at("given").get<std::vector<std::string>>();
    }
    if (int(seen.size()) != n || these != files)
      throw UserError("merge: " + d + " is a shard of another run (its studies or N differ from the first)");
    if (seen[std::size_t(k - 1)]) throw UserError("merge: " + d + ": shard " + std::to_string(k) + " given twice");
    seen[std::size_t(k - 1)] = true;
  }
  for (std::size_t k = 0; k < seen.size(); ++k)
    if (!seen[k]) throw UserError("merge: shard " + std::to_string(k + 1) + "/" + std::to_string(seen.size()) + " is missing");
  return files;
}

// --shard K/N: what merge needs to find the other shards' studies (absolute
// paths to read them, the paths as given for the report).
void write_shard_manifest(const std::string& out, const std::vector<std::string>& files, bool all,
                          std::pair<int, int> shard) {
  fs::create_directories(out);
  std::vector<std::string> abs;
  for (const auto& f : files) abs.push_back(fs::absolute(f).lexically_normal().string());
  const nlohmann::json j = {{"format", "resist-study-shard-run"}, {"version", 1}, {"studies", abs}, {"given", files},
                            {"all", all}, {"shard", shard.first + 1}, {"shards", shard.second}};
  json_util::write_atomic(out + "/shard.json", j.dump(1) + "\n");
}

struct Args {
  bool merge = false, all = false, help = false;
  std::vector<std::string> files, skip, shard_dirs, given;
  std::string out, studies_dir = std::string(RESIST_SOURCE_DIR) + "/experiments/studies";
  int jobs = std::max(1, int(::sysconf(_SC_NPROCESSORS_ONLN)));
  std::pair<int, int> shard{0, 1};  // K-1, N
};

void check_skip(const std::string& k);  // below

Args parse_args(int argc, char** argv) {
  Args g;
  g.merge = std::strcmp(argv[1], "merge") == 0;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) throw UserError(std::string(flag) + ": needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") g.help = true;
    else if (a == "--out") g.out = value("--out");
    else if (a == "--all") g.all = true;
    else if (a == "--studies") g.studies_dir = value("--studies");
    else if (a == "--skip") {
      g.skip.push_back(value("--skip"));
      check_skip(g.skip.back());
    }
    else if (a == "--jobs") g.jobs = parse_jobs(value("--jobs"));
    else if (a == "--shard" && !g.merge) g.shard = parse_shard(value("--shard"));
    else if (a.rfind("--", 0) == 0)
      throw UserError(a + ": unknown option (accepted: --out, --all, --studies, --skip, --jobs, --shard, --help)");
    else if (g.merge) g.shard_dirs.push_back(a);
    else g.files.push_back(a);
  }
  if (g.help) return g;
  if (g.merge) {
    if (g.shard_dirs.empty()) throw UserError("merge: give the shard directories (the --out of each --shard K/N run)");
    g.files = read_shards(g.shard_dirs, g.all, g.given);
  }
  if (g.out.empty()) throw UserError("--out: required (a directory for results, report and figures)");
  if (!g.merge && g.all == !g.files.empty()) throw UserError("run: give study files or --all (not both, not neither)");
  if (g.all && !g.merge) {
    if (!fs::is_directory(g.studies_dir)) throw UserError("--studies: '" + g.studies_dir + "' is not a directory");
    for (const auto& e : fs::directory_iterator(g.studies_dir))
      if (e.path().extension() == ".json") g.files.push_back(e.path().string());
    if (g.files.empty()) throw UserError("--studies: no *.json in '" + g.studies_dir + "'");
  }
  return g;
}

// Every path under dir (none when it does not exist).
std::set<std::string> snapshot(const std::string& dir) {
  std::set<std::string> paths;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    paths.insert(it->path().string());
  return paths;
}

// After a failure: removes what appeared under dir since `before`, and dir
// itself when it did not exist, so a failed run leaves no half-written output.
void roll_back(const std::string& dir, bool existed, const std::set<std::string>& before) {
  std::error_code ec;
  if (!existed) {
    fs::remove_all(dir, ec);
    return;
  }
  std::vector<std::string> fresh;
  for (const auto& p : snapshot(dir))
    if (!before.count(p)) fresh.push_back(p);
  for (auto it = fresh.rbegin(); it != fresh.rend(); ++it) fs::remove_all(*it, ec);
}

// --skip KIND: a kind the runner knows.
void check_skip(const std::string& k) {
  std::string accepted;
  for (auto kind : {study::Kind::table1, study::Kind::paper_cifar, study::Kind::what_if, study::Kind::scale,
                    study::Kind::validate, study::Kind::protocol_grid, study::Kind::layer_parallel,
                    study::Kind::convergence, study::Kind::validate_grid}) {
    if (k == study::to_string(kind)) return;
    accepted += (accepted.empty() ? "" : ", ") + std::string(study::to_string(kind));
  }
  throw UserError("--skip: unknown study kind '" + k + "' (accepted: " + accepted + ")");
}

int run_studies(const std::vector<study::Study>& studies, const Args& g, const study::Paths& paths);

int run(int argc, char** argv) {
  const Args g = parse_args(argc, argv);
  if (g.help) {
    std::cout << kUsage;
    return 0;
  }
  const bool merge = g.merge, all = g.all;
  const auto& files = g.files;
  const auto& skip = g.skip;
  const auto& given = g.given;
  const auto& out = g.out;
  const auto shard = g.shard;
  const int jobs = g.jobs;
  study::Paths paths;
  paths.analysis_dir = env_or("RESIST_ANALYSIS_DIR", std::string(RESIST_SOURCE_DIR) + "/analysis");
  paths.python = env_or("RESIST_PYTHON", "/usr/bin/python3");
  paths.runtime_dir = env_or("RESIST_RUNTIME_DIR", std::string(RESIST_BINARY_DIR) + "/runtime");

  // Read and check everything before running anything.
  std::vector<study::Study> studies;
  for (std::size_t i = 0; i < files.size(); ++i) {
    study::Study s = study::read_study(files[i]);
    if (merge && i < given.size()) s.path = given[i];
    if (std::find(skip.begin(), skip.end(), study::to_string(s.kind)) != skip.end()) continue;
    s.jobs = jobs;
    std::tie(s.shard, s.shards) = shard;
    studies.push_back(std::move(s));
  }
  if (shard.second > 1) write_shard_manifest(out, files, all, shard);
  std::stable_sort(studies.begin(), studies.end(), [](const auto& a, const auto& b) {
    return a.kind != b.kind ? a.kind < b.kind : a.name < b.name;
  });
  for (std::size_t i = 0; i < studies.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (studies[i].name == studies[j].name)
        throw UserError(studies[i].path + ": name: '" + studies[i].name + "' is also the name of " + studies[j].path);
  for (const auto& s : studies)
    if (study::needs_runtime(s.kind) && !all && !study::runtime_available(paths))
      throw UserError(s.path + ": kind: " + study::to_string(s.kind) +
                      " needs the LibTorch runtime (resist-train, resist-launch in '" + paths.runtime_dir +
                      "'), which is not built");

  const bool existed = fs::exists(out);
  const std::set<std::string> before = snapshot(out);
  try {
    return run_studies(studies, g, paths);
  } catch (...) {
    roll_back(out, existed, before);
    throw;
  }
}

int run_studies(const std::vector<study::Study>& given_studies, const Args& g, const study::Paths& paths) {
  std::vector<study::Study> studies = given_studies;
  const bool merge = g.merge;
  const auto& shard_dirs = g.shard_dirs;
  const auto& out = g.out;
  const auto shard = g.shard;
  const bool several = studies.size() > 1;
  for (auto& s : studies)
    if (merge && study::is_grid(s.kind))
      for (const auto& d : shard_dirs) s.merge_rows.push_back((several ? d + "/" + s.name : d) + "/grid-rows.json");
  std::string report = "# resist study report\n\n";
  std::vector<std::pair<study::Kind, study::Outcome>> outcomes;
  for (const auto& s : studies) {
    const std::string dir = several ? out + "/" + s.name : out;
    if (study::needs_runtime(s.kind) && !study::runtime_available(paths)) {
      std::fprintf(stderr, "study %s: skipped (the LibTorch runtime is not built)\n", s.name.c_str());
      report += "## " + s.name + " (`" + study::to_string(s.kind) +
                "`)\n\nSkipped: the LibTorch runtime (`resist-train`, `resist-launch`) is not built here.\n\n";
      continue;
    }
    study::Outcome o = study::run_study(s, dir, paths);
    if (shard.second > 1) continue;
    std::string section = o.report_md;
    if (several) {  // figure links relative to the combined report
      for (std::size_t p = 0; (p = section.find("](figures/", p)) != std::string::npos; p += 2)
        section.replace(p, 2, "](" + s.name + "/");
    }
    report += section;
    outcomes.emplace_back(s.kind, std::move(o));
  }
  if (shard.second > 1) {
    std::cout << "shard " << shard.first + 1 << "/" << shard.second << ": " << fs::absolute(out).lexically_normal().string()
              << " (join the shards with resist-study merge --out DIR SHARD_DIR...)\n";
    return 0;
  }
  if (several) json_util::write_atomic(out + "/report.md", report);

  // The communication table and the speedup table come last, just above the
  // report's path: they are what a reader looks for first.
  auto rank = [](study::Kind k) {
    return k == study::Kind::table1 ? 1 : k == study::Kind::paper_cifar ? 2 : 0;
  };
  std::stable_sort(outcomes.begin(), outcomes.end(),
                   [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
  for (const auto& [kind, o] : outcomes)
    for (const auto& [title, md] : o.tables) {
      std::cout << "\n" << title << "\n";
      if (!md.empty()) std::cout << "\n" << md;
    }
  std::cout << "\nreport: " << fs::absolute(out + "/report.md").lexically_normal().string() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    (argc < 2 ? std::cerr : std::cout) << kUsage;
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "run") != 0 && std::strcmp(argv[1], "merge") != 0) {
    std::cerr << "resist-study: unknown command '" << argv[1] << "' (accepted: run, merge)\n";
    return 2;
  }
  return cli::guarded("resist-study", [&] { return run(argc, argv); });
}
