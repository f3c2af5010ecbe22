// Copies the browser libraries the console serves from node_modules into console/static/vendor/,
// so the console runs on a closed network (no CDN, no npm at run time). Run: npm ci && npm run build.
import { cpSync, mkdirSync, rmSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const vendor = join(here, "..", "static", "vendor");
const leaflet = join(here, "node_modules", "leaflet");
const version = JSON.parse(readFileSync(join(leaflet, "package.json"), "utf8")).version;

rmSync(join(vendor, "leaflet"), { recursive: true, force: true });
mkdirSync(join(vendor, "leaflet"), { recursive: true });
for (const file of ["leaflet.js", "leaflet.css"]) {
  cpSync(join(leaflet, "dist", file), join(vendor, "leaflet", file));
}
cpSync(join(leaflet, "dist", "images"), join(vendor, "leaflet", "images"), { recursive: true });
cpSync(join(leaflet, "LICENSE"), join(vendor, "leaflet", "LICENSE"));
writeFileSync(join(vendor, "leaflet", "VERSION"), version + "\n");
console.log(`copied leaflet ${version} into ${vendor}/leaflet`);
