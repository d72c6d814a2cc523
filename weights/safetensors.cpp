#include "weights/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "kernels/core/atomic_file.h"
#include "kernels/core/check.h"
#include "kernels/core/half_convert.h"

namespace farsee::weights {

using nlohmann::json;

namespace {

struct DTypeEntry {
  FileDType dtype;
  const char* name;
  size_t bytes;
};
constexpr DTypeEntry kDTypes[] = {
    {FileDType::BOOL, "BOOL", 1}, {FileDType::U8, "U8", 1},     {FileDType::I8, "I8", 1},
    {FileDType::U16, "U16", 2},   {FileDType::I16, "I16", 2},   {FileDType::U32, "U32", 4},
    {FileDType::I32, "I32", 4},   {FileDType::U64, "U64", 8},   {FileDType::I64, "I64", 8},
    {FileDType::F16, "F16", 2},   {FileDType::BF16, "BF16", 2}, {FileDType::F32, "F32", 4},
    {FileDType::F64, "F64", 8},
};

const DTypeEntry& entry(FileDType t) {
  for (const auto& e : kDTypes) {
    if (e.dtype == t) return e;
  }
  FARSEE_REQUIRE(false, "invalid FileDType value " << int(t));
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string errno_text() {
  return std::strerror(errno);
}

// numel * element bytes, or -1 on overflow / negative dimensions.
int64_t checked_bytes(const TensorShape& shape, size_t element_bytes) {
  int64_t n = int64_t(element_bytes);
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return -1;
    n *= d;
  }
  return n;
}

}  // namespace

// ---- dtypes and shapes ----

const char* dtype_name(FileDType t) {
  return entry(t).name;
}
size_t dtype_bytes(FileDType t) {
  return entry(t).bytes;
}

FileDType parse_dtype(const std::string& name) {
  for (const auto& e : kDTypes) {
    if (name == e.name) return e.dtype;
  }
  FARSEE_REQUIRE(false, "unknown dtype '" << name << "'");
}

bool converts_to_float(FileDType t) {
  return t == FileDType::F32 || t == FileDType::F16 || t == FileDType::BF16 || t == FileDType::F64;
}

std::string shape_text(const TensorShape& shape) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < shape.size(); ++i) o << (i ? ", " : "") << shape[i];
  o << "]";
  return o.str();
}

int64_t shape_numel(const TensorShape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- reader ----

std::string SafetensorsFile::where(const std::string& tensor) const {
  std::string s = "safetensors file '" + path_ + "'";
  if (!tensor.empty()) s += ": tensor '" + tensor + "'";
  return s;
}

namespace {

// One tensor's header entry, checked against the data section's size. `where` names the file and
// the tensor in messages.
TensorInfo parse_tensor_entry(const std::string& where, const std::string& name, const json& v,
                              size_t data_bytes) {
  FARSEE_REQUIRE(v.is_object(), where << ": header entry is not a JSON object");
  TensorInfo t;
  t.name = name;
  FARSEE_REQUIRE(v.contains("dtype"), where << ": missing 'dtype'");
  FARSEE_REQUIRE(v["dtype"].is_string(), where << ": 'dtype' is not a string");
  try {
    t.dtype = parse_dtype(v["dtype"].get<std::string>());
  } catch (const Error&) {
    FARSEE_REQUIRE(false, where << ": unknown dtype '" << v["dtype"].get<std::string>() << "'");
  }
  FARSEE_REQUIRE(v.contains("shape"), where << ": missing 'shape'");
  FARSEE_REQUIRE(v["shape"].is_array(), where << ": 'shape' is not an array");
  for (const json& d : v["shape"]) {
    FARSEE_REQUIRE(d.is_number_unsigned(), where << ": shape " << v["shape"].dump()
                                                 << " is not a list of non-negative integers");
    t.shape.push_back(int64_t(d.get<uint64_t>()));
  }
  FARSEE_REQUIRE(v.contains("data_offsets"), where << ": missing 'data_offsets'");
  const json& off = v["data_offsets"];
  FARSEE_REQUIRE(
      off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
          off[1].is_number_unsigned(),
      where << ": 'data_offsets' " << off.dump() << " is not a pair of non-negative integers");
  t.begin = off[0].get<uint64_t>();
  t.end = off[1].get<uint64_t>();
  FARSEE_REQUIRE(t.begin <= t.end,
                 where << ": data_offsets [" << t.begin << ", " << t.end << "] begin after end");
  FARSEE_REQUIRE(t.end <= data_bytes, where << ": data_offsets [" << t.begin << ", " << t.end
                                            << "] lie outside the " << data_bytes
                                            << "-byte data section (truncated file?)");
  const int64_t want = checked_bytes(t.shape, dtype_bytes(t.dtype));
  FARSEE_REQUIRE(want >= 0, where << ": shape " << shape_text(t.shape) << " overflows");
  FARSEE_REQUIRE(uint64_t(want) == t.end - t.begin,
                 where << ": data_offsets [" << t.begin << ", " << t.end << "] hold "
                       << t.end - t.begin << " bytes, but shape " << shape_text(t.shape) << " of "
                       << dtype_name(t.dtype) << " needs " << want);
  return t;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  map_file();
  try {
    parse_header();
  } catch (...) {
    release();
    throw;
  }
}

void SafetensorsFile::map_file() {
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  FARSEE_REQUIRE(fd >= 0, where() << ": cannot open: " << errno_text());
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const std::string why = errno_text();
    ::close(fd);
    FARSEE_REQUIRE(false, where() << ": cannot stat: " << why);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    FARSEE_REQUIRE(false, where() << ": not a regular file");
  }
  const size_t file_bytes = size_t(st.st_size);
  if (file_bytes < 8) {
    ::close(fd);
    FARSEE_REQUIRE(false, where() << ": file too short (" << file_bytes
                                  << " bytes) to hold the 8-byte header length");
  }
  void* m = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  const std::string map_error = m == MAP_FAILED ? errno_text() : "";
  ::close(fd);  // the mapping keeps the file alive
  FARSEE_REQUIRE(m != MAP_FAILED, where() << ": cannot map: " << map_error);
  map_ = static_cast<const uint8_t*>(m);
  map_bytes_ = file_bytes;
}

void SafetensorsFile::parse_header() {
  const uint64_t header_bytes = read_le64(map_);
  FARSEE_REQUIRE(header_bytes <= kMaxHeaderBytes,
                 where() << ": header length " << header_bytes << " exceeds the limit of "
                         << kMaxHeaderBytes << " bytes (not a safetensors file?)");
  FARSEE_REQUIRE(header_bytes <= map_bytes_ - 8,
                 where() << ": header length " << header_bytes << " goes beyond the end of the "
                         << map_bytes_ << "-byte file (truncated file?)");
  data_ = map_ + 8 + header_bytes;
  data_bytes_ = map_bytes_ - 8 - size_t(header_bytes);

  // Parse, rejecting duplicate top-level names (nlohmann would silently keep the last).
  std::set<std::string> seen;
  const json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      const std::string key = parsed.get<std::string>();
      FARSEE_REQUIRE(seen.insert(key).second,
                     where(key) << ": the header names this tensor more than once");
    }
    return true;
  };
  json header;
  try {
    header = json::parse(reinterpret_cast<const char*>(map_ + 8),
                         reinterpret_cast<const char*>(data_), on_event);
  } catch (const json::exception& e) {
    FARSEE_REQUIRE(false, where() << ": header is not valid JSON: " << e.what());
  }
  FARSEE_REQUIRE(header.is_object(), where() << ": header is not a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      read_metadata(it.value());
    } else {
      tensors_.push_back(parse_tensor_entry(where(it.key()), it.key(), it.value(), data_bytes_));
    }
  }
  check_no_overlap();
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

void SafetensorsFile::read_metadata(const json& v) {
  FARSEE_REQUIRE(v.is_object() || v.is_null(), where() << ": __metadata__ is not an object");
  if (v.is_null()) return;
  for (auto it = v.begin(); it != v.end(); ++it) {
    FARSEE_REQUIRE(it.value().is_string(),
                   where() << ": __metadata__ value of '" << it.key() << "' is not a string");
    metadata_[it.key()] = it.value().get<std::string>();
  }
}

// Sorts the tensors into data-section order and refuses overlapping byte ranges.
void SafetensorsFile::check_no_overlap() {
  std::stable_sort(tensors_.begin(), tensors_.end(),
                   [](const TensorInfo& a, const TensorInfo& b) { return a.begin < b.begin; });
  const TensorInfo* previous = nullptr;  // last non-empty tensor
  for (const TensorInfo& t : tensors_) {
    if (t.begin == t.end) continue;  // empty tensors occupy no bytes
    FARSEE_REQUIRE(!previous || t.begin >= previous->end,
                   where(t.name) << ": bytes [" << t.begin << ", " << t.end << ") overlap tensor '"
                                 << previous->name << "' [" << previous->begin << ", "
                                 << previous->end << ")");
    previous = &t;
  }
}

SafetensorsFile::~SafetensorsFile() {
  release();
}

void SafetensorsFile::release() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
  data_ = nullptr;
  data_bytes_ = 0;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept {
  *this = std::move(o);
}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    map_ = o.map_;
    map_bytes_ = o.map_bytes_;
    data_ = o.data_;
    data_bytes_ = o.data_bytes_;
    metadata_ = std::move(o.metadata_);
    tensors_ = std::move(o.tensors_);
    index_ = std::move(o.index_);
    o.map_ = nullptr;
    o.map_bytes_ = 0;
    o.data_ = nullptr;
    o.data_bytes_ = 0;
  }
  return *this;
}

std::string SafetensorsFile::metadata_value(const std::string& key,
                                            const std::string& fallback) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? fallback : it->second;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& t : tensors_) out.push_back(t.name);
  return out;
}

bool SafetensorsFile::contains(const std::string& name) const {
  return index_.count(name) != 0;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  FARSEE_REQUIRE(it != index_.end(),
                 where(name) << ": missing (the file holds " << tensors_.size() << " tensors)");
  return tensors_[it->second];
}

const TensorInfo& SafetensorsFile::expect(const std::string& name, const TensorShape& shape) const {
  auto it = index_.find(name);
  FARSEE_REQUIRE(it != index_.end(),
                 where(name) << ": missing (expected shape " << shape_text(shape) << ")");
  const TensorInfo& t = tensors_[it->second];
  FARSEE_REQUIRE(t.shape == shape, where(name) << ": shape " << shape_text(t.shape)
                                               << " in the file, expected " << shape_text(shape));
  return t;
}

const uint8_t* SafetensorsFile::raw_data(const std::string& name) const {
  return data_ + info(name).begin;
}

std::vector<float> SafetensorsFile::read_floats(const std::string& name) const {
  const TensorInfo& t = info(name);
  FARSEE_REQUIRE(converts_to_float(t.dtype), where(name) << ": dtype " << dtype_name(t.dtype)
                                                         << " cannot be read as float (F32, "
                                                            "F16, BF16 or F64 expected)");
  const size_t n = size_t(t.numel());
  const uint8_t* p = data_ + t.begin;  // may be unaligned: copy element by element
  std::vector<float> out(n);
  switch (t.dtype) {
    case FileDType::F32:
      if (n) std::memcpy(out.data(), p, n * 4);
      break;
    case FileDType::F64:
      for (size_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, p + 8 * i, 8);
        out[i] = float(v);
      }
      break;
    case FileDType::F16:
    case FileDType::BF16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t bits = uint16_t(p[2 * i] | (p[2 * i + 1] << 8));
        out[i] = t.dtype == FileDType::F16 ? half_bits_to_float(bits) : bf16_bits_to_float(bits);
      }
      break;
    default:
      break;  // excluded above
  }
  return out;
}

std::vector<float> SafetensorsFile::read_floats(const std::string& name,
                                                const TensorShape& shape) const {
  expect(name, shape);
  return read_floats(name);
}

std::vector<std::string> SafetensorsFile::report_unexpected(
    const std::vector<std::string>& expected) const {
  const std::set<std::string> known(expected.begin(), expected.end());
  std::vector<std::string> out;
  for (const auto& kv : index_) {
    if (!known.count(kv.first)) out.push_back(kv.first);
  }
  return out;  // index_ is a std::map: already sorted
}

std::map<std::string, FloatTensor> read_expected(const SafetensorsFile& file,
                                                 const std::vector<ExpectedTensor>& expected,
                                                 std::vector<std::string>* unknown) {
  std::map<std::string, FloatTensor> out;
  std::vector<std::string> names;
  names.reserve(expected.size());
  for (const ExpectedTensor& e : expected) {
    out[e.name] = FloatTensor{e.shape, file.read_floats(e.name, e.shape)};
    names.push_back(e.name);
  }
  std::vector<std::string> extra = file.report_unexpected(names);
  if (unknown) {
    *unknown = std::move(extra);
  } else if (!extra.empty()) {
    std::ostringstream list;
    for (size_t i = 0; i < extra.size(); ++i) list << (i ? ", " : "") << "'" << extra[i] << "'";
    FARSEE_REQUIRE(false, "safetensors file '" << file.path() << "': " << extra.size()
                                               << " unexpected tensor(s): " << list.str());
  }
  return out;
}

// ---- writer ----

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

void SafetensorsWriter::check_new_name(const std::string& name) const {
  FARSEE_REQUIRE(name != "__metadata__", "SafetensorsWriter: '__metadata__' is not a tensor name");
  for (const Entry& e : entries_) {
    FARSEE_REQUIRE(e.name != name, "SafetensorsWriter: tensor '" << name << "' added twice");
  }
}

void SafetensorsWriter::add(const std::string& name, const TensorShape& shape, const float* values,
                            FileDType dtype) {
  check_new_name(name);
  FARSEE_REQUIRE(
      dtype == FileDType::F32 || dtype == FileDType::F16 || dtype == FileDType::BF16,
      "SafetensorsWriter: tensor '" << name << "': cannot store floats as " << dtype_name(dtype));
  const int64_t bytes = checked_bytes(shape, dtype_bytes(dtype));
  FARSEE_REQUIRE(bytes >= 0,
                 "SafetensorsWriter: tensor '" << name << "': bad shape " << shape_text(shape));
  const size_t n = size_t(shape_numel(shape));
  FARSEE_REQUIRE(n == 0 || values, "SafetensorsWriter: tensor '" << name << "': no values");
  Entry e{name, dtype, shape, std::vector<uint8_t>(size_t(bytes))};
  if (dtype == FileDType::F32) {
    if (n) std::memcpy(e.bytes.data(), values, n * 4);
  } else {
    for (size_t i = 0; i < n; ++i) {
      const uint16_t bits =
          dtype == FileDType::F16 ? float_to_half_bits(values[i]) : float_to_bf16_bits(values[i]);
      e.bytes[2 * i] = uint8_t(bits & 0xff);
      e.bytes[2 * i + 1] = uint8_t(bits >> 8);
    }
  }
  entries_.push_back(std::move(e));
}

void SafetensorsWriter::add(const std::string& name, const TensorShape& shape,
                            const std::vector<float>& values, FileDType dtype) {
  FARSEE_REQUIRE(checked_bytes(shape, 1) == int64_t(values.size()),
                 "SafetensorsWriter: tensor '" << name << "': " << values.size()
                                               << " values for shape " << shape_text(shape));
  add(name, shape, values.data(), dtype);
}

void SafetensorsWriter::add_raw(const std::string& name, FileDType dtype, const TensorShape& shape,
                                const void* data, size_t bytes) {
  check_new_name(name);
  const int64_t want = checked_bytes(shape, dtype_bytes(dtype));
  FARSEE_REQUIRE(want >= 0 && uint64_t(want) == bytes,
                 "SafetensorsWriter: tensor '" << name << "': " << bytes << " bytes for shape "
                                               << shape_text(shape) << " of " << dtype_name(dtype));
  Entry e{name, dtype, shape, std::vector<uint8_t>(bytes)};
  if (bytes) std::memcpy(e.bytes.data(), data, bytes);
  entries_.push_back(std::move(e));
}

std::vector<uint8_t> SafetensorsWriter::serialize() const {
  json header = json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    header[e.name] = {{"dtype", dtype_name(e.dtype)},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {  // e.g. a tensor name that is not valid UTF-8
    FARSEE_REQUIRE(false, "SafetensorsWriter: cannot encode the header: " << e.what());
  }
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');  // data section 8-byte aligned
  std::vector<uint8_t> out;
  out.reserve(8 + text.size() + offset);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(n >> (8 * i)));
  out.insert(out.end(), text.begin(), text.end());
  for (const Entry& e : entries_) out.insert(out.end(), e.bytes.begin(), e.bytes.end());
  return out;
}

void SafetensorsWriter::write(const std::string& path) const {
  const std::vector<uint8_t> bytes = serialize();
  write_file_atomic(path, bytes.data(), bytes.size(), "safetensors file");
}

}  // namespace farsee::weights
