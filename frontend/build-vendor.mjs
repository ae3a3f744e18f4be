// Build the vendored age bundle: intake/static/vendor/age-encryption-<version>.js
// and the SRI.json that the page uses to load it with Subresource Integrity.
//
//   node frontend/build-vendor.mjs [--outdir DIR]      (or: make vendor)
//
// The output is reproducible: the same package-lock.json gives the same bytes
// on any machine and in any directory (no timestamps, no absolute paths), so
// anyone can rebuild it and compare with the served file (tests/test_vendor.py
// does). It is one minified classic IIFE script defining self.ageEncryption;
// it contains no ES module syntax, no eval and no `new Function`, and it keeps
// the licences of everything bundled: the packages' own legal comments, and
// their full LICENSE files in a comment at the end.
//
// Older age-encryption-*.js files in the output directory are deleted, so the
// directory only ever holds the bundle that SRI.json names.

import { createHash } from "node:crypto";
import { readdirSync, readFileSync, mkdirSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build, version as esbuildVersion } from "esbuild";

const frontendDir = dirname(fileURLToPath(import.meta.url));
const projectDir = resolve(frontendDir, "..");
const modulesDir = join(projectDir, "node_modules");
const defaultOutDir = join(projectDir, "intake", "static", "vendor");
const BUNDLE_NAME = /^age-encryption-.*\.js$/;

function outDirFromArgs(argv) {
  if (argv.length === 0) return defaultOutDir;
  if (argv.length === 2 && argv[0] === "--outdir") return resolve(argv[1]);
  throw new Error("usage: node frontend/build-vendor.mjs [--outdir DIR]");
}

function readJSON(path) {
  return JSON.parse(readFileSync(path, "utf8"));
}

// "node_modules/@noble/curves/esm/ed25519.js" -> "@noble/curves"
function packageOf(input) {
  const parts = input.split("/");
  const at = parts.lastIndexOf("node_modules");
  if (at < 0) return null;
  const scoped = parts[at + 1].startsWith("@");
  return parts.slice(at + 1, at + (scoped ? 3 : 2)).join("/");
}

// The full licence of every bundled package, as one comment, in a stable order.
function licenceComment(inputs) {
  const packages = [...new Set(inputs.map(packageOf).filter(Boolean))].sort();
  const sections = packages.map((name) => {
    const dir = join(modulesDir, name);
    const meta = readJSON(join(dir, "package.json"));
    const text = readFileSync(join(dir, "LICENSE"), "utf8").trim();
    if (text.includes("*/")) throw new Error(`the LICENSE of ${name} would end the comment`);
    return `${name} ${meta.version} (${meta.license})\n\n${text}`;
  });
  return `/*! Licences of the bundled packages.\n\n${sections.join("\n\n---\n\n")}\n*/\n`;
}

async function main() {
  const outDir = outDirFromArgs(process.argv.slice(2));
  const age = readJSON(join(modulesDir, "age-encryption", "package.json"));
  const fileName = `age-encryption-${age.version}.js`;

  const result = await build({
    absWorkingDir: projectDir,
    entryPoints: [join(frontendDir, "age-entry.js")],
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "es2020",
    minify: true,
    charset: "ascii",
    legalComments: "eof",
    sourcemap: false,
    define: { __AGE_ENCRYPTION_VERSION__: JSON.stringify(age.version) },
    banner: {
      js:
        `/*! age-encryption ${age.version} (${age.license}) and its dependencies, ` +
        `bundled with esbuild ${esbuildVersion} by intake's frontend/build-vendor.mjs ` +
        `from package-lock.json. Defines self.ageEncryption. Licences at the end. */`,
    },
    metafile: true,
    write: false,
    logLevel: "warning",
  });
  const [output] = result.outputFiles;
  const bundle = Buffer.concat([
    Buffer.from(output.contents),
    Buffer.from(licenceComment(Object.keys(result.metafile.inputs)), "utf8"),
  ]);

  mkdirSync(outDir, { recursive: true });
  for (const old of readdirSync(outDir)) {
    if (BUNDLE_NAME.test(old) && old !== fileName) unlinkSync(join(outDir, old));
  }
  writeFileSync(join(outDir, fileName), bundle);

  const integrity = "sha384-" + createHash("sha384").update(bundle).digest("base64");
  const sri = { file: fileName, integrity };
  writeFileSync(join(outDir, "SRI.json"), JSON.stringify(sri, null, 2) + "\n");
  process.stderr.write(`wrote ${join(outDir, fileName)} (${bundle.length} bytes, ${integrity})\n`);
}

main().catch((error) => {
  process.stderr.write(`build-vendor: ${error.message}\n`);
  process.exit(1);
});
