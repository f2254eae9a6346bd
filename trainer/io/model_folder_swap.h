// Writing a model folder so that it is never half-written or mixed with an older one: the new
// folder is written in full into a hidden sibling (".NAME.partial-PID") and then swapped in with
// one rename. An existing model folder at the destination stays untouched until the new one is
// complete; a refused or failed write leaves it byte for byte as it was.
#pragma once

#include <filesystem>
#include <functional>

namespace lctrain::io {

// Writes the folder `out` through `write`, which fills the (empty) staging folder it is given.
// When `out` exists, its other files (tokenizer, README, subfolders: all but config.json,
// params.json and weight files) are carried into the new folder as hard links unless `write`
// wrote one of the same name: the model is replaced, nothing else is lost. A file at `out` is
// refused before anything is written.
void write_model_folder(const std::filesystem::path& out,
                        const std::function<void(const std::filesystem::path& staging)>& write);

}  // namespace lctrain::io
