// TimelineWriter and TraceReader in one process (label: unit): what is
// written reads back, the trace replays the sampler exactly, and bad input
// raises InputError with the dataset named.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <hdf5.h>

#include "runtime/common/Errors.hpp"
#include "runtime/io/TimelineWriter.hpp"
#include "runtime/io/TraceReader.hpp"
#include "runtime/workload/RoutingSources.hpp"
#include "runtime/workload/Scenario.hpp"

namespace moe {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("moe_tl_" + std::to_string(getpid()) + "_" + name)).string();
}

struct TempFile {
  explicit TempFile(const std::string& name) : path(temp_path(name)) {}
  ~TempFile() { std::filesystem::remove(path); }
  std::string path;
};

StepRecord record(int64_t native, int64_t foreign) {
  StepRecord r;
  r.slots_routed = native + foreign;
  r.slots_native = native;
  r.slots_foreign = foreign;
  r.bytes_tokens_sent = 100;
  r.times.wall_of(Phase::Compute) = 0.5;
  r.times.busy_of(Phase::Compute) = 0.25;
  r.peak_bytes = 4096;
  return r;
}

int64_t rows_of(hid_t file, const char* name) {
  const hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
  const hid_t s = H5Dget_space(d);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(s, &n, nullptr);
  H5Sclose(s);
  H5Dclose(d);
  return static_cast<int64_t>(n);
}

int64_t int_attr(hid_t file, const char* name) {
  int64_t v = -1;
  const hid_t a = H5Aopen(file, name, H5P_DEFAULT);
  H5Aread(a, H5T_NATIVE_INT64, &v);
  H5Aclose(a);
  return v;
}

std::string string_attr(hid_t file, const char* name) {
  const hid_t a = H5Aopen(file, name, H5P_DEFAULT);
  if (a < 0) return "<missing>";
  const hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  char* p = nullptr;
  std::string v = H5Aread(a, t, &p) >= 0 && p ? std::string(p) : "<unreadable>";
  if (p) H5free_memory(p);
  H5Tclose(t);
  H5Aclose(a);
  return v;
}

TEST(TimelineWriter, RowsAndAttributesReadBack) {
  TempFile f("rows.h5");
  TimelineHeader h;
  h.policies = {"ep", "llep"};
  h.num_ranks = 2;
  h.tool_version = "test";
  h.hostnames = {"a", "b"};
  h.config_json = "{\"steps\": 1}";
  h.attributes.emplace_back("steps", int64_t{1});
  h.clocks = {"cuda_event", "cuda_event", "cuda_event"};
  LoadMatrix loads(2, 4);
  loads.at(0, 1) = 3;
  loads.at(1, 1) = 2;
  {
    TimelineWriter w(f.path, h);
    w.append("ep", 0, 0, {record(3, 0), record(2, 0)}, loads);
    w.append("llep", 0, 0, {record(2, 1), record(1, 1)}, loads);
    EXPECT_EQ(w.rows(), 4);
    EXPECT_THROW(w.append("nope", 0, 0, {record(1, 0)}, loads), std::invalid_argument);
    // Readable while still open for writing (flushed after every append).
    const hid_t r = H5Fopen(f.path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(r, 0);
    EXPECT_EQ(rows_of(r, "timeline"), 4);
    EXPECT_EQ(rows_of(r, "expert_load"), 8);
    EXPECT_EQ(int_attr(r, "complete"), 0);
    H5Fclose(r);
    w.close();
  }
  const hid_t r = H5Fopen(f.path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(r, 0);
  EXPECT_EQ(int_attr(r, "complete"), 1);
  EXPECT_EQ(int_attr(r, "mpi_size"), 2);
  EXPECT_EQ(int_attr(r, "steps"), 1);
  EXPECT_EQ(int_attr(r, "format_version"), kTimelineFormatVersion);
  for (const char* clock : {"wall_clock", "busy_clock", "start_clock"}) EXPECT_EQ(string_attr(r, clock), "cuda_event");

  // Read two fields of /timeline through a partial compound type.
  struct Pick {
    int32_t rank;
    int64_t slots_foreign;
    double t_compute;
  };
  const hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(Pick));
  H5Tinsert(t, "rank", HOFFSET(Pick, rank), H5T_NATIVE_INT32);
  H5Tinsert(t, "slots_foreign", HOFFSET(Pick, slots_foreign), H5T_NATIVE_INT64);
  H5Tinsert(t, "t_compute", HOFFSET(Pick, t_compute), H5T_NATIVE_DOUBLE);
  std::vector<Pick> picked(4);
  const hid_t d = H5Dopen2(r, "timeline", H5P_DEFAULT);
  ASSERT_GE(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, picked.data()), 0);
  EXPECT_EQ(picked[1].rank, 1);
  EXPECT_EQ(picked[2].slots_foreign, 1);
  EXPECT_DOUBLE_EQ(picked[3].t_compute, 0.5);
  // The policy enum's names.
  const hid_t ft = H5Dget_type(d);
  const hid_t pe = H5Tget_member_type(ft, 0);
  char name[16] = {};
  const int8_t one = 1;
  ASSERT_GE(H5Tenum_nameof(pe, &one, name, sizeof name), 0);
  EXPECT_STREQ(name, "llep");
  H5Tclose(pe);
  H5Tclose(ft);
  H5Dclose(d);
  H5Tclose(t);
  H5Fclose(r);
}

TEST(TimelineWriter, CreateErrorIsOneLine) {
  TimelineHeader h;
  h.policies = {"ep"};
  try {
    TimelineWriter w("/nonexistent-moe-dir/t.h5", h);
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

ModelShape small_shape() {
  ModelShape s;
  s.num_experts = 16;
  s.top_k = 2;
  return s;
}

TEST(TraceReader, SyntheticTraceReplaysTheSampler) {
  TempFile f("trace.h5");
  const ModelShape shape = small_shape();
  const ScenarioSpec spec = ScenarioSpec::parse("60:2");
  const std::vector<int64_t> tokens{40, 0, 25};
  write_synthetic_trace(f.path, spec, shape, 0.3, 9, 3, 2, tokens, "test");
  TraceReader reader(f.path, shape);
  EXPECT_EQ(reader.dims().steps, 3);
  EXPECT_EQ(reader.dims().layers, 2);
  EXPECT_EQ(reader.dims().tokens, 65);
  EXPECT_EQ(reader.dims().top_k, 2);
  EXPECT_FALSE(reader.dims().has_gates);
  EXPECT_NO_THROW(reader.validate(3, 2, 65));
  const ExpertIdSource source = trace_source(f.path, shape);
  for (int s = 0; s < 3; ++s)
    for (int l = 0; l < 2; ++l) {
      const RoutingKey key{9, s, l, 40};  // rank 2's tokens
      std::vector<int32_t> want(25 * 2), got(25 * 2);
      sample_expert_ids(spec, shape, 0.3, key, 25, want);
      source(key, 25, got);
      EXPECT_EQ(got, want) << "step " << s << " layer " << l;
    }
}

TEST(TraceReader, CoverageAndShapeErrorsNameTheDataset) {
  TempFile f("short.h5");
  const ModelShape shape = small_shape();
  write_synthetic_trace(f.path, ScenarioSpec::parse("balanced"), shape, 0.0, 1, 2, 1, {10}, "test");
  TraceReader reader(f.path, shape);
  try {
    reader.validate(3, 1, 10);
    FAIL() << "no exception";
  } catch (const InputError& e) {
    EXPECT_TRUE(e.collective());
    EXPECT_NE(std::string(e.what()).find("/expert_ids holds 2 step(s)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--steps 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(reader.validate(1, 1, 11), InputError);
  std::vector<int32_t> ids(20);
  try {
    reader.read(0, 0, 5, 10, ids);  // tokens 5..14 of 10
    FAIL() << "no exception";
  } catch (const InputError& e) {
    EXPECT_FALSE(e.collective());  // only some ranks read past the end
  }
  ModelShape k3 = shape;
  k3.top_k = 3;
  EXPECT_THROW(TraceReader(f.path, k3), InputError);
  ModelShape n32 = shape;
  n32.num_experts = 32;  // the num_experts attribute says 16
  EXPECT_THROW(TraceReader(f.path, n32), InputError);
}

TEST(TraceReader, NotHdf5AndMissingFile) {
  TempFile f("text.h5");
  std::ofstream(f.path) << "not hdf5\n";
  try {
    TraceReader r(f.path, small_shape());
    FAIL() << "no exception";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not an HDF5 file"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("trace:" + f.path), std::string::npos) << e.what();
  }
  EXPECT_THROW(TraceReader(temp_path("absent.h5"), small_shape()), InputError);
}

}  // namespace
}  // namespace moe
