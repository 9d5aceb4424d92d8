#pragma once
// The NCCL communicator: the NCCL C API on the worker's CUDA stream, on raw
// device pointers, so it needs neither a CUDA LibTorch nor nvcc to build.
//   allreduce -> ncclAllReduce(ncclAvg); reduce -> ncclReduce(ncclAvg) to
//   ranks[0]; broadcast -> ncclBroadcast from ranks[0]; send/recv -> grouped
//   ncclSend/ncclRecv.
// Ops over a subset of the world run on a sub-communicator made with
// ncclCommSplit the first time that subset appears (every rank calls
// prepare() for every op, so the split is collective as NCCL requires).
// The unique id travels through the store. Bytes are counted as the schedule
// accounts them (NCCL picks its own algorithms; see schedule/accounting.hpp).
#include <memory>

#include "runtime/comm.hpp"
#include "runtime/dist.hpp"

namespace resist::runtime {

// Built only when NCCL and the CUDA toolkit were found (RESIST_HAVE_NCCL).
// `stream` is a cudaStream_t (nullptr: the legacy default stream, which a
// LibTorch worker uses unless told otherwise). Selects device `device`.
std::unique_ptr<Communicator> make_nccl_communicator(const Env& env, const std::shared_ptr<KeyValue>& store,
                                                     int device, void* stream);

}  // namespace resist::runtime
