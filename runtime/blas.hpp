#pragma once
// Which BLAS this process's matrix multiplies go to, and its own threads.
// LibTorch on CPU (Debian's) calls sgemm_ from whatever libblas.so.3 the
// dynamic linker found: the reference BLAS unless an optimised one
// (OpenBLAS, BLIS, MKL) switched the libblas.so.3 alternative. Found at run
// time from the address of sgemm_ (dladdr). No LibTorch in this header.
#include <string>

namespace resist::runtime {

struct BlasInfo {
  std::string library;     // resolved path of the object providing sgemm_; "" if none is loaded
  std::string name;        // "OpenBLAS 0.3.21 ...", "reference BLAS (netlib)", "BLIS ...", "MKL", "unknown"
  bool optimised = false;  // false for the reference BLAS and when unknown
  int threads = 0;         // the BLAS's own threads (OpenBLAS, BLIS, MKL); 0: it has none or does not say
};

BlasInfo blas_info();

// Sets the BLAS's own thread count where it has one (OpenBLAS, BLIS, MKL),
// so that ranks sharing a machine do not oversubscribe it. False if it has none.
bool set_blas_threads(int n);

// "OpenBLAS 0.3.21 ... (/usr/lib/.../libblas.so.3), 2 thread(s)"
std::string describe(const BlasInfo& b);

}  // namespace resist::runtime
