// The legacy importer: driver, users, economy, preferences and the report. See
// include/noema/service/legacy_import.h and docs/legacy-import.md.
#include "noema/service/legacy_import.h"

#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "noema/api_key_format.h"
#include "noema/ethereum.h"
#include "noema/service/analytics.h"
#include "noema/service/api_keys.h"
#include "noema/service/economy.h"
#include "noema/service/preferences.h"
#include "service/economy_internal.h"
#include "service/legacy_import_internal.h"
#include "service/user_core_doc.h"

namespace noema {

namespace si = service_internal;
using legacy_internal::kLegacyField;
using legacy_internal::kPlatform;

// ---- exact decimals --------------------------------------------------------------------

Result<ExactDecimal> ExactDecimal::Parse(std::string_view text, std::string_view field) {
  const Status bad =
      Status::InvalidArgument("expected a decimal number of at most " +
                                  std::to_string(kLegacyDecimalDigitsMax) + " significant digits",
                              std::string(field));
  size_t i = 0;
  bool negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) negative = text[i++] == '-';
  // The digits as written (bounded by the text), and how many follow the point.
  std::string digits;
  int64_t fraction_digits = 0;
  bool seen_digit = false;
  bool seen_point = false;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c >= '0' && c <= '9') {
      seen_digit = true;
      digits.push_back(c);
      if (seen_point) ++fraction_digits;
    } else if (c == '.' && !seen_point) {
      seen_point = true;
    } else {
      break;
    }
  }
  if (!seen_digit) return bad;
  // The exponent, read by hand and saturated: no value of it can overflow anything below.
  // Past kExponentMax (more than the text's own digits can absorb, see below) the number
  // cannot fit in 18 digits and scale 18, whatever it is.
  const int64_t kExponentMax = static_cast<int64_t>(text.size()) + 2 * kLegacyDecimalDigitsMax;
  int64_t exponent = 0;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    bool exponent_negative = false;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) exponent_negative = text[i++] == '-';
    if (i == text.size()) return bad;
    for (; i < text.size(); ++i) {
      const char c = text[i];
      if (c < '0' || c > '9') return bad;
      if (exponent <= kExponentMax) exponent = exponent * 10 + (c - '0');
    }
    if (exponent > kExponentMax) return bad;
    if (exponent_negative) exponent = -exponent;
  }
  if (i != text.size()) return bad;
  // value = significant × 10^-scale. Leading zeros are dropped, then the fraction's
  // trailing zeros; the count of digits is known (and checked) before any is added.
  std::string_view significant = digits;
  significant.remove_prefix(std::min(significant.find_first_not_of('0'), significant.size()));
  if (significant.empty()) return ExactDecimal{};  // zero
  int64_t scale = fraction_digits - exponent;      // |both| <= text size + 36: no overflow
  while (scale > 0 && significant.size() > 1 && significant.back() == '0') {
    significant.remove_suffix(1);
    --scale;
  }
  const int64_t padding = scale < 0 ? -scale : 0;
  if (static_cast<int64_t>(significant.size()) + padding > kLegacyDecimalDigitsMax ||
      scale > kLegacyDecimalDigitsMax) {
    return bad;
  }
  std::string kept(significant);
  kept.append(static_cast<size_t>(padding), '0');
  ExactDecimal result;
  std::from_chars(kept.data(), kept.data() + kept.size(), result.mantissa);
  if (negative) result.mantissa = -result.mantissa;
  result.scale = static_cast<int>(scale + padding);
  return result;
}

std::string ExactDecimal::ToString() const {
  std::string digits = std::to_string(mantissa < 0 ? -mantissa : mantissa);
  if (scale > 0) {
    if (digits.size() <= static_cast<size_t>(scale)) {
      digits.insert(0, static_cast<size_t>(scale) + 1 - digits.size(), '0');
    }
    digits.insert(digits.size() - static_cast<size_t>(scale), ".");
  }
  return (mantissa < 0 ? "-" : "") + digits;
}

// 128-bit arithmetic for the exact division (a GCC/Clang extension).
__extension__ typedef unsigned __int128 Uint128;

Result<Money> DivideExactly(const ExactDecimal& amount, const ExactDecimal& divisor,
                            std::string_view field) {
  if (divisor.mantissa <= 0) {
    return Status::InvalidArgument("the divisor must be greater than zero", std::string(field));
  }
  const Status out_of_range = Status::InvalidArgument(
      amount.ToString() + " / " + divisor.ToString() + " is beyond any amount of USD",
      std::string(field));
  // amount/divisor × 10^8 = |m1| × 10^(8 + s2) / (m2 × 10^s1). The powers of ten common to
  // both sides are cancelled first; then only one side has any, and the product is
  // checked: 18 + 8 + 18 digits do not fit in 128 bits. Once cancelled, a numerator over
  // 2^128 means a quotient over 2^128 / 10^18 > INT64_MAX units: out of range, exactly.
  int up = Money::kFractionDigits + divisor.scale;
  int down = amount.scale;
  const int common = std::min(up, down);
  up -= common;
  down -= common;
  const bool negative = amount.mantissa < 0;
  Uint128 numerator =
      negative ? -static_cast<Uint128>(amount.mantissa) : static_cast<Uint128>(amount.mantissa);
  for (int k = 0; k < up; ++k) {
    if (__builtin_mul_overflow(numerator, Uint128{10}, &numerator)) return out_of_range;
  }
  Uint128 denominator = static_cast<Uint128>(divisor.mantissa);  // < 10^18 × 10^18: fits
  for (int k = 0; k < down; ++k) denominator *= 10;
  if (numerator % denominator != 0) {
    return Status::InvalidArgument(amount.ToString() + " / " + divisor.ToString() +
                                       " is not exact in 8 fractional digits of USD",
                                   std::string(field));
  }
  const Uint128 units = numerator / denominator;
  if (units > static_cast<Uint128>(INT64_MAX)) return out_of_range;
  const int64_t magnitude = static_cast<int64_t>(units);
  return Money::FromUnits(negative ? -magnitude : magnitude);
}

// ---- ids ---------------------------------------------------------------------------------

ObjectId HashObjectId(std::string_view key) {
  unsigned char hash[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(hash, reinterpret_cast<const unsigned char*>(key.data()), key.size());
  bson_oid_t oid;
  std::memcpy(oid.bytes, hash, sizeof oid.bytes);
  return ObjectId(oid);
}

ObjectId TimedHashObjectId(Timestamp time, std::string_view key) {
  unsigned char hash[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(hash, reinterpret_cast<const unsigned char*>(key.data()), key.size());
  bson_oid_t oid;
  const int64_t seconds = time.millis() / kMillisPerSecond;
  const uint32_t s = seconds < 0 ? 0 : static_cast<uint32_t>(seconds);
  oid.bytes[0] = static_cast<uint8_t>(s >> 24);
  oid.bytes[1] = static_cast<uint8_t>(s >> 16);
  oid.bytes[2] = static_cast<uint8_t>(s >> 8);
  oid.bytes[3] = static_cast<uint8_t>(s);
  std::memcpy(oid.bytes + 4, hash, 8);
  return ObjectId(oid);
}

namespace legacy_internal {
namespace {

constexpr std::string_view kDryRunRollback = "legacy import dry run: rolled back";
constexpr std::string_view kOpeningBalanceKey = "legacy-stationthisbot-opening-balance";

bool IsEthAddress(std::string_view s) {
  if (s.size() != 42 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X')) return false;
  for (char c : s.substr(2)) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool IsSolanaAddress(std::string_view s) {
  static constexpr std::string_view kBase58 =
      "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
  if (s.size() < 32 || s.size() > 44) return false;
  return s.find_first_not_of(kBase58) == std::string_view::npos;
}

bool GetBoolLoose(DocumentView doc, std::string_view path) {
  auto it = doc.Find(path);
  if (!it) return false;
  if (BSON_ITER_HOLDS_BOOL(&*it)) return bson_iter_bool(&*it);
  if (BSON_ITER_HOLDS_UTF8(&*it)) return std::string_view(bson_iter_utf8(&*it, nullptr)) == "true";
  return false;
}

// Fields of a pre-split `users` document that belong to userCore / userEconomy; the rest
// are preferences.
constexpr std::string_view kCoreFields[] = {
    "userId",    "wallet",      "wallets",  "verified",        "kickedAt",   "lastTouch",
    "createdAt", "lastRunTime", "apiKey",   "apiKeyCreatedAt", "lastActive", "type",
    "ethWallet", "ethVerified", "username", "firstName",       "lastName"};
constexpr std::string_view kEconomyFields[] = {
    "userId", "balance",       "exp",    "points",           "doints",     "qoints",
    "boints", "pendingQoints", "assets", "lastPointsUpdate", "lastUpdated"};
constexpr std::string_view kUsageCounters[] = {"points", "doints", "boints", "pendingQoints"};

// Pre-2024-06 preference names → input_* names. photoStats{height,width} is handled apart.
constexpr std::pair<std::string_view, std::string_view> kRenamedPreferences[] = {
    {"steps", "input_steps"},
    {"cfg", "input_cfg"},
    {"strength", "input_strength"},
    {"checkpoint", "input_checkpoint"},
    {"negativePrompt", "input_negative"},
    {"batchMax", "input_batch"},
};

template <size_t N>
bool In(const std::string_view (&list)[N], std::string_view key) {
  for (std::string_view k : list) {
    if (k == key) return true;
  }
  return false;
}

Document Subset(DocumentView doc, bool (*keep)(std::string_view)) {
  DocumentBuilder b;
  bson_iter_t it;
  if (bson_iter_init(&it, doc.get())) {
    while (bson_iter_next(&it)) {
      if (keep(bson_iter_key(&it))) b.AppendIter(bson_iter_key(&it), it);
    }
  }
  return std::move(b).Build();
}

}  // namespace

// ---- legacy field readers ------------------------------------------------------------------

Result<std::string> LegacyUserId(DocumentView doc) {
  auto it = doc.Find("userId");
  if (!it) return Status::InvalidArgument("missing", "userId");
  // Telegram user ids are positive integers; one id has one spelling, so "09001" is not
  // another user than 9001, and "-" or "9-0-1" are no user at all.
  const Status not_an_id =
      Status::InvalidArgument("not a Telegram user id (a positive integer)", "userId");
  int64_t number = 0;
  if (BSON_ITER_HOLDS_INT32(&*it)) {
    number = bson_iter_int32(&*it);
  } else if (BSON_ITER_HOLDS_INT64(&*it)) {
    number = bson_iter_int64(&*it);
  } else if (BSON_ITER_HOLDS_DOUBLE(&*it)) {
    const double d = bson_iter_double(&*it);
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e15) return not_an_id;
    number = static_cast<int64_t>(d);
  } else if (BSON_ITER_HOLDS_UTF8(&*it)) {
    const std::string_view text = bson_iter_utf8(&*it, nullptr);
    if (text.empty() || text.size() > si::kPlatformUserIdCharsMax || text[0] == '0' ||
        text.find_first_not_of("0123456789") != std::string_view::npos) {
      return not_an_id;
    }
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec != std::errc() || end != text.data() + text.size()) return not_an_id;
  } else {
    return Status::InvalidArgument(std::string("expected a number or a string, got ") +
                                       std::string(BsonTypeName(bson_iter_type(&*it))),
                                   "userId");
  }
  if (number <= 0) return not_an_id;
  std::string text = std::to_string(number);
  if (text.size() > si::kPlatformUserIdCharsMax) return not_an_id;
  return text;
}

Result<Timestamp> LegacyTime(DocumentView doc, std::string_view path) {
  auto it = doc.Find(path);
  if (!it) return Status::InvalidArgument("missing", std::string(path));
  if (BSON_ITER_HOLDS_DATE_TIME(&*it)) return Timestamp::FromMillis(bson_iter_date_time(&*it));
  if (BSON_ITER_HOLDS_INT64(&*it)) return Timestamp::FromMillis(bson_iter_int64(&*it));
  if (BSON_ITER_HOLDS_INT32(&*it)) return Timestamp::FromMillis(bson_iter_int32(&*it));
  if (BSON_ITER_HOLDS_DOUBLE(&*it)) {
    const double d = bson_iter_double(&*it);
    if (std::isfinite(d) && std::fabs(d) < 1e15) {
      return Timestamp::FromMillis(static_cast<int64_t>(d));
    }
  }
  if (BSON_ITER_HOLDS_UTF8(&*it)) {
    return Timestamp::ParseIso8601(bson_iter_utf8(&*it, nullptr), path);
  }
  return Status::InvalidArgument("expected a date, milliseconds or ISO-8601 text",
                                 std::string(path));
}

std::optional<std::string> NumberText(DocumentView doc, std::string_view path) {
  auto it = doc.Find(path);
  if (!it) return std::nullopt;
  if (BSON_ITER_HOLDS_INT32(&*it)) return std::to_string(bson_iter_int32(&*it));
  if (BSON_ITER_HOLDS_INT64(&*it)) return std::to_string(bson_iter_int64(&*it));
  if (BSON_ITER_HOLDS_DOUBLE(&*it)) {
    const double d = bson_iter_double(&*it);
    if (!std::isfinite(d)) return std::nullopt;
    char buffer[64];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, d);
    if (ec != std::errc()) return std::nullopt;
    return std::string(buffer, end);
  }
  if (BSON_ITER_HOLDS_DECIMAL128(&*it)) {
    bson_decimal128_t dec;
    bson_iter_decimal128(&*it, &dec);
    char buffer[BSON_DECIMAL128_STRING];
    bson_decimal128_to_string(&dec, buffer);
    return std::string(buffer);
  }
  if (BSON_ITER_HOLDS_UTF8(&*it)) {
    std::string text = bson_iter_utf8(&*it, nullptr);
    if (text.empty()) return std::string("0");
    return text;
  }
  return std::nullopt;
}

std::optional<std::string> OptString(DocumentView doc, std::string_view path) {
  auto s = doc.GetString(path);
  if (!s.ok()) return std::nullopt;
  return std::string(*s);
}

std::string LegacyDocumentKey(DocumentView doc) {
  auto it = doc.Find("_id");
  if (it && BSON_ITER_HOLDS_OID(&*it)) return ObjectId(*bson_iter_oid(&*it)).ToHex();
  if (it) return Value::FromIter(*it).ToJson();
  return doc.ToJson(JsonMode::kCanonical);
}

// ---- driver --------------------------------------------------------------------------------

void Importer::Skip(LegacyCollectionStats& stats, std::string_view file, size_t line,
                    std::string reason) {
  std::lock_guard<std::mutex> lock(report_mu_);
  ++stats.skipped;
  if (report_->skips.size() >= kLegacyReportIssuesMax) {
    ++report_->skips_dropped;
    return;
  }
  report_->skips.push_back({std::string(file), line, std::move(reason)});
}

void Importer::Notice(std::string_view file, size_t line, std::string reason) {
  std::lock_guard<std::mutex> lock(report_mu_);
  if (report_->notices.size() >= kLegacyReportIssuesMax) {
    ++report_->notices_dropped;
    return;
  }
  report_->notices.push_back({std::string(file), line, std::move(reason)});
}

Status Importer::RunUnit(const TransactionFn& fn, const TransactionOptions& options) {
  if (!options_.dry_run) return ctx_.store->RunTransaction(fn, options);
  Status status = ctx_.store->RunTransaction(
      [&](Transaction& tx) -> Status {
        NOEMA_RETURN_IF_ERROR(fn(tx));
        return Status::FailedPrecondition(std::string(kDryRunRollback));
      },
      options);
  if (status.code() == StatusCode::kFailedPrecondition && status.message() == kDryRunRollback) {
    return Status::Ok();
  }
  return status;
}

Status Importer::ReadFile(std::string_view stem, Step step) {
  const std::string name = std::string(stem) + ".json";
  const std::filesystem::path path = std::filesystem::path(options_.dir) / name;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    report_->missing_files.push_back(name);
    return Status::Ok();
  }
  const uint64_t total = std::filesystem::file_size(path, ec);
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidArgument("cannot open " + path.string(), name);
  ExtendedJsonReader reader(&in);
  LegacyCollectionStats& stats = report_->collections[std::string(stem)];
  uint64_t items = 0;
  while (std::optional<ReadItem> item = reader.Next()) {
    ++stats.read;
    if (!item->doc) {
      Skip(stats, name, item->line, "malformed: " + item->error.ToString());
    } else {
      NOEMA_RETURN_IF_ERROR((this->*step)(item->doc->view(), name, item->line, stats));
    }
    if (options_.progress && (++items % 4096) == 0) {
      const auto pos = in.tellg();
      options_.progress(name, pos < 0 ? total : static_cast<uint64_t>(pos), total);
    }
  }
  if (options_.progress) options_.progress(name, total, total);
  return Status::Ok();
}

Status Importer::Run() {
  std::error_code ec;
  if (!std::filesystem::is_directory(options_.dir, ec)) {
    return Status::NotFound("no such directory: " + options_.dir);
  }
  if (!options_.qoints_per_usd || options_.qoints_per_usd->mantissa <= 0) {
    return Status::InvalidArgument("qoints per USD is required and must be greater than zero",
                                   "qointsPerUsd");
  }
  report_->dry_run = options_.dry_run;
  StartWriter();
  Status status = RunSteps();
  // Whatever was handed over is written (or the first error is known) before returning.
  Status drained = Drain();
  StopWriter();
  NOEMA_RETURN_IF_ERROR(status);
  return drained;
}

Status Importer::RunSteps() {
  // The files of kLegacyFileStems, in its order.
  NOEMA_RETURN_IF_ERROR(ReadFile(kLegacyFileStems[0], &Importer::PreSplitUserStep));
  NOEMA_RETURN_IF_ERROR(ReadFile(kLegacyFileStems[1], &Importer::UserCoreStep));
  NOEMA_RETURN_IF_ERROR(ReadFile(kLegacyFileStems[2], &Importer::EconomyStep));
  NOEMA_RETURN_IF_ERROR(PreSplitEconomies());
  NOEMA_RETURN_IF_ERROR(ReadFile(kLegacyFileStems[3], &Importer::PreferencesStep));
  NOEMA_RETURN_IF_ERROR(ReadFile(kLegacyFileStems[4], &Importer::HistoryStep));
  NOEMA_RETURN_IF_ERROR(CloseAllSessions());
  NOEMA_RETURN_IF_ERROR(FlushEvents());
  NOEMA_RETURN_IF_ERROR(FlushSessions());
  // gens look sessions up in the store: everything of history must be there.
  NOEMA_RETURN_IF_ERROR(Drain());
  NOEMA_RETURN_IF_ERROR(ReadFile(kLegacyFileStems[5], &Importer::GensStep));
  NOEMA_RETURN_IF_ERROR(FlushSessions());
  NOEMA_RETURN_IF_ERROR(FlushEvents());
  NOEMA_RETURN_IF_ERROR(FlushGenerations());
  return Status::Ok();
}

// ---- users -----------------------------------------------------------------------------------

Result<ObjectId> Importer::EnsureUserInTx(Transaction& tx, const std::string& uid,
                                          std::optional<Timestamp> created_at, bool* created) {
  *created = false;
  const std::string identity = si::IdentityKey(kPlatform, uid);
  NOEMA_ASSIGN_OR_RETURN(std::optional<Document> existing,
                         tx.FindOne(Collection::kUserCore, Filter().Eq("identityKeys", identity)));
  if (existing) return existing->view().GetObjectId("_id");
  const ObjectId id = NewUserId(uid);
  const Timestamp now = ctx_.Now();
  DocumentBuilder user;
  user.Append("_id", id);
  user.StartDocument("platformIdentities").Append(kPlatform, uid).End();
  user.StartArray("identityKeys").Append(user.NextArrayKey(), identity).End();
  user.Append("userCreationTimestamp", created_at.value_or(now))
      .Append("updatedAt", now)
      .Append("status", "active");
  const Document user_doc = std::move(user).Build();
  NOEMA_RETURN_IF_ERROR(tx.Insert(Collection::kUserCore, user_doc));
  const Document economy_doc = si::NewUserEconomy(id, now);
  NOEMA_RETURN_IF_ERROR(tx.Insert(Collection::kUserEconomy, economy_doc));
  const Document preferences_doc = si::NewUserPreferences(id, now);
  NOEMA_RETURN_IF_ERROR(tx.Insert(Collection::kUserPreferences, preferences_doc));
  *created = true;
  return id;
}

ObjectId Importer::NewUserId(const std::string& uid) {
  return HashObjectId("stationthisbot:telegram:" + uid);
}

Result<std::optional<ObjectId>> Importer::FindUser(const std::string& uid) {
  if (auto it = user_ids_.find(uid); it != user_ids_.end()) return std::optional(it->second);
  // The common case, an existing user, is a read.
  std::optional<ObjectId> existing;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    existing.reset();
    NOEMA_ASSIGN_OR_RETURN(
        std::optional<Document> user,
        tx.FindOne(Collection::kUserCore,
                   Filter().Eq("identityKeys", si::IdentityKey(kPlatform, uid))));
    if (user) {
      NOEMA_ASSIGN_OR_RETURN(existing, user->view().GetObjectId("_id"));
    }
    return Status::Ok();
  }));
  if (existing) user_ids_.emplace(uid, *existing);
  return existing;
}

Result<ObjectId> Importer::EnsureUser(const std::string& uid, bool* created) {
  *created = false;
  NOEMA_ASSIGN_OR_RETURN(std::optional<ObjectId> existing, FindUser(uid));
  if (existing) return *existing;
  ObjectId id;
  bool made = false;
  NOEMA_RETURN_IF_ERROR(RunUnit([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(id, EnsureUserInTx(tx, uid, std::nullopt, &made));
    return Status::Ok();
  }));
  if (made) {
    ++report_->users_created;
    if (options_.dry_run) dry_run_users_.insert(uid);
  }
  *created = made;
  user_ids_.emplace(uid, id);
  return id;
}

Status Importer::UserCoreStep(DocumentView doc, std::string_view file, size_t line,
                              LegacyCollectionStats& stats) {
  Result<std::string> uid = LegacyUserId(doc);
  if (!uid.ok()) return Skip(stats, file, line, uid.status().ToString()), Status::Ok();
  std::optional<Timestamp> created_at;
  if (auto t = LegacyTime(doc, "createdAt"); t.ok()) created_at = *t;

  // Wallets: {address, eth?, verified, active, createdAt}.
  struct LegacyWallet {
    std::string address;
    bool verified = false;
    bool active = false;
    std::optional<Timestamp> added_at;
  };
  std::vector<LegacyWallet> eth;
  std::vector<std::string> solana;
  std::vector<std::string> notices;
  auto take = [&](std::string address, std::string_view type, bool verified, bool active,
                  std::optional<Timestamp> added_at) {
    if (address.empty()) return;
    const bool is_eth = type == "CONNECTED_ETH" || (type.empty() && IsEthAddress(address));
    if (is_eth) {
      Result<std::string> checksummed = ethereum::ChecksumAddress(address);
      if (!checksummed.ok()) {
        notices.push_back("wallet " + address + " not migrated: " + checksummed.status().message());
        return;
      }
      for (LegacyWallet& w : eth) {
        if (w.address == *checksummed) {
          w.verified = w.verified || verified;
          w.active = w.active || active;
          return;
        }
      }
      eth.push_back({*checksummed, verified, active, added_at});
      return;
    }
    if (type == "CONNECTED_SOL" || IsSolanaAddress(address)) {
      if (std::find(solana.begin(), solana.end(), address) == solana.end()) {
        solana.push_back(address);
        notices.push_back("Solana wallet " + address + " kept in " + std::string(kLegacyField) +
                          ".solanaWallets (noema wallets are Ethereum only)");
      }
      return;
    }
    notices.push_back("wallet '" + address + "' is neither Ethereum nor Solana; not migrated");
  };
  if (auto arr = doc.GetArray("wallets"); arr.ok()) {
    bson_iter_t it;
    if (bson_iter_init(&it, arr->get())) {
      while (bson_iter_next(&it)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&it)) continue;
        uint32_t len = 0;
        const uint8_t* data = nullptr;
        bson_iter_document(&it, &len, &data);
        DocumentView w(data, len);
        std::optional<Timestamp> added;
        if (auto t = LegacyTime(w, "createdAt"); t.ok()) added = *t;
        take(OptString(w, "address").value_or(""), OptString(w, "type").value_or(""),
             GetBoolLoose(w, "verified"), GetBoolLoose(w, "active"), added);
      }
    }
  }
  if (auto w = OptString(doc, "wallet")) take(*w, "", GetBoolLoose(doc, "verified"), false, {});
  if (auto w = OptString(doc, "ethWallet")) {
    take(*w, "CONNECTED_ETH", GetBoolLoose(doc, "ethVerified"), false, {});
  }

  // The API key.
  std::optional<std::string> key = OptString(doc, "apiKey");
  if (key && !key->empty() && !apikey::IsLegacyKey(*key)) {
    notices.push_back("apiKey is not ms2_ + 32 hex digits; not migrated");
    key.reset();
  }
  if (key && key->empty()) key.reset();
  std::optional<Timestamp> key_created;
  if (auto t = LegacyTime(doc, "apiKeyCreatedAt"); t.ok()) key_created = *t;

  // Leftovers kept under legacyStationthisbot (never the plaintext key).
  DocumentBuilder extra_builder;
  {
    bson_iter_t it;
    bson_iter_init(&it, doc.get());
    while (bson_iter_next(&it)) {
      const std::string_view k = bson_iter_key(&it);
      if (k == "_id" || k == "wallets" || k == "apiKey" || k == "userId") continue;
      extra_builder.AppendIter(k, it);
    }
    extra_builder.Append("userId", *uid);
    const Document solana_array = MakeStringArray(solana);
    if (!solana.empty()) extra_builder.AppendArray("solanaWallets", solana_array);
  }
  const Document extra = std::move(extra_builder).Build();

  bool created = false;
  bool changed = false;
  ObjectId resolved_id;
  std::vector<std::string> unit_notices;
  Status status = RunUnit([&](Transaction& tx) -> Status {
    created = changed = false;
    unit_notices.clear();
    NOEMA_ASSIGN_OR_RETURN(ObjectId id, EnsureUserInTx(tx, *uid, created_at, &created));
    resolved_id = id;
    NOEMA_ASSIGN_OR_RETURN(Document user, si::LoadUserCore(tx, id));
    NOEMA_ASSIGN_OR_RETURN(std::vector<Document> wallets, si::ArrayOfDocuments(user, "wallets"));
    NOEMA_ASSIGN_OR_RETURN(std::vector<Document> keys, si::ArrayOfDocuments(user, "apiKeys"));
    bool has_primary = false;
    for (const Document& w : wallets) has_primary = has_primary || GetBoolLoose(w, "isPrimary");
    // The active legacy wallet becomes primary, else the first one.
    size_t primary = eth.size();
    for (size_t i = 0; i < eth.size() && primary == eth.size(); ++i) {
      if (eth[i].active) primary = i;
    }
    if (primary == eth.size()) primary = 0;
    for (size_t i = 0; i < eth.size(); ++i) {
      const LegacyWallet& w = eth[i];
      bool mine = false;
      for (const Document& have : wallets) {
        if (OptString(have, "address") == w.address) mine = true;
      }
      if (mine) continue;
      NOEMA_ASSIGN_OR_RETURN(
          std::optional<Document> owner,
          tx.FindOne(Collection::kUserCore, Filter().Eq("wallets.address", w.address)));
      if (owner) {
        unit_notices.push_back("wallet " + w.address + " already belongs to user " +
                               owner->view().GetObjectId("_id").value().ToHex() +
                               "; not added to telegram user " + *uid);
        continue;
      }
      const bool make_primary = !has_primary && i == primary;
      has_primary = has_primary || make_primary;
      DocumentBuilder item;
      item.Append("address", w.address)
          .Append("isPrimary", make_primary)
          .Append("addedAt", w.added_at.value_or(created_at.value_or(ctx_.Now())))
          .Append("verified", w.verified);
      wallets.push_back(std::move(item).Build());
      changed = true;
    }
    if (!has_primary && !wallets.empty()) {
      // Another primary could not be added (all conflicts): the first wallet is primary.
      si::FieldRewrites p;
      p.emplace_back("isPrimary", [](DocumentBuilder& b) { b.Append("isPrimary", true); });
      wallets[0] = si::RewriteFields(wallets[0], p);
      changed = true;
    }
    if (key) {
      const std::string hash = apikey::Sha256Hex(*key);
      bool mine = false;
      for (const Document& k : keys) mine = mine || OptString(k, "keyHash") == hash;
      if (!mine) {
        NOEMA_ASSIGN_OR_RETURN(
            std::optional<Document> owner,
            tx.FindOne(Collection::kUserCore, Filter().Eq("apiKeys.keyHash", hash)));
        if (owner) {
          unit_notices.push_back("apiKey already belongs to another user; not added");
        } else {
          std::vector<std::string> scopes(kApiKeyScopes.begin(), kApiKeyScopes.end());
          const Document scope_array = MakeStringArray(scopes);
          DocumentBuilder item;
          item.Append("keyHash", hash)
              .Append("keyPrefix", apikey::LegacyPublicPrefix(*key))
              .Append("label", "stationthisbot legacy key")
              .Append("createdAt", key_created.value_or(created_at.value_or(ctx_.Now())))
              .AppendArray("scopes", scope_array)
              .Append("isActive", true);
          keys.push_back(std::move(item).Build());
          changed = true;
        }
      }
    }
    // Merge the leftovers into the stored ones (this file's values win).
    Document merged_extra;
    {
      si::FieldRewrites rewrites;
      bson_iter_t it;
      bson_iter_init(&it, extra.get());
      while (bson_iter_next(&it)) {
        Value v = Value::FromIter(it);
        std::string k = bson_iter_key(&it);
        rewrites.emplace_back(k, [k, v](DocumentBuilder& b) { b.Append(k, v); });
      }
      auto stored = user.view().GetDocument(kLegacyField);
      merged_extra = si::RewriteFields(stored.ok() ? *stored : DocumentView(extra.get()), rewrites);
      if (!stored.ok() || !(DocumentView(merged_extra) == *stored)) changed = true;
    }
    if (!changed) return Status::Ok();
    const Timestamp now = ctx_.Now();
    si::FieldRewrites rewrites;
    rewrites.emplace_back("updatedAt", [now](DocumentBuilder& b) { b.Append("updatedAt", now); });
    rewrites.emplace_back("wallets", si::DocumentArrayField("wallets", std::move(wallets)));
    rewrites.emplace_back("apiKeys", si::DocumentArrayField("apiKeys", std::move(keys)));
    rewrites.emplace_back(std::string(kLegacyField), [&merged_extra](DocumentBuilder& b) {
      b.AppendDocument(kLegacyField, merged_extra);
    });
    return si::ReplaceUserCore(tx, id, si::RewriteFields(user, rewrites));
  });
  if (!status.ok()) {
    if (status.code() == StatusCode::kUnavailable) return status;
    Skip(stats, file, line, "telegram user " + *uid + ": " + status.ToString());
    return Status::Ok();
  }
  for (std::string& n : notices) Notice(file, line, "telegram user " + *uid + ": " + n);
  for (std::string& n : unit_notices) Notice(file, line, n);
  if (created) {
    ++report_->users_created;
    ++stats.imported;
    if (options_.dry_run) dry_run_users_.insert(*uid);
  } else if (changed) {
    ++stats.merged;
  } else {
    ++stats.unchanged;
  }
  user_ids_[*uid] = resolved_id;
  return Status::Ok();
}

Status Importer::EconomyStep(DocumentView doc, std::string_view file, size_t line,
                             LegacyCollectionStats& stats) {
  Result<std::string> uid = LegacyUserId(doc);
  if (!uid.ok()) return Skip(stats, file, line, uid.status().ToString()), Status::Ok();
  const std::string who = "telegram user " + *uid + ": ";
  if (!reading_pre_split_economies_) {
    split_economy_users_.insert(*uid);
  } else if (split_economy_users_.contains(*uid)) {
    // users_economy.json has a record of this user: it is the newer one (LEGACY.md: users
    // was split in December 2024) and decides, whether it was migrated, found migrated or
    // skipped. The pre-split value is only noted.
    std::string kept = "users_economy.json's record of this user was skipped (see its line)";
    if (auto seen = economies_.find(*uid); seen != economies_.end()) {
      kept = "the economy migrated from " + seen->second.origin + " stays (qoints " +
             seen->second.qoints + " = " + seen->second.usd.ToString() + " USD, exp " +
             std::to_string(seen->second.exp) + ")";
    }
    Notice(file, line,
           who + "the pre-split economy (qoints " + NumberText(doc, "qoints").value_or("0") +
               ", exp " + NumberText(doc, "exp").value_or("0") +
               ") is superseded by users_economy.json, which has a record of this user; " + kept +
               "; not migrated");
    ++stats.unchanged;
    return Status::Ok();
  }
  // qoints → usdCredit, exactly.
  ExactDecimal qoints;
  if (auto text = NumberText(doc, "qoints")) {
    Result<ExactDecimal> parsed = ExactDecimal::Parse(*text, "qoints");
    if (!parsed.ok())
      return Skip(stats, file, line, who + parsed.status().ToString()), Status::Ok();
    qoints = *parsed;
  } else if (doc.Has("qoints")) {
    return Skip(stats, file, line, who + "qoints: not a number"), Status::Ok();
  }
  if (qoints.IsNegative()) {
    return Skip(stats, file, line, who + "qoints: negative balance " + qoints.ToString()),
           Status::Ok();
  }
  Result<Money> usd = DivideExactly(qoints, *options_.qoints_per_usd, "qoints");
  if (!usd.ok()) return Skip(stats, file, line, who + usd.status().ToString()), Status::Ok();
  if (*usd > ctx_.config.amount_max) {
    return Skip(stats, file, line,
                who + "qoints: " + usd->ToString() + " USD exceeds the largest single credit (" +
                    ctx_.config.amount_max.ToString() + ")"),
           Status::Ok();
  }
  // exp → long (the fraction is dropped and reported).
  int64_t exp = 0;
  std::optional<std::string> exp_note;  // noted once the record is imported
  std::string exp_text = NumberText(doc, "exp").value_or("0");
  {
    Result<ExactDecimal> parsed = ExactDecimal::Parse(exp_text, "exp");
    if (!parsed.ok())
      return Skip(stats, file, line, who + parsed.status().ToString()), Status::Ok();
    if (parsed->IsNegative()) return Skip(stats, file, line, who + "exp: negative"), Status::Ok();
    int64_t whole = parsed->mantissa;
    for (int k = 0; k < parsed->scale; ++k) whole /= 10;
    exp = whole;
    if (parsed->scale > 0) exp_note = who + "exp " + exp_text + " stored as " + std::to_string(exp);
  }
  // Usage counters: reported, not migrated.
  for (std::string_view counter : kUsageCounters) {
    auto text = NumberText(doc, counter);
    if (!text) continue;
    Result<ExactDecimal> parsed = ExactDecimal::Parse(*text, counter);
    if (!parsed.ok() || parsed->IsZero()) continue;
    std::string& total = report_->usage_counter_totals[std::string(counter)];
    long double sum = total.empty() ? 0.0L : std::strtold(total.c_str(), nullptr);
    sum += std::strtold(text->c_str(), nullptr);
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.10Lg", sum);
    total = buffer;
  }

  // One economy per user (docs/legacy-import.md): a migrated balance is a ledger record,
  // so a second record of the user (users.json, then users_economy.json, or an earlier
  // import) is "unchanged" when it migrates the same values and a skip naming both
  // when it does not.
  const ImportedEconomy mine{qoints.ToString(), *usd, exp,
                             std::string(file) + ":" + std::to_string(line)};
  auto same_or_skip = [&](const ImportedEconomy& first) {
    if (first.usd == mine.usd && first.exp == mine.exp) {
      ++stats.unchanged;
    } else {
      Skip(stats, file, line,
           who + "a second economy record (qoints " + mine.qoints + " = " + mine.usd.ToString() +
               " USD, exp " + std::to_string(mine.exp) + ") differs from the one imported from " +
               first.origin + " (qoints " + first.qoints + " = " + first.usd.ToString() +
               " USD, exp " + std::to_string(first.exp) +
               "); the migrated balance is a ledger record and is not rewritten");
    }
    return Status::Ok();
  };
  if (auto seen = economies_.find(*uid); seen != economies_.end()) {
    return same_or_skip(seen->second);
  }
  bool created = false;
  Result<ObjectId> id = EnsureUser(*uid, &created);
  if (!id.ok()) return id.status();
  // Already imported? (the marker is written last)
  std::optional<ImportedEconomy> before;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    before.reset();
    Result<si::EconomyRecord> econ = si::LoadEconomyInTx(tx, *id);
    if (!econ.ok()) return Status::Ok();
    auto marker = econ->document.view().GetDocument(kLegacyField);
    if (!marker.ok()) return Status::Ok();
    ImportedEconomy stored;
    stored.origin = "an earlier import";
    stored.qoints = NumberText(*marker, "qoints").value_or("0");
    if (auto q = ExactDecimal::Parse(stored.qoints, "qoints"); q.ok()) {
      stored.qoints = q->ToString();
    }
    if (auto migrated = marker->GetMoney("usdCreditMigrated"); migrated.ok()) {
      stored.usd = *migrated;
    }
    if (auto e = ExactDecimal::Parse(NumberText(*marker, "exp").value_or("0"), "exp"); e.ok()) {
      stored.exp = e->mantissa;
      for (int k = 0; k < e->scale; ++k) stored.exp /= 10;
    }
    before = std::move(stored);
    return Status::Ok();
  }));
  if (before) {
    economies_.emplace(*uid, *before);
    return same_or_skip(*before);
  }
  if (exp_note) Notice(file, line, std::move(*exp_note));
  if (options_.dry_run) {
    if (usd->IsPositive()) ++report_->ledger_records_written;
    ++(created || dry_run_users_.contains(*uid) ? stats.imported : stats.merged);
    economies_.emplace(*uid, mine);
    return Status::Ok();
  }
  if (usd->IsPositive()) {
    EconomyService economy(ctx_);
    MoneyMovement move;
    move.amount_usd = *usd;
    move.type = "migration";
    move.description = "Opening balance migrated from stationthisbot: " + qoints.ToString() +
                       " qoints at " + options_.qoints_per_usd->ToString() + " qoints per USD";
    DocumentBuilder metadata;
    metadata.Append("legacyQoints", qoints.ToString())
        .Append("qointsPerUsd", options_.qoints_per_usd->ToString())
        .Append("legacyUserId", *uid);
    move.metadata = std::move(metadata).Build();
    move.idempotency_key = std::string(kOpeningBalanceKey);
    // The credit_added event goes into a closed session of its own (platform
    // legacy_import), so that the import leaves no active session behind.
    Origin origin;
    origin.platform = "legacy_import";
    origin.session_id = HashObjectId("stationthisbot:migration-session:" + *uid);
    {
      const Timestamp now = ctx_.Now();
      DocumentBuilder session;
      session.Append("_id", *origin.session_id)
          .Append("sessionId", *origin.session_id)
          .Append("masterAccountId", *id)
          .Append("startTime", now)
          .Append("endTime", now)
          .Append("endReason", "system_shutdown")
          .Append("platform", origin.platform)
          .Append("isActive", false)
          .Append("lastUserActivityTimestamp", now);
      session.StartDocument("metadata").Append("source", "stationthisbot").End();
      const Document session_doc = std::move(session).Build();
      Status inserted = InsertOne(*ctx_.store, Collection::kUserSessions, session_doc);
      if (!inserted.ok() && !inserted.IsAlreadyExists()) return inserted;
    }
    Result<MovementResult> moved = economy.Credit(*id, move, origin);
    if (!moved.ok()) {
      Skip(stats, file, line, who + "opening balance: " + moved.status().ToString());
      return Status::Ok();
    }
    if (!moved->replayed) ++report_->ledger_records_written;
  }
  // exp and the marker (with the legacy values noema has no field for).
  Status status = ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(si::EconomyRecord econ, si::LoadEconomyInTx(tx, *id));
    if (econ.document.view().Has(kLegacyField)) return Status::Ok();
    DocumentBuilder marker;
    bson_iter_t it;
    bson_iter_init(&it, doc.get());
    while (bson_iter_next(&it)) {
      const std::string_view k = bson_iter_key(&it);
      if (k == "_id" || k == "userId") continue;
      marker.AppendIter(k, it);
    }
    marker.Append("qointsPerUsd", options_.qoints_per_usd->ToString())
        .Append("usdCreditMigrated", *usd)
        .Append("importedAt", ctx_.Now());
    const Document marker_doc = std::move(marker).Build();
    if (econ.exp > INT64_MAX - exp) {
      return Status::InvalidArgument("exp out of range", "exp");
    }
    Document updated = si::ReplaceFields(
        econ.document, {{"exp", Value(econ.exp + exp)},
                        {std::string(kLegacyField), si::DocumentValue(marker_doc, false)},
                        {"updatedAt", Value(ctx_.Now())}});
    return tx.Replace(Collection::kUserEconomy, econ.id, updated);
  });
  if (!status.ok()) {
    if (status.code() == StatusCode::kUnavailable) return status;
    Skip(stats, file, line, who + status.ToString());
    return Status::Ok();
  }
  ++(created ? stats.imported : stats.merged);
  economies_.emplace(*uid, mine);
  return Status::Ok();
}

Status Importer::PreferencesStep(DocumentView doc, std::string_view file, size_t line,
                                 LegacyCollectionStats& stats) {
  Result<std::string> uid = LegacyUserId(doc);
  if (!uid.ok()) return Skip(stats, file, line, uid.status().ToString()), Status::Ok();
  const std::string who = "telegram user " + *uid + ": ";
  // Map the names; keep values and types.
  DocumentBuilder settings;
  std::vector<std::string> seen;
  auto add = [&](std::string_view key, const bson_iter_t& it) {
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) return;
    seen.emplace_back(key);
    settings.AppendIter(key, it);
  };
  bson_iter_t it;
  bson_iter_init(&it, doc.get());
  // input_* names first, so that a document holding both spellings keeps the new one.
  while (bson_iter_next(&it)) {
    const std::string_view k = bson_iter_key(&it);
    if (k.starts_with("input_")) add(k, it);
  }
  bson_iter_init(&it, doc.get());
  while (bson_iter_next(&it)) {
    const std::string_view k = bson_iter_key(&it);
    if (k == "_id" || k == "userId" || k.starts_with("input_")) continue;
    bool renamed = false;
    for (auto [old_name, new_name] : kRenamedPreferences) {
      if (k == old_name) {
        add(new_name, it);
        renamed = true;
      }
    }
    if (renamed) continue;
    if (k == "photoStats" && BSON_ITER_HOLDS_DOCUMENT(&it)) {
      uint32_t len = 0;
      const uint8_t* data = nullptr;
      bson_iter_document(&it, &len, &data);
      DocumentView stats_doc(data, len);
      if (auto h = stats_doc.Find("height")) add("input_height", *h);
      if (auto w = stats_doc.Find("width")) add("input_width", *w);
      continue;
    }
    add(k, it);
  }
  const Document mapped = std::move(settings).Build();

  bool created = false;
  Result<ObjectId> id = EnsureUser(*uid, &created);
  if (!id.ok()) return id.status();
  PreferencesService preferences(ctx_);
  Document current;
  if (!created && !dry_run_users_.contains(*uid)) {
    Result<Document> scope = preferences.GetScope(*id, kGlobalSettingsScope);
    if (scope.ok()) current = std::move(scope).value();
  }
  // The stored scope with the legacy settings merged in (legacy values win).
  si::FieldRewrites rewrites;
  bson_iter_init(&it, mapped.get());
  while (bson_iter_next(&it)) {
    Value v = Value::FromIter(it);
    std::string k = bson_iter_key(&it);
    rewrites.emplace_back(k, [k, v](DocumentBuilder& b) { b.Append(k, v); });
  }
  Document merged = si::RewriteFields(current, rewrites);
  if (DocumentView(merged) == DocumentView(current)) {
    ++stats.unchanged;
    return Status::Ok();
  }
  if (!options_.dry_run) {
    Result<Document> put = preferences.PutScope(*id, kGlobalSettingsScope, merged);
    if (!put.ok()) {
      if (put.status().code() == StatusCode::kUnavailable) return put.status();
      Skip(stats, file, line, who + "globalSettings." + put.status().ToString());
      return Status::Ok();
    }
  }
  ++(created || dry_run_users_.contains(*uid) ? stats.imported : stats.merged);
  return Status::Ok();
}

Status Importer::PreSplitUserStep(DocumentView doc, std::string_view file, size_t line,
                                  LegacyCollectionStats& stats) {
  // One pre-split document = its userCore, userEconomy and preferences parts; it counts
  // once, by the outcome of its core part (the other parts' skips are reported too).
  Document core = Subset(doc, [](std::string_view k) { return In(kCoreFields, k); });
  Document economy = Subset(doc, [](std::string_view k) { return In(kEconomyFields, k); });
  Document prefs = Subset(doc, [](std::string_view k) {
    return k == "userId" || (!In(kCoreFields, k) && !In(kEconomyFields, k));
  });
  const int64_t skipped_before = stats.skipped;
  NOEMA_RETURN_IF_ERROR(UserCoreStep(core, file, line, stats));
  if (stats.skipped != skipped_before) return Status::Ok();  // nothing else of it is imported
  // The economy and preferences parts report their own skips (with this line); the
  // document counts once, by its core part.
  LegacyCollectionStats part;
  // A document with no economy field has no economy to migrate (an empty one would be
  // imported as 0 and then refuse users_economy's record as a second, different one).
  bool has_economy = false;
  for (std::string_view k : kEconomyFields)
    has_economy = has_economy || (k != "userId" && doc.Has(k));
  if (has_economy) pre_split_economies_.push_back({std::move(economy), std::string(file), line});
  NOEMA_RETURN_IF_ERROR(PreferencesStep(prefs, file, line, part));
  return Status::Ok();
}

Status Importer::PreSplitEconomies() {
  reading_pre_split_economies_ = true;
  std::vector<DeferredEconomy> deferred = std::move(pre_split_economies_);
  pre_split_economies_.clear();
  for (const DeferredEconomy& economy : deferred) {
    LegacyCollectionStats part;  // the document counted once, by its core part
    NOEMA_RETURN_IF_ERROR(EconomyStep(economy.doc.view(), economy.file, economy.line, part));
  }
  reading_pre_split_economies_ = false;
  return Status::Ok();
}

}  // namespace legacy_internal

// ---- report --------------------------------------------------------------------------------

std::string LegacyImportReport::ToText() const {
  std::ostringstream out;
  out << (dry_run ? "legacy import (dry run: nothing written)\n" : "legacy import\n");
  out << "collection          read   imported   merged   unchanged   skipped\n";
  for (const auto& [name, s] : collections) {
    char row[160];
    std::snprintf(row, sizeof row, "%-18s %6lld %10lld %8lld %11lld %9lld\n", name.c_str(),
                  static_cast<long long>(s.read), static_cast<long long>(s.imported),
                  static_cast<long long>(s.merged), static_cast<long long>(s.unchanged),
                  static_cast<long long>(s.skipped));
    out << row;
  }
  for (const std::string& f : missing_files) out << "absent: " << f << " (skipped)\n";
  out << "users created: " << users_created << ", sessions: " << sessions_written
      << ", events: " << events_written
      << ", generation_requested events for gens: " << generation_requests_written
      << ", migration ledger records: " << ledger_records_written
      << ", analytics rollups rebuilt: " << rollups_rebuilt << "\n";
  for (const auto& [name, total] : usage_counter_totals) {
    out << "usage counter " << name << " (not migrated): total " << total << "\n";
  }
  for (const LegacyIssue& s : skips) {
    out << "skipped " << s.file << ":" << s.line << ": " << s.reason << "\n";
  }
  if (skips_dropped > 0) out << "... and " << skips_dropped << " more skips\n";
  for (const LegacyIssue& n : notices) {
    out << "note " << n.file << ":" << n.line << ": " << n.reason << "\n";
  }
  if (notices_dropped > 0) out << "... and " << notices_dropped << " more notes\n";
  return out.str();
}

Document LegacyImportReport::ToDocument() const {
  DocumentBuilder b;
  b.Append("dryRun", dry_run);
  b.StartDocument("collections");
  for (const auto& [name, s] : collections) {
    b.StartDocument(name)
        .Append("read", s.read)
        .Append("imported", s.imported)
        .Append("merged", s.merged)
        .Append("unchanged", s.unchanged)
        .Append("skipped", s.skipped)
        .End();
  }
  b.End();
  const Document missing = MakeStringArray(missing_files);
  b.AppendArray("missingFiles", missing);
  auto issues = [&b](std::string_view key, const std::vector<LegacyIssue>& list) {
    b.StartArray(key);
    for (const LegacyIssue& i : list) {
      b.StartDocument(b.NextArrayKey())
          .Append("file", i.file)
          .Append("line", static_cast<int64_t>(i.line))
          .Append("reason", i.reason)
          .End();
    }
    b.End();
  };
  issues("skips", skips);
  issues("notices", notices);
  b.Append("skipsDropped", skips_dropped).Append("noticesDropped", notices_dropped);
  b.Append("usersCreated", users_created)
      .Append("sessionsWritten", sessions_written)
      .Append("eventsWritten", events_written)
      .Append("generationRequestsWritten", generation_requests_written)
      .Append("ledgerRecordsWritten", ledger_records_written)
      .Append("rollupsRebuilt", rollups_rebuilt);
  b.StartDocument("usageCounterTotals");
  for (const auto& [name, total] : usage_counter_totals) b.Append(name, total);
  b.End();
  return std::move(b).Build();
}

Result<LegacyImportReport> ImportLegacy(const ServiceContext& ctx,
                                        const LegacyImportOptions& options) {
  LegacyImportReport report;
  legacy_internal::Importer importer(ctx, options, &report);
  NOEMA_RETURN_IF_ERROR(importer.Run());
  // The history went in around the event writer (bulk inserts), so the analytics rollups
  // are recomputed from the events once at the end.
  if (!options.dry_run && report.events_written > 0) {
    NOEMA_RETURN_IF_ERROR(RebuildRollups(*ctx.store, &report.rollups_rebuilt));
  }
  return report;
}

}  // namespace noema
