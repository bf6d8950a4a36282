#!/usr/bin/env node
// Thin shim: the CLI lives in dist/cli/main.js (compiled from src/cli/main.ts by `npm run build`).
import '../dist/cli/main.js';
