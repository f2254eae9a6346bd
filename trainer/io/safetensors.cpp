// Safetensors reading (mmap, every rule the official library enforces checked in open()) and
// atomic writing.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>

#include "util/error.h"
#include "util/file_descriptor.h"
#include "util/mapped_file.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; tensors are copied byte for byte");

namespace lctrain::io {
namespace {

using Json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the official library's limit

struct DtypeName {
  const char* name;
  torch::ScalarType dtype;
};

constexpr DtypeName kDtypes[] = {{"F64", torch::kFloat64}, {"F32", torch::kFloat32},
                                 {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
                                 {"I64", torch::kInt64},   {"I32", torch::kInt32},
                                 {"I16", torch::kInt16},   {"I8", torch::kInt8},
                                 {"U8", torch::kUInt8},    {"BOOL", torch::kBool}};

std::optional<torch::ScalarType> dtype_from_name(const std::string& name) {
  for (const DtypeName& entry : kDtypes) {
    if (name == entry.name) return entry.dtype;
  }
  return std::nullopt;
}

const char* name_of_dtype(torch::ScalarType dtype) {
  for (const DtypeName& entry : kDtypes) {
    if (dtype == entry.dtype) return entry.name;
  }
  return nullptr;
}

// Whether `value` is small enough to print: few elements, shallow nesting. Bounded recursion,
// because dump() recurses per nesting level and a crafted header can nest millions deep.
bool printable(const Json& value, int depth) {
  if (!value.is_structured()) return true;
  if (depth == 0 || value.size() > 8) return false;
  return std::all_of(value.begin(), value.end(),
                     [&](const Json& child) { return printable(child, depth - 1); });
}

// A JSON value for an error message, cut short: a crafted header may hold megabytes in one value.
std::string brief(const Json& value) {
  if (!printable(value, 3)) {
    return fmt::format("<{} of {} elements>", value.type_name(), value.size());
  }
  constexpr size_t kLimit = 64;
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > kLimit) text = text.substr(0, kLimit) + "...";
  return text;
}

// nlohmann stores non-negative integers as unsigned, but "-0" style values come back signed.
std::optional<uint64_t> as_unsigned(const Json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    return static_cast<uint64_t>(value.get<int64_t>());
  }
  return std::nullopt;
}

const Json& member(const Json& entry, const char* key) {
  const auto found = entry.find(key);
  LCTRAIN_CHECK(found != entry.end(), "missing \"{}\"", key);
  return *found;
}

// Reads shape and dtype, returning the byte size they imply.
uint64_t parse_shape(const Json& entry, TensorInfo& info) {
  const Json& dtype = member(entry, "dtype");
  LCTRAIN_CHECK(dtype.is_string(), "\"dtype\" is not a string: {}", brief(dtype));
  const auto known = dtype_from_name(dtype.get_ref<const std::string&>());
  LCTRAIN_CHECK(known.has_value(),
                "unsupported dtype '{}' (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)",
                dtype.get_ref<const std::string&>());
  info.dtype = *known;

  const Json& shape = member(entry, "shape");
  LCTRAIN_CHECK(shape.is_array(), "\"shape\" is not an array: {}", brief(shape));
  // Product of the non-zero dims must fit int64 (LibTorch computes numel that way).
  uint64_t nonzero_product = 1;
  bool has_zero = false;
  for (const Json& dim : shape) {
    const auto value = as_unsigned(dim);
    LCTRAIN_CHECK(value.has_value(), "\"shape\" entries must be non-negative integers, got {}",
                  brief(dim));
    const bool fits =
        !__builtin_mul_overflow(nonzero_product, std::max<uint64_t>(*value, 1), &nonzero_product) &&
        nonzero_product <= uint64_t{std::numeric_limits<int64_t>::max()};
    LCTRAIN_CHECK(fits, "\"shape\" {} overflows the element count", brief(shape));
    has_zero = has_zero || *value == 0;
    info.shape.push_back(static_cast<int64_t>(*value));
  }
  const uint64_t numel = has_zero ? 0 : nonzero_product;
  uint64_t bytes = 0;
  LCTRAIN_CHECK(!__builtin_mul_overflow(numel, c10::elementSize(info.dtype), &bytes),
                "\"shape\" {} overflows the byte size", brief(shape));
  return bytes;
}

TensorInfo parse_entry(const std::string& name, const Json& entry, uint64_t buffer_size) {
  return with_context(fmt::format("tensor '{}'", name), [&] {
    LCTRAIN_CHECK(entry.is_object(), "entry is not a JSON object: {}", brief(entry));
    TensorInfo info;
    info.name = name;
    const uint64_t bytes = parse_shape(entry, info);

    const Json& offsets = member(entry, "data_offsets");
    LCTRAIN_CHECK(offsets.is_array() && offsets.size() == 2,
                  "\"data_offsets\" must be an array of two integers, got {}", brief(offsets));
    const auto begin = as_unsigned(offsets[0]);
    const auto end = as_unsigned(offsets[1]);
    LCTRAIN_CHECK(begin && end, "\"data_offsets\" must be non-negative integers, got {}",
                  brief(offsets));
    LCTRAIN_CHECK(*begin <= *end, "\"data_offsets\" begin {} is after end {}", *begin, *end);
    LCTRAIN_CHECK(*end <= buffer_size, "\"data_offsets\" end {} is beyond the {}-byte data buffer",
                  *end, buffer_size);
    LCTRAIN_CHECK(*end - *begin == bytes,
                  "\"data_offsets\" [{}, {}] span {} bytes, but dtype and shape need {}", *begin,
                  *end, *end - *begin, bytes);
    info.begin = *begin;
    info.end = *end;
    return info;
  });
}

void parse_metadata(const Json& entry, std::map<std::string, std::string>& metadata) {
  LCTRAIN_CHECK(entry.is_object(), "\"__metadata__\" is not a JSON object: {}", brief(entry));
  for (const auto& [key, value] : entry.items()) {
    LCTRAIN_CHECK(value.is_string(), "\"__metadata__\" entry '{}' is not a string: {}", key,
                  brief(value));
    metadata.emplace(key, value.get<std::string>());
  }
}

// Tensors must tile the buffer exactly: sorted by offset, no overlap, no hole, nothing left over.
void check_coverage(const std::map<std::string, TensorInfo>& tensors, uint64_t buffer_size) {
  std::vector<const TensorInfo*> order;
  order.reserve(tensors.size());
  for (const auto& entry : tensors) order.push_back(&entry.second);
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return std::tie(a->begin, a->end) < std::tie(b->begin, b->end);
  });
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo* info : order) {
    LCTRAIN_CHECK(info->begin >= covered,
                  "tensor '{}' data_offsets [{}, {}] overlap tensor '{}', which ends at {}",
                  info->name, info->begin, info->end, previous ? previous->name : "", covered);
    LCTRAIN_CHECK(info->begin == covered,
                  "hole in the data buffer: bytes [{}, {}) before tensor '{}' belong to no tensor",
                  covered, info->begin, info->name);
    covered = info->end;
    previous = info;
  }
  LCTRAIN_CHECK(covered == buffer_size,
                "hole in the data buffer: bytes [{}, {}) at its end belong to no tensor", covered,
                buffer_size);
}

void parse_header(std::string_view text, uint64_t buffer_size,
                  std::map<std::string, TensorInfo>& tensors,
                  std::map<std::string, std::string>& metadata) {
  Json header;
  try {
    header = Json::parse(text.begin(), text.end());
  } catch (const Json::exception& error) {
    throw Error("header is not valid JSON: {}", error.what());
  }
  LCTRAIN_CHECK(header.is_object(), "header is not a JSON object: {}", brief(header));
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      parse_metadata(entry, metadata);
    } else {
      tensors.emplace(name, parse_entry(name, entry, buffer_size));
    }
  }
  check_coverage(tensors, buffer_size);
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  return with_context(fmt::format("safetensors file '{}'", path.string()), [&] {
    SafetensorsFile file;
    file.path_ = path;
    file.mapping_ = MappedFile::open(path, MappedFile::Access::kReadOnly);
    const uint64_t file_size = file.mapping_->size();
    LCTRAIN_CHECK(file_size >= 8, "file is {} bytes, smaller than the 8-byte header length",
                  file_size);
    const uint8_t* const bytes = file.mapping_->data();
    uint64_t header_length = 0;
    for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | bytes[i];
    LCTRAIN_CHECK(header_length > 0, "header length is 0");
    LCTRAIN_CHECK(header_length <= kMaxHeaderBytes,
                  "header length {} exceeds the limit of {} bytes", header_length, kMaxHeaderBytes);
    LCTRAIN_CHECK(8 + header_length <= file_size, "header length {} beyond file size {}",
                  header_length, file_size);
    file.data_start_ = 8 + header_length;
    const std::string_view header(reinterpret_cast<const char*>(bytes + 8), header_length);
    parse_header(header, file_size - file.data_start_, file.tensors_, file.metadata_);
    return file;
  });
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> result;
  result.reserve(tensors_.size());
  for (const auto& entry : tensors_) result.push_back(entry.first);
  return result;
}

bool SafetensorsFile::contains(const std::string& name) const { return tensors_.count(name) > 0; }

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto found = tensors_.find(name);
  LCTRAIN_CHECK(found != tensors_.end(), "tensor '{}' not found in safetensors file '{}'", name,
                path_.string());
  return found->second;
}

torch::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo& meta = info(name);
  torch::Tensor result = torch::empty(meta.shape, torch::TensorOptions().dtype(meta.dtype));
  const uint64_t size = meta.end - meta.begin;
  if (size == 0) return result;
  auto* const target = static_cast<uint8_t*>(result.data_ptr());
  std::memcpy(target, mapping_->data() + data_start_ + meta.begin, size);
  mapping_->release(data_start_ + meta.begin, size);
  // A bool byte other than 0/1 is undefined behaviour in LibTorch kernels: normalise.
  if (meta.dtype == torch::kBool) {
    for (uint64_t i = 0; i < size; ++i) target[i] = target[i] != 0 ? 1 : 0;
  }
  return result;
}

void SafetensorsFile::read_range(const std::string& name, int64_t begin, torch::Tensor& out) const {
  const TensorInfo& meta = info(name);
  int64_t numel = 1;
  for (const int64_t size : meta.shape) numel *= size;
  const int64_t count = out.numel();
  LCTRAIN_CHECK(begin >= 0 && count <= numel && begin <= numel - count,
                "safetensors file '{}': elements [{}, {}) lie outside tensor '{}' of {} elements",
                path_.string(), begin, begin + count, name, numel);
  LCTRAIN_CHECK(out.is_contiguous() && out.device().is_cpu() && out.dim() == 1,
                "internal: read_range needs a contiguous 1-D CPU tensor");
  LCTRAIN_CHECK(meta.dtype != torch::kBool, "internal: read_range of the bool tensor '{}'", name);
  const auto element = static_cast<int64_t>(c10::elementSize(meta.dtype));
  // 4 MiB of stored bytes at a time: the mapping may be unaligned, so each chunk is copied into an
  // aligned buffer, then converted into place.
  const int64_t chunk = std::max<int64_t>(1, (int64_t{4} << 20) / element);
  torch::Tensor buffer = torch::empty({std::min(chunk, count)}, torch::dtype(meta.dtype));
  for (int64_t done = 0; done < count;) {
    const int64_t take = std::min(chunk, count - done);
    const uint64_t offset =
        data_start_ + meta.begin + static_cast<uint64_t>((begin + done) * element);
    const auto bytes = static_cast<uint64_t>(take * element);
    std::memcpy(buffer.data_ptr(), mapping_->data() + offset, bytes);
    mapping_->release(offset, bytes);
    out.narrow(0, done, take).copy_(buffer.narrow(0, 0, take));
    done += take;
  }
}

uint64_t tensor_bytes(const torch::Tensor& tensor) {
  if (!tensor.defined()) return 0;
  return static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
}

void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  with_context(fmt::format("writing safetensors file '{}'", path.string()), [&] {
    std::vector<detail::HeaderEntry> entries;
    entries.reserve(tensors.size());
    for (const auto& [name, tensor] : tensors) {
      LCTRAIN_CHECK(tensor.defined(), "tensor '{}' is undefined", name);
      entries.push_back({name, tensor.scalar_type(), tensor.sizes().vec()});
    }
    const std::string header = detail::safetensors_header(entries, metadata);

    detail::AtomicFileWriter out(path);
    out.write(header.data(), header.size());
    // Convert one tensor at a time so a GPU model is never copied to host memory all at once.
    for (const auto& entry : tensors) {
      const torch::Tensor data = entry.second.detach().to(torch::kCPU).contiguous();
      out.write(data.data_ptr(), tensor_bytes(data));
    }
    out.commit();
  });
}

namespace detail {

std::string safetensors_header(const std::vector<HeaderEntry>& entries,
                               const std::map<std::string, std::string>& metadata) {
  // Header key order follows the official writer: metadata first, then tensors in file order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const HeaderEntry& entry : entries) {
    const std::string& name = entry.name;
    LCTRAIN_CHECK(!name.empty(), "tensor names must be non-empty");
    LCTRAIN_CHECK(name != "__metadata__", "tensor name '__metadata__' is reserved");
    LCTRAIN_CHECK(seen.insert(name).second, "duplicate tensor name '{}'", name);
    const char* const dtype = name_of_dtype(entry.dtype);
    LCTRAIN_CHECK(dtype != nullptr, "tensor '{}' has unsupported dtype {}", name,
                  c10::toString(entry.dtype));
    uint64_t numel = 1;
    for (const int64_t size : entry.shape) numel *= static_cast<uint64_t>(size);
    const uint64_t size = numel * c10::elementSize(entry.dtype);
    header[name] = {
        {"dtype", dtype}, {"shape", entry.shape}, {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& error) {
    throw Error("cannot encode the header (names and metadata must be UTF-8): {}", error.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(uint64_t{text.size()} >> (8 * i));
  return bytes + text;
}

AtomicFileWriter::AtomicFileWriter(std::filesystem::path path)
    : path_(std::move(path)), temp_path_(path_.string() + ".tmp") {
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  LCTRAIN_CHECK(fd_ >= 0, "cannot create '{}': {}", temp_path_.string(), errno_text());
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_path_.c_str());
  }
}

void AtomicFileWriter::write(const void* data, size_t size) {
  LCTRAIN_CHECK(fd_ >= 0, "write to '{}' after commit", temp_path_.string());
  const auto* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = ::write(fd_, bytes, size);
    if (written < 0 && errno == EINTR) continue;
    LCTRAIN_CHECK(written > 0, "cannot write '{}': {}", temp_path_.string(), errno_text());
    bytes += written;
    size -= static_cast<size_t>(written);
  }
}

void AtomicFileWriter::commit() {
  LCTRAIN_CHECK(fd_ >= 0, "'{}' committed twice", temp_path_.string());
  LCTRAIN_CHECK(::fsync(fd_) == 0, "cannot fsync '{}': {}", temp_path_.string(), errno_text());
  const int fd = fd_;
  fd_ = -1;
  const bool closed = ::close(fd) == 0;
  const std::string close_error = errno_text();
  const bool renamed = closed && ::rename(temp_path_.c_str(), path_.c_str()) == 0;
  if (!renamed) {
    const std::string error = closed ? errno_text() : close_error;
    ::unlink(temp_path_.c_str());
    throw Error("cannot {} '{}': {}", closed ? "rename to" : "close", path_.string(), error);
  }
  // Make the rename itself durable; failure here does not lose the data, so it is not fatal.
  const std::filesystem::path parent = path_.has_parent_path() ? path_.parent_path() : ".";
  const FileDescriptor directory(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (directory.get() >= 0) ::fsync(directory.get());
}

}  // namespace detail
}  // namespace lctrain::io
