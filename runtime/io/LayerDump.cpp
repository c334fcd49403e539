#include "runtime/io/LayerDump.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <sys/file.h>

#include "runtime/common/OutputFiles.hpp"
#include "runtime/io/H5Util.hpp"
#include "runtime/io/TimelineWriter.hpp"

namespace moe {

namespace {

// Datasets of the inputs, and of one policy's routing, output and gradients.
struct DumpSizes {
  double inputs = 0.0, policy = 0.0;
};

DumpSizes dump_sizes(const ModelShape& s, int64_t total_tokens) {
  const double T = static_cast<double>(total_tokens), D = s.hidden, H = s.ffn, N = s.num_experts, K = s.top_k;
  const double weights = D * N + N * (D * 2 * H + H * D + 2 * H + D);
  DumpSizes z;
  z.inputs = 4.0 * (T * D + weights);
  // expert_ids (4), gates (4), kept (1) per slot; output; G and dx; every weight's gradient.
  z.policy = 9.0 * T * K + 4.0 * T * D + 4.0 * (2 * T * D + weights);
  return z;
}

h5::Handle group(hid_t id) { return {id, H5Gclose}; }

// One dataset of `dims`, written from `data` converted to the file type T.
template <class T>
void write_dataset(hid_t loc, const char* name, const std::vector<hsize_t>& dims, const std::vector<T>& data,
                   hid_t file_type, hid_t mem_type) {
  hsize_t n = 1;
  for (hsize_t d : dims) n *= d;
  if (static_cast<hsize_t>(data.size()) != n)
    throw std::invalid_argument(std::string("dataset ") + name + " has " + std::to_string(data.size()) +
                                " values where its shape needs " + std::to_string(n));
  h5::Handle space =
      h5::space(h5::check_id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), "H5Screate"));
  h5::Handle dset =
      h5::dataset(h5::check_id(H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                               std::string("creating dataset ") + name));
  if (n > 0)
    h5::check(H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()), std::string("writing ") + name);
}

// Float data: stored as float32 (the runtime's type; exact for its values).
void write_floats(hid_t loc, const char* name, const std::vector<hsize_t>& dims, const std::vector<double>& v) {
  const std::vector<float> f(v.begin(), v.end());
  write_dataset(loc, name, dims, f, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
}

void write_root_attributes(hid_t root, const LayerDump& d, int64_t T) {
  const ModelShape& s = d.shape;
  h5::write_attr(root, "format", std::string("moe-ep layer dump"));
  h5::write_attr(root, "format_version", kLayerDumpFormatVersion);
  h5::write_attr(root, "tool", std::string("moe-ep"));
  h5::write_attr(root, "tool_version", d.tool_version);
  h5::write_attr(root, "created", iso8601_utc_now());
  h5::write_attr(root, "preset", s.preset);
  h5::write_attr(root, "hidden", int64_t{s.hidden});
  h5::write_attr(root, "ffn", int64_t{s.ffn});
  h5::write_attr(root, "experts", int64_t{s.num_experts});
  h5::write_attr(root, "top_k", int64_t{s.top_k});
  h5::write_attr(root, "activation", activation_name(s.activation));
  h5::write_attr(root, "swiglu_limit", static_cast<double>(s.swiglu_limit));
  h5::write_attr(root, "swiglu_alpha", static_cast<double>(s.swiglu_alpha));
  h5::write_attr(root, "has_biases", int64_t{s.activation == Activation::GptOss ? 1 : 0});
  h5::write_attr(root, "num_ranks", static_cast<int64_t>(d.tokens_per_rank.size()));
  h5::write_attr(root, "tokens_per_rank", d.tokens_per_rank);
  h5::write_attr(root, "tokens", T);
  h5::write_attr(root, "seed", d.seed);
  h5::write_attr(root, "scenario", d.scenario);
  h5::write_attr(root, "routing", d.routing);
  h5::write_attr(root, "step", int64_t{d.step});
  h5::write_attr(root, "layer", int64_t{d.layer});
  std::vector<std::string> names;
  for (const auto& p : d.policies) names.push_back(p.name);
  h5::write_attr(root, "policies", names);
  h5::write_attr(root, "config", d.config_json);
  h5::write_attr(root, "policy_params", d.policy_params_json);
  h5::write_attr(root, "weights_source",
                 std::string("experts: gathered from every rank's native expert store; router: generated on rank 0 "
                             "by the runtime's Router from (seed, layer)"));
}

void write_gradients(hid_t pol, const DumpGradients& g, const ModelShape& s, hsize_t T) {
  const hsize_t D = static_cast<hsize_t>(s.hidden), H = static_cast<hsize_t>(s.ffn),
                N = static_cast<hsize_t>(s.num_experts);
  if (!g.output_grad.empty()) write_floats(pol, "output_grad", {T, D}, g.output_grad);
  h5::Handle grads = group(h5::check_id(H5Gcreate2(pol, "grads", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "grads"));
  if (!g.dx.empty()) write_floats(grads, "dx", {T, D}, g.dx);
  if (!g.router_weights.empty()) write_floats(grads, "router_weights", {D, N}, g.router_weights);
  if (!g.w_gu.empty()) write_floats(grads, "w_gu", {N, D, 2 * H}, g.w_gu);
  if (!g.w_d.empty()) write_floats(grads, "w_d", {N, H, D}, g.w_d);
  if (!g.b_gu.empty()) write_floats(grads, "b_gu", {N, 2 * H}, g.b_gu);
  if (!g.b_d.empty()) write_floats(grads, "b_d", {N, D}, g.b_d);
}

void write_contents(hid_t file, const LayerDump& d) {
  const ModelShape& s = d.shape;
  int64_t total = 0;
  for (int64_t t : d.tokens_per_rank) total += t;
  const hsize_t T = static_cast<hsize_t>(total), D = static_cast<hsize_t>(s.hidden), H = static_cast<hsize_t>(s.ffn),
                N = static_cast<hsize_t>(s.num_experts), K = static_cast<hsize_t>(s.top_k);
  write_root_attributes(file, d, total);

  h5::Handle inputs = group(h5::check_id(H5Gcreate2(file, "inputs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "inputs"));
  write_floats(inputs, "tokens", {T, D}, d.tokens);
  write_floats(inputs, "router_weights", {D, N}, d.router_weights);
  h5::Handle experts =
      group(h5::check_id(H5Gcreate2(inputs, "experts", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "inputs/experts"));
  write_floats(experts, "w_gu", {N, D, 2 * H}, d.w_gu);
  write_floats(experts, "w_d", {N, H, D}, d.w_d);
  write_floats(experts, "b_gu", {N, 2 * H}, d.b_gu);
  write_floats(experts, "b_d", {N, D}, d.b_d);

  h5::Handle policies =
      group(h5::check_id(H5Gcreate2(file, "policies", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "policies"));
  for (const PolicyDump& p : d.policies) {
    h5::Handle pol = group(h5::check_id(H5Gcreate2(policies, p.name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                                        "policies/" + p.name));
    h5::write_attr(pol, "status", p.status);
    h5::write_attr(pol, "exact", int64_t{p.exact ? 1 : 0});
    h5::write_attr(pol, "has_gradients", int64_t{p.gradients ? 1 : 0});
    if (p.status != "ok") continue;
    int64_t dropped = 0;
    for (uint8_t k : p.kept) dropped += k ? 0 : 1;
    h5::write_attr(pol, "dropped_slots", dropped);
    write_dataset(pol, "expert_ids", {T, K}, p.expert_ids, H5T_STD_I32LE, H5T_NATIVE_INT32);
    write_floats(pol, "gates", {T, K}, p.gates);
    write_dataset(pol, "kept", {T, K}, p.kept, H5T_STD_U8LE, H5T_NATIVE_UINT8);
    write_floats(pol, "output", {T, D}, p.output);
    if (p.gradients) write_gradients(pol, *p.gradients, s, T);
  }
}

// Reserves `bytes` on the disk for the file (fallocate, keeping its size), so
// that a full disk is reported as such before HDF5 writes anything.
void reserve(hid_t file, int64_t bytes) {
  void* handle = nullptr;
  if (H5Fget_vfd_handle(file, H5P_DEFAULT, &handle) < 0 || !handle) return;
  const int fd = *static_cast<int*>(handle);
  if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, bytes) == 0) return;
  if (errno == EOPNOTSUPP || errno == ENOSYS) return;
  throw std::runtime_error(std::strerror(errno));
}

void sync_to_disk(const std::string& file) {
  const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::strerror(errno));
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0 && err != EINVAL && err != EROFS) throw std::runtime_error(std::strerror(err));
}

// Renames `tmp` over `target` holding an exclusive flock on the file it
// replaces (as the timeline does): a file a reader such as h5py holds open,
// or another run writes, is left as it was.
void publish(const std::string& tmp, const std::string& target) {
  const int old = open(target.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (old >= 0 && flock(old, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    close(old);
    throw std::runtime_error("it is locked by another process (" +
                             (err == EWOULDBLOCK
                                  ? std::string("a reader such as h5py holding it open, or another run writing it")
                                  : std::string(std::strerror(err))) +
                             ")");
  }
  const int rc = std::rename(tmp.c_str(), target.c_str());
  const int err = errno;
  if (old >= 0) close(old);
  if (rc != 0) throw std::runtime_error(std::strerror(err));
}

// Bytes of the datasets this dump writes.
int64_t data_bytes(const LayerDump& d) {
  auto floats = [](const std::vector<double>& v) { return 4 * static_cast<int64_t>(v.size()); };
  int64_t b =
      floats(d.tokens) + floats(d.router_weights) + floats(d.w_gu) + floats(d.w_d) + floats(d.b_gu) + floats(d.b_d);
  for (const PolicyDump& p : d.policies) {
    b += 4 * static_cast<int64_t>(p.expert_ids.size()) + floats(p.gates) + static_cast<int64_t>(p.kept.size()) +
         floats(p.output);
    if (const auto& g = p.gradients)
      b += floats(g->output_grad) + floats(g->dx) + floats(g->router_weights) + floats(g->w_gu) + floats(g->w_d) +
           floats(g->b_gu) + floats(g->b_d);
  }
  return b;
}

}  // namespace

double layer_dump_bytes(const ModelShape& shape, int64_t total_tokens, int num_policies) {
  const DumpSizes z = dump_sizes(shape, total_tokens);
  return z.inputs + num_policies * z.policy;
}

std::string layer_dump_limit_reason(const ModelShape& shape, int64_t total_tokens, int num_policies) {
  const double bytes = layer_dump_bytes(shape, total_tokens, num_policies);
  if (bytes <= static_cast<double>(kLayerDumpMaxBytes)) return {};
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "--dump: the dump of this run would hold %.0f MiB (%lld tokens on all ranks, %d experts of "
                "D = %d, H = %d, %d policies, gradients counted), over the limit of %lld MiB; --dump is meant "
                "for small shapes: lower --tokens, --experts, --hidden or --ffn, or dump fewer policies",
                bytes / 1048576.0, static_cast<long long>(total_tokens), shape.num_experts, shape.hidden, shape.ffn,
                num_policies, static_cast<long long>(kLayerDumpMaxBytes >> 20));
  return buf;
}

void write_layer_dump(const std::string& path, const LayerDump& dump, const std::string& flag) {
  const std::string target = output_target(path);
  const std::string tmp = create_temp_beside(target, flag);  // throws OutputError naming the flag
  try {
    h5::QuietErrors quiet;
    {
      // Default (earliest) file format, as the timeline: any HDF5 1.8+ reader opens it.
      h5::Handle file =
          h5::file(h5::check_id(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "creating the file"));
      // The data, and generously HDF5's metadata (a few KiB per object).
      reserve(file,
              data_bytes(dump) + (int64_t{256} << 10) + int64_t{16384} * static_cast<int64_t>(dump.policies.size()));
      write_contents(file, dump);
      h5::check(H5Fflush(file, H5F_SCOPE_LOCAL), "flushing the file");
      h5::check(file.reset(), "closing the file");
    }
    sync_to_disk(tmp);
    publish(tmp, target);
  } catch (const std::exception& e) {
    std::remove(tmp.c_str());
    throw OutputError(flag + ": cannot write '" + path + "': " + e.what() + " ('" + path + "' is unchanged)");
  }
}

}  // namespace moe
