// Reads the tensors of a torch.save archive (a zip holding "<prefix>/data.pkl" and the storages
// as "<prefix>/data/<key>") without running Python's pickle machinery: a restricted unpickler
// that knows only the opcodes torch.save emits and only the globals that rebuild tensors and plain
// containers. Anything else (a pickle calling os.system, a custom class) is an error naming the
// file and the global; nothing in the file is ever executed.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>

namespace lctrain::io {

// The archive's top-level dict (or OrderedDict) of name -> tensor. Tensors are views on the
// storages, which alias the memory-mapped file (copy-on-write), with each tensor's storage offset,
// size and stride honoured; they keep the mapping alive. Throws lctrain::Error naming the file
// (and the tensor) on a malformed archive or a value that is not a tensor.
std::map<std::string, torch::Tensor> read_torch_archive(const std::filesystem::path& path);

}  // namespace lctrain::io
