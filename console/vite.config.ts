// Builds the web console into console/dist, which the service serves at /
// (src/server/static-files.ts). `npm run build:console`; `npm start` and
// `npm test` build it first when it is missing or older than its sources.
import preact from "@preact/preset-vite";
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  base: "/",
  plugins: [preact()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // No source maps in the served build: smaller first visit.
    sourcemap: false,
    assetsInlineLimit: 0,
  },
  server: {
    // `npx vite console` for development: the API calls go to a running service.
    proxy: { "/auditlog.v1.": "http://127.0.0.1:8080", "/v1/": "http://127.0.0.1:8080" },
  },
});
