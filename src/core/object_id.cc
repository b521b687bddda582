#include "noema/object_id.h"

#include <pthread.h>

#include <atomic>
#include <mutex>

namespace noema {
namespace {

// libbson's default context asks the kernel for the process id on every new id, to
// notice a fork: a system call per id, on the event write path. This context remembers
// the id, and a fork handler gives a child process a context of its own (fresh random
// bytes), which is what libbson asks of programs that fork (bson-types.h). The context of
// a parent is never freed in the child: other threads of the parent may have been using
// it.
std::atomic<bson_context_t*> id_context{nullptr};

bson_context_t* IdContext() {
  static std::once_flag once;
  std::call_once(once, [] {
    id_context.store(bson_context_new(BSON_CONTEXT_NONE));
    pthread_atfork(nullptr, nullptr, [] { id_context.store(bson_context_new(BSON_CONTEXT_NONE)); });
  });
  return id_context.load();
}

}  // namespace

ObjectId ObjectId::Generate() {
  bson_oid_t oid;
  bson_oid_init(&oid, IdContext());
  return ObjectId(oid);
}

ObjectId ObjectId::GenerateAt(Timestamp time) {
  bson_oid_t oid;
  bson_oid_init(&oid, IdContext());
  uint32_t secs = static_cast<uint32_t>(time.millis() / 1000);
  oid.bytes[0] = static_cast<uint8_t>(secs >> 24);
  oid.bytes[1] = static_cast<uint8_t>(secs >> 16);
  oid.bytes[2] = static_cast<uint8_t>(secs >> 8);
  oid.bytes[3] = static_cast<uint8_t>(secs);
  return ObjectId(oid);
}

Result<ObjectId> ObjectId::Parse(std::string_view hex, std::string_view field) {
  if (hex.size() != 24 || !bson_oid_is_valid(hex.data(), hex.size())) {
    return Status::InvalidArgument("expected a 24-character hexadecimal id", std::string(field));
  }
  std::string copy(hex);
  bson_oid_t oid;
  bson_oid_init_from_string(&oid, copy.c_str());
  return ObjectId(oid);
}

std::string ObjectId::ToHex() const {
  char buf[25];
  bson_oid_to_string(&oid_, buf);
  return std::string(buf, 24);
}

Timestamp ObjectId::CreationTime() const {
  return Timestamp::FromMillis(static_cast<int64_t>(bson_oid_get_time_t(&oid_)) * 1000);
}

}  // namespace noema
