// What every service needs: the store, the clock, and the settings of the rules.
//
// Every setting documents its default; docs/limits.md lists them with the HTTP and CLI
// names that set them.
//
// Thread-safety: a ServiceContext is immutable after construction and shared by all
// services and threads. The Store and Clock it points at must outlive it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "noema/object_id.h"

#include "noema/money.h"
#include "noema/service/archetype_rules.h"
#include "noema/store.h"
#include "noema/time.h"

namespace noema {

// What to do with an event whose type is not in the catalog (EVENT_CATALOG.md).
enum class UnknownEventPolicy { kAccept, kReject };

struct ServiceConfig {
  // Accounts: Resolve of an existing user rewrites lastLoginTimestamp/lastSeenPlatform
  // only when the platform changed or the stored time is at least this old, so that
  // most resolves are a read (docs/decisions.md).
  int64_t login_touch_resolution_ms = kMillisPerMinute;

  // Sessions (DECISIONS.md 13): inactivity after which a session is ended.
  int64_t session_inactivity_timeout_ms = 30 * kMillisPerMinute;
  // Events move a session's lastUserActivityTimestamp only when they move it by at least
  // this much, so that a user's burst of events writes the session once rather than once
  // per batch (docs/decisions.md "Session activity has a resolution of one second"). The
  // recorded activity, and so a timed-out session's endTime, trails the latest event by
  // less than this. 0 records every move. SessionService::RecordActivity is always exact.
  int64_t session_activity_resolution_ms = kMillisPerSecond;
  // Errors counted in a session before it is ended with session_error_limit_exceeded.
  int session_error_limit = 20;

  // Generations: a pending/processing record older than this is swept to `timeout`.
  int64_t generation_deadline_ms = 30 * kMillisPerMinute;
  // Exp granted per USD of generation cost on success (0 disables).
  int64_t exp_per_usd = 100;

  // Wallets (DECISIONS.md 8): lifetime of a sign-in challenge nonce.
  int64_t wallet_challenge_ttl_ms = 10 * kMillisPerMinute;
  // The EIP-4361 message's domain, URI and chain id.
  std::string siwe_domain = "noema.local";
  std::string siwe_uri = "https://noema.local";
  int64_t siwe_chain_id = 1;
  // Open (unverified) challenges kept per user; the oldest is dropped past this.
  size_t wallet_challenges_max = 10;
  // Wallets per user.
  size_t wallets_max = 20;

  // API keys (DECISIONS.md 9): lastUsedAt is written at most this often per key.
  int64_t api_key_last_used_resolution_ms = kMillisPerMinute;
  // Active keys per user.
  size_t api_keys_max = 25;

  // Events (DECISIONS.md 16).
  UnknownEventPolicy unknown_event_policy = UnknownEventPolicy::kAccept;
  int64_t event_future_skew_ms = 5 * kMillisPerMinute;
  size_t event_batch_max = 1000;
  // `noema serve`'s group commit (src/server/event_batcher.h): request bodies of events
  // waiting for a committer, at most. Past it a request is refused at once with 503
  // and Retry-After, rather than queued: memory stays bounded whatever the number of
  // connections, and clients back off while the store is slow.
  size_t event_queue_bytes_max = 64 * 1024 * 1024;
  size_t event_data_bytes_max = 64 * 1024;
  // Whether EventService (the clients' way in) accepts the event types that services
  // write themselves with the change they describe (session_started, credit_spent,
  // generation_completed, ...; see docs/events.md). Default false, so that the log never
  // claims what did not happen; a legacy importer turns it on.
  bool client_service_event_types_allowed = false;

  // Preferences (DECISIONS.md 15): the whole preferences document of one user.
  size_t preferences_bytes_max = 256 * 1024;

  // Economy: the largest single credit or debit, as a guard against typos.
  Money amount_max = Money::FromUnits(1'000'000 * Money::kUnitsPerDollar);
  // Idempotency keys (API.md): at most this many characters.
  size_t idempotency_key_chars_max = 255;
  // Economy: the BSON size of a transaction's `metadata`.
  size_t ledger_metadata_bytes_max = 16 * 1024;

  // Generations: the BSON size of each of requestPayload, responsePayload, metadata and
  // errorDetails of a generation record.
  size_t generation_payload_bytes_max = 256 * 1024;
  // Generations: artifactUrls entries per record.
  size_t generation_artifacts_max = 100;

  // Analytics: the archetype thresholds (EVENT_CATALOG.md's table by default;
  // `--archetype-rules FILE`).
  ArchetypeRules archetype_rules;
};

// The credential a request that carries an idempotency key was sent with, as the
// services compare it (docs/decisions.md "Idempotency"): "service:<name>" for a service
// token, "admin" for the admin token, "key:<keyPrefix>" for an API key (the key's public
// identifier), and kCliCredential for the command line and the importers, which have no
// credential. Service token names have no ':', so no two kinds share an id.
inline constexpr std::string_view kCliCredential = "cli";

// Where a request came from. The events a change writes carry this platform as their
// sourcePlatform and attach to this session, or to the user's active session on the
// platform when none is given (DECISIONS.md 13).
struct Origin {
  std::string platform = "api";
  std::optional<ObjectId> session_id;
};

struct ServiceContext {
  Store* store = nullptr;
  const Clock* clock = &SystemClock::Instance();
  ServiceConfig config;

  Timestamp Now() const { return clock->Now(); }
};

}  // namespace noema
