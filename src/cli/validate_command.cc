// `noema validate <collection> <file|->`: check Extended JSON documents as import and the
// stores do (the collection's validator, and CheckStorable's size, empty-key and pre-1970
// checks) without touching any store. Prints each invalid document's line
// and errors; exits 0 when all are valid, 1 otherwise, 2 on usage errors.
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "noema/ejson_reader.h"
#include "noema/schema_catalog.h"
#include "noema/store.h"

namespace noema::cli {
namespace {

struct ValidateFlags {
  std::string collection;
  std::string file;
};

int RunValidate(const ValidateFlags& flags) {
  auto collection = CollectionFromName(flags.collection);
  if (!collection) {
    std::string names;
    for (Collection c : kAllCollections) {
      if (!names.empty()) names += ", ";
      names += CollectionName(c);
    }
    return ReportError(Status::InvalidArgument(
        "unknown collection '" + flags.collection + "' (one of: " + names + ")", "collection"));
  }
  auto reader = ExtendedJsonReader::Open(flags.file);
  if (!reader.ok()) return ReportError(reader.status());
  const JsonSchema& schema = ValidatorFor(*collection);
  size_t total = 0;
  size_t invalid = 0;
  while (auto item = (*reader)->Next()) {
    ++total;
    std::vector<Status> errors;
    if (!item->doc) {
      errors.push_back(item->error);
    } else {
      // What import and every store refuse beyond the schema (size, empty keys, events
      // before 1970), then every schema error.
      if (Status storable = CheckStorable(*collection, item->doc->view()); !storable.ok()) {
        errors.push_back(storable);
      }
      std::vector<Status> schema_errors = schema.ValidateAll(item->doc->view());
      errors.insert(errors.end(), schema_errors.begin(), schema_errors.end());
    }
    if (errors.empty()) continue;
    ++invalid;
    for (const Status& error : errors) {
      std::cout << flags.file << ":" << item->line << ": ";
      if (!error.field().empty()) std::cout << error.field() << ": ";
      std::cout << error.message() << "\n";
    }
  }
  std::cerr << "noema: " << (total - invalid) << " of " << total << " " << flags.collection
            << " documents valid\n";
  return invalid == 0 ? kExitOk : kExitProblem;
}

}  // namespace

Command RegisterValidate(CLI::App& root) {
  auto* app = root.add_subcommand(
      "validate",
      "Check Extended JSON documents (one per line, or a JSON array) against a collection's "
      "schema");
  auto flags = std::make_shared<ValidateFlags>();
  app->add_option("collection", flags->collection, "userCore, userEconomy, ...")->required();
  app->add_option("file", flags->file, "A file, or - for standard input")->required();
  return {app, [flags]() { return RunValidate(*flags); }};
}

}  // namespace noema::cli
