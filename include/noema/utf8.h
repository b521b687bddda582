// Small UTF-8 helpers for bounding text that noema copies from one document into another.
#pragma once

#include <cstddef>
#include <string_view>

namespace noema {

// The longest prefix of `text` of at most `max_bytes` bytes that does not end inside a
// UTF-8 sequence (the cut moves back before any continuation byte). `text` itself when it
// fits. Does not validate the UTF-8.
inline std::string_view Utf8Prefix(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut);
}

// The number of code points of UTF-8 `text` (its bytes that are not continuation bytes):
// what the documented "characters" limits count.
inline size_t Utf8CodePoints(std::string_view text) {
  size_t count = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++count;
  }
  return count;
}

}  // namespace noema
