#include "server/json_render.h"

#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>

namespace noema::server {
namespace {

void RenderValue(std::string* out, const bson_iter_t* iter);

void RenderContainer(std::string* out, const bson_iter_t* parent, bool array,
                     std::string_view rename_id, bool drop_id) {
  bson_iter_t child;
  out->push_back(array ? '[' : '{');
  bool first = true;
  if (bson_iter_recurse(parent, &child)) {
    while (bson_iter_next(&child)) {
      std::string_view key(bson_iter_key(&child), bson_iter_key_len(&child));
      if (!array && key == "_id" && drop_id) continue;
      if (!first) out->push_back(',');
      first = false;
      if (!array) {
        AppendJsonString(out, key == "_id" && !rename_id.empty() ? rename_id : key);
        out->push_back(':');
      }
      RenderValue(out, &child);
    }
  }
  out->push_back(array ? ']' : '}');
}

void RenderValue(std::string* out, const bson_iter_t* iter) {
  char buf[64];
  switch (bson_iter_type(iter)) {
    case BSON_TYPE_UTF8: {
      uint32_t len = 0;
      const char* s = bson_iter_utf8(iter, &len);
      AppendJsonString(out, std::string_view(s, len));
      return;
    }
    case BSON_TYPE_INT32: *out += std::to_string(bson_iter_int32(iter)); return;
    case BSON_TYPE_INT64: *out += std::to_string(bson_iter_int64(iter)); return;
    case BSON_TYPE_DOUBLE: {
      double d = bson_iter_double(iter);
      if (!std::isfinite(d)) {
        *out += "null";
        return;
      }
      auto result = std::to_chars(buf, buf + sizeof buf, d);
      out->append(buf, result.ptr);
      return;
    }
    case BSON_TYPE_BOOL: *out += bson_iter_bool(iter) ? "true" : "false"; return;
    case BSON_TYPE_NULL:
    case BSON_TYPE_UNDEFINED: *out += "null"; return;
    case BSON_TYPE_OID: AppendJsonString(out, ObjectId(*bson_iter_oid(iter)).ToHex()); return;
    case BSON_TYPE_DATE_TIME:
      AppendJsonString(out, Timestamp::FromMillis(bson_iter_date_time(iter)).ToIso8601());
      return;
    case BSON_TYPE_DECIMAL128: {
      bson_decimal128_t dec;
      bson_iter_decimal128(iter, &dec);
      auto money = Money::FromDecimal128(dec);
      if (money.ok()) {
        AppendJsonString(out, money->ToString());
      } else {
        char text[BSON_DECIMAL128_STRING];
        bson_decimal128_to_string(&dec, text);
        AppendJsonString(out, text);
      }
      return;
    }
    case BSON_TYPE_DOCUMENT: RenderContainer(out, iter, false, {}, false); return;
    case BSON_TYPE_ARRAY: RenderContainer(out, iter, true, {}, false); return;
    default: {
      // Rare types (binary, regex, timestamp...) keep their Extended JSON form.
      bson_t wrapper = BSON_INITIALIZER;
      bson_append_iter(&wrapper, "v", 1, iter);
      size_t len = 0;
      char* json = bson_as_relaxed_extended_json(&wrapper, &len);
      std::string_view text(json, len);
      auto colon = text.find(':');
      auto end = text.rfind('}');
      *out += text.substr(colon + 1, end - colon - 1);
      bson_free(json);
      bson_destroy(&wrapper);
      return;
    }
  }
}

}  // namespace

void AppendJsonString(std::string* out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (unsigned char c : text) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      default:
        if (c < 0x20) {
          *out += "\\u00";
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xF]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

std::string RenderJson(DocumentView doc, std::string_view rename_id) {
  std::string out;
  out.reserve(doc.size_bytes() * 2);
  bool drop_id = !rename_id.empty() && doc.Has(rename_id);
  // Render the top level through a wrapper iterator so the container code is shared.
  bson_t wrapper = BSON_INITIALIZER;
  bson_append_document(&wrapper, "d", 1, doc.get());
  bson_iter_t iter;
  bson_iter_init_find(&iter, &wrapper, "d");
  RenderContainer(&out, &iter, false, rename_id, drop_id);
  bson_destroy(&wrapper);
  return out;
}

}  // namespace noema::server
