#include "runtime/io/TraceReader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <new>
#include <stdexcept>

#include "runtime/common/Errors.hpp"
#include "runtime/common/OutputFiles.hpp"
#include "runtime/io/H5Util.hpp"
#include "runtime/io/TimelineWriter.hpp"

namespace moe {

namespace {

std::string dims_text(const std::vector<hsize_t>& d) {
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s += (i ? " x " : "") + std::to_string(d[i]);
  return s.empty() ? "scalar" : s;
}

std::string index_text(int64_t s, int64_t l, int64_t t, int64_t k) {
  std::string out("[");  // appended piecewise: GCC 12 warns (-Wrestrict) on "[" + std::string
  for (int64_t v : {s, l, t, k}) out.append(std::to_string(v)).append(",");
  out.back() = ']';
  return out;
}

std::vector<hsize_t> dims_of(hid_t dset) {
  h5::Handle sp = h5::space(H5Dget_space(dset));
  if (!sp.valid()) return {};
  const int rank = H5Sget_simple_extent_ndims(sp);
  if (rank <= 0) return {};
  std::vector<hsize_t> d(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(sp, d.data(), nullptr);
  return d;
}

constexpr const char* kFormatHint = "int32 [steps, layers, tokens, K], docs/traces.md";

}  // namespace

struct TraceReader::Impl {
  std::string path;
  std::string where;  // "--scenario trace:PATH"
  int num_experts = 0;
  int top_k = 0;
  h5::Handle file;
  h5::Handle ids;
  TraceDims dims;
  // The last slab read by read(): (step, layer, offset, tokens) -> ids.
  mutable int64_t cached_step = -1, cached_layer = -1, cached_offset = -1, cached_tokens = -1;
  mutable std::vector<int64_t> cache;

  [[noreturn]] void fail(const std::string& why, bool collective = true) const {
    throw InputError(where + ": " + why, collective);
  }

  // Reads tokens [t0, t0 + n) of (s, l) into out (n * K values).
  void read_slab(int64_t s, int64_t l, int64_t t0, int64_t n, std::vector<int64_t>& out, bool collective) const {
    const hsize_t K = static_cast<hsize_t>(top_k);
    out.resize(static_cast<size_t>(n) * K);
    if (n == 0) return;
    h5::QuietErrors quiet;
    h5::Handle fspace = h5::space(H5Dget_space(ids));
    const hsize_t start[4] = {static_cast<hsize_t>(s), static_cast<hsize_t>(l), static_cast<hsize_t>(t0), 0};
    const hsize_t count[4] = {1, 1, static_cast<hsize_t>(n), K};
    const hsize_t mcount = static_cast<hsize_t>(n) * K;
    h5::Handle mspace = h5::space(H5Screate_simple(1, &mcount, nullptr));
    if (!fspace.valid() || !mspace.valid() ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr) < 0 ||
        H5Dread(ids, H5T_NATIVE_INT64, mspace, fspace, H5P_DEFAULT, out.data()) < 0) {
      const std::string why = h5::last_error();
      fail("cannot read /expert_ids[" + std::to_string(s) + "," + std::to_string(l) + "," + std::to_string(t0) + ":" +
               std::to_string(t0 + n) + ",:] (the file is truncated or corrupt" + (why.empty() ? "" : ": " + why) + ")",
           collective);
    }
  }

  // Checks ids of (s, l, t0 + i / K, i % K) against [0, N).
  void check_range(int64_t s, int64_t l, int64_t t0, const std::vector<int64_t>& v, bool collective) const {
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] >= 0 && v[i] < num_experts) continue;
      const int64_t t = t0 + static_cast<int64_t>(i) / top_k, k = static_cast<int64_t>(i) % top_k;
      fail("/expert_ids" + index_text(s, l, t, k) + " = " + std::to_string(v[i]) +
               " is out of range: expert ids must be in 0.." + std::to_string(num_experts - 1) + " (--experts " +
               std::to_string(num_experts) + ")",
           collective);
    }
  }
};

TraceReader::TraceReader(const std::string& path, const ModelShape& shape) : impl_(std::make_unique<Impl>()) {
  namespace fs = std::filesystem;
  Impl& m = *impl_;
  m.path = path;
  m.where = "--scenario trace:" + path;
  m.num_experts = shape.num_experts;
  m.top_k = shape.top_k;
  std::error_code ec;
  if (!fs::exists(path, ec)) m.fail("no such file");
  if (fs::is_directory(path, ec)) m.fail("is a directory, not an HDF5 trace file");
  // A FIFO or a device would block or never end when HDF5 reads it.
  if (!fs::is_regular_file(path, ec))
    m.fail("is not a regular file (a FIFO, socket or device), not an HDF5 trace file");

  h5::QuietErrors quiet;
  const htri_t is_h5 = H5Fis_hdf5(path.c_str());
  if (is_h5 == 0) m.fail("not an HDF5 file (expected dataset /expert_ids, " + std::string(kFormatHint) + ")");
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    const std::string why = h5::last_error();
    m.fail("cannot open it as HDF5: the file is truncated or corrupt" + (why.empty() ? "" : " (" + why + ")"));
  }
  m.file = h5::file(f);

  if (H5Lexists(m.file, "expert_ids", H5P_DEFAULT) <= 0)
    m.fail("dataset /expert_ids is missing (expected " + std::string(kFormatHint) + ")");
  H5O_info_t info{};
  if (H5Oget_info_by_name(m.file, "expert_ids", &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_DATASET)
    m.fail("/expert_ids is not a dataset (expected " + std::string(kFormatHint) + ")");
  const hid_t d = H5Dopen2(m.file, "expert_ids", H5P_DEFAULT);
  if (d < 0) m.fail("cannot open dataset /expert_ids (" + h5::last_error() + ")");
  m.ids = h5::dataset(d);
  {
    h5::Handle t = h5::type(H5Dget_type(m.ids));
    if (!t.valid() || H5Tget_class(t) != H5T_INTEGER)
      m.fail("dataset /expert_ids does not hold integers (expected " + std::string(kFormatHint) + ")");
  }
  const std::vector<hsize_t> dims = dims_of(m.ids);
  if (dims.size() != 4)
    m.fail("dataset /expert_ids has " + std::to_string(dims.size()) + " dimension(s) (" + dims_text(dims) +
           "); expected 4: [steps, layers, tokens, K]");
  m.dims.steps = static_cast<int64_t>(dims[0]);
  m.dims.layers = static_cast<int64_t>(dims[1]);
  m.dims.tokens = static_cast<int64_t>(dims[2]);
  m.dims.top_k = static_cast<int64_t>(dims[3]);
  if (m.dims.top_k != shape.top_k)
    m.fail("dataset /expert_ids holds K = " + std::to_string(m.dims.top_k) +
           " experts per token (dimension 3) but the run has --top-k " + std::to_string(shape.top_k) +
           " (use --top-k " + std::to_string(m.dims.top_k) + ")");

  int64_t attr = 0;
  if (h5::read_int_attr(m.file, "top_k", attr) && attr != m.dims.top_k)
    m.fail("attribute top_k = " + std::to_string(attr) + " disagrees with dimension 3 of /expert_ids (" +
           std::to_string(m.dims.top_k) + ")");
  if (h5::read_int_attr(m.file, "num_experts", attr) && attr != shape.num_experts)
    m.fail("attribute num_experts = " + std::to_string(attr) + " but the run has --experts " +
           std::to_string(shape.num_experts) + " (use --experts " + std::to_string(attr) + ")");

  if (H5Lexists(m.file, "gates", H5P_DEFAULT) > 0) {
    const hid_t g = H5Dopen2(m.file, "gates", H5P_DEFAULT);
    if (g < 0) m.fail("/gates is not a dataset (expected float32 with the dims of /expert_ids)");
    h5::Handle gates = h5::dataset(g);
    h5::Handle t = h5::type(H5Dget_type(gates));
    if (!t.valid() || H5Tget_class(t) != H5T_FLOAT)
      m.fail("dataset /gates does not hold floats (expected float32 with the dims of /expert_ids)");
    const std::vector<hsize_t> gd = dims_of(gates);
    if (gd != dims)
      m.fail("dataset /gates has dims " + dims_text(gd) + " but /expert_ids has " + dims_text(dims) +
             " (they must match)");
    m.dims.has_gates = true;
  }
}

TraceReader::~TraceReader() = default;

const TraceDims& TraceReader::dims() const { return impl_->dims; }

void TraceReader::validate(int steps, int layers, int64_t total_tokens) const {
  const Impl& m = *impl_;
  if (m.dims.steps < steps)
    m.fail("dataset /expert_ids holds " + std::to_string(m.dims.steps) +
           " step(s) (dimension 0) but the run needs --steps " + std::to_string(steps));
  if (m.dims.layers < layers)
    m.fail("dataset /expert_ids holds " + std::to_string(m.dims.layers) +
           " layer(s) (dimension 1) but the run needs --layers " + std::to_string(layers));
  if (m.dims.tokens < total_tokens)
    m.fail("dataset /expert_ids holds " + std::to_string(m.dims.tokens) +
           " tokens per (step, layer) (dimension 2) but the run needs " + std::to_string(total_tokens) +
           " (the tokens of all ranks: --tokens x ranks, or the sum of --tokens-per-rank)");
  std::vector<int64_t> buf;
  for (int s = 0; s < steps; ++s)
    for (int l = 0; l < layers; ++l) {
      m.read_slab(s, l, 0, total_tokens, buf, true);
      m.check_range(s, l, 0, buf, true);
    }
}

void TraceReader::read(int step, int layer, int64_t token_offset, int64_t tokens, std::span<int32_t> expert_ids) const {
  const Impl& m = *impl_;
  const int64_t K = m.top_k;
  if (static_cast<int64_t>(expert_ids.size()) < tokens * K)
    throw std::invalid_argument("TraceReader::read: output span too small");
  if (step < 0 || step >= m.dims.steps)
    m.fail("step " + std::to_string(step) + " is beyond the " + std::to_string(m.dims.steps) +
               " step(s) of /expert_ids (dimension 0); use --steps <= " + std::to_string(m.dims.steps),
           false);
  if (layer < 0 || layer >= m.dims.layers)
    m.fail("layer " + std::to_string(layer) + " is beyond the " + std::to_string(m.dims.layers) +
               " layer(s) of /expert_ids (dimension 1); use --layers <= " + std::to_string(m.dims.layers),
           false);
  if (token_offset < 0 || token_offset + tokens > m.dims.tokens)
    m.fail("tokens " + std::to_string(token_offset) + ".." + std::to_string(token_offset + tokens - 1) +
               " are beyond the " + std::to_string(m.dims.tokens) + " tokens of /expert_ids (dimension 2)",
           false);
  if (m.cached_step != step || m.cached_layer != layer || m.cached_offset != token_offset ||
      m.cached_tokens != tokens) {
    m.cached_step = -1;  // invalid until the read and the check succeed
    m.read_slab(step, layer, token_offset, tokens, m.cache, false);
    m.check_range(step, layer, token_offset, m.cache, false);
    m.cached_step = step;
    m.cached_layer = layer;
    m.cached_offset = token_offset;
    m.cached_tokens = tokens;
  }
  for (int64_t i = 0; i < tokens * K; ++i) expert_ids[static_cast<size_t>(i)] = static_cast<int32_t>(m.cache[i]);
}

void validate_trace(const std::string& path, const ModelShape& shape, int steps, int layers, int64_t total_tokens) {
  TraceReader(path, shape).validate(steps, layers, total_tokens);
}

namespace {
void write_trace_file(const std::string& path, int steps, int layers, int64_t total, const TraceMeta& meta,
                      const TraceSlabFill& fill);
}  // namespace

void write_trace(const std::string& path, int steps, int layers, int64_t total, const TraceMeta& meta,
                 const TraceSlabFill& fill) {
  if (total <= 0 || steps < 1 || layers < 1 || meta.top_k < 1)
    throw std::invalid_argument("write_trace: needs >= 1 step, >= 1 layer, >= 1 token and top_k >= 1");
  h5::QuietErrors quiet;
  // Written to a new file beside `path` and renamed over it when complete: an
  // existing file is never truncated, and a failed write leaves it as it was
  // and no temporary file behind.
  const std::string target = output_target(path);
  std::string temp;
  auto cannot_create = [&](const std::string& detail) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(path).has_parent_path() ? fs::path(path).parent_path() : fs::path(".");
    std::error_code ec;
    const std::string why = !fs::is_directory(dir, ec) ? "the directory '" + dir.string() + "' does not exist" : detail;
    return std::runtime_error("cannot create '" + path + "': " + why);
  };
  try {
    temp = create_temp_beside(target, "--out");
  } catch (const OutputError& e) {
    throw cannot_create(e.what());
  }
  try {
    write_trace_file(temp, steps, layers, total, meta, fill);
  } catch (const std::exception& e) {
    std::remove(temp.c_str());
    if (dynamic_cast<const std::bad_alloc*>(&e)) throw;
    throw OutputError("cannot write '" + path + "': " + e.what() + " ('" + path + "' is unchanged)");
  }
  if (std::rename(temp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    std::remove(temp.c_str());
    throw OutputError("cannot write '" + path + "': " + std::strerror(err) + " ('" + path + "' is unchanged)");
  }
}

namespace {
void write_trace_file(const std::string& path, int steps, int layers, int64_t total, const TraceMeta& meta,
                      const TraceSlabFill& fill) {
  const int K = meta.top_k;
  h5::QuietErrors quiet;
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) throw std::runtime_error("HDF5 cannot create it (" + h5::last_error() + ")");
  h5::Handle file = h5::file(f);
  const hsize_t dims[4] = {static_cast<hsize_t>(steps), static_cast<hsize_t>(layers), static_cast<hsize_t>(total),
                           static_cast<hsize_t>(K)};
  bool compressed = false;
  h5::Handle dcpl = h5::chunked_plist({1, 1, std::min<hsize_t>(dims[2], 16384), dims[3]}, compressed);
  h5::Handle fspace = h5::space(h5::check_id(H5Screate_simple(4, dims, nullptr), "H5Screate_simple"));
  h5::Handle ds = h5::dataset(h5::check_id(
      H5Dcreate2(file, "expert_ids", H5T_STD_I32LE, fspace, H5P_DEFAULT, dcpl, H5P_DEFAULT), "creating /expert_ids"));

  std::vector<int32_t> buf(static_cast<size_t>(total * K));
  const hsize_t mcount = buf.size();
  h5::Handle mspace = h5::space(h5::check_id(H5Screate_simple(1, &mcount, nullptr), "H5Screate_simple"));
  for (int s = 0; s < steps; ++s)
    for (int l = 0; l < layers; ++l) {
      fill(s, l, std::span<int32_t>(buf));
      const hsize_t start[4] = {static_cast<hsize_t>(s), static_cast<hsize_t>(l), 0, 0};
      const hsize_t count[4] = {1, 1, dims[2], dims[3]};
      h5::check(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr), "H5Sselect_hyperslab");
      h5::check(H5Dwrite(ds, H5T_NATIVE_INT32, mspace, fspace, H5P_DEFAULT, buf.data()),
                "writing /expert_ids[" + std::to_string(s) + "," + std::to_string(l) + ",:,:] to " + path);
    }

  const hid_t root = file;
  h5::write_attr(root, "format", std::string("moe-ep routing trace"));
  h5::write_attr(root, "format_version", int64_t{1});
  h5::write_attr(root, "num_experts", int64_t{meta.num_experts});
  h5::write_attr(root, "top_k", int64_t{K});
  h5::write_attr(root, "source", meta.source);
  h5::write_attr(root, "tool_version", meta.tool_version);
  for (const auto& [name, value] : meta.attributes)
    std::visit([&, &name = name](const auto& v) { h5::write_attr(root, name.c_str(), v); }, value);
  if (!meta.tokens_per_rank.empty()) h5::write_attr(root, "tokens_per_rank", meta.tokens_per_rank);
  h5::write_attr(root, "created", iso8601_utc_now());
  ds.reset();
  h5::check(file.reset(), "closing " + path);
}
}  // namespace

}  // namespace moe
