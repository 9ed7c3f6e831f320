// deno-lint-ignore-file no-console
/**
 * The broker's jars: Maven copies them from Maven Central (kafka/pom.xml) to kafka/.jars once, and
 * a marker holding the pom's hash says the copy is complete and current.
 */

import { exists, run, seconds } from "../scripts/files.ts";
import { clusterPaths, type Log, REQUIRED_JARS } from "./layout.ts";

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether kafka/.jars holds a complete copy made from the current pom.xml. */
export async function jarsComplete(paths = clusterPaths()): Promise<boolean> {
  try {
    const marker = (await Deno.readTextFile(`${paths.jarsDir}/.complete`)).trim();
    if (marker !== await sha256(await Deno.readTextFile(paths.pom))) return false;
    for (const jar of REQUIRED_JARS) {
      if (!await exists(`${paths.jarsDir}/${jar}`)) return false;
    }
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Copies the broker's jars from Maven Central to kafka/.jars unless a complete copy is there. */
export async function ensureJars(
  paths = clusterPaths(),
  log: Log = (line) => console.log(line),
): Promise<void> {
  if (await jarsComplete(paths)) return;
  const started = performance.now();
  log("Fetching the Kafka jars with Maven (kafka/pom.xml -> kafka/.jars) ...");
  await Deno.remove(paths.jarsDir, { recursive: true }).catch(() => {});
  await run("mvn", [
    "-q",
    "-B",
    "-f",
    paths.pom,
    "dependency:copy-dependencies",
    "-DincludeScope=runtime",
    `-DoutputDirectory=${paths.jarsDir}`,
  ], "fetch the Kafka jars");
  for (const jar of REQUIRED_JARS) {
    if (!await exists(`${paths.jarsDir}/${jar}`)) {
      throw new Error(`Cannot fetch the Kafka jars: ${jar} is missing from ${paths.jarsDir}`);
    }
  }
  await Deno.writeTextFile(
    `${paths.jarsDir}/.complete`,
    await sha256(await Deno.readTextFile(paths.pom)),
  );
  log(`Fetched the Kafka jars in ${seconds(started)}`);
}
