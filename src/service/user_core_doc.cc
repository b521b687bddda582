#include "service/user_core_doc.h"

#include <cstdint>
#include <memory>

#include "noema/money.h"
#include "service/event_writer.h"

namespace noema::service_internal {

Document RewriteFields(DocumentView doc, const FieldRewrites& rewrites) {
  std::vector<bool> written(rewrites.size(), false);
  DocumentBuilder builder;
  bson_iter_t iter;
  if (bson_iter_init(&iter, doc.get())) {
    while (bson_iter_next(&iter)) {
      const std::string_view key(bson_iter_key(&iter), bson_iter_key_len(&iter));
      bool rewritten = false;
      for (size_t i = 0; i < rewrites.size(); ++i) {
        if (rewrites[i].first == key) {
          if (!written[i]) rewrites[i].second(builder);
          written[i] = true;
          rewritten = true;
          break;
        }
      }
      if (!rewritten) builder.AppendIter(key, iter);
    }
  }
  for (size_t i = 0; i < rewrites.size(); ++i) {
    if (!written[i]) rewrites[i].second(builder);
  }
  return std::move(builder).Build();
}

FieldWriter DropField() {
  return [](DocumentBuilder&) {};
}

Result<std::vector<Document>> ArrayOfDocuments(DocumentView doc, std::string_view key) {
  std::vector<Document> items;
  auto field = doc.Find(key);
  if (!field) return items;
  if (!BSON_ITER_HOLDS_ARRAY(&*field)) {
    return Status::DataLoss("userCore field " + std::string(key) + " is not an array");
  }
  bson_iter_t child;
  if (!bson_iter_recurse(&*field, &child)) {
    return Status::DataLoss("userCore field " + std::string(key) + " is unreadable");
  }
  while (bson_iter_next(&child)) {
    if (!BSON_ITER_HOLDS_DOCUMENT(&child)) {
      return Status::DataLoss("userCore field " + std::string(key) +
                              " holds an item that is not a document");
    }
    uint32_t length = 0;
    const uint8_t* data = nullptr;
    bson_iter_document(&child, &length, &data);
    NOEMA_ASSIGN_OR_RETURN(Document item, Document::FromBytes(data, length));
    items.push_back(std::move(item));
  }
  return items;
}

FieldWriter DocumentArrayField(std::string key, std::vector<Document> items) {
  auto shared_items = std::make_shared<std::vector<Document>>(std::move(items));
  return [key = std::move(key), shared_items](DocumentBuilder& builder) {
    if (shared_items->empty()) return;
    builder.StartArray(key);
    for (const Document& item : *shared_items) {
      builder.AppendDocument(builder.NextArrayKey(), item.view());
    }
    builder.End();
  };
}

Result<Document> LoadUserCore(Transaction& tx, const ObjectId& id) {
  auto user = tx.Get(Collection::kUserCore, id);
  if (!user.ok() && user.status().IsNotFound()) {
    return Status(StatusCode::kNotFound, "user " + id.ToHex() + " not found", "masterAccountId");
  }
  return user;
}

Status ReplaceUserCore(Transaction& tx, const ObjectId& id, const Document& user) {
  return tx.Replace(Collection::kUserCore, id, user.view());
}

bool IsErased(DocumentView user) { return user.Has(kErasedAtField); }

Status RefuseErased(DocumentView user, std::string_view field) {
  if (!IsErased(user)) return Status::Ok();
  return Status::FailedPrecondition(
      "the user was erased (DELETE /v1/users/{id}); an erased account cannot be changed or "
      "reactivated, and takes no personal data again",
      std::string(field));
}

std::string UserStatus(DocumentView user) {
  auto status = user.GetString("status");
  return status.ok() ? std::string(*status) : std::string(kStatusActive);
}

Document PublicUserDocument(DocumentView user) {
  FieldRewrites rewrites;
  rewrites.emplace_back("walletChallenges", DropField());
  auto keys = ArrayOfDocuments(user, "apiKeys");
  if (keys.ok()) {
    std::vector<Document> public_keys;
    for (const Document& key : *keys) {
      FieldRewrites drop_hash;
      drop_hash.emplace_back("keyHash", DropField());
      public_keys.push_back(RewriteFields(key, drop_hash));
    }
    rewrites.emplace_back("apiKeys", DocumentArrayField("apiKeys", std::move(public_keys)));
  } else {
    // An unreadable apiKeys field could hold hashes in any shape: drop it whole.
    rewrites.emplace_back("apiKeys", DropField());
  }
  return RewriteFields(user, rewrites);
}

Document PublicUserDocument(Document&& user) {
  bson_iter_t iter;
  if (!bson_iter_init(&iter, user.get())) return PublicUserDocument(user.view());
  while (bson_iter_next(&iter)) {
    const std::string_view key(bson_iter_key(&iter), bson_iter_key_len(&iter));
    if (key == "walletChallenges" || key == "apiKeys") return PublicUserDocument(user.view());
  }
  return std::move(user);
}

Status ValidatePlatform(std::string_view platform, std::string_view field) {
  return ValidatePlatformName(platform, field);  // the event writer's rule: one definition
}

Status ValidatePlatformUserId(std::string_view platform_user_id, std::string_view field) {
  return ValidateText(platform_user_id, 1, kPlatformUserIdCharsMax, /*multiline=*/false, field);
}

std::string IdentityKey(std::string_view platform, std::string_view platform_user_id) {
  std::string key;
  key.reserve(platform.size() + 1 + platform_user_id.size());
  key.append(platform).append(":").append(platform_user_id);
  return key;
}

std::optional<size_t> Utf8Length(std::string_view text) {
  size_t count = 0;
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<uint8_t>(text[i]);
    size_t length = 0;
    uint32_t code_point = 0;
    if (lead < 0x80) {
      length = 1;
      code_point = lead;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code_point = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code_point = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code_point = lead & 0x07;
    } else {
      return std::nullopt;
    }
    if (i + length > text.size()) return std::nullopt;
    for (size_t k = 1; k < length; ++k) {
      const auto continuation = static_cast<uint8_t>(text[i + k]);
      if ((continuation & 0xC0) != 0x80) return std::nullopt;
      code_point = (code_point << 6) | (continuation & 0x3F);
    }
    static constexpr uint32_t kSmallestOfLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < kSmallestOfLength[length]) return std::nullopt;  // overlong
    if (code_point > 0x10FFFF) return std::nullopt;
    if (code_point >= 0xD800 && code_point <= 0xDFFF) return std::nullopt;  // surrogate
    i += length;
    ++count;
  }
  return count;
}

Status ValidateText(std::string_view text, size_t chars_min, size_t chars_max, bool multiline,
                    std::string_view field) {
  const std::optional<size_t> length = Utf8Length(text);
  if (!length) return Status::InvalidArgument("not valid UTF-8", std::string(field));
  if (*length < chars_min || *length > chars_max) {
    return Status::InvalidArgument(
        "must be " + std::to_string(chars_min) + "-" + std::to_string(chars_max) + " characters",
        std::string(field));
  }
  for (char c : text) {
    const auto byte = static_cast<uint8_t>(c);
    const bool line_break_or_tab = c == '\n' || c == '\r' || c == '\t';
    if ((byte < 0x20 && !(multiline && line_break_or_tab)) || byte == 0x7F) {
      return Status::InvalidArgument("control characters are not allowed", std::string(field));
    }
  }
  return Status::Ok();
}

Result<ObjectId> WriteUserEvent(Transaction& tx, const ServiceContext& ctx,
                                const ObjectId& master_account_id, const Origin& origin,
                                std::string_view event_type, Document event_data) {
  EventToWrite event;
  event.master_account_id = master_account_id;
  event.platform = origin.platform;
  event.session_id = origin.session_id;
  event.event_type = std::string(event_type);
  event.event_data = std::move(event_data);
  return WriteEvent(tx, ctx, event);
}

Document NewUserEconomy(const ObjectId& id, Timestamp now) {
  DocumentBuilder builder;
  builder.Append("_id", id)
      .Append("masterAccountId", id)
      .Append("usdCredit", Money::Zero())
      .Append("usdHeld", Money::Zero())
      .Append("exp", int64_t{0})
      .Append("createdAt", now)
      .Append("updatedAt", now);
  return std::move(builder).Build();
}

Document NewUserPreferences(const ObjectId& id, Timestamp now) {
  DocumentBuilder builder;
  builder.Append("_id", id).Append("masterAccountId", id);
  builder.StartDocument("preferences").End();
  builder.Append("createdAt", now).Append("updatedAt", now);
  return std::move(builder).Build();
}

}  // namespace noema::service_internal
