#pragma once
// Small RAII helpers over the HDF5 C API, shared by the timeline writer and the
// trace reader. Internal to the runtime's .cpp files (the public headers do not
// include hdf5.h).

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <hdf5.h>

namespace moe::h5 {

/// Owns one HDF5 identifier and closes it with the matching H5?close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), close_(o.close_) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
      close_ = o.close_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  /// Closes now; returns the close call's status (0 when there was nothing to close).
  herr_t reset() {
    herr_t st = 0;
    if (id_ >= 0 && close_) st = close_(id_);
    id_ = H5I_INVALID_HID;
    return st;
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  operator hid_t() const { return id_; }  // NOLINT: passes straight to the C API

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

inline Handle file(hid_t id) { return {id, H5Fclose}; }
inline Handle dataset(hid_t id) { return {id, H5Dclose}; }
inline Handle space(hid_t id) { return {id, H5Sclose}; }
inline Handle type(hid_t id) { return {id, H5Tclose}; }
inline Handle plist(hid_t id) { return {id, H5Pclose}; }
inline Handle attr(hid_t id) { return {id, H5Aclose}; }

/// Turns off HDF5's printing of its error stack for the scope: errors are
/// reported as one line by the caller (with last_error()).
class QuietErrors {
 public:
  QuietErrors() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

/// The most specific message on the current HDF5 error stack ("" when empty).
inline std::string last_error() {
  std::string msg;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
        auto* s = static_cast<std::string*>(out);
        if (s->empty() && e->desc && *e->desc) *s = e->desc;
        return 0;
      },
      &msg);
  return msg;
}

/// Throws std::runtime_error("HDF5: <what> failed (<last_error>)") when st < 0.
inline void check(herr_t st, const std::string& what) {
  if (st < 0) {
    const std::string why = last_error();
    throw std::runtime_error("HDF5: " + what + " failed" + (why.empty() ? "" : " (" + why + ")"));
  }
}
inline hid_t check_id(hid_t id, const std::string& what) {
  if (id < 0) check(-1, what);
  return id;
}

// ---- attributes -----------------------------------------------------------

inline void delete_attr_if_exists(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) > 0) check(H5Adelete(obj, name), std::string("deleting attribute ") + name);
}

inline Handle vlen_string_type() {
  Handle t = type(check_id(H5Tcopy(H5T_C_S1), "H5Tcopy"));
  check(H5Tset_size(t, H5T_VARIABLE), "H5Tset_size");
  check(H5Tset_cset(t, H5T_CSET_UTF8), "H5Tset_cset");
  return t;
}

/// Scalar attribute of a variable-length UTF-8 string (h5py reads it as str).
inline void write_attr(hid_t obj, const char* name, const std::string& value) {
  delete_attr_if_exists(obj, name);
  Handle t = vlen_string_type();
  Handle s = space(check_id(H5Screate(H5S_SCALAR), "H5Screate"));
  Handle a = attr(check_id(H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT), std::string("attribute ") + name));
  const char* p = value.c_str();
  check(H5Awrite(a, t, &p), std::string("writing attribute ") + name);
}

/// 1-D attribute of variable-length UTF-8 strings.
inline void write_attr(hid_t obj, const char* name, const std::vector<std::string>& values) {
  delete_attr_if_exists(obj, name);
  Handle t = vlen_string_type();
  const hsize_t n = values.size();
  Handle s = space(check_id(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
  Handle a = attr(check_id(H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT), std::string("attribute ") + name));
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  if (n > 0) check(H5Awrite(a, t, ptrs.data()), std::string("writing attribute ") + name);
}

template <class T>
hid_t file_type_of();
template <>
inline hid_t file_type_of<int64_t>() {
  return H5T_STD_I64LE;
}
template <>
inline hid_t file_type_of<uint64_t>() {
  return H5T_STD_U64LE;
}
template <>
inline hid_t file_type_of<double>() {
  return H5T_IEEE_F64LE;
}
template <class T>
hid_t mem_type_of();
template <>
inline hid_t mem_type_of<int64_t>() {
  return H5T_NATIVE_INT64;
}
template <>
inline hid_t mem_type_of<uint64_t>() {
  return H5T_NATIVE_UINT64;
}
template <>
inline hid_t mem_type_of<double>() {
  return H5T_NATIVE_DOUBLE;
}

/// Scalar numeric attribute (int64, uint64 or double); overwrites an existing one.
template <class T>
void write_attr(hid_t obj, const char* name, T value) {
  if (H5Aexists(obj, name) > 0) {
    Handle a = attr(check_id(H5Aopen(obj, name, H5P_DEFAULT), std::string("attribute ") + name));
    check(H5Awrite(a, mem_type_of<T>(), &value), std::string("writing attribute ") + name);
    return;
  }
  Handle s = space(check_id(H5Screate(H5S_SCALAR), "H5Screate"));
  Handle a = attr(check_id(H5Acreate2(obj, name, file_type_of<T>(), s, H5P_DEFAULT, H5P_DEFAULT),
                           std::string("attribute ") + name));
  check(H5Awrite(a, mem_type_of<T>(), &value), std::string("writing attribute ") + name);
}

/// 1-D int64 attribute.
inline void write_attr(hid_t obj, const char* name, const std::vector<int64_t>& values) {
  delete_attr_if_exists(obj, name);
  const hsize_t n = values.size();
  Handle s = space(check_id(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
  Handle a = attr(
      check_id(H5Acreate2(obj, name, H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT), std::string("attribute ") + name));
  if (n > 0) check(H5Awrite(a, H5T_NATIVE_INT64, values.data()), std::string("writing attribute ") + name);
}

/// Reads a scalar integer attribute; false when it is absent or not a scalar integer.
inline bool read_int_attr(hid_t obj, const char* name, int64_t& out) {
  if (H5Aexists(obj, name) <= 0) return false;
  Handle a = attr(H5Aopen(obj, name, H5P_DEFAULT));
  if (!a.valid()) return false;
  Handle t = type(H5Aget_type(a));
  Handle s = space(H5Aget_space(a));
  if (!t.valid() || !s.valid() || H5Tget_class(t) != H5T_INTEGER || H5Sget_simple_extent_npoints(s) != 1) return false;
  return H5Aread(a, H5T_NATIVE_INT64, &out) >= 0;
}

/// Dataset creation properties: chunked with `chunk` dims, shuffle + deflate
/// when the deflate filter can encode here. Sets `compressed` accordingly.
inline Handle chunked_plist(const std::vector<hsize_t>& chunk, bool& compressed) {
  Handle dcpl = plist(check_id(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate"));
  check(H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data()), "H5Pset_chunk");
  compressed = false;
  unsigned int info = 0;
  if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0 && H5Zget_filter_info(H5Z_FILTER_DEFLATE, &info) >= 0 &&
      (info & H5Z_FILTER_CONFIG_ENCODE_ENABLED)) {
    check(H5Pset_shuffle(dcpl), "H5Pset_shuffle");
    check(H5Pset_deflate(dcpl, 4), "H5Pset_deflate");
    compressed = true;
  }
  return dcpl;
}

}  // namespace moe::h5
