#include "runtime/preflight.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "models/error.hpp"

namespace resist::runtime {

namespace fs = std::filesystem;

void check_data_fits(const Data& data, const ModelSpec& spec, int workers) {
  const std::string model = spec.name;
  const int outputs = spec.blocks.back().out_channels;
  for (const auto* split : {&data.train, &data.test}) {
    if (split->size() == 0) continue;
    const auto top = split->labels.max().item<std::int64_t>();
    if (top >= outputs)
      throw UserError("--classes: the model " + model + " has " + std::to_string(outputs) + " outputs, but the " +
                      data.name + (split == &data.train ? " training" : " test") + " labels go up to " +
                      std::to_string(top) + " (--classes 0 takes the dataset's)");
  }
  const auto shape = sample_shape(data);
  const BlockSpec& first = spec.blocks.front();
  const std::int64_t expected = first.kind == BlockKind::dense ? shape[0] * shape[1] * shape[2] : shape[0];
  if (first.in_channels != expected)
    throw UserError("--input: the model " + model + " takes " + std::to_string(first.in_channels) + " " +
                    (first.kind == BlockKind::dense ? "features" : "channels") + ", but a " + data.name +
                    " image has " + std::to_string(expected) + " (--input 0 takes the dataset's)");
  if (data.train.size() < workers)
    throw UserError("--train-subset: " + std::to_string(data.train.size()) + " training image(s) for " +
                    std::to_string(workers) + " workers (every worker needs at least one)");
}

namespace {

// The nearest existing folder at or above `p`.
fs::path existing_ancestor(fs::path p) {
  std::error_code ec;
  p = fs::absolute(p, ec);
  while (!p.empty() && !fs::exists(p, ec) && p != p.root_path()) p = p.parent_path();
  return p;
}

}  // namespace

OutputLock::~OutputLock() {
  if (fd_ >= 0) ::close(fd_);
}

void OutputLock::check(const std::string& dir, bool lock_now) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) throw UserError("--out: '" + dir + "' exists and is not a directory");
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
      throw UserError("--out: cannot write in '" + dir + "' (" + std::strerror(errno) + ")");
    if (lock_now) lock(dir);
    return;
  }
  const fs::path up = existing_ancestor(dir);
  if (!fs::is_directory(up, ec))
    throw UserError("--out: cannot create '" + dir + "' ('" + up.string() + "' is not a directory)");
  if (::access(up.c_str(), W_OK | X_OK) != 0)
    throw UserError("--out: cannot create '" + dir + "' in '" + up.string() + "' (" + std::strerror(errno) + ")");
}

void OutputLock::acquire(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) throw UserError("--out: cannot create '" + dir + "' (" + ec.message() + ")");
  if (fd_ < 0) lock(dir);
}

void OutputLock::lock(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rc = fd < 0 ? -1 : ::flock(fd, LOCK_EX | LOCK_NB);
  if (rc != 0 && errno != EWOULDBLOCK) {
    // A file system that cannot lock a directory (NFS locks need a file open for writing).
    if (fd >= 0) ::close(fd);
    const std::string file = (fs::path(dir) / ".resist-lock").string();
    fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw UserError("--out: cannot create the lock file '" + file + "' (" + std::strerror(errno) + ")");
    rc = ::flock(fd, LOCK_EX | LOCK_NB);
  }
  if (rc != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK)
      throw UserError("--out: '" + dir + "' is in use by another run (it holds the directory's lock); wait for "
                      "it to end or choose another --out");
    throw UserError("--out: cannot lock '" + dir + "' (" + std::strerror(err) + ")");
  }
  fd_ = fd;
}

}  // namespace resist::runtime
