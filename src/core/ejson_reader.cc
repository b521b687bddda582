#include "noema/ejson_reader.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iostream>

namespace noema {

Result<std::unique_ptr<ExtendedJsonReader>> ExtendedJsonReader::Open(const std::string& path) {
  if (path == "-") return std::make_unique<ExtendedJsonReader>(&std::cin);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return Status::InvalidArgument("'" + path + "' is a directory, not a file", "file");
  }
  auto file = std::make_unique<std::ifstream>(path, std::ios::binary);
  if (!file->is_open()) {
    return Status::InvalidArgument("cannot open '" + path + "' for reading", "file");
  }
  auto reader = std::make_unique<ExtendedJsonReader>(file.get());
  reader->owned_ = std::move(file);
  return reader;
}

ExtendedJsonReader::ExtendedJsonReader(std::istream* in) : in_(in) {}

int ExtendedJsonReader::Get() {
  int c = in_->get();
  if (c == '\n') ++line_;
  return c;
}

int ExtendedJsonReader::Peek() { return in_->peek(); }

bool ExtendedJsonReader::DetectMode() {
  // Skip leading whitespace (and a UTF-8 byte order mark) to see whether this is an array.
  while (true) {
    int c = Peek();
    if (c == EOF) return false;
    if (c == 0xEF) {  // BOM: EF BB BF
      Get();
      Get();
      Get();
      continue;
    }
    if (std::isspace(c)) {
      Get();
      continue;
    }
    array_mode_ = c == '[';
    if (array_mode_) Get();
    return true;
  }
}

std::optional<ReadItem> ExtendedJsonReader::Next() {
  if (done_) return std::nullopt;
  if (!mode_known_) {
    mode_known_ = true;
    if (!DetectMode()) {
      done_ = true;
      return std::nullopt;
    }
  }
  return array_mode_ ? NextArrayElement() : NextLine();
}

int ExtendedJsonReader::ReadLine(std::string* text, bool* too_long) {
  // istream::getline copies up to the newline a buffer at a time (not one get() per
  // character); a line longer than the chunk comes in several pieces.
  if (chunk_.empty()) chunk_.resize(kLineChunkBytes);
  while (true) {
    in_->getline(chunk_.data(), static_cast<std::streamsize>(chunk_.size()));
    size_t extracted = static_cast<size_t>(in_->gcount());
    const bool newline = in_->good();  // the newline was extracted (not stored)
    const bool at_end = in_->eof();
    size_t stored = newline ? extracted - 1 : extracted;
    size_t room = kJsonDocumentBytesMax - std::min(text->size(), kJsonDocumentBytesMax);
    if (stored > room) *too_long = true;
    text->append(chunk_.data(), std::min(stored, room));
    if (newline) {
      ++line_;
      return '\n';
    }
    if (at_end) return EOF;
    in_->clear();  // the chunk filled up before the end of the line
  }
}

std::optional<ReadItem> ExtendedJsonReader::NextLine() {
  std::string& text = line_text_;
  while (true) {
    size_t start_line = line_;
    text.clear();
    bool too_long = false;
    int c = ReadLine(&text, &too_long);
    if (c == EOF && text.empty()) {
      done_ = true;
      return std::nullopt;
    }
    if (!text.empty() && text.back() == '\r') text.pop_back();
    bool blank = text.find_first_not_of(" \t") == std::string::npos;
    if (blank && !too_long) {
      if (c == EOF) {
        done_ = true;
        return std::nullopt;
      }
      continue;
    }
    ReadItem item;
    item.line = start_line;
    if (too_long) {
      item.error = Status::ResourceExhausted("document longer than " +
                                             std::to_string(kJsonDocumentBytesMax) + " bytes");
      return item;
    }
    size_t first = text.find_first_not_of(" \t");
    if (text[first] != '{') {
      item.error = Status::InvalidArgument("not a JSON object");
      return item;
    }
    auto doc = Document::FromJson(text);
    if (doc.ok()) {
      item.doc = std::move(doc).value();
    } else {
      item.error = doc.status();
    }
    return item;
  }
}

std::optional<ReadItem> ExtendedJsonReader::NextArrayElement() {
  // Skip whitespace and the separating comma; stop at the closing bracket.
  while (true) {
    int c = Peek();
    if (c == EOF) {
      done_ = true;
      ReadItem item;
      item.line = line_;
      item.error = Status::InvalidArgument("unterminated JSON array (missing ']')");
      return item;
    }
    if (std::isspace(c) || c == ',') {
      Get();
      continue;
    }
    if (c == ']') {
      Get();
      done_ = true;
      return std::nullopt;
    }
    break;
  }
  ReadItem item;
  item.line = line_;
  std::string text;
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  while (true) {
    int c = Get();
    if (c == EOF) {
      done_ = true;
      item.error = Status::InvalidArgument("unterminated JSON array element");
      return item;
    }
    if (text.size() >= kJsonDocumentBytesMax) {
      done_ = true;
      item.error = Status::ResourceExhausted("document longer than " +
                                             std::to_string(kJsonDocumentBytesMax) + " bytes");
      return item;
    }
    text.push_back(static_cast<char>(c));
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
      if (depth == 0) break;
      if (depth < 0) {
        done_ = true;
        item.error = Status::InvalidArgument("unbalanced brackets");
        return item;
      }
    } else if (depth == 0 && (c == ',' || std::isspace(c))) {
      text.pop_back();
      break;
    }
    if (depth == 0 && Peek() == ']') break;
  }
  if (text.empty() || text.front() != '{') {
    item.error = Status::InvalidArgument("array element is not a JSON object");
    return item;
  }
  auto doc = Document::FromJson(text);
  if (doc.ok()) {
    item.doc = std::move(doc).value();
  } else {
    item.error = doc.status();
  }
  return item;
}

}  // namespace noema
