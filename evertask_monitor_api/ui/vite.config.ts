import { defineConfig } from "vite";

// The build lands in the Python package (../static) with fixed file names, so a rebuild
// from the lockfile reproduces the shipped files byte for byte (`make ui-check`).
export default defineConfig({
  base: "./",
  build: {
    outDir: "../static",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    modulePreload: { polyfill: false },
    rollupOptions: {
      onwarn(warning, warn) {
        if (warning.code === "MODULE_LEVEL_DIRECTIVE") return; // react-router's "use client"
        warn(warning);
      },
      output: {
        entryFileNames: "assets/app.js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/app[extname]",
      },
    },
  },
  server: {
    proxy: {
      "/evertask-monitoring/api": "http://127.0.0.1:8000",
      "/evertask-monitoring/ws": { target: "ws://127.0.0.1:8000", ws: true },
    },
  },
});
