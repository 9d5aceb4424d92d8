#pragma once
// Runs a command line through /bin/sh and captures its exit code, stdout and
// stderr (for end-to-end tests of the programs users run).
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace resist::test {

struct Result {
  int code = -1;
  std::string out, err;
};

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes `text` to `p` (a study or platform file a test hands a program).
inline void write_file(const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; }

inline Result run(const std::string& command) {
  const auto dir = std::filesystem::temp_directory_path();
  const auto tag = std::to_string(::getpid()) + "-" + std::to_string(reinterpret_cast<std::uintptr_t>(&command));
  const auto err_path = dir / ("resist-test-err-" + tag);
  Result r;
  FILE* pipe = ::popen((command + " 2>" + err_path.string()).c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.err = read_text(err_path);
  std::filesystem::remove(err_path);
  return r;
}

inline std::string bin(const std::string& rel) { return std::string(RESIST_BINARY_DIR) + "/" + rel; }

// The build's programs that the end-to-end tests run.
inline const std::string kStudy = bin("experiments/resist-study");
inline const std::string kLaunch = bin("runtime/resist-launch");
inline const std::string kTrain = bin("runtime/resist-train");

// A fresh, empty directory under the system temp dir, removed on destruction.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("resist-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

}  // namespace resist::test
