// safetensors reader and writer (https://github.com/huggingface/safetensors, "Format"):
//
//   [8 bytes little-endian uint64 N][N bytes JSON header][data section]
//   header: {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//            "__metadata__": {"<key>": "<string>", ...}}     offsets relative to the data section
//
// SafetensorsFile maps the file read-only and validates the whole header up front, so a file that
// opens is self-consistent: every tensor's byte range lies inside the file, matches
// prod(shape) * dtype size, and overlaps no other tensor. Every failure is a farsee::Error naming
// the file and, where there is one, the tensor. Values are read as float from F32, F16, BF16 and
// F64 tensors; other dtypes are accepted in the header (their sizes are known) but not converted.
//
// SafetensorsWriter writes atomically (kernels/core/atomic_file.h: a temporary file in the
// destination folder, fsync, rename over the destination, fsync of the folder), so a crash or a
// failed write never leaves a partial file behind (checkpoints stay valid).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace farsee::weights {

enum class FileDType { BOOL, U8, I8, U16, I16, U32, I32, U64, I64, F16, BF16, F32, F64 };

const char* dtype_name(FileDType t);  // "F32", ...
size_t dtype_bytes(FileDType t);
// Throws farsee::Error naming `name` when not a safetensors dtype name.
FileDType parse_dtype(const std::string& name);
bool converts_to_float(FileDType t);  // F32, F16, BF16, F64

using TensorShape = std::vector<int64_t>;
std::string shape_text(const TensorShape& shape);  // "[64, 3, 7, 7]"
int64_t shape_numel(const TensorShape& shape);     // 1 for a scalar []

struct TensorInfo {
  std::string name;
  FileDType dtype = FileDType::F32;
  TensorShape shape;
  uint64_t begin = 0, end = 0;  // byte range in the data section
  int64_t numel() const { return shape_numel(shape); }
  size_t bytes() const { return size_t(end - begin); }
};

// Headers larger than this are refused (the limit of the reference implementation).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

class SafetensorsFile {
 public:
  // Maps and validates `path`; throws farsee::Error naming the file (and tensor) on any problem.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Metadata value of `key`, or `fallback` when absent.
  std::string metadata_value(const std::string& key, const std::string& fallback = "") const;

  // Tensors in data-section order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  // Throws naming the file and the tensor when absent.
  const TensorInfo& info(const std::string& name) const;
  // info(name), also checking the shape: a mismatch throws naming the file, the tensor and both
  // shapes.
  const TensorInfo& expect(const std::string& name, const TensorShape& shape) const;

  // The tensor's raw little-endian bytes (inside the mapping; valid while this object lives).
  const uint8_t* raw_data(const std::string& name) const;
  // Values converted to float (F32, F16, BF16, F64); other dtypes throw naming the dtype.
  std::vector<float> read_floats(const std::string& name) const;
  // expect(name, shape) then read_floats(name).
  std::vector<float> read_floats(const std::string& name, const TensorShape& shape) const;

  // Names in the file that are not in `expected`, sorted (unknown extra tensors to report).
  std::vector<std::string> report_unexpected(const std::vector<std::string>& expected) const;

 private:
  void map_file();      // the whole file, read-only
  void parse_header();  // validates the header and fills metadata_, tensors_, index_
  void read_metadata(const nlohmann::json& value);
  void check_no_overlap();
  void release();
  std::string where(const std::string& tensor = "") const;

  std::string path_;
  const uint8_t* map_ = nullptr;  // whole file
  size_t map_bytes_ = 0;
  const uint8_t* data_ = nullptr;  // data section
  size_t data_bytes_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;  // name -> tensors_ position
};

// Tensors to check and read by name: see read_expected().
struct ExpectedTensor {
  std::string name;
  TensorShape shape;
};
struct FloatTensor {
  TensorShape shape;
  std::vector<float> data;
};
// Reads every expected tensor as float after checking it is present with its shape (throws naming
// the file, the tensor and both shapes). Names the file holds beyond `expected` go to `unknown`
// when given; when `unknown` is null they are an error listing them.
std::map<std::string, FloatTensor> read_expected(const SafetensorsFile& file,
                                                 const std::vector<ExpectedTensor>& expected,
                                                 std::vector<std::string>* unknown);

class SafetensorsWriter {
 public:
  // Metadata values are strings (the format's rule).
  void set_metadata(const std::string& key, const std::string& value);
  // Stores prod(shape) values converted to `dtype` (F32, F16 or BF16; round to nearest even).
  void add(const std::string& name, const TensorShape& shape, const float* values,
           FileDType dtype = FileDType::F32);
  void add(const std::string& name, const TensorShape& shape, const std::vector<float>& values,
           FileDType dtype = FileDType::F32);
  // Stores raw little-endian bytes of any dtype; `bytes` must be prod(shape) * dtype size.
  void add_raw(const std::string& name, FileDType dtype, const TensorShape& shape, const void* data,
               size_t bytes);

  size_t size() const { return entries_.size(); }
  // The complete file contents (header padded with spaces to 8-byte alignment, tensors in the
  // order added).
  std::vector<uint8_t> serialize() const;
  // Atomic and durable (kernels/core/atomic_file.h). On failure the temporary file is removed,
  // `path` is untouched, and farsee::Error names `path`.
  void write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    FileDType dtype;
    TensorShape shape;
    std::vector<uint8_t> bytes;
  };
  void check_new_name(const std::string& name) const;
  std::map<std::string, std::string> metadata_;
  std::vector<Entry> entries_;
};

}  // namespace farsee::weights
