#include "noema/schema_catalog.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

namespace noema {

// Defined in the source CMake generates from schemas/ (cmake/embed_files.cmake).
const std::vector<std::pair<std::string_view, std::string_view>>& EmbeddedSchemaFiles();

namespace {

constexpr std::string_view kIndexesFile = "indexes.json";
constexpr std::string_view kSchemaSuffix = ".schema.json";

// The files are compiled in: a malformed one is a bug in the build, not an input error.
[[noreturn]] void Fatal(std::string_view file, std::string_view what) {
  std::fprintf(stderr, "noema: embedded schemas/%.*s is malformed: %.*s\n",
               static_cast<int>(file.size()), file.data(), static_cast<int>(what.size()),
               what.data());
  std::abort();
}

std::string_view EmbeddedFile(std::string_view name) {
  for (const auto& [file_name, contents] : EmbeddedSchemaFiles()) {
    if (file_name == name) return contents;
  }
  Fatal(name, "the file is missing from the binary");
}

Document ParseJsonOrDie(std::string_view file, std::string_view json) {
  Result<Document> doc = Document::FromJson(json);
  if (!doc.ok()) Fatal(file, doc.status().ToString());
  return std::move(doc).value();
}

IndexSpec ParseIndex(std::string_view file, std::string_view where, const bson_iter_t* entry) {
  auto fail = [&](const std::string& what) { Fatal(file, std::string(where) + ": " + what); };
  if (!BSON_ITER_HOLDS_DOCUMENT(entry)) fail("an index must be an object");
  uint32_t len = 0;
  const uint8_t* data = nullptr;
  bson_iter_document(entry, &len, &data);
  DocumentView index(data, len);

  IndexSpec spec;
  bool has_key = false;
  bson_iter_t it;
  bson_iter_init(&it, index.get());
  while (bson_iter_next(&it)) {
    std::string_view option = bson_iter_key(&it);
    if (option == "name") {
      if (!BSON_ITER_HOLDS_UTF8(&it)) fail("\"name\" must be a string");
      spec.name = bson_iter_utf8(&it, nullptr);
    } else if (option == "key") {
      if (!BSON_ITER_HOLDS_DOCUMENT(&it)) fail("\"key\" must be an object");
      has_key = true;
      bson_iter_t field;
      bson_iter_recurse(&it, &field);
      while (bson_iter_next(&field)) {
        if (!BSON_ITER_HOLDS_INT32(&field) ||
            (bson_iter_int32(&field) != 1 && bson_iter_int32(&field) != -1)) {
          fail(std::string("the direction of \"") + bson_iter_key(&field) + "\" must be 1 or -1");
        }
        spec.fields.emplace_back(bson_iter_key(&field));
        spec.directions.push_back(bson_iter_int32(&field));
      }
    } else if (option == "unique") {
      if (!BSON_ITER_HOLDS_BOOL(&it)) fail("\"unique\" must be a boolean");
      spec.unique = bson_iter_bool(&it);
    } else if (option == "multikey") {
      if (!BSON_ITER_HOLDS_BOOL(&it)) fail("\"multikey\" must be a boolean");
      spec.multikey = bson_iter_bool(&it);
    } else if (option == "partialFilterExpression") {
      // Only {field: {$exists: true}} is supported (both engines can enforce it).
      const char* expected = "\"partialFilterExpression\" must be {<field>: {\"$exists\": true}}";
      if (!BSON_ITER_HOLDS_DOCUMENT(&it)) fail(expected);
      bson_iter_t filter;
      bson_iter_recurse(&it, &filter);
      if (!bson_iter_next(&filter) || !BSON_ITER_HOLDS_DOCUMENT(&filter)) fail(expected);
      spec.partial_exists_field = bson_iter_key(&filter);
      bson_iter_t condition;
      bson_iter_recurse(&filter, &condition);
      if (!bson_iter_next(&condition) || std::string_view(bson_iter_key(&condition)) != "$exists" ||
          !BSON_ITER_HOLDS_BOOL(&condition) || !bson_iter_bool(&condition) ||
          bson_iter_next(&condition) || bson_iter_next(&filter)) {
        fail(expected);
      }
    } else {
      fail("unsupported index option \"" + std::string(option) + "\"");
    }
  }
  if (spec.name.empty()) fail("an index needs a \"name\"");
  if (!has_key || spec.fields.empty())
    fail("index \"" + spec.name + "\" needs a non-empty \"key\"");
  return spec;
}

struct Catalog {
  std::vector<std::string_view> validator_json;  // by Collection
  std::vector<JsonSchema> validators;            // by Collection
  std::vector<std::vector<IndexSpec>> indexes;   // by Collection
  std::string_view indexes_json;
};

std::unique_ptr<Catalog> BuildCatalog() {
  auto catalog = std::make_unique<Catalog>();
  for (Collection collection : kAllCollections) {
    std::string file = std::string(CollectionName(collection)) + std::string(kSchemaSuffix);
    std::string_view json = EmbeddedFile(file);
    Document doc = ParseJsonOrDie(file, json);
    Result<JsonSchema> schema = JsonSchema::Parse(doc.view());
    if (!schema.ok()) Fatal(file, schema.status().ToString());
    catalog->validator_json.push_back(json);
    catalog->validators.push_back(std::move(schema).value());
  }

  catalog->indexes_json = EmbeddedFile(kIndexesFile);
  catalog->indexes.resize(kCollectionCount);
  std::vector<bool> listed(kCollectionCount, false);
  Document indexes = ParseJsonOrDie(kIndexesFile, catalog->indexes_json);
  bson_iter_t it;
  bson_iter_init(&it, indexes.get());
  while (bson_iter_next(&it)) {
    std::string_view name = bson_iter_key(&it);
    std::optional<Collection> collection = CollectionFromName(name);
    if (!collection) Fatal(kIndexesFile, "unknown collection \"" + std::string(name) + "\"");
    auto slot = static_cast<size_t>(*collection);
    if (listed[slot]) Fatal(kIndexesFile, "\"" + std::string(name) + "\" is listed twice");
    listed[slot] = true;
    if (!BSON_ITER_HOLDS_ARRAY(&it)) {
      Fatal(kIndexesFile, "\"" + std::string(name) + "\" must be an array of indexes");
    }
    bson_iter_t entry;
    bson_iter_recurse(&it, &entry);
    while (bson_iter_next(&entry)) {
      std::string where = std::string(name) + "." + bson_iter_key(&entry);
      IndexSpec spec = ParseIndex(kIndexesFile, where, &entry);
      if (spec.name == "_id_") Fatal(kIndexesFile, where + ": the _id index is implicit");
      for (const IndexSpec& other : catalog->indexes[slot]) {
        if (other.name == spec.name) Fatal(kIndexesFile, where + ": duplicate index name");
      }
      catalog->indexes[slot].push_back(std::move(spec));
    }
  }
  for (Collection collection : kAllCollections) {
    if (!listed[static_cast<size_t>(collection)]) {
      Fatal(kIndexesFile, "\"" + std::string(CollectionName(collection)) + "\" is not listed");
    }
  }
  return catalog;
}

const Catalog& GetCatalog() {
  // Built once (thread-safe static initialisation) and never destroyed, so that it stays
  // valid for threads still running during process exit.
  static const Catalog* const catalog = BuildCatalog().release();
  return *catalog;
}

}  // namespace

const JsonSchema& ValidatorFor(Collection collection) {
  return GetCatalog().validators.at(static_cast<size_t>(collection));
}

std::string_view ValidatorJson(Collection collection) {
  return GetCatalog().validator_json.at(static_cast<size_t>(collection));
}

const std::vector<IndexSpec>& IndexesFor(Collection collection) {
  return GetCatalog().indexes.at(static_cast<size_t>(collection));
}

std::string_view IndexesJson() { return GetCatalog().indexes_json; }

}  // namespace noema
