#!/usr/bin/python3
"""Cost of creating a process group and of one tiny collective call, over Gloo
on this machine (torch.distributed, one process per rank, TCP store on
loopback). The figures feed the `as_run` overheads of the simulator
(sim/as_run.hpp, experiments/studies/paper-cifar-as-run.json); docs/simulator.md
says how. Prints one JSON object on stdout:

  group_setup_s[k]   median seconds from a barrier to the end of the first
                     4-byte all-reduce on a new group of ranks 0..k-1 (every rank
                     calls new_group, as PyTorch requires; rank 0 times it)
  call_s             median seconds of one 4-byte all-reduce on the whole group
                     (repeated --calls times), i.e. per-call cost including the
                     loopback round trips
  fit                least squares group_setup_s[k] = base + per_rank * k

Usage: /usr/bin/python3 scripts/measure_group_setup.py --world 4 --repeats 5 --calls 200
"""
import argparse
import json
import os
import statistics
import sys
import time


def worker(rank, world, port, repeats, calls, queue):
    import torch
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    x = torch.zeros(1)
    setup = {k: [] for k in range(1, world + 1)}
    for _ in range(repeats):
        for k in range(1, world + 1):
            dist.barrier()
            t0 = time.perf_counter()
            g = dist.new_group(list(range(k)))
            if rank < k:
                dist.all_reduce(x, group=g)
            setup[k].append(time.perf_counter() - t0)
            dist.destroy_process_group(g)
    dist.barrier()
    per_call = []
    for _ in range(repeats):
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(calls):
            dist.all_reduce(x)
        per_call.append((time.perf_counter() - t0) / calls)
    if rank == 0:
        queue.put({"setup": {k: statistics.median(v) for k, v in setup.items()},
                   "call_s": statistics.median(per_call)})
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--port", type=int, default=29731)
    a = ap.parse_args()
    if a.world < 1 or a.repeats < 1 or a.calls < 1:
        sys.exit("measure_group_setup.py: --world, --repeats and --calls must be >= 1")
    import torch
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, a.world, a.port, a.repeats, a.calls, queue)) for r in range(a.world)]
    for p in procs:
        p.start()
    result = queue.get(timeout=600)
    for p in procs:
        p.join()
    ks = sorted(result["setup"])
    ys = [result["setup"][k] for k in ks]
    n = len(ks)
    mean_k, mean_y = sum(ks) / n, sum(ys) / n
    var = sum((k - mean_k) ** 2 for k in ks)
    per_rank = sum((k - mean_k) * (y - mean_y) for k, y in zip(ks, ys)) / var if var > 0 else 0.0
    out = {"backend": "gloo", "torch": torch.__version__, "world": a.world, "repeats": a.repeats,
           "calls": a.calls, "group_setup_s": {str(k): result["setup"][k] for k in ks},
           "call_s": result["call_s"],
           "fit": {"base_s": mean_y - per_rank * mean_k, "per_rank_s": per_rank},
           "load_average": os.getloadavg()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
