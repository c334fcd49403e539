#include "runtime/io/TimelineWriter.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>
#include <sys/file.h>
#include <sys/stat.h>

#include "runtime/common/OutputFiles.hpp"
#include "runtime/io/H5Util.hpp"
#include "runtime/layer/PhaseTimer.hpp"
#include "runtime/layer/StepMetrics.hpp"

namespace moe {

// One /expert_load row (outside the anonymous namespace: the writer's Impl
// holds a vector of them).
struct ExpertLoadRow {
  int8_t policy;
  int32_t step;
  int32_t layer;
  int32_t expert;
  int64_t slots;
};

namespace {

// A /timeline row is packed bytes: the key columns, then one column per
// field of the step-metric schema (StepMetrics.hpp), int64 or float64.
struct RowKey {
  int8_t policy;
  int32_t step;
  int32_t layer;
  int32_t rank;
};
constexpr size_t kKeyBytes = sizeof(int8_t) + 3 * sizeof(int32_t);

size_t row_bytes() { return kKeyBytes + step_metrics().size() * 8; }

void pack_row(const RowKey& k, const StepRecord& s, unsigned char* out) {
  std::memcpy(out, &k.policy, 1);
  std::memcpy(out + 1, &k.step, 4);
  std::memcpy(out + 5, &k.layer, 4);
  std::memcpy(out + 9, &k.rank, 4);
  unsigned char* p = out + kKeyBytes;
  for (const auto& m : step_metrics()) {
    if (m.type == MetricType::Int64) {
      const auto v = static_cast<int64_t>(m.value(s));
      std::memcpy(p, &v, 8);
    } else {
      const double v = m.value(s);
      std::memcpy(p, &v, 8);
    }
    p += 8;
  }
}

constexpr hsize_t kTimelineChunk = 1024;  // rows (~300 bytes each)
constexpr hsize_t kLoadChunk = 4096;      // rows (24 bytes each)

h5::Handle make_policy_enum(const std::vector<std::string>& policies) {
  if (policies.empty() || policies.size() > 127)
    throw std::invalid_argument("timeline: between 1 and 127 policies are supported");
  h5::Handle t = h5::type(h5::check_id(H5Tenum_create(H5T_NATIVE_INT8), "H5Tenum_create"));
  for (size_t i = 0; i < policies.size(); ++i) {
    const int8_t v = static_cast<int8_t>(i);
    h5::check(H5Tenum_insert(t, policies[i].c_str(), &v), "H5Tenum_insert " + policies[i]);
  }
  return t;
}

void insert(hid_t compound, const char* name, size_t offset, hid_t member) {
  h5::check(H5Tinsert(compound, name, offset, member), std::string("H5Tinsert ") + name);
}

h5::Handle make_timeline_type(hid_t policy_enum) {
  h5::Handle t = h5::type(h5::check_id(H5Tcreate(H5T_COMPOUND, row_bytes()), "H5Tcreate"));
  insert(t, "policy", 0, policy_enum);
  insert(t, "step", 1, H5T_NATIVE_INT32);
  insert(t, "layer", 5, H5T_NATIVE_INT32);
  insert(t, "rank", 9, H5T_NATIVE_INT32);
  size_t offset = kKeyBytes;
  for (const auto& m : step_metrics()) {
    insert(t, m.name.c_str(), offset, m.type == MetricType::Int64 ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE);
    offset += 8;
  }
  return t;
}

h5::Handle make_load_type(hid_t policy_enum) {
  h5::Handle t = h5::type(h5::check_id(H5Tcreate(H5T_COMPOUND, sizeof(ExpertLoadRow)), "H5Tcreate"));
  insert(t, "policy", offsetof(ExpertLoadRow, policy), policy_enum);
  insert(t, "step", offsetof(ExpertLoadRow, step), H5T_NATIVE_INT32);
  insert(t, "layer", offsetof(ExpertLoadRow, layer), H5T_NATIVE_INT32);
  insert(t, "expert", offsetof(ExpertLoadRow, expert), H5T_NATIVE_INT32);
  insert(t, "slots", offsetof(ExpertLoadRow, slots), H5T_NATIVE_INT64);
  return t;
}

// The packed file type of a memory compound (no padding in the file).
h5::Handle packed(hid_t mem_type) {
  h5::Handle t = h5::type(h5::check_id(H5Tcopy(mem_type), "H5Tcopy"));
  h5::check(H5Tpack(t), "H5Tpack");
  return t;
}

h5::Handle create_extendible(hid_t file, const char* name, hid_t file_type, hsize_t chunk, bool& compressed) {
  const hsize_t dims = 0, maxdims = H5S_UNLIMITED;
  h5::Handle space = h5::space(h5::check_id(H5Screate_simple(1, &dims, &maxdims), "H5Screate_simple"));
  h5::Handle dcpl = h5::chunked_plist({chunk}, compressed);
  return h5::dataset(h5::check_id(H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                                  std::string("creating dataset ") + name));
}

// Appends n rows of mem_type from data to a 1-D extendible dataset.
void append_rows(hid_t dset, hid_t mem_type, const void* data, hsize_t n, const char* name) {
  if (n == 0) return;
  h5::Handle fspace0 = h5::space(h5::check_id(H5Dget_space(dset), std::string("space of ") + name));
  hsize_t cur = 0;
  H5Sget_simple_extent_dims(fspace0, &cur, nullptr);
  const hsize_t next = cur + n;
  h5::check(H5Dset_extent(dset, &next), std::string("extending ") + name);
  h5::Handle fspace = h5::space(h5::check_id(H5Dget_space(dset), std::string("space of ") + name));
  h5::check(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &cur, nullptr, &n, nullptr), "H5Sselect_hyperslab");
  h5::Handle mspace = h5::space(h5::check_id(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
  h5::check(H5Dwrite(dset, mem_type, mspace, fspace, H5P_DEFAULT, data), std::string("writing ") + name);
}

// "--timeline: cannot create 'x': No such file or directory"-style reason.
std::string create_failure(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::exists(dir, ec)) return "the directory '" + dir.string() + "' does not exist";
  if (!fs::is_directory(dir, ec)) return "'" + dir.string() + "' is not a directory";
  if (fs::is_directory(p, ec)) return "it is a directory";
  const std::string why = h5::last_error();
  return why.empty() ? "HDF5 could not create it" : why;
}

}  // namespace

struct TimelineWriter::Impl {
  std::string path;
  std::vector<std::string> policies;
  h5::Handle file;
  h5::Handle policy_enum, row_type, load_type;
  h5::Handle timeline, expert_load;
  int64_t rows = 0, load_rows = 0;
  bool compressed = false;
  std::vector<unsigned char> row_buf;
  std::vector<ExpertLoadRow> load_buf;
  // File safety (docs/reliability.md): the file is written under a temporary
  // name beside `path` and renamed over it once its header is flushed; disk
  // space for the next appends is reserved ahead so that a full disk stops
  // the run before HDF5 writes anything half.
  std::string temp;               // the temporary name until published, then ""
  int fd = -1;                    // HDF5's own descriptor (sec2), for fallocate
  bool reserve_supported = true;  // false where the file system has no fallocate
  int64_t margin = 0;             // bytes kept reserved past the end of the file
  std::string failed;             // the first write error; the file is no longer written

  ~Impl() {
    // Closing a file whose writes failed may fail again: one line was
    // already reported, so no HDF5 error stack on stderr.
    h5::QuietErrors quiet;
    timeline.reset();
    expert_load.reset();
    row_type.reset();
    load_type.reset();
    policy_enum.reset();
    file.reset();
    if (!temp.empty()) std::remove(temp.c_str());
  }
  void reserve_ahead();
  void fail_write(const std::string& why);

  int8_t policy_value(const std::string& name) const {
    for (size_t i = 0; i < policies.size(); ++i)
      if (policies[i] == name) return static_cast<int8_t>(i);
    throw std::invalid_argument("timeline: policy '" + name + "' is not in the file's policy enum");
  }
};

// Keeps at least `margin` bytes reserved on the disk past the end of the file
// (fallocate, FALLOC_FL_KEEP_SIZE: the file's size is unchanged and HDF5 sees
// nothing). When the disk is full this fails before HDF5 writes any byte of
// the next rows, so the rows flushed before stay readable.
void TimelineWriter::Impl::reserve_ahead() {
  if (fd < 0 || !reserve_supported) return;
  struct stat st {};
  if (fstat(fd, &st) != 0) return;
  // Blocks already allocated in the range cost nothing: only the new tail is taken.
  const int64_t size = static_cast<int64_t>(st.st_size);
  const int rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, size, margin);
  if (rc == 0) return;
  if (errno == EOPNOTSUPP || errno == ENOSYS) {
    reserve_supported = false;
    return;
  }
  fail_write(std::strerror(errno));
}

void TimelineWriter::Impl::fail_write(const std::string& why) {
  if (failed.empty())
    failed = "cannot write '" + path + "': " + why + "; the run stops, and the " + std::to_string(rows) +
             " rows flushed before stay readable (attribute complete = 0)";
  throw std::runtime_error(failed);
}

std::string iso8601_utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string timeline_units_json() {
  std::string s =
      "{\"policy\": \"enum (names in the type and in the attribute policies)\", \"step\": \"index\", "
      "\"layer\": \"index\", \"rank\": \"index\", \"expert\": \"index\", \"slots\": \"token-slots\"";
  for (const auto& m : step_metrics()) s += ", \"" + m.name + "\": \"" + m.unit + "\"";
  return s + "}";
}

TimelineWriter::TimelineWriter(const std::string& path, const TimelineHeader& h) : impl_(std::make_unique<Impl>()) {
  h5::QuietErrors quiet;
  Impl& m = *impl_;
  m.path = path;
  m.policies = h.policies;
  {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      throw std::runtime_error("cannot create '" + path + "': it is not a regular file");
  }
  // Never truncate `path`: write a new file beside it and rename it into
  // place once the header is flushed and `path` is not locked by anyone.
  const std::string target = output_target(path);
  try {
    m.temp = create_temp_beside(target, "--timeline");
  } catch (const OutputError&) {
    throw std::runtime_error("cannot create '" + path + "': " + create_failure(path));
  }
  // Default (earliest) file format: no "open for writing" flag in the
  // superblock, so a killed run's file opens without h5clear.
  const hid_t f = H5Fcreate(m.temp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) throw std::runtime_error("cannot create '" + path + "': " + create_failure(path));
  m.file = h5::file(f);
  {
    void* handle = nullptr;
    if (H5Fget_vfd_handle(m.file, H5P_DEFAULT, &handle) >= 0 && handle) m.fd = *static_cast<int*>(handle);
  }
  // What one append can add to the file, generously: a rewritten chunk of
  // each dataset, the rows themselves and HDF5's metadata (the row width
  // comes from the metric schema, so it grows with it).
  const int64_t kRowBytesBound = static_cast<int64_t>(row_bytes());
  constexpr int64_t kLoadRowBytesBound = 32;
  m.margin = (int64_t{1} << 20) +
             2 * (static_cast<int64_t>(kTimelineChunk) * kRowBytesBound +
                  static_cast<int64_t>(kLoadChunk) * kLoadRowBytesBound) +
             4 * int64_t{h.num_ranks} * kRowBytesBound;
  m.reserve_ahead();

  m.policy_enum = make_policy_enum(h.policies);
  m.row_type = make_timeline_type(m.policy_enum);
  m.load_type = make_load_type(m.policy_enum);
  h5::Handle row_file = packed(m.row_type), load_file = packed(m.load_type);
  // Named copy of the enum, so readers can find the name table on its own.
  h5::Handle enum_copy = h5::type(h5::check_id(H5Tcopy(m.policy_enum), "H5Tcopy"));
  h5::check(H5Tcommit2(m.file, "policy_enum", enum_copy, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
            "committing policy_enum");
  m.timeline = create_extendible(m.file, "timeline", row_file, kTimelineChunk, m.compressed);
  m.expert_load = create_extendible(m.file, "expert_load", load_file, kLoadChunk, m.compressed);

  const hid_t root = m.file;
  h5::write_attr(root, "format", std::string("moe-ep timeline"));
  h5::write_attr(root, "format_version", kTimelineFormatVersion);
  h5::write_attr(root, "tool", std::string("moe-ep"));
  h5::write_attr(root, "tool_version", h.tool_version);
  h5::write_attr(root, "mpi_size", int64_t{h.num_ranks});
  h5::write_attr(root, "hostnames", h.hostnames);
  h5::write_attr(root, "start_time", h.start_time.empty() ? iso8601_utc_now() : h.start_time);
  h5::write_attr(root, "policies", h.policies);
  h5::write_attr(root, "config", h.config_json);
  h5::write_attr(root, "policy_params", h.policy_params_json);
  h5::write_attr(root, "units", timeline_units_json());
  h5::write_attr(root, "wall_clock", h.clocks.wall);
  h5::write_attr(root, "busy_clock", h.clocks.busy);
  h5::write_attr(root, "start_clock", h.clocks.start);
  h5::write_attr(root, "compression", std::string(m.compressed ? "shuffle+deflate(4)" : "none"));
  for (const auto& attr : h.attributes) {
    const std::string& name = attr.first;
    if (H5Aexists(root, name.c_str()) > 0) continue;  // never shadow the fixed attributes above
    std::visit([&](const auto& v) { h5::write_attr(root, name.c_str(), v); }, attr.second);
  }
  h5::write_attr(root, "complete", int64_t{0});
  h5::check(H5Fflush(m.file, H5F_SCOPE_LOCAL), "flushing " + path);
  publish(target);
}

// Renames the flushed temporary file over `target`, holding an exclusive lock
// on the file it replaces (HDF5 locks with flock too): a file another run is
// writing, or a reader such as h5py holds open, is left byte for byte as it was.
void TimelineWriter::publish(const std::string& target) {
  Impl& m = *impl_;
  const int old = open(target.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (old >= 0 && flock(old, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(old);
    m.file.reset();
    std::remove(m.temp.c_str());
    m.temp.clear();
    throw std::runtime_error("'" + m.path + "' is locked by another process (" +
                             (err == EWOULDBLOCK
                                  ? std::string("another run writing it, or a reader such as h5py holding it open")
                                  : std::string(std::strerror(err))) +
                             "); it was left unchanged");
  }
  const int rc = std::rename(m.temp.c_str(), target.c_str());
  const int err = errno;
  if (old >= 0) ::close(old);  // releases the lock on the replaced file
  if (rc != 0) {
    m.file.reset();
    std::remove(m.temp.c_str());
    m.temp.clear();
    throw std::runtime_error("cannot create '" + m.path + "': " + std::strerror(err));
  }
  m.temp.clear();
}

TimelineWriter::~TimelineWriter() = default;  // the handles close datasets, types and file

void TimelineWriter::append(const std::string& policy, int step, int layer, const std::vector<StepRecord>& per_rank,
                            const LoadMatrix& loads) {
  Impl& m = *impl_;
  if (!m.file.valid()) throw std::logic_error("timeline: append after close");
  if (!m.failed.empty()) throw std::runtime_error(m.failed);
  h5::QuietErrors quiet;
  m.reserve_ahead();
  const int8_t pv = m.policy_value(policy);
  const size_t width = row_bytes();
  m.row_buf.assign(per_rank.size() * width, 0);
  for (size_t r = 0; r < per_rank.size(); ++r)
    pack_row(RowKey{pv, step, layer, static_cast<int32_t>(r)}, per_rank[r], m.row_buf.data() + r * width);
  m.load_buf.clear();
  const std::vector<int64_t> expert_loads = loads.num_ranks > 0 ? loads.expert_loads() : std::vector<int64_t>{};
  for (size_t e = 0; e < expert_loads.size(); ++e)
    m.load_buf.push_back(ExpertLoadRow{pv, step, layer, static_cast<int32_t>(e), expert_loads[e]});

  try {
    append_rows(m.timeline, m.row_type, m.row_buf.data(), per_rank.size(), "/timeline");
    append_rows(m.expert_load, m.load_type, m.load_buf.data(), m.load_buf.size(), "/expert_load");
    h5::check(H5Fflush(m.file, H5F_SCOPE_LOCAL), "flushing " + m.path);
  } catch (const std::runtime_error& e) {
    m.fail_write(e.what());
  }
  m.rows += static_cast<int64_t>(per_rank.size());
  m.load_rows += static_cast<int64_t>(m.load_buf.size());
}

void TimelineWriter::close() {
  Impl& m = *impl_;
  if (!m.file.valid()) return;
  if (!m.failed.empty()) throw std::runtime_error(m.failed);
  h5::QuietErrors quiet;
  m.reserve_ahead();
  h5::write_attr(static_cast<hid_t>(m.file), "complete", int64_t{1});
  m.timeline.reset();
  m.expert_load.reset();
  m.row_type.reset();
  m.load_type.reset();
  m.policy_enum.reset();
  h5::check(H5Fflush(m.file, H5F_SCOPE_LOCAL), "flushing " + m.path);
  h5::check(m.file.reset(), "closing " + m.path);
}

int64_t TimelineWriter::rows() const { return impl_->rows; }
bool TimelineWriter::compressed() const { return impl_->compressed; }
const std::string& TimelineWriter::path() const { return impl_->path; }

}  // namespace moe
