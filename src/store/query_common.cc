#include "store/query_common.h"

#include <sodium.h>

#include <array>

namespace noema::store_internal {

constexpr int kVariant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;

std::string EncodeCursorText(std::string_view bytes) {
  std::string out(sodium_base64_encoded_len(bytes.size(), kVariant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), kVariant);
  out.resize(out.size() - 1);  // the terminating NUL sodium writes
  return out;
}

bool DecodeCursorText(std::string_view text, std::string* bytes) {
  bytes->assign(text.size() * 3 / 4 + 1, '\0');
  size_t length = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(bytes->data()), bytes->size(), text.data(),
                        text.size(), /*ignore=*/nullptr, &length, &end, kVariant) != 0 ||
      end != text.data() + text.size()) {
    bytes->clear();
    return false;
  }
  bytes->resize(length);
  return true;
}

QueryFingerprint::QueryFingerprint() = default;

void QueryFingerprint::Add(std::string_view text) {
  // Length-prefixed, so the parts' boundaries are part of the digest.
  const uint64_t size = text.size();
  parts_.append(reinterpret_cast<const char*>(&size), sizeof(size));
  parts_.append(text);
}

uint32_t QueryFingerprint::value() const {
  std::array<unsigned char, crypto_generichash_BYTES_MIN> digest{};
  crypto_generichash(digest.data(), digest.size(),
                     reinterpret_cast<const unsigned char*>(parts_.data()), parts_.size(), nullptr,
                     0);
  return static_cast<uint32_t>(digest[0]) | static_cast<uint32_t>(digest[1]) << 8 |
         static_cast<uint32_t>(digest[2]) << 16 | static_cast<uint32_t>(digest[3]) << 24;
}

Status CheckFieldPath(std::string_view path, std::string_view what) {
  if (path.empty()) return Status::InvalidArgument("empty field path", std::string(what));
  if (path[0] == '$') {
    return Status::InvalidArgument("field path '" + std::string(path) + "' starts with '$'",
                                   std::string(what));
  }
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    size_t end = dot == std::string_view::npos ? path.size() : dot;
    if (end == start) {
      return Status::InvalidArgument("field path '" + std::string(path) + "' has an empty part",
                                     std::string(what));
    }
    if (dot == std::string_view::npos) return Status::Ok();
    start = dot + 1;
  }
}

}  // namespace noema::store_internal
