#include "config/options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

namespace media_sync::config {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

EnvLookup MapEnv(std::map<std::string, std::string> values) {
  return [values = std::move(values)](std::string_view name) -> std::optional<std::string> {
    auto it = values.find(std::string(name));
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

Options MustLoad(std::map<std::string, std::string> values) {
  auto options = LoadOptions(MapEnv(std::move(values)));
  EXPECT_TRUE(options.ok()) << (options.ok() ? "" : options.error().message);
  return options.ok() ? *options : Options{};
}

std::string MustFail(std::map<std::string, std::string> values) {
  auto options = LoadOptions(MapEnv(std::move(values)));
  EXPECT_FALSE(options.ok());
  if (options.ok()) return "";
  EXPECT_EQ(options.error().kind, ErrorKind::kConfiguration);
  return options.error().message;
}

TEST(OptionsTest, DefaultsFollowTheSeed) {
  Options o = MustLoad({});
  EXPECT_EQ(o.redis_url, "redis://localhost:6379/0");
  EXPECT_EQ(o.redis.host, "localhost");
  EXPECT_EQ(o.redis.port, 6379);
  EXPECT_EQ(o.redis.db, 0);
  EXPECT_EQ(o.database_url, "");
  EXPECT_FALSE(o.RequireDatabase().ok());
  EXPECT_THAT(o.RequireDatabase().error().message, HasSubstr("DATABASE_URL"));
  EXPECT_EQ(o.s3.endpoint, "localhost:9000");
  EXPECT_EQ(o.s3.access_key, "minioadmin");
  EXPECT_EQ(o.s3.secret_key, "minioadmin");
  EXPECT_EQ(o.s3.bucket, "osint-media");
  EXPECT_FALSE(o.s3.secure);
  EXPECT_EQ(o.s3.region, "us-east-1");
  EXPECT_EQ(o.s3.ca_file, "");
  EXPECT_EQ(o.buffer_path, "/var/cache/osint-media-buffer");
  EXPECT_EQ(o.concurrency, 128);
  EXPECT_EQ(o.BoxMaxInFlight(), 128);
  EXPECT_EQ(o.max_retries, 3);
  EXPECT_EQ(o.retry_delay, std::chrono::seconds(5));
  EXPECT_EQ(o.shutdown_grace, std::chrono::seconds(30));
  EXPECT_EQ(o.lease, std::chrono::seconds(30));
  EXPECT_EQ(o.box_refresh, std::chrono::seconds(30));
  EXPECT_EQ(o.outage_backoff_max, std::chrono::seconds(30));
  EXPECT_EQ(o.db_pool_size, 4);
  EXPECT_FALSE(o.worker_id.empty());
  EXPECT_EQ(o.metrics_address, "127.0.0.1:9108");
  EXPECT_EQ(o.health_stall, std::chrono::seconds(120));
  EXPECT_EQ(o.log_level, "info");
  EXPECT_EQ(o.log_format, LogFormat::kText);
  EXPECT_EQ(o.s3.connect_timeout, std::chrono::seconds(5));
  EXPECT_EQ(o.s3.low_speed_time, std::chrono::seconds(20));
  EXPECT_FALSE(o.s3.multipart_threshold.has_value());
  EXPECT_EQ(o.s3.MultipartThreshold(false), 128ull << 20);
  EXPECT_EQ(o.s3.MultipartThreshold(true), 5ull << 30);
  EXPECT_EQ(o.s3.part_size, 8ull << 20);
  EXPECT_EQ(o.s3.part_parallelism, 4);
  EXPECT_FALSE(o.s3.content_md5);
  EXPECT_EQ(o.s3.buffer_pool_bytes, 32ull << 20);
}

TEST(OptionsTest, ReadsEveryVariable) {
  Options o = MustLoad({
      {"REDIS_URL", "redis://:pw@redis.internal:6380/2"},
      {"DATABASE_URL", "postgresql+asyncpg://osint_user:password@db:5432/osint_platform"},
      {"MINIO_ENDPOINT", "minio-russia-1:9000"},
      {"MINIO_ACCESS_KEY", "AKIA"},
      {"MINIO_SECRET_KEY", "s3cr3t"},
      {"MINIO_BUCKET", "media-archive"},
      {"MINIO_SECURE", "TRUE"},
      {"MINIO_REGION", "eu-central-1"},
      {"MEDIA_BUFFER_PATH", "/srv/buffer/"},
      {"SYNC_CONCURRENCY", "8"},
      {"BOX_MAX_IN_FLIGHT", "6"},
      {"MAX_RETRIES", "5"},
      {"RETRY_DELAY_SECONDS", "2"},
      {"SHUTDOWN_GRACE_SECONDS", "10"},
      {"LEASE_SECONDS", "15"},
      {"BOX_REFRESH_SECONDS", "60"},
      {"OUTAGE_BACKOFF_MAX_SECONDS", "120"},
      {"DB_POOL_SIZE", "2"},
      {"WORKER_ID", "sync-a"},
      {"METRICS_ADDRESS", "127.0.0.1:9200"},
      {"HEALTH_STALL_SECONDS", "300"},
      {"LOG_LEVEL", "DEBUG"},
      {"LOG_FORMAT", "json"},
      {"S3_CONNECT_TIMEOUT_SECONDS", "3"},
      {"S3_LOW_SPEED_SECONDS", "7"},
      {"S3_MULTIPART_THRESHOLD", "64MiB"},
      {"S3_PART_SIZE", "16M"},
      {"S3_PART_PARALLELISM", "8"},
      {"S3_CONTENT_MD5", "yes"},
      {"S3_BUFFER_POOL", "128MiB"},
      {"SYNC_BANDWIDTH_LIMIT", "10M"},
  });
  EXPECT_EQ(o.redis.host, "redis.internal");
  EXPECT_EQ(o.redis.port, 6380);
  EXPECT_EQ(o.redis.db, 2);
  EXPECT_EQ(o.redis.password, "pw");
  EXPECT_EQ(o.database_conninfo, "postgresql://osint_user:password@db:5432/osint_platform");
  EXPECT_EQ(o.s3.endpoint, "minio-russia-1:9000");
  EXPECT_EQ(o.s3.access_key, "AKIA");
  EXPECT_EQ(o.s3.secret_key, "s3cr3t");
  EXPECT_EQ(o.s3.bucket, "media-archive");
  EXPECT_TRUE(o.s3.secure);
  EXPECT_EQ(o.s3.region, "eu-central-1");
  EXPECT_EQ(o.buffer_path, "/srv/buffer");
  EXPECT_EQ(o.concurrency, 8);
  EXPECT_EQ(o.BoxMaxInFlight(), 6);
  EXPECT_EQ(o.max_retries, 5);
  EXPECT_EQ(o.retry_delay, std::chrono::seconds(2));
  EXPECT_EQ(o.shutdown_grace, std::chrono::seconds(10));
  EXPECT_EQ(o.lease, std::chrono::seconds(15));
  EXPECT_EQ(o.box_refresh, std::chrono::seconds(60));
  EXPECT_EQ(o.outage_backoff_max, std::chrono::seconds(120));
  EXPECT_EQ(o.db_pool_size, 2);
  EXPECT_EQ(o.worker_id, "sync-a");
  EXPECT_EQ(o.metrics_address, "127.0.0.1:9200");
  EXPECT_EQ(o.health_stall, std::chrono::seconds(300));
  EXPECT_EQ(o.log_level, "debug");
  EXPECT_EQ(o.log_format, LogFormat::kJson);
  EXPECT_EQ(o.s3.connect_timeout, std::chrono::seconds(3));
  EXPECT_EQ(o.s3.low_speed_time, std::chrono::seconds(7));
  EXPECT_EQ(o.s3.MultipartThreshold(false), 64ull << 20);
  EXPECT_EQ(o.s3.MultipartThreshold(true), 64ull << 20) << "set, it holds everywhere";
  EXPECT_EQ(o.s3.part_size, 16ull << 20);
  EXPECT_EQ(o.s3.part_parallelism, 8);
  EXPECT_TRUE(o.s3.content_md5);
  EXPECT_EQ(o.s3.buffer_pool_bytes, 128ull << 20);
  EXPECT_EQ(o.s3.bandwidth_limit, 10ull << 20);
}

TEST(OptionsTest, RejectsBadValuesNamingTheVariable) {
  struct Case {
    std::string variable;
    std::string value;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {"MINIO_SECURE", "maybe", "is not a boolean"},
      {"SYNC_CONCURRENCY", "-1", "must be between 1 and 1024"},
      {"SYNC_CONCURRENCY", "0", "must be between 1 and 1024"},
      {"SYNC_CONCURRENCY", "many", "is not a whole number"},
      {"BOX_MAX_IN_FLIGHT", "0", "must be between 1 and 1024"},
      {"BOX_MAX_IN_FLIGHT", "half", "is not a whole number"},
      {"MAX_RETRIES", "-3", "must be between 0 and 100"},
      {"MAX_RETRIES", "3.5", "is not a whole number"},
      {"RETRY_DELAY_SECONDS", "", "is not a whole number"},
      {"RETRY_DELAY_SECONDS", "-5", "must be between"},
      {"SHUTDOWN_GRACE_SECONDS", "30s", "is not a whole number"},
      {"LEASE_SECONDS", "1", "must be between 2 and 3600"},
      {"DB_POOL_SIZE", "0", "must be between 1 and 256"},
      {"LOG_LEVEL", "verbose", "unknown level"},
      {"LOG_FORMAT", "xml", "unknown format"},
      {"MEDIA_BUFFER_PATH", "relative/dir", "must be an absolute path"},
      {"MINIO_ENDPOINT", "http://minio:9000", "without scheme"},
      {"MINIO_ENDPOINT", "", "must not be empty"},
      {"MINIO_BUCKET", "Bad_Bucket", "is not a valid bucket name"},
      {"MINIO_CA_FILE", "/nonexistent/ca.pem", "cannot be read"},
      {"S3_PART_SIZE", "1MiB", "must be between 5242880"},
      {"S3_PART_SIZE", "lots", "is not a size"},
      {"S3_MULTIPART_THRESHOLD", "6TiB", "is not a size"},
      {"S3_PART_PARALLELISM", "0", "must be between 1 and 64"},
      {"S3_CONTENT_MD5", "sometimes", "is not a boolean"},
      {"METRICS_ADDRESS", "9108", "must be host:port"},
      {"METRICS_ADDRESS", "0.0.0.0:http", "must be host:port"},
      {"WORKER_ID", "two words", "must not contain white space"},
      {"HEALTH_STALL_SECONDS", "30", "must be longer than OUTAGE_BACKOFF_MAX_SECONDS (30)"},
      {"HEALTH_STALL_SECONDS", "0", "must be between 1 and 86400"},
      {"SYNC_BANDWIDTH_LIMIT", "-1", "is not a size"},
      {"SYNC_BANDWIDTH_LIMIT", "-10M", "is not a size"},
      {"SYNC_BANDWIDTH_LIMIT", "fast", "is not a size"},
      {"SYNC_BANDWIDTH_LIMIT", "10 MiB/s", "is not a size"},
      {"SYNC_BANDWIDTH_LIMIT", "2048GiB", "must be between 0 and 1099511627776"},
  };
  for (const auto& c : cases) {
    std::string message = MustFail({{c.variable, c.value}});
    EXPECT_THAT(message, HasSubstr(c.variable)) << c.variable << "=" << c.value;
    EXPECT_THAT(message, HasSubstr(c.problem)) << c.variable << "=" << c.value;
  }
}

// Unset, a box's adaptive limit may grow to every job thread of the process.
TEST(OptionsTest, BoxMaxInFlightDefaultsToTheConcurrency) {
  EXPECT_EQ(MustLoad({{"SYNC_CONCURRENCY", "9"}}).BoxMaxInFlight(), 9);
  EXPECT_EQ(MustLoad({{"SYNC_CONCURRENCY", "1"}}).BoxMaxInFlight(), 1);
  Options flag = MustLoad({{"SYNC_CONCURRENCY", "4"}});
  flag.concurrency = 64;  // `run --concurrency 64`
  EXPECT_EQ(flag.BoxMaxInFlight(), 64);
  Options o = MustLoad({{"SYNC_CONCURRENCY", "8"}, {"BOX_MAX_IN_FLIGHT", "3"}});
  EXPECT_EQ(o.BoxMaxInFlight(), 3);
  std::string all;
  for (const auto& [name, value] : Describe(o)) all += name + "=" + value + "\n";
  EXPECT_THAT(all, HasSubstr("BOX_MAX_IN_FLIGHT=3\n"));
}

TEST(OptionsTest, BufferPoolMustHoldOneUploadBuffer) {
  std::string message = MustFail({{"S3_PART_SIZE", "64MiB"}, {"S3_BUFFER_POOL", "32MiB"}});
  EXPECT_THAT(message, HasSubstr("S3_BUFFER_POOL"));
  EXPECT_THAT(message, HasSubstr("64MiB"));
}

TEST(OptionsTest, SecretsNeverAppearInErrorsOrDescription) {
  std::string message = MustFail({{"REDIS_URL", "redis://user:hunter2@host:notaport/0"}});
  EXPECT_THAT(message, HasSubstr("REDIS_URL"));
  EXPECT_THAT(message, Not(HasSubstr("hunter2")));
  message = MustFail({{"DATABASE_URL", "mysql://root:hunter2@db/x"}});
  EXPECT_THAT(message, HasSubstr("DATABASE_URL"));
  EXPECT_THAT(message, Not(HasSubstr("hunter2")));

  Options o = MustLoad({{"REDIS_URL", "redis://default:redispw@r:6379/0"},
                        {"DATABASE_URL", "postgresql://u:dbpw@db/x"},
                        {"MINIO_SECRET_KEY", "miniopw"}});
  std::string all;
  for (const auto& [name, value] : Describe(o))
    all.append(name).append("=").append(value).append("\n");
  EXPECT_THAT(all, Not(HasSubstr("redispw")));
  EXPECT_THAT(all, Not(HasSubstr("dbpw")));
  EXPECT_THAT(all, Not(HasSubstr("miniopw")));
  EXPECT_THAT(all, HasSubstr("REDIS_URL=redis://default:***@r:6379/0"));
  EXPECT_THAT(all, HasSubstr("DATABASE_URL=postgresql://u:***@db/x"));
  EXPECT_THAT(all, HasSubstr("MINIO_SECRET_KEY=********"));
}

TEST(UrlsTest, RedisUrlForms) {
  auto plain = ParseRedisUrl("redis://localhost:6379/0");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->host, "localhost");
  EXPECT_EQ(plain->port, 6379);
  EXPECT_EQ(plain->db, 0);
  EXPECT_EQ(plain->password, "");

  auto acl = ParseRedisUrl("redis://worker:p%40ss@10.0.0.5:7000/3");
  ASSERT_TRUE(acl.ok());
  EXPECT_EQ(acl->username, "worker");
  EXPECT_EQ(acl->password, "p@ss");
  EXPECT_EQ(acl->host, "10.0.0.5");
  EXPECT_EQ(acl->port, 7000);
  EXPECT_EQ(acl->db, 3);

  auto no_port = ParseRedisUrl("redis://cache");
  ASSERT_TRUE(no_port.ok());
  EXPECT_EQ(no_port->port, 6379);
  EXPECT_EQ(no_port->db, 0);

  auto ipv6 = ParseRedisUrl("redis://[::1]:6390/1");
  ASSERT_TRUE(ipv6.ok());
  EXPECT_EQ(ipv6->host, "::1");
  EXPECT_EQ(ipv6->port, 6390);

  auto socket = ParseRedisUrl("unix:///run/redis/redis.sock?db=4");
  ASSERT_TRUE(socket.ok());
  EXPECT_EQ(socket->unix_socket, "/run/redis/redis.sock");
  EXPECT_EQ(socket->db, 4);

  auto socket_auth = ParseRedisUrl("redis+unix://:pw@/tmp/r.sock");
  ASSERT_TRUE(socket_auth.ok());
  EXPECT_EQ(socket_auth->unix_socket, "/tmp/r.sock");
  EXPECT_EQ(socket_auth->password, "pw");

  for (const char* bad :
       {"localhost:6379", "http://localhost", "redis://", "redis://host:0/0", "redis://host:99999",
        "redis://host:6379/x", "unix://relative.sock", "rediss://host:6380/0"}) {
    auto parsed = ParseRedisUrl(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    if (!parsed.ok()) {
      EXPECT_THAT(parsed.error().message, HasSubstr("REDIS_URL")) << bad;
    }
  }
}

TEST(UrlsTest, DatabaseUrlForms) {
  const std::map<std::string, std::string> accepted = {
      {"postgresql://u:p@h:5432/db", "postgresql://u:p@h:5432/db"},
      {"postgres://u@h/db", "postgresql://u@h/db"},
      {"postgresql+asyncpg://u:p@h:5432/db", "postgresql://u:p@h:5432/db"},
      {"postgresql+psycopg2://u:p@h/db", "postgresql://u:p@h/db"},
      {"postgresql+asyncpg://u:p@h/db?ssl=require", "postgresql://u:p@h/db?sslmode=require"},
      {"postgresql://u@h/db?sslmode=disable&application_name=x",
       "postgresql://u@h/db?sslmode=disable&application_name=x"},
  };
  for (const auto& [url, conninfo] : accepted) {
    auto parsed = ParseDatabaseUrl(url);
    ASSERT_TRUE(parsed.ok()) << url;
    EXPECT_EQ(*parsed, conninfo);
  }
  for (const char* bad : {"mysql://u:p@h/db", "h:5432/db", "postgresql://u:p@h:port/db", ""}) {
    auto parsed = ParseDatabaseUrl(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    if (!parsed.ok()) {
      EXPECT_THAT(parsed.error().message, HasSubstr("DATABASE_URL")) << bad;
    }
  }
}

TEST(UrlsTest, RedactsPasswordsOnly) {
  EXPECT_EQ(RedactUrl("redis://:pw@h:1/0"), "redis://:***@h:1/0");
  EXPECT_EQ(RedactUrl("redis://pw@h:1/0"), "redis://***@h:1/0");
  EXPECT_EQ(RedactUrl("postgresql://user@h/db"), "postgresql://user@h/db");
  EXPECT_EQ(RedactUrl("postgresql://user:p@ss:w0rd@h/db"), "postgresql://user:***@h/db");
  EXPECT_EQ(RedactUrl("redis://localhost:6379/0"), "redis://localhost:6379/0");
}

// Found by fuzz/config_fuzz.cpp: the text before a "://" inside a query
// value was taken for a scheme; masking the value removed the "://", so the
// redacted URL redacted again read another way.
TEST(UrlsTest, ASchemeIsOnlyAtTheStart) {
  for (const char* url : {"@a/b@c?password=x://y@z", "u@a/b@c?sentinel_password=x://y@z",
                          "h/0?password=hunter2://x@y", "1redis://:hunter2@h/0"}) {
    const std::string once = RedactUrl(url);
    EXPECT_EQ(RedactUrl(once), once) << url;
    EXPECT_THAT(once, Not(HasSubstr("hunter2"))) << url;
    auto redis = ParseRedisUrl(url);
    ASSERT_FALSE(redis.ok()) << url;
    EXPECT_THAT(redis.error().message, HasSubstr("is not a URL")) << url;
  }
  EXPECT_EQ(RedactUrl("redis+sentinel://:pw@s1/m/0"), "redis+sentinel://:***@s1/m/0");
}

// Found by fuzz/config_fuzz.cpp: a password with an unencoded '/' ends the
// authority early, so the user info went unseen (or was cut at an '@' inside
// the password); its text was then quoted as a port or database ("port
// 'hunter2' is not a number") and kept by RedactUrl. A URL with an '@' past
// its user info is now refused without quoting any of it.
TEST(UrlsTest, PasswordWithAnUnencodedSlashNeverShows) {
  for (const char* url :
       {"redis://user:hunter2/x@host:6379/0", "redis://hunter2/x@host",
        "postgresql://user:hunter2/x@db:5432/media", "postgresql+asyncpg://u:1234/hunter2@db/x",
        "redis:/user:hunter2@host", "://:/hunter2@", "postgresql://u:p@ss/hunter2@db:5432/x",
        "redis://:@78.hunter2]:7401/2@db:5432/0", "redis://:hunter2/?@",
        "unix://:hunter2/x?db=hunter2@/run/redis.sock"}) {
    EXPECT_THAT(RedactUrl(url), Not(HasSubstr("hunter2"))) << url;
    EXPECT_EQ(RedactUrl(RedactUrl(url)), RedactUrl(url)) << url;
    auto redis = ParseRedisUrl(url);
    ASSERT_FALSE(redis.ok()) << url;
    EXPECT_THAT(redis.error().message, Not(HasSubstr("hunter2"))) << url;
    auto database = ParseDatabaseUrl(url);
    ASSERT_FALSE(database.ok()) << url;
    EXPECT_THAT(database.error().message, Not(HasSubstr("hunter2"))) << url;
    for (const char* variable : {"REDIS_URL", "DATABASE_URL"}) {
      std::string message = MustFail({{variable, url}});
      EXPECT_THAT(message, HasSubstr(variable)) << url;
      EXPECT_THAT(message, Not(HasSubstr("hunter2"))) << url;
    }
  }
  EXPECT_THAT(ParseRedisUrl("redis://user:hunter2/x@host:6379/0").error().message,
              HasSubstr("percent-encode '/' and '@' in the password (%2F, %40)"));
  // Encoded, the same passwords are read as they are meant.
  auto redis = ParseRedisUrl("redis://user:hunter2%2Fx@host:6379/0");
  ASSERT_TRUE(redis.ok()) << redis.error().message;
  EXPECT_EQ(redis->password, "hunter2/x");
  EXPECT_EQ(RedactUrl("redis://user:hunter2%2Fx@host:6379/0"), "redis://user:***@host:6379/0");
  auto database = ParseDatabaseUrl("postgresql://user:hunter2%2Fx@db:5432/media");
  ASSERT_TRUE(database.ok()) << database.error().message;
  EXPECT_EQ(*database, "postgresql://user:hunter2%2Fx@db:5432/media");
  // An '@' in a query is one too (encoded, it is read as it is meant).
  EXPECT_FALSE(ParseDatabaseUrl("postgresql://u:p@h/db?application_name=a@b").ok());
  EXPECT_EQ(RedactUrl("postgresql://u:p@h/db?application_name=a@b"), "postgresql://***@b");
  EXPECT_TRUE(ParseDatabaseUrl("postgresql://u:p@h/db?application_name=a%40b").ok());
}

TEST(OptionsTest, ByteSizes) {
  EXPECT_EQ(ParseByteSize("1048576"), 1048576u);
  EXPECT_EQ(ParseByteSize("512KiB"), 512u << 10);
  EXPECT_EQ(ParseByteSize("8MiB"), 8u << 20);
  EXPECT_EQ(ParseByteSize("8mb"), 8u << 20);
  EXPECT_EQ(ParseByteSize("2GiB"), 2ull << 30);
  EXPECT_EQ(ParseByteSize(""), std::nullopt);
  EXPECT_EQ(ParseByteSize("MiB"), std::nullopt);
  EXPECT_EQ(ParseByteSize("-1"), std::nullopt);
  EXPECT_EQ(ParseByteSize("1.5MiB"), std::nullopt);
}

TEST(OptionsTest, BandwidthLimitIsOffByDefaultAndTakesSizes) {
  EXPECT_EQ(MustLoad({}).s3.bandwidth_limit, 0u);
  EXPECT_EQ(MustLoad({{"SYNC_BANDWIDTH_LIMIT", ""}}).s3.bandwidth_limit, 0u);
  EXPECT_EQ(MustLoad({{"SYNC_BANDWIDTH_LIMIT", "0"}}).s3.bandwidth_limit, 0u);
  EXPECT_EQ(MustLoad({{"SYNC_BANDWIDTH_LIMIT", "1500000"}}).s3.bandwidth_limit, 1500000u);
  EXPECT_EQ(MustLoad({{"SYNC_BANDWIDTH_LIMIT", "512KiB"}}).s3.bandwidth_limit, 512u << 10);
  EXPECT_EQ(MustLoad({{"SYNC_BANDWIDTH_LIMIT", "1G"}}).s3.bandwidth_limit, 1ull << 30);
  auto described = [](const Options& o) {
    std::string all;
    for (const auto& [name, value] : Describe(o))
      all.append(name).append("=").append(value) += '\n';
    return all;
  };
  EXPECT_THAT(described(MustLoad({})), HasSubstr("SYNC_BANDWIDTH_LIMIT=0 (off)\n"));
  EXPECT_THAT(described(MustLoad({{"SYNC_BANDWIDTH_LIMIT", "100M"}})),
              HasSubstr("SYNC_BANDWIDTH_LIMIT=100MiB/s\n"));
}

TEST(OptionsTest, ReconcileIntervalIsOffByDefaultAndValidated) {
  EXPECT_EQ(MustLoad({}).reconcile_interval, std::chrono::seconds(0));
  EXPECT_EQ(MustLoad({{"RECONCILE_INTERVAL_SECONDS", "0"}}).reconcile_interval,
            std::chrono::seconds(0));
  EXPECT_EQ(MustLoad({{"RECONCILE_INTERVAL_SECONDS", "900"}}).reconcile_interval,
            std::chrono::seconds(900));
  for (const char* bad : {"-1", "15m", "", "604801"}) {
    std::string message = MustFail({{"RECONCILE_INTERVAL_SECONDS", bad}});
    EXPECT_THAT(message, HasSubstr("RECONCILE_INTERVAL_SECONDS")) << bad;
  }
  EXPECT_THAT(MustFail({{"RECONCILE_INTERVAL_SECONDS", "-1"}}),
              HasSubstr("must be between 0 and 604800"));

  std::string all;
  for (const auto& [name, value] : Describe(MustLoad({}))) {
    all.append(name).append("=").append(value).append("\n");
  }
  EXPECT_THAT(all, HasSubstr("RECONCILE_INTERVAL_SECONDS=0 (off)"));
}

TEST(OptionsTest, BackgroundAuditIsOffByDefaultAndValidated) {
  Options defaults = MustLoad({});
  EXPECT_EQ(defaults.audit_interval, std::chrono::seconds(0));
  EXPECT_EQ(defaults.audit_rate, 100);
  EXPECT_FALSE(defaults.audit_deep);
  Options set =
      MustLoad({{"AUDIT_INTERVAL_SECONDS", "3600"}, {"AUDIT_RATE", "25"}, {"AUDIT_DEEP", "true"}});
  EXPECT_EQ(set.audit_interval, std::chrono::seconds(3600));
  EXPECT_EQ(set.audit_rate, 25);
  EXPECT_TRUE(set.audit_deep);
  EXPECT_THAT(MustFail({{"AUDIT_RATE", "0"}}), HasSubstr("AUDIT_RATE"));
  EXPECT_THAT(MustFail({{"AUDIT_INTERVAL_SECONDS", "1h"}}), HasSubstr("AUDIT_INTERVAL_SECONDS"));
  EXPECT_THAT(MustFail({{"AUDIT_DEEP", "maybe"}}), HasSubstr("AUDIT_DEEP"));
}

TEST(UrlsTest, SentinelUrlForms) {
  auto full = ParseRedisUrl("redis+sentinel://worker:p%40ss@s1:26380,10.0.0.2,[::1]:26381/media/3");
  ASSERT_TRUE(full.ok()) << full.error().message;
  ASSERT_TRUE(full->UsesSentinel());
  ASSERT_EQ(full->sentinels.size(), 3u);
  EXPECT_EQ(full->sentinels[0].host, "s1");
  EXPECT_EQ(full->sentinels[0].port, 26380);
  EXPECT_EQ(full->sentinels[1].host, "10.0.0.2");
  EXPECT_EQ(full->sentinels[1].port, kDefaultSentinelPort);
  EXPECT_EQ(full->sentinels[2].host, "::1");
  EXPECT_EQ(full->sentinels[2].port, 26381);
  EXPECT_EQ(full->master_name, "media");
  EXPECT_EQ(full->db, 3);
  EXPECT_EQ(full->username, "worker");
  EXPECT_EQ(full->password, "p@ss");
  EXPECT_EQ(full->host, "");
  EXPECT_EQ(full->port, 0);

  auto minimal = ParseRedisUrl("redis+sentinel://sentinel/mymaster");
  ASSERT_TRUE(minimal.ok()) << minimal.error().message;
  EXPECT_EQ(minimal->sentinels.size(), 1u);
  EXPECT_EQ(minimal->master_name, "mymaster");
  EXPECT_EQ(minimal->db, 0);
  EXPECT_EQ(minimal->password, "");

  auto sentinel_auth = ParseRedisUrl(
      "redis+sentinel://s1:1,s2:2/m?db=2&sentinel_password=s%26cret&sentinel_username=u");
  ASSERT_TRUE(sentinel_auth.ok()) << sentinel_auth.error().message;
  EXPECT_EQ(sentinel_auth->db, 2);
  EXPECT_EQ(sentinel_auth->sentinel_password, "s&cret");
  EXPECT_EQ(sentinel_auth->sentinel_username, "u");
  EXPECT_FALSE(ParseRedisUrl("redis://h:1/0")->UsesSentinel());
}

TEST(UrlsTest, BadSentinelUrlsNameTheProblem) {
  const std::map<std::string, std::string> bad = {
      {"redis+sentinel://", "names no Sentinel"},
      {"redis+sentinel:///media/0", "names no Sentinel"},
      {"redis+sentinel://s1:26379", "names no master"},
      {"redis+sentinel://s1:26379/", "names no master"},
      {"redis+sentinel://s1:26379//0", "names no master"},
      {"redis+sentinel://s1:26379,,s2/media", "Sentinel 2 of the list is empty"},
      {"redis+sentinel://s1:26379,/media", "Sentinel 2 of the list is empty"},
      {"redis+sentinel://s1:263x9/media", "Sentinel 1: port '263x9' is not a number in 1..65535"},
      {"redis+sentinel://s1,s2:0/media", "Sentinel 2: port '0' is not a number in 1..65535"},
      {"redis+sentinel://s1,:26379/media", "Sentinel 2 has no host"},
      {"redis+sentinel://[::1/media", "Sentinel 1: unterminated IPv6 address"},
      {"redis+sentinel://s1/media/x", "database 'x' is not a non-negative number"},
      {"redis+sentinel://s1/media/0/extra", "has more path than /MASTER_NAME/db"},
      {"redis+sentinel://s1/my%20master", "master name 'my master' must not contain white space"},
      {"sentinel://s1/media", "unsupported scheme 'sentinel'"},
  };
  for (const auto& [url, problem] : bad) {
    auto parsed = ParseRedisUrl(url);
    ASSERT_FALSE(parsed.ok()) << url;
    EXPECT_EQ(parsed.error().kind, ErrorKind::kConfiguration) << url;
    EXPECT_THAT(parsed.error().message, HasSubstr("REDIS_URL")) << url;
    EXPECT_THAT(parsed.error().message, HasSubstr(problem)) << url;
  }
  // Passwords, of the master or of the Sentinels, never show.
  for (const char* url :
       {"redis+sentinel://u:hunter2@s1,,s2/media", "redis+sentinel://u:hunter2@s1:26379",
        "redis+sentinel://s1:26379?sentinel_password=hunter2",
        "redis+sentinel://:hunter2@s1/media/0/extra"}) {
    auto parsed = ParseRedisUrl(url);
    ASSERT_FALSE(parsed.ok()) << url;
    EXPECT_THAT(parsed.error().message, Not(HasSubstr("hunter2"))) << url;
    EXPECT_THAT(MustFail({{"REDIS_URL", url}}), Not(HasSubstr("hunter2"))) << url;
  }
}

TEST(UrlsTest, RedactsSentinelAndQueryPasswords) {
  EXPECT_EQ(RedactUrl("redis+sentinel://u:pw@s1:26379,s2:26379/media/0"),
            "redis+sentinel://u:***@s1:26379,s2:26379/media/0");
  EXPECT_EQ(RedactUrl("redis+sentinel://s1,s2/media?sentinel_password=pw&db=1"),
            "redis+sentinel://s1,s2/media?sentinel_password=***&db=1");
  EXPECT_EQ(RedactUrl("postgresql://u@h1:5432,h2:5433/db?password=pw&target_session_attrs=any"),
            "postgresql://u@h1:5432,h2:5433/db?password=***&target_session_attrs=any");
  EXPECT_EQ(RedactUrl("postgresql://u:pw@h/db?password=pw"),
            "postgresql://u:***@h/db?password=***");
  Options o =
      MustLoad({{"REDIS_URL", "redis+sentinel://:masterpw@s1/media?sentinel_password=sentpw"}});
  std::string all;
  for (const auto& [name, value] : Describe(o))
    all.append(name).append("=").append(value).append("\n");
  EXPECT_THAT(all, Not(HasSubstr("masterpw")));
  EXPECT_THAT(all, Not(HasSubstr("sentpw")));
}

TEST(UrlsTest, DatabaseUrlWithSeveralHosts) {
  const std::map<std::string, std::string> accepted = {
      // libpq's own form passes through.
      {"postgresql://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write",
       "postgresql://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write"},
      {"postgresql+asyncpg://u:p@h1,h2:5433/db?target_session_attrs=primary",
       "postgresql://u:p@h1,h2:5433/db?target_session_attrs=primary"},
      {"postgresql://u@[::1]:5432,[::1]:5433/db", "postgresql://u@[::1]:5432,[::1]:5433/db"},
      // SQLAlchemy's form: repeated host= parameters.
      {"postgresql+psycopg2://u:p@/db?host=h1:5432&host=h2:5433&target_session_attrs=read-write",
       "postgresql://u:p@/db?target_session_attrs=read-write&host=h1,h2&port=5432,5433"},
      {"postgresql+asyncpg://u:p@/db?host=h1&host=h2:6000",
       "postgresql://u:p@/db?host=h1,h2&port=,6000"},
      {"postgresql+psycopg2://u:p@/db?host=h1&host=h2", "postgresql://u:p@/db?host=h1,h2"},
      {"postgresql+psycopg2://u:p@/db?host=/run/postgresql",
       "postgresql://u:p@/db?host=/run/postgresql"},
  };
  for (const auto& [url, conninfo] : accepted) {
    auto parsed = ParseDatabaseUrl(url);
    ASSERT_TRUE(parsed.ok()) << url << ": " << parsed.error().message;
    EXPECT_EQ(*parsed, conninfo) << url;
  }
  const std::map<std::string, std::string> bad = {
      {"postgresql://u:p@h1:5432,h2:x/db", "port 'x' is not a number in 1..65535"},
      {"postgresql://u:p@h1:0,h2/db", "port '0' is not a number in 1..65535"},
      {"postgresql+psycopg2://u:p@/db?host=h1:5432&host=h2:99999",
       "port '99999' is not a number in 1..65535"},
  };
  for (const auto& [url, problem] : bad) {
    auto parsed = ParseDatabaseUrl(url);
    ASSERT_FALSE(parsed.ok()) << url;
    EXPECT_THAT(parsed.error().message, HasSubstr("DATABASE_URL")) << url;
    EXPECT_THAT(parsed.error().message, HasSubstr(problem)) << url;
  }
}

TEST(OptionsTest, ReconcileIsOnByDefaultWithSentinels) {
  Options sentinel = MustLoad({{"REDIS_URL", "redis+sentinel://s1,s2,s3/media/0"}});
  EXPECT_EQ(sentinel.reconcile_interval, kSentinelReconcileInterval);
  EXPECT_EQ(sentinel.reconcile_older_than, std::chrono::seconds(3600));
  EXPECT_EQ(
      MustLoad({{"REDIS_URL", "redis+sentinel://s1/media"}, {"RECONCILE_INTERVAL_SECONDS", "0"}})
          .reconcile_interval,
      std::chrono::seconds(0));
  EXPECT_EQ(MustLoad({{"RECONCILE_OLDER_THAN_SECONDS", "30"}}).reconcile_older_than,
            std::chrono::seconds(30));
  EXPECT_THAT(MustFail({{"RECONCILE_OLDER_THAN_SECONDS", "soon"}}),
              HasSubstr("RECONCILE_OLDER_THAN_SECONDS"));
}

}  // namespace
}  // namespace media_sync::config
