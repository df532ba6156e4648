// The console's build: one hashed bundle under assets/ and index.html, nothing inline
// (the daemon's Content-Security-Policy allows only scripts and styles of its own).
import { defineConfig } from "vitest/config";
import { svelte } from "@sveltejs/vite-plugin-svelte";

export default defineConfig({
  plugins: [svelte()],
  build: {
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    cssCodeSplit: false,
    reportCompressedSize: false,
  },
  test: {
    include: ["tests/**/*.test.ts"],
  },
});
