#include "catalog/pg_schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace media_sync::catalog {
namespace {

using ::testing::HasSubstr;

ExistingIndex Index(std::string name, std::string columns, std::string predicate = "",
                    bool unique = false, bool valid = true) {
  return ExistingIndex{std::move(name),      valid, unique, std::move(columns),
                       std::move(predicate), false};
}

IndexState StateOf(const std::vector<IndexCheck>& checks, std::string_view name) {
  for (const IndexCheck& check : checks) {
    if (check.index->name == name) return check.state;
  }
  ADD_FAILURE() << "no check for " << name;
  return IndexState::kMissing;
}

TEST(PgSchemaTest, ThePrimaryKeyAndThePartialIndexServeEveryNeed) {
  auto checks = CheckAgainst({Index("media_files_pkey", "sha256", "", /*unique=*/true),
                              Index("media_files_unsynced", "created_at", "(synced_at IS NULL)")});
  EXPECT_EQ(StateOf(checks, "media_files_sha256"), IndexState::kPresent);
  EXPECT_EQ(StateOf(checks, "media_files_unsynced"), IndexState::kPresent);
  EXPECT_EQ(checks[0].found_as, "media_files_pkey");
  EXPECT_TRUE(SchemaAdvice(checks).empty());
}

TEST(PgSchemaTest, APlatformTableWithItsKeyOnlyLacksThePartialIndex) {
  auto checks = CheckAgainst(
      {Index("media_files_pkey", "sha256", "", true), Index("media_files_created", "created_at")});
  EXPECT_EQ(StateOf(checks, "media_files_unsynced"), IndexState::kMissing);
  auto advice = SchemaAdvice(checks);
  ASSERT_EQ(advice.size(), 1u);
  EXPECT_THAT(advice[0], HasSubstr("media_files_unsynced is missing"));
  EXPECT_THAT(advice[0], HasSubstr("media-sync schema apply"));
}

TEST(PgSchemaTest, IndexesThatDoNotServeTheQueriesDoNotCount) {
  auto checks = CheckAgainst({
      Index("by_sha", "sha256"),                                    // not unique
      Index("sha_partial", "sha256", "(synced_at IS NULL)", true),  // partial
      Index("sha_and_more", "sha256,created_at", "", true),         // other columns
      Index("unsynced_box", "storage_box_id", "(synced_at IS NULL)"),
      Index("synced", "created_at", "(synced_at IS NOT NULL)"),
  });
  EXPECT_EQ(StateOf(checks, "media_files_sha256"), IndexState::kMissing);
  EXPECT_EQ(StateOf(checks, "media_files_unsynced"), IndexState::kMissing);
  EXPECT_EQ(SchemaAdvice(checks).size(), 2u);
}

TEST(PgSchemaTest, AnEquivalentIndexUnderAnotherNameServes) {
  auto checks = CheckAgainst({Index("media_files_sha256_key", "sha256", "", true),
                              Index("pending_rows", "created_at,sha256", "(synced_at IS NULL)")});
  EXPECT_EQ(StateOf(checks, "media_files_unsynced"), IndexState::kPresent);
  EXPECT_EQ(checks[1].found_as, "pending_rows");
}

TEST(PgSchemaTest, OurIndexLeftInvalidIsToBeRebuiltAndOneBeingBuiltIsNot) {
  auto invalid = CheckAgainst(
      {Index("media_files_pkey", "sha256", "", true),
       Index("media_files_unsynced", "created_at", "(synced_at IS NULL)", false, /*valid=*/false)});
  EXPECT_EQ(StateOf(invalid, "media_files_unsynced"), IndexState::kInvalid);
  EXPECT_THAT(SchemaAdvice(invalid).at(0), HasSubstr("invalid"));

  ExistingIndex building =
      Index("media_files_unsynced", "created_at", "(synced_at IS NULL)", false, false);
  building.building = true;
  auto under_way = CheckAgainst({Index("media_files_pkey", "sha256", "", true), building});
  EXPECT_EQ(StateOf(under_way, "media_files_unsynced"), IndexState::kBuilding);
  EXPECT_THAT(SchemaAdvice(under_way).at(0), HasSubstr("being built"));
}

TEST(PgSchemaTest, OurNameOnAnotherValidIndexIsNeverTakenForOurs) {
  auto checks = CheckAgainst({Index("media_files_pkey", "sha256", "", true),
                              Index("media_files_unsynced", "storage_box_id")});
  EXPECT_EQ(StateOf(checks, "media_files_unsynced"), IndexState::kNameTaken);
  EXPECT_THAT(SchemaAdvice(checks).at(0), HasSubstr("rename or drop it"));
}

TEST(PgSchemaTest, EveryIndexIsBuiltConcurrentlyAndOnlyIfMissing) {
  for (const RequiredIndex& index : RequiredIndexes()) {
    EXPECT_THAT(std::string(index.create_sql),
                HasSubstr("INDEX CONCURRENTLY IF NOT EXISTS " + std::string(index.name) +
                          " ON media_files"));
  }
}

}  // namespace
}  // namespace media_sync::catalog
