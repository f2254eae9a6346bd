// The bridge library's only file: SentencePieceBackend on top of sentencepiece's processor.
// Built as liblctrain_sentencepiece.so, linked against libsentencepiece and nothing from LibTorch.
#include <sentencepiece_processor.h>

#include "io/sentencepiece_bridge/sentencepiece_backend.h"

namespace {

class SentencePieceProcessorBackend final : public lctrain::io::SentencePieceBackend {
 public:
  bool load(const std::string& path, std::string* error) {
    const auto status = processor_.Load(path);
    if (!status.ok()) *error = status.ToString();
    return status.ok();
  }
  bool encode(const std::string& text, std::vector<int>* ids, std::string* error) const override {
    const auto status = processor_.Encode(text, ids);
    if (!status.ok()) *error = status.ToString();
    return status.ok();
  }
  bool decode(const std::vector<int>& ids, std::string* text, std::string* error) const override {
    const auto status = processor_.Decode(ids, text);
    if (!status.ok()) *error = status.ToString();
    return status.ok();
  }
  int piece_size() const override { return processor_.GetPieceSize(); }
  int bos_id() const override { return processor_.bos_id(); }
  int eos_id() const override { return processor_.eos_id(); }

 private:
  sentencepiece::SentencePieceProcessor processor_;
};

}  // namespace

extern "C" __attribute__((visibility("default"))) lctrain::io::SentencePieceBackend*
lctrain_load_sentencepiece(const char* model_path, std::string* error) {
  auto backend = std::make_unique<SentencePieceProcessorBackend>();
  if (!backend->load(model_path, error)) return nullptr;
  return backend.release();
}
