// The layering of docs/ARCHITECTURE.md as rules: `npm run lint` (and CI)
// fails when an import crosses a layer the wrong way.
//
//   contracts (gen) -> server (transport) -> services (handlers) -> domain
//                                         \-> auth, search (seam) -> search/{postgres,elasticsearch} -> store
//                                         \-> lifecycle -> archive, store, search (seam)
// platform (logger, commit channel, error classification) is imported by
// anyone and imports no other layer; src/app.ts and src/serve.ts wire them all (src/main.ts only starts serve.ts).
const layer = (name) => `^src/${name}/`;

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: "no-circular", severity: "error", from: {}, to: { circular: true } },
    {
      name: "domain-is-pure",
      comment: "src/domain holds pure logic: no other layer, no I/O libraries.",
      severity: "error",
      from: { path: layer("domain") },
      to: {
        pathNot: [layer("domain"), "^gen/", "(^|node_modules/)@bufbuild/(protobuf|protovalidate)", "^node:crypto$", "^crypto$"],
        dependencyTypesNot: ["type-only"],
      },
    },
    {
      name: "platform-stands-alone",
      comment: "src/platform is imported by every layer and imports none of them.",
      severity: "error",
      from: { path: layer("platform") },
      to: { path: "^src/", pathNot: layer("platform") },
    },
    {
      name: "store-knows-no-search",
      comment: "PostgreSQL storage is below search, handlers and transports.",
      severity: "error",
      from: { path: layer("store") },
      to: { path: "^src/(search|services|server|auth|lifecycle|archive)/" },
    },
    {
      name: "search-seam-is-neutral",
      comment: "The seam (src/search/*.ts) is the interface and the backend-neutral model only.",
      severity: "error",
      from: { path: "^src/search/[^/]+$" },
      to: { path: "^src/(store|services|server|auth|search/(postgres|elasticsearch))/" },
    },
    {
      name: "backends-stay-apart",
      severity: "error",
      from: { path: "^src/search/postgres/" },
      to: { path: "^src/search/elasticsearch/" },
    },
    {
      name: "backends-stay-apart-2",
      severity: "error",
      from: { path: "^src/search/elasticsearch/" },
      to: { path: "^src/search/postgres/" },
    },
    {
      name: "search-below-handlers",
      severity: "error",
      from: { path: "^src/search/" },
      to: { path: "^src/(services|server|auth)/" },
    },
    {
      name: "lifecycle-below-handlers",
      comment: "The data lifecycle (retention, archival, erasure) uses storage, the search seam and the archive; handlers call it.",
      severity: "error",
      from: { path: layer("lifecycle") },
      to: { path: "^src/(services|server|auth|search/(postgres|elasticsearch))/" },
    },
    {
      name: "archive-stands-alone",
      comment: "The archive bucket adapter knows object storage only.",
      severity: "error",
      from: { path: layer("archive") },
      to: { path: "^src/", pathNot: "^src/(archive|platform|domain)/" },
    },
    {
      name: "search-knows-no-lifecycle",
      severity: "error",
      from: { path: "^src/search/" },
      to: { path: "^src/(lifecycle|archive)/" },
    },
    {
      name: "handlers-use-the-seam",
      comment: "Handlers see search only through the seam; app.ts picks the backend.",
      severity: "error",
      from: { path: layer("services") },
      to: { path: "^src/(server|search/(postgres|elasticsearch))/" },
    },
    {
      name: "auth-below-handlers",
      severity: "error",
      from: { path: layer("auth") },
      to: { path: "^src/(services|server|search)/" },
    },
    {
      name: "transport-knows-no-handlers",
      comment: "src/server carries requests; it knows no handler, store or backend.",
      severity: "error",
      from: { path: layer("server") },
      to: { path: "^src/(services|store|search|auth)/" },
    },
    {
      name: "src-stands-alone",
      comment: "Shipped code never imports tests, benchmarks or scripts.",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^(test|bench|scripts)/" },
    },
    {
      name: "bench-not-from-tests",
      severity: "error",
      from: { path: "^bench/" },
      to: { path: "^test/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { extensions: [".ts", ".js", ".d.ts"] },
  },
};
