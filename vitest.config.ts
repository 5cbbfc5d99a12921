import { defineConfig } from "vitest/config";

// Two projects so that unit tests do not wait for servers they never use:
// - unit:        test/unit/**, no global setup;
// - faults:      test/faults/**, the fault-injection suite (alone: npm run test:faults),
//                same global setup as integration, excluded from it;
// - integration: every other test/**/*.test.ts, with test/setup/global-setup.ts,
//                which provides databaseUrl, adminDatabaseUrl and elasticsearchUrl
//                (PostgreSQL and Elasticsearch start once per run, and only when
//                at least one integration file is selected).
// A test that needs inject(...) belongs outside test/unit.
export default defineConfig({
  test: {
    // Line coverage of the shipped code (src/) over the whole suite, reported
    // by `npm test` and so by CI; below the threshold the run fails.
    coverage: {
      provider: "v8",
      include: ["src/**/*.ts"],
      exclude: ["src/devservers/**"],
      reporter: ["text-summary"],
      thresholds: { lines: 85 },
    },
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // Stopping Elasticsearch and dropping databases at the end can take a while.
    teardownTimeout: 60_000,
    // One test file at a time: 2 cores, and the files share one PostgreSQL and one Elasticsearch.
    fileParallelism: false,
    pool: "forks",
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/unit/**/*.test.ts"] },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          exclude: ["test/unit/**", "test/faults/**", "**/node_modules/**"],
          globalSetup: ["test/setup/global-setup.ts"],
        },
      },
      {
        // Fault injection (kill -9, PostgreSQL restart, Elasticsearch outage,
        // slow consumers, malformed requests): about 3 minutes. `npm test`
        // (and so CI) runs it in full with the other projects;
        // `npm run test:faults` runs it alone.
        extends: true,
        test: {
          name: "faults",
          include: ["test/faults/**/*.test.ts"],
          globalSetup: ["test/setup/global-setup.ts"],
          testTimeout: 900_000,
        },
      },
    ],
  },
});
