#include "catalog/pg_connection.h"

#include <gtest/gtest.h>

namespace media_sync::catalog {
namespace {

// What a refused statement is taken for decides whether a job waits (an
// outage), fails (its values), or waits for an operator (anything else): a
// statement PostgreSQL refused is never an outage.
TEST(PgConnectionTest, SqlStatesAreOutagesDataOrNeither) {
  for (const char* outage : {"08006", "08001", "57P01", "57P02", "57P03", "57P05", "57014", "55P03",
                             "40001", "40P01", "40003", "53300", "53100", "58030", "25006"}) {
    EXPECT_TRUE(IsTransientSqlState(outage)) << outage;
    EXPECT_FALSE(IsDataSqlState(outage)) << outage;
  }
  for (const char* data : {"22P02", "22021", "22003", "22001", "23503", "23505", "23514"}) {
    EXPECT_TRUE(IsDataSqlState(data)) << data;
    EXPECT_FALSE(IsTransientSqlState(data)) << data;
  }
  // Our statement or the schema (42), a role refused (28, 42501), a bug (XX):
  // neither, so kConfiguration.
  for (const char* neither : {"42P01", "42703", "42501", "28P01", "XX000", "0A000", "25P02", ""}) {
    EXPECT_FALSE(IsTransientSqlState(neither)) << neither;
    EXPECT_FALSE(IsDataSqlState(neither)) << neither;
  }
}

}  // namespace
}  // namespace media_sync::catalog
