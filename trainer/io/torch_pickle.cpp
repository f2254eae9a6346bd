// The restricted unpickler. Python objects are modelled by a small tagged Object; everything the
// pickle builds lives in one arena owned by the Unpickler, so self-referencing or deeply nested
// containers (which memo opcodes make easy to craft) cannot leak or overflow the stack on
// destruction.
#include "io/torch_pickle.h"

#include <cstring>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "io/zip_archive.h"
#include "util/error.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "torch.save storages are little-endian; they are used byte for byte");

namespace lctrain::io {
namespace {

enum class Kind {
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kBytes,
  kTuple,
  kList,
  kDict,
  kGlobal,
  kStorage,
  kTensor
};

const char* kind_name(Kind kind) {
  static const char* const kNames[] = {"None",  "bool", "int",  "float",  "str",     "bytes",
                                       "tuple", "list", "dict", "global", "storage", "tensor"};
  return kNames[static_cast<int>(kind)];
}

struct Object {
  Kind kind = Kind::kNone;
  int64_t integer = 0;         // int, bool
  double number = 0.0;         // float
  std::string text;            // str, bytes, global "module.name", storage key
  std::vector<Object*> items;  // tuple, list; tensor: storage, offset, size, stride
  std::vector<std::pair<Object*, Object*>> entries;  // dict, in insertion order
  torch::ScalarType dtype = torch::kUInt8;           // storage: element type (integer: its numel)
};

struct StorageClass {
  const char* name;
  torch::ScalarType dtype;
};

// The legacy typed storage classes torch.save names in persistent ids (and UntypedStorage, bytes).
constexpr StorageClass kStorageClasses[] = {
    {"torch.FloatStorage", torch::kFloat32}, {"torch.DoubleStorage", torch::kFloat64},
    {"torch.HalfStorage", torch::kFloat16},  {"torch.BFloat16Storage", torch::kBFloat16},
    {"torch.LongStorage", torch::kInt64},    {"torch.IntStorage", torch::kInt32},
    {"torch.ShortStorage", torch::kInt16},   {"torch.CharStorage", torch::kInt8},
    {"torch.ByteStorage", torch::kUInt8},    {"torch.BoolStorage", torch::kBool},
    {"torch.UntypedStorage", torch::kUInt8}};

constexpr const char* kRebuildTensor = "torch._utils._rebuild_tensor_v2";
constexpr const char* kRebuildParameter = "torch._utils._rebuild_parameter";
constexpr const char* kOrderedDict = "collections.OrderedDict";

const StorageClass* storage_class(const std::string& name) {
  for (const StorageClass& entry : kStorageClasses) {
    if (name == entry.name) return &entry;
  }
  return nullptr;
}

bool allowed_global(const std::string& name) {
  return name == kRebuildTensor || name == kRebuildParameter || name == kOrderedDict ||
         storage_class(name) != nullptr;
}

std::vector<int64_t> int_tuple(const Object* tuple, const char* what) {
  LCTRAIN_CHECK(tuple->items.size() <= 64, "{} has {} dimensions", what, tuple->items.size());
  std::vector<int64_t> values;
  for (const Object* item : tuple->items) {
    LCTRAIN_CHECK(item->kind == Kind::kInt && item->integer >= 0,
                  "{} must hold non-negative integers", what);
    values.push_back(item->integer);
  }
  return values;
}

// A view on the storage, after checking that every element it reaches lies inside it.
torch::Tensor materialize(const Object* tensor, const torch::Tensor& storage) {
  const int64_t offset = tensor->items[1]->integer;
  const std::vector<int64_t> size = int_tuple(tensor->items[2], "size");
  const std::vector<int64_t> stride = int_tuple(tensor->items[3], "stride");
  LCTRAIN_CHECK(size.size() == stride.size(), "size has {} dimensions but stride has {}",
                size.size(), stride.size());
  LCTRAIN_CHECK(offset >= 0, "negative storage offset {}", offset);
  bool empty = false;
  int64_t last = offset;  // the highest element index the view reaches
  for (size_t dim = 0; dim < size.size(); ++dim) {
    empty = empty || size[dim] == 0;
    int64_t reach = 0;
    const bool fits =
        size[dim] == 0 || (!__builtin_mul_overflow(size[dim] - 1, stride[dim], &reach) &&
                           !__builtin_add_overflow(last, reach, &last));
    LCTRAIN_CHECK(fits, "size and stride overflow");
  }
  const int64_t storage_numel = storage.numel();
  LCTRAIN_CHECK(empty ? offset <= storage_numel : last < storage_numel,
                "size {} / stride {} at offset {} reaches past its storage of {} elements",
                fmt::join(size, "x"), fmt::join(stride, ","), offset, storage_numel);
  return storage.as_strided(size, stride, offset);
}

class Unpickler {
 public:
  Unpickler(const ZipArchive& archive, std::string prefix)
      : archive_(archive), prefix_(std::move(prefix)), data_(archive.read(prefix_ + "/data.pkl")) {}

  Object* run() {
    while (true) {
      const size_t at = position_;
      const auto opcode = static_cast<unsigned char>(bytes(1)[0]);
      if (opcode == '.') break;  // STOP
      with_context(fmt::format("{}/data.pkl byte {} (opcode 0x{:02x})", prefix_, at, opcode),
                   [&] { step(opcode); });
    }
    LCTRAIN_CHECK(stack_.size() == 1 && marks_.empty(),
                  "malformed pickle: {} values left on the stack at STOP", stack_.size());
    return stack_.back();
  }

  // A tensor object of the result as a view on its storage (read from the archive once).
  torch::Tensor tensor_of(const Object* tensor) {
    const Object* storage = tensor->items[0];
    auto& flat = loaded_[storage->text];
    if (!flat.defined()) flat = load_storage(storage->text, storage->dtype, storage->integer);
    return materialize(tensor, flat);
  }

 private:
  void step(unsigned char opcode) {
    switch (opcode) {
      case 0x80:  // PROTO
        LCTRAIN_CHECK(unsigned_int(1) <= 5, "unknown pickle protocol");
        break;
      case 0x95:  // FRAME (protocol 4): only a length hint
        unsigned_int(8);
        break;
      case '(':  // MARK
        marks_.push_back(stack_.size());
        break;
      case '0':  // POP
        pop();
        break;
      case '1':  // POP_MARK
        pop_mark();
        break;
      case '2':  // DUP
        push(top());
        break;
      case 'N':
        push(make(Kind::kNone));
        break;
      case 0x88:  // NEWTRUE
      case 0x89:  // NEWFALSE
        push(make_int(Kind::kBool, opcode == 0x88 ? 1 : 0));
        break;
      case 'J':  // BININT: signed 32-bit
        push(make_int(Kind::kInt, static_cast<int32_t>(unsigned_int(4))));
        break;
      case 'K':  // BININT1
        push(make_int(Kind::kInt, static_cast<int64_t>(unsigned_int(1))));
        break;
      case 'M':  // BININT2
        push(make_int(Kind::kInt, static_cast<int64_t>(unsigned_int(2))));
        break;
      case 0x8a:  // LONG1
        push(make_int(Kind::kInt, long_int(unsigned_int(1))));
        break;
      case 0x8b:  // LONG4
        push(make_int(Kind::kInt, long_int(unsigned_int(4))));
        break;
      case 'G':  // BINFLOAT: big-endian double
        push(binary_float());
        break;
      case 'X':  // BINUNICODE
      case 'T':  // BINSTRING
        push(make_text(Kind::kString, bytes(unsigned_int(4))));
        break;
      case 0x8c:  // SHORT_BINUNICODE
      case 'U':   // SHORT_BINSTRING
        push(make_text(Kind::kString, bytes(unsigned_int(1))));
        break;
      case 0x8d:  // BINUNICODE8
        push(make_text(Kind::kString, bytes(unsigned_int(8))));
        break;
      case 'B':  // BINBYTES
        push(make_text(Kind::kBytes, bytes(unsigned_int(4))));
        break;
      case 'C':  // SHORT_BINBYTES
        push(make_text(Kind::kBytes, bytes(unsigned_int(1))));
        break;
      case 0x8e:  // BINBYTES8
        push(make_text(Kind::kBytes, bytes(unsigned_int(8))));
        break;
      case ')':  // EMPTY_TUPLE
        push(make(Kind::kTuple));
        break;
      case 't':  // TUPLE
        push(make_sequence(Kind::kTuple, pop_mark()));
        break;
      case 0x85:  // TUPLE1
      case 0x86:  // TUPLE2
      case 0x87:  // TUPLE3
        push(make_sequence(Kind::kTuple, pop_n(opcode - 0x84)));
        break;
      case ']':  // EMPTY_LIST
        push(make(Kind::kList));
        break;
      case 'l':  // LIST
        push(make_sequence(Kind::kList, pop_mark()));
        break;
      case 'a': {  // APPEND
        Object* value = pop();
        append(top(), {value});
        break;
      }
      case 'e': {  // APPENDS
        std::vector<Object*> values = pop_mark();
        append(top(), values);
        break;
      }
      case '}':  // EMPTY_DICT
        push(make(Kind::kDict));
        break;
      case 'd': {  // DICT
        Object* dict = make(Kind::kDict);
        set_items(dict, pop_mark());
        push(dict);
        break;
      }
      case 's': {  // SETITEM
        std::vector<Object*> pair = pop_n(2);
        set_items(top(), pair);
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<Object*> pairs = pop_mark();
        set_items(top(), pairs);
        break;
      }
      case 'c': {  // GLOBAL: "module\nname\n"
        const std::string module = line();
        push(global(module + "." + line()));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Object* name = pop();
        Object* module = pop();
        LCTRAIN_CHECK(name->kind == Kind::kString && module->kind == Kind::kString,
                      "STACK_GLOBAL expects two strings");
        push(global(module->text + "." + name->text));
        break;
      }
      case 'Q':  // BINPERSID
        push(persistent_load(pop()));
        break;
      case 'R': {  // REDUCE
        Object* args = pop();
        Object* callable = pop();
        push(reduce(callable, args));
        break;
      }
      case 'b': {  // BUILD
        Object* state = pop();
        build(top(), state);
        break;
      }
      case 'q':  // BINPUT
        memo_[static_cast<uint32_t>(unsigned_int(1))] = top();
        break;
      case 'r':  // LONG_BINPUT
        memo_[static_cast<uint32_t>(unsigned_int(4))] = top();
        break;
      case 0x94:  // MEMOIZE
        memo_[static_cast<uint32_t>(memo_.size())] = top();
        break;
      case 'h':  // BINGET
        push(memo_get(unsigned_int(1)));
        break;
      case 'j':  // LONG_BINGET
        push(memo_get(unsigned_int(4)));
        break;
      default:
        throw Error("unsupported pickle opcode (torch.save never writes it)");
    }
  }

  // --- reading the byte stream ---

  std::string_view bytes(uint64_t count) {
    LCTRAIN_CHECK(count <= data_.size() - position_, "data.pkl is truncated ({} bytes)",
                  data_.size());
    const std::string_view result = data_.substr(position_, count);
    position_ += count;
    return result;
  }
  uint64_t unsigned_int(int count) {
    const std::string_view raw = bytes(static_cast<uint64_t>(count));
    uint64_t value = 0;
    for (int index = count - 1; index >= 0; --index) {
      value = (value << 8) | static_cast<unsigned char>(raw[index]);
    }
    return value;
  }
  int64_t long_int(uint64_t count) {
    LCTRAIN_CHECK(count <= 8, "integer of {} bytes does not fit 64 bits", count);
    if (count == 0) return 0;
    uint64_t value = unsigned_int(static_cast<int>(count));
    if (count < 8 && (value >> (8 * count - 1)) != 0) value |= ~uint64_t{0} << (8 * count);
    return static_cast<int64_t>(value);
  }
  Object* binary_float() {
    const std::string_view raw = bytes(8);
    uint64_t bits = 0;
    for (const char byte : raw) bits = (bits << 8) | static_cast<unsigned char>(byte);
    Object* object = make(Kind::kFloat);
    std::memcpy(&object->number, &bits, sizeof bits);
    return object;
  }
  std::string line() {
    const size_t end = data_.find('\n', position_);
    LCTRAIN_CHECK(end != std::string_view::npos && end - position_ <= 256,
                  "GLOBAL name is not terminated");
    std::string text(data_.substr(position_, end - position_));
    position_ = end + 1;
    return text;
  }

  // --- the stack and the objects ---

  Object* make(Kind kind) {
    arena_.push_back(std::make_unique<Object>());
    arena_.back()->kind = kind;
    return arena_.back().get();
  }
  Object* make_int(Kind kind, int64_t value) {
    Object* object = make(kind);
    object->integer = value;
    return object;
  }
  Object* make_text(Kind kind, std::string_view text) {
    Object* object = make(kind);
    object->text = std::string(text);
    return object;
  }
  Object* make_sequence(Kind kind, std::vector<Object*> items) {
    Object* object = make(kind);
    object->items = std::move(items);
    return object;
  }
  void push(Object* object) { stack_.push_back(object); }
  Object* top() const {
    LCTRAIN_CHECK(stack_.size() > floor(), "malformed pickle: the stack is empty");
    return stack_.back();
  }
  Object* pop() {
    Object* object = top();
    stack_.pop_back();
    return object;
  }
  std::vector<Object*> pop_n(size_t count) {
    LCTRAIN_CHECK(stack_.size() >= floor() + count, "malformed pickle: the stack is empty");
    std::vector<Object*> items(stack_.end() - static_cast<std::ptrdiff_t>(count), stack_.end());
    stack_.resize(stack_.size() - count);
    return items;
  }
  std::vector<Object*> pop_mark() {
    LCTRAIN_CHECK(!marks_.empty(), "malformed pickle: no MARK");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<Object*> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  // Values below the newest MARK belong to an outer container.
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  Object* memo_get(uint64_t index) const {
    const auto found = memo_.find(static_cast<uint32_t>(index));
    LCTRAIN_CHECK(found != memo_.end(), "malformed pickle: memo {} was never stored", index);
    return found->second;
  }

  void append(Object* list, const std::vector<Object*>& values) {
    LCTRAIN_CHECK(list->kind == Kind::kList, "APPEND to a {}", kind_name(list->kind));
    list->items.insert(list->items.end(), values.begin(), values.end());
  }
  void set_items(Object* dict, const std::vector<Object*>& pairs) {
    LCTRAIN_CHECK(dict->kind == Kind::kDict, "SETITEM on a {}", kind_name(dict->kind));
    LCTRAIN_CHECK(pairs.size() % 2 == 0, "SETITEMS with an odd number of values");
    for (size_t index = 0; index < pairs.size(); index += 2) {
      dict->entries.emplace_back(pairs[index], pairs[index + 1]);
    }
  }

  // --- the only places where a pickle could ask for code: all checked against the allowlist ---

  Object* global(const std::string& name) {
    LCTRAIN_CHECK(allowed_global(name),
                  "{} is not allowed in a checkpoint (only tensors and plain containers "
                  "are read; nothing is executed)",
                  name);
    return make_text(Kind::kGlobal, name);
  }

  Object* reduce(Object* callable, Object* args) {
    LCTRAIN_CHECK(callable->kind == Kind::kGlobal, "REDUCE of a {}", kind_name(callable->kind));
    LCTRAIN_CHECK(args->kind == Kind::kTuple, "REDUCE arguments are a {}", kind_name(args->kind));
    const std::vector<Object*>& arg = args->items;
    if (callable->text == kOrderedDict) {
      LCTRAIN_CHECK(arg.empty(), "{} with arguments", kOrderedDict);
      return make(Kind::kDict);
    }
    if (callable->text == kRebuildParameter) {
      LCTRAIN_CHECK(arg.size() == 3 && arg[0]->kind == Kind::kTensor,
                    "{} expects (tensor, requires_grad, hooks)", kRebuildParameter);
      return arg[0];
    }
    LCTRAIN_CHECK(callable->text == kRebuildTensor, "{} cannot be called", callable->text);
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    LCTRAIN_CHECK((arg.size() == 6 || arg.size() == 7) && arg[0]->kind == Kind::kStorage &&
                      arg[1]->kind == Kind::kInt && arg[2]->kind == Kind::kTuple &&
                      arg[3]->kind == Kind::kTuple,
                  "{} expects (storage, offset, size, stride, requires_grad, hooks)",
                  kRebuildTensor);
    // Checked against the storage when the tensor is materialized, where its name is known.
    return make_sequence(Kind::kTensor, {arg[0], arg[1], arg[2], arg[3]});
  }

  void build(Object* target, Object* state) {
    // An OrderedDict state_dict carries its _metadata attribute this way; we do not need it.
    LCTRAIN_CHECK(
        target->kind == Kind::kDict && (state->kind == Kind::kDict || state->kind == Kind::kNone),
        "BUILD on a {} is not supported", kind_name(target->kind));
  }

  // ('storage', storage class, key, location, numel): the bytes are entry "<prefix>/data/<key>".
  Object* persistent_load(Object* pid) {
    const std::vector<Object*>& id = pid->items;
    LCTRAIN_CHECK(pid->kind == Kind::kTuple && id.size() == 5 && id[0]->kind == Kind::kString &&
                      id[0]->text == "storage" && id[1]->kind == Kind::kGlobal &&
                      id[2]->kind == Kind::kString && id[4]->kind == Kind::kInt,
                  "persistent id is not ('storage', class, key, location, numel)");
    const StorageClass* type = storage_class(id[1]->text);
    LCTRAIN_CHECK(type != nullptr, "{} is not a storage class", id[1]->text);
    const std::string& key = id[2]->text;
    const auto known = storages_.find(key);
    if (known != storages_.end()) {
      LCTRAIN_CHECK(known->second->dtype == type->dtype, "storage '{}' is used with two dtypes",
                    key);
      return known->second;
    }
    // Read when a tensor using it is materialized, so that errors can name that tensor.
    Object* storage = make_text(Kind::kStorage, key);
    storage->dtype = type->dtype;
    storage->integer = id[4]->integer;
    storages_.emplace(key, storage);
    return storage;
  }

  torch::Tensor load_storage(const std::string& key, torch::ScalarType dtype, int64_t numel) const {
    const std::string entry = prefix_ + "/data/" + key;
    LCTRAIN_CHECK(archive_.contains(entry), "storage '{}' has no entry '{}' in the archive", key,
                  entry);
    const uint64_t size = archive_.size(entry);
    const auto element = static_cast<uint64_t>(c10::elementSize(dtype));
    uint64_t needed = 0;
    LCTRAIN_CHECK(numel >= 0 &&
                      !__builtin_mul_overflow(static_cast<uint64_t>(numel), element, &needed) &&
                      needed == size,
                  "storage '{}' ({}) holds {} bytes, but {} elements of {} need {}", key, entry,
                  size, numel, c10::toString(dtype), needed);
    const std::shared_ptr<char> data = archive_.data(entry);
    const auto options = torch::TensorOptions().dtype(dtype);
    if (reinterpret_cast<uintptr_t>(data.get()) % element != 0) {
      // torch.save aligns storages to 64 bytes; another writer may not, and tensors need it.
      torch::Tensor copy = torch::empty({numel}, options);
      std::memcpy(copy.data_ptr(), data.get(), size);
      return copy;
    }
    return torch::from_blob(
        data.get(), {numel}, [keep = data](void*) mutable { keep.reset(); }, options);
  }

  const ZipArchive& archive_;
  const std::string prefix_;
  const std::string_view data_;
  size_t position_ = 0;
  std::vector<std::unique_ptr<Object>> arena_;
  std::vector<Object*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, Object*> memo_;
  std::unordered_map<std::string, Object*> storages_;
  std::unordered_map<std::string, torch::Tensor> loaded_;
};

std::string find_prefix(const ZipArchive& archive) {
  std::vector<std::string> prefixes;
  for (const std::string& name : archive.names()) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos && name.substr(slash) == "/data.pkl") {
      prefixes.push_back(name.substr(0, slash));
    }
  }
  LCTRAIN_CHECK(!prefixes.empty(), "holds no <name>/data.pkl: not a torch.save archive");
  LCTRAIN_CHECK(prefixes.size() == 1, "holds {} data.pkl entries; torch.save writes one",
                prefixes.size());
  return prefixes.front();
}

}  // namespace

std::map<std::string, torch::Tensor> read_torch_archive(const std::filesystem::path& path) {
  const ZipArchive archive = ZipArchive::open(path);
  return with_context(path.string(), [&] {
    const std::string prefix = find_prefix(archive);
    const std::string byteorder = prefix + "/byteorder";
    if (archive.contains(byteorder)) {
      const std::string_view order = archive.read(byteorder);
      LCTRAIN_CHECK(order == "little", "stores tensors as '{}'-endian; only little is supported",
                    std::string(order));
    }
    LCTRAIN_CHECK(archive.crc_matches(prefix + "/data.pkl"),
                  "{}/data.pkl is corrupt (CRC-32 mismatch)", prefix);
    Unpickler unpickler(archive, prefix);
    Object* top = unpickler.run();
    LCTRAIN_CHECK(top->kind == Kind::kDict, "holds a {}, not a dict of tensors",
                  kind_name(top->kind));
    std::map<std::string, torch::Tensor> tensors;
    for (const auto& [key, value] : top->entries) {
      LCTRAIN_CHECK(key->kind == Kind::kString, "has a {} key; expected tensor names",
                    kind_name(key->kind));
      LCTRAIN_CHECK(value->kind == Kind::kTensor, "'{}' is not a tensor but a Python {}", key->text,
                    kind_name(value->kind));
      tensors[key->text] = with_context(fmt::format("tensor '{}'", key->text),
                                        [&] { return unpickler.tensor_of(value); });
    }
    return tensors;
  });
}

}  // namespace lctrain::io
