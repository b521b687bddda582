// WalletService: the Ethereum wallets of a user (DECISIONS.md 8).
//
// Wallets live in userCore.wallets as {address, isPrimary, addedAt, verified}. Addresses
// are stored EIP-55 checksummed; input in all-lowercase or all-uppercase hex is
// normalised, mixed case must carry a correct checksum. An address belongs to at most one
// user (the unique multikey index userCore.wallets.address); at most one wallet of a user
// is primary, and a user with wallets always has exactly one primary.
//
// `verified` becomes true only through a signed challenge: IssueChallenge returns an
// EIP-4361 (Sign-In with Ethereum) message with a fresh nonce; the wallet signs it with
// EIP-191 personal_sign; Verify recovers the signer with secp256k1 and compares. Open
// challenges are kept in the extra userCore field `walletChallenges`
// ([{address, nonce, issuedAt, expiresAt}], at most config.wallet_challenges_max, the
// oldest dropped first). A challenge expires after config.wallet_challenge_ttl_ms and is
// single-use: the first Verify that names its nonce consumes it, whether or not the
// signature is right (docs/decisions.md).
//
// Input errors are InvalidArgument with field "address", "message" or "signature";
// nothing is written for them except the consumption of a named challenge.
//
// Thread-safety: safe to use from many threads at once; the service holds no mutable
// state. REQUIRES: the ServiceContext (and its store and clock) outlives the service.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/status.h"
#include "noema/time.h"

namespace noema {

// The statement line of the EIP-4361 messages the service issues.
inline constexpr std::string_view kWalletChallengeStatement =
    "Link this wallet to your noema account.";

struct Wallet {
  std::string address;  // EIP-55
  bool is_primary = false;
  bool verified = false;
  Timestamp added_at;
};

struct WalletChallenge {
  std::string address;  // EIP-55
  std::string message;  // the EIP-4361 message to sign, exactly as issued
  std::string nonce;
  Timestamp issued_at;
  Timestamp expires_at;
};

class WalletService {
 public:
  explicit WalletService(const ServiceContext& ctx) : ctx_(ctx) {}

  // Adds the address to the user unverified and writes wallet_linked. The user's first
  // wallet becomes primary. Adding an address the user already has changes nothing and
  // returns it. `*added` (when given) tells which happened (HTTP 201 or 200).
  //   Conflict (field "address"): another user has the address.
  //   ResourceExhausted: the user has config.wallets_max wallets.
  Result<Wallet> AddUnverified(const ObjectId& master_account_id, std::string_view address,
                               const Origin& origin, bool* added = nullptr);

  // Issues a sign-in challenge for the address (which need not be added yet): an
  // EIP-4361 message for config.siwe_domain / siwe_uri / siwe_chain_id with a fresh
  // nonce, valid for config.wallet_challenge_ttl_ms. Writes no event.
  //   Conflict (field "address"): another user has the address.
  Result<WalletChallenge> IssueChallenge(const ObjectId& master_account_id,
                                         std::string_view address);

  // Checks a signed challenge and marks the wallet verified (adding it, verified, when the
  // user does not have it yet; the first wallet becomes primary). Writes wallet_linked
  // when it adds the wallet and wallet_verified when it becomes verified; verifying a
  // verified wallet again writes nothing but consumes the challenge.
  //   InvalidArgument "message": no "Nonce:" line, or not the message issued with it.
  //   InvalidArgument "address": the challenge was issued for another address.
  //   InvalidArgument "signature": malformed, or not made by the address's key.
  //   FailedPrecondition "message": no open challenge has this nonce (never issued,
  //     already used, or dropped), or it has expired.
  //   Conflict "address": another user has the address.
  // `*added` (when given): whether the wallet was added now, rather than already held.
  Result<Wallet> Verify(const ObjectId& master_account_id, std::string_view address,
                        std::string_view message, std::string_view signature, const Origin& origin,
                        bool* added = nullptr);

  // Makes the address the user's only primary wallet. NotFound when the user does not
  // have it. Writes no event (the catalog has none for it).
  Result<Wallet> SetPrimary(const ObjectId& master_account_id, std::string_view address);

  // Removes the address from the user and writes wallet_removed. When it was primary,
  // the earliest-added verified wallet becomes primary, else the earliest-added wallet,
  // else there is none. NotFound when the user does not have it.
  Status Remove(const ObjectId& master_account_id, std::string_view address, const Origin& origin);

  // The user's wallets in the order they were added.
  Result<std::vector<Wallet>> List(const ObjectId& master_account_id) const;

  // The user that has the address. NotFound when none has it.
  Result<ObjectId> FindUserByWallet(std::string_view address) const;

 private:
  const ServiceContext& ctx_;
};

}  // namespace noema
