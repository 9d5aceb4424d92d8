// End-to-end on an image folder the test writes (JPEG and PNG): real worker
// processes over Gloo, decoding and augmenting with the loader's threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/support/images.hpp"
#include "tests/support/process.hpp"

using nlohmann::json;
using resist::test::run;
using resist::test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string launch = resist::test::bin("runtime/resist-launch");
const std::string train = resist::test::bin("runtime/resist-train");

// 3 classes of 32 x 32 pictures: 40 training and 12 validation images each.
struct Folder {
  TempDir dir;
  Folder() { resist::test::write_image_folder(dir.path, {"red", "green", "blue"}, 40, 12, 32, 32, /*png=*/true); }
  std::string path() const { return dir.path.string(); }
};

std::string args(const std::string& data, const std::string& more,
                 const std::string& loader = "--loader-threads 2 --prefetch 3") {
  return " --model preact-resnet34 --base-width 8 --dataset imagefolder --image-size 32 --data-dir " + data +
         " --threads 1 --quiet --timeout 60 " + loader + " " + more;
}

json report(const fs::path& out) { return json::parse(resist::test::read_text(out / "report.json")); }

int lines(const std::string& s) { return int(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST(ImageFolderTrain, ResistAndLocalSgdTwoWorkersLearnAboveChance) {
  Folder data;
  for (const std::string protocol : {"resist", "local-sgd"}) {
    TempDir out;
    const auto r = run(launch + " -n 2 -- " + train +
                       args(data.path(), "--protocol " + protocol +
                                             " --min-depth 1 --local-iters 4 --epochs 8 --batch-size 16 --lr 0.05 "
                                             "--eval-every 8 --check-sync --out " + out.path.string()));
    ASSERT_EQ(r.code, 0) << protocol << ": " << r.err;
    const auto rep = report(out.path);
    EXPECT_EQ(rep["train_images"].get<int>(), 120);
    EXPECT_EQ(rep["test_images"].get<int>(), 36);
    // Chance is 1/3.
    EXPECT_GE(rep["test_accuracy"].get<double>(), 0.6) << protocol << " did not learn";
    EXPECT_NE(rep["model"].get<std::string>().find("imagefolder3-32px"), std::string::npos) << rep["model"];
    // The schedule records the classes and input size taken from the data.
    const auto sched = json::parse(resist::test::read_text(out.path / "schedule.json"));
    EXPECT_EQ(sched["config"]["model"]["classes"].get<int>(), 3);
    EXPECT_EQ(sched["config"]["model"]["image_size"].get<int>(), 32);
  }
}

TEST(ImageFolderTrain, TheSameSeedGivesTheSameModelWhateverTheLoaderThreads) {
  Folder data;
  std::string hashes[2];
  for (int k = 0; k < 2; ++k) {
    TempDir out;
    const std::string loader = k == 0 ? "--loader-threads 0" : "--loader-threads 3 --prefetch 1";
    const auto r = run(train + args(data.path(), "--protocol local-sgd --local-iters 3 --rounds 2 --batch-size 8 "
                                                 "--out " + out.path.string(), loader));
    ASSERT_EQ(r.code, 0) << r.err;
    hashes[k] = report(out.path)["model_hash"].get<std::string>();
  }
  EXPECT_EQ(hashes[0], hashes[1]);
}

TEST(ImageFolderTrain, BadDataIsOneLineNamingThePathAndExitCodeTwo) {
  Folder data;
  // A file that is no image: caught by the header check before training.
  const fs::path junk = data.dir.path / "train" / "green" / "junk.jpg";
  std::ofstream(junk) << "not a jpeg";
  auto r = run(train + args(data.path(), "--protocol local-sgd --rounds 1"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(junk.string()), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  fs::remove(junk);
  // An empty class folder; then a folder without classes.
  fs::create_directories(data.dir.path / "train" / "yellow");
  r = run(train + args(data.path(), "--protocol local-sgd --rounds 1"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find((data.dir.path / "train" / "yellow").string()), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  fs::remove_all(data.dir.path / "train" / "yellow");
  r = run(train + args("/nonexistent/images", "--protocol local-sgd --rounds 1"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("/nonexistent/images/train"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
}

TEST(ImageFolderTrain, ACorruptImageFoundWhileTrainingStopsTheRunOrIsSkipped) {
  Folder data;
  // Truncated after its headers: passes the up-front check (skipped here too
  // with --no-image-check), fails to decode when its batch is built.
  const fs::path bad = data.dir.path / "train" / "blue" / "img1000.jpg";
  fs::resize_file(bad, 700);
  const std::string common = "--protocol local-sgd --local-iters 5 --epochs 2 --batch-size 16 --no-image-check";
  auto r = run(launch + " -n 2 -- " + train + args(data.path(), common));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find(bad.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--skip-bad-images"), std::string::npos) << r.err;
  TempDir out;
  r = run(launch + " -n 2 -- " + train + args(data.path(), common + " --skip-bad-images --out " + out.path.string()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("skipping bad image " + bad.string()), std::string::npos) << r.err;
  // Seen once per epoch, by one worker: two epochs, two reports, counted.
  EXPECT_EQ(report(out.path)["skipped_images"].get<int>(), 2);
  std::size_t n = 0;
  for (auto at = r.err.find(bad.string()); at != std::string::npos; at = r.err.find(bad.string(), at + 1)) ++n;
  EXPECT_EQ(n, 2u) << r.err;
}
