#include "runtime/blas.hpp"

#include <dlfcn.h>

#include <climits>
#include <cstdlib>

namespace resist::runtime {

namespace {

template <typename F>
F lookup(const char* symbol) {
  return reinterpret_cast<F>(::dlsym(RTLD_DEFAULT, symbol));
}

std::string resolved(const char* path) {
  char buf[PATH_MAX];
  return ::realpath(path, buf) ? std::string(buf) : std::string(path);
}

}  // namespace

BlasInfo blas_info() {
  BlasInfo b;
  void* sgemm = ::dlsym(RTLD_DEFAULT, "sgemm_");
  if (!sgemm) sgemm = ::dlsym(RTLD_DEFAULT, "cblas_sgemm");
  Dl_info where{};
  if (sgemm && ::dladdr(sgemm, &where) && where.dli_fname) b.library = resolved(where.dli_fname);
  // Judge by the library that provides sgemm_: others may be loaded beside it
  // (OpenBLAS's liblapack.so.3 brings libopenblas.so.0 along, for instance).
  auto has = [&](const char* part) { return b.library.find(part) != std::string::npos; };
  const bool known_path = !b.library.empty();
  if (has("/blas/libblas.so")) {
    b.name = "reference BLAS (netlib)";  // Debian's libblas3
  } else if (auto config = lookup<char* (*)()>("openblas_get_config"); config && (has("openblas") || !known_path)) {
    const std::string c = config();
    b.name = c.rfind("OpenBLAS", 0) == 0 ? c : "OpenBLAS " + c;
    b.optimised = true;
    if (auto threads = lookup<int (*)()>("openblas_get_num_threads")) b.threads = threads();
  } else if (auto version = lookup<char* (*)()>("bli_info_get_version_str"); version && (has("blis") || !known_path)) {
    b.name = std::string("BLIS ") + version();
    b.optimised = true;
    if (auto threads = lookup<long (*)()>("bli_thread_get_num_threads")) b.threads = int(threads());
  } else if (auto mkl = lookup<int (*)()>("mkl_get_max_threads"); mkl && (has("mkl") || !known_path)) {
    b.name = "MKL";
    b.optimised = true;
    b.threads = mkl();
  } else if (has("atlas")) {
    b.name = "ATLAS";
    b.optimised = true;
  } else {
    b.name = known_path ? "unknown" : "none loaded";
  }
  return b;
}

bool set_blas_threads(int n) {
  if (n < 1) return false;
  if (auto f = lookup<void (*)(int)>("openblas_set_num_threads")) {
    f(n);
    return true;
  }
  if (auto f = lookup<void (*)(long)>("bli_thread_set_num_threads")) {
    f(long(n));
    return true;
  }
  if (auto f = lookup<void (*)(int)>("mkl_set_num_threads")) {
    f(n);
    return true;
  }
  return false;
}

std::string describe(const BlasInfo& b) {
  std::string s = b.name;
  if (!b.library.empty()) s += " (" + b.library + ")";
  if (b.threads > 0) s += ", " + std::to_string(b.threads) + " thread(s)";
  if (!b.optimised && !b.library.empty())
    s += "; not optimised: install libopenblas0-pthread (scripts/setup.sh does)";
  return s;
}

}  // namespace resist::runtime
