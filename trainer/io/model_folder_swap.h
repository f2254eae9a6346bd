// Writing a model folder so that it is never half-written or mixed with an older one: the new
// folder is written in full into a hidden sibling (".NAME.partial-PID") and then swapped in with
// one rename. An existing model folder at the destination stays untouched until the new one is
// complete; a refused or failed write leaves it byte for byte as it was.
#pragma once

#include <filesystem>
#include <functional>

namespace lctrain::io {

// Writes the folder `out` through `write`, which fills the (empty) staging folder it is given.
// `out` may be absent, an empty folder, or a model folder (holding config.json or params.json);
// anything else (a file, a folder of other things) is refused before anything is written, since
// the swap would delete it.
void write_model_folder(const std::filesystem::path& out,
                        const std::function<void(const std::filesystem::path& staging)>& write);

}  // namespace lctrain::io
