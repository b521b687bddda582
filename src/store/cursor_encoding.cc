#include "store/cursor_encoding.h"

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

}  // namespace noema::store_internal
