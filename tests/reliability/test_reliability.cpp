// Unit tests of the reliability helpers (docs/reliability.md): overflow-checked
// sizes, the memory model's bounds, NaN-aware errors, output files.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sys/stat.h>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/common/CheckedMath.hpp"
#include "runtime/common/Errors.hpp"
#include "runtime/common/OutputFiles.hpp"
#include "runtime/harness/Reference.hpp"
#include "runtime/layer/MemoryModel.hpp"

namespace fs = std::filesystem;

namespace moe {
namespace {

TEST(CheckedMath, ProductsAndSums) {
  EXPECT_EQ(checked_mul(3, 4), 12);
  EXPECT_FALSE(checked_mul(int64_t{1} << 62, 4));
  EXPECT_FALSE(checked_mul(-1, 4));
  EXPECT_FALSE(checked_add(INT64_MAX, 1));
  EXPECT_EQ(checked_product({2, 3, 7}), 42);
  EXPECT_FALSE(checked_product({144115188075855872LL, 128, 4}));
  EXPECT_THROW(product_or_throw({144115188075855872LL, 128}, "--tokens, --hidden"), InputError);
  try {
    CheckedSize("--tokens-per-rank").add(INT64_MAX).add(INT64_MAX);
    FAIL() << "no overflow reported";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--tokens-per-rank"), std::string::npos) << e.what();
  }
}

TEST(MemoryModelBounds, LowerBoundBelowUpperBoundAndOverflowIsNullopt) {
  ModelShape s;  // small preset
  const auto lo = min_rank_bytes(s, 4, 2048, 1);
  const auto hi = max_rank_bytes(s, 4, 2048, 4 * 2048 * s.top_k, 1);
  ASSERT_TRUE(lo && hi);
  EXPECT_LT(*lo, *hi);
  EXPECT_EQ(checked_expert_weight_bytes(s), s.expert_weight_bytes());
  EXPECT_FALSE(min_rank_bytes(s, 4, int64_t{1} << 57, 1));
  ModelShape huge = s;
  huge.hidden = INT32_MAX;
  huge.ffn = INT32_MAX;
  EXPECT_FALSE(checked_expert_weight_bytes(huge));
}

TEST(Reference, NanAndInfAreNeverSmallErrors) {
  const std::vector<double> ref{1.0, 2.0};
  EXPECT_DOUBLE_EQ(max_relative_error(std::vector<double>{1.0, 2.0}, ref), 0.0);
  EXPECT_TRUE(std::isnan(max_relative_error(std::vector<double>{NAN, 2.0}, ref)));
  EXPECT_TRUE(std::isinf(max_relative_error(std::vector<double>{1.0, INFINITY}, ref)));
  EXPECT_TRUE(std::isnan(worse_error(0.0, NAN)));
  EXPECT_TRUE(std::isnan(worse_error(NAN, 1.0)));
  EXPECT_TRUE(std::isinf(worse_error(1e-7, INFINITY)));
  EXPECT_DOUBLE_EQ(worse_error(1e-7, 1e-6), 1e-6);
}

class OutputFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("moe_out_" + std::to_string(getpid()));
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::vector<std::string> entries() const {
    std::vector<std::string> v;
    for (const auto& e : fs::directory_iterator(dir)) v.push_back(e.path().filename().string());
    return v;
  }
  fs::path dir;
};

TEST_F(OutputFilesTest, RefusesNonRegularFiles) {
  EXPECT_EQ(check_output_path((dir / "new.json").string(), "--json"), "");
  EXPECT_NE(check_output_path(dir.string(), "--json").find("is a directory"), std::string::npos);
  EXPECT_NE(check_output_path("/dev/null", "--json").find("character device"), std::string::npos);
  const std::string fifo = (dir / "fifo").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(check_output_path(fifo, "--timeline").find("--timeline: '" + fifo + "' is a FIFO"), std::string::npos);
  EXPECT_NE(check_output_path((dir / "no" / "x.json").string(), "--json").find("does not exist"), std::string::npos);
  EXPECT_EQ(entries().size(), 1u);  // only the FIFO: no probe file left behind
}

TEST_F(OutputFilesTest, SameFileByInodeAndByPath) {
  const std::string a = (dir / "a.h5").string();
  std::ofstream(a) << "x";
  fs::create_hard_link(a, dir / "b.h5");
  fs::create_symlink(a, dir / "c.h5");
  EXPECT_TRUE(same_file(a, (dir / "b.h5").string()));
  EXPECT_TRUE(same_file(a, (dir / "c.h5").string()));
  EXPECT_TRUE(same_file((dir / "new.json").string(), (dir / "." / "new.json").string()));
  EXPECT_FALSE(same_file(a, (dir / "new.json").string()));
  EXPECT_NE(check_distinct({{"--json", a}, {"--timeline", (dir / "b.h5").string()}}).find("--timeline and --json"),
            std::string::npos);
  EXPECT_EQ(check_distinct({{"--json", a}, {"--timeline", ""}}), "");
}

TEST_F(OutputFilesTest, AtomicWriteReplacesOnlyOnSuccess) {
  const std::string p = (dir / "r.json").string();
  std::ofstream(p) << "old";
  write_file_atomically(p, "new", "--json");
  std::ifstream in(p);
  std::string text;
  in >> text;
  EXPECT_EQ(text, "new");
  // A symlink stays a link: its target is replaced.
  fs::create_symlink(p, dir / "link.json");
  write_file_atomically((dir / "link.json").string(), "newer", "--json");
  EXPECT_TRUE(fs::is_symlink(dir / "link.json"));
  EXPECT_EQ(entries().size(), 2u);  // r.json, link.json: no temporary file left
  EXPECT_THROW(write_file_atomically((dir / "missing" / "r.json").string(), "x", "--json"), OutputError);
}

}  // namespace
}  // namespace moe
