// Reads Extended JSON v2 documents (canonical or relaxed) as MongoDB's tools write them:
// one document per line (mongoexport's default), or one JSON array of documents
// (mongoexport --jsonArray). Streaming: memory is bounded by the largest document.
//
// Each document comes with the 1-based line it starts on, so errors can point at it.
// A line or array element that is not a JSON object is reported as an error for that
// item; reading goes on with the next one.
//
// Thread-safety: one reader per thread.
#pragma once

#include <cstddef>
#include <fstream>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "noema/bson.h"
#include "noema/status.h"

namespace noema {

// The largest document text accepted (a BSON document is at most 16 MiB; its JSON text
// can be larger).
inline constexpr size_t kJsonDocumentBytesMax = 48 * 1024 * 1024;

struct ReadItem {
  size_t line = 0;              // where the item starts (1-based)
  std::optional<Document> doc;  // set when the item parsed
  Status error;                 // set when it did not
};

class ExtendedJsonReader {
 public:
  // "-" reads standard input. NotFound / InvalidArgument when the file cannot be opened.
  static Result<std::unique_ptr<ExtendedJsonReader>> Open(const std::string& path);
  explicit ExtendedJsonReader(std::istream* in);

  // The next item, or nullopt at the end of the input. A structural error that stops
  // reading (an unterminated array) is returned as a final item with an error.
  std::optional<ReadItem> Next();

 private:
  bool DetectMode();
  std::optional<ReadItem> NextLine();
  std::optional<ReadItem> NextArrayElement();
  // Appends the rest of the line to *text (at most kJsonDocumentBytesMax bytes in all;
  // *too_long when there was more) and consumes its newline; returns '\n', or EOF when
  // the input ended first.
  int ReadLine(std::string* text, bool* too_long);
  int Get();
  int Peek();

  static constexpr size_t kLineChunkBytes = 64 * 1024;

  std::unique_ptr<std::ifstream> owned_;
  std::istream* in_;
  size_t line_ = 1;
  bool mode_known_ = false;
  bool array_mode_ = false;
  bool done_ = false;
  std::vector<char> chunk_;
  std::string line_text_;
};

}  // namespace noema
