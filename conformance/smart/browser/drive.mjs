// Drives the test SMART app (app/launch.html, app/index.html, using the fhirclient library) in headless Chromium
// against a running Kiln: an EHR launch from Kiln's app launcher by a clinician, a standalone launch by a patient,
// and a standalone launch by a clinician through the patient picker. Takes screenshots of Kiln's pages at phone and
// desktop widths. Prints "ok <check>" or "FAIL <check>: why" per check, then "drive: N passed, N failed"; exits 1
// if anything failed. On a failure it also saves a screenshot and the page's HTML (FAIL-*.png / FAIL-*.html).
//
// Every setting is an environment variable, or a flag of the same name in lower case with dashes
// (KILN_FHIR_BASE or --kiln-fhir-base URL):
//   KILN_FHIR_BASE      the FHIR base URL as the browser sees it (= Kiln's base_url, the SMART iss and aud)
//   APP_URL             where the app is served, e.g. http://127.0.0.1:5000/ (launch.html and index.html under it)
//   APP_NAME            the app's registered name (default "Test SMART app")
//   CLINICIAN_USER, CLINICIAN_PASSWORD, PRACTITIONER_ID     a physician account linked to Practitioner/ID
//   PATIENT_USER, PATIENT_PASSWORD                          a patient account linked to Patient/PATIENT_B_ID
//   PATIENT_A_ID, PATIENT_A_NAME, PATIENT_A_SEARCH, PATIENT_A_OBSERVATIONS, ENCOUNTER_A_ID
//                       the patient the clinician launches the app for: its id, displayed name ("Given Family"),
//                       a name to search for, its number of Observations, one of its Encounters
//   PATIENT_B_ID, PATIENT_B_NAME, PATIENT_B_SEARCH, PATIENT_B_OBSERVATIONS   the patient user's own Patient
//   SCREENSHOT_DIR      where the PNGs go (default: a new temp dir)
//   CHROMIUM            the browser binary (default /usr/bin/chromium)
//   KILN_BROWSER_KNOWN_BUGS  comma-separated ids of known server bugs whose checks print KNOWN-BUG, not FAIL:
//                       refresh-needs-client-id  Kiln refuses a public client's refresh request without client_id
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const flags = {};
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  if (!arg.startsWith("--")) continue;
  const [name, inline] = arg.slice(2).split(/=(.*)/s);
  flags[name.toUpperCase().replaceAll("-", "_")] = inline ?? process.argv[++i];
}
function setting(name, fallback) {
  const value = flags[name] ?? process.env[name] ?? fallback;
  if (value === undefined || value === "") {
    console.error(`drive: missing setting ${name} (environment variable or --${name.toLowerCase().replaceAll("_", "-")})`);
    process.exit(2);
  }
  return value;
}

const BASE = setting("KILN_FHIR_BASE").replace(/\/$/, "");
const ORIGIN = new URL(BASE).origin;
const APP_URL = new URL(setting("APP_URL")).href.replace(/\/?$/, "/");
const APP_ORIGIN = new URL(APP_URL).origin;
const APP_NAME = setting("APP_NAME", "Test SMART app");
const CLINICIAN = { user: setting("CLINICIAN_USER"), password: setting("CLINICIAN_PASSWORD") };
const PRACTITIONER_ID = setting("PRACTITIONER_ID");
const PATIENT_USER = { user: setting("PATIENT_USER"), password: setting("PATIENT_PASSWORD") };
const A = {
  id: setting("PATIENT_A_ID"),
  name: setting("PATIENT_A_NAME"),
  search: setting("PATIENT_A_SEARCH"),
  observations: Number(setting("PATIENT_A_OBSERVATIONS")),
  encounter: setting("ENCOUNTER_A_ID"),
};
const B = {
  id: setting("PATIENT_B_ID"),
  name: setting("PATIENT_B_NAME"),
  search: setting("PATIENT_B_SEARCH"),
  observations: Number(setting("PATIENT_B_OBSERVATIONS")),
};
const OUT = flags.SCREENSHOT_DIR || process.env.SCREENSHOT_DIR || mkdtempSync(join(tmpdir(), "kiln-smart-screens-"));
mkdirSync(OUT, { recursive: true });
const CHROMIUM = setting("CHROMIUM", "/usr/bin/chromium");
const STEP_TIMEOUT = 20_000;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

let passed = 0;
let failed = 0;
const screenshots = [];

function ok(check) {
  passed++;
  console.log(`ok ${check}`);
}
function fail(check, why) {
  failed++;
  console.log(`FAIL ${check}: ${why}`);
}
/** A soft check: reports and goes on. */
function check(name, condition, why) {
  if (condition) ok(name);
  else fail(name, why);
  return condition;
}
/** Server bugs this run was told to tolerate (KILN_BROWSER_KNOWN_BUGS=id,id): reported, not counted. */
const KNOWN_BUGS = new Set((flags.KILN_BROWSER_KNOWN_BUGS ?? process.env.KILN_BROWSER_KNOWN_BUGS ?? "")
  .split(",").map((s) => s.trim()).filter(Boolean));
let tolerated = 0;
/** A check that a known server bug fails: with the bug's id in KILN_BROWSER_KNOWN_BUGS it reports, not fails. */
function bugCheck(id, name, condition, why) {
  if (condition) ok(name);
  else if (KNOWN_BUGS.has(id)) {
    tolerated++;
    console.log(`KNOWN-BUG ${name}: ${why} [${id}, tolerated by KILN_BROWSER_KNOWN_BUGS]`);
  } else fail(name, `${why} [${id}]`);
  return condition;
}
/** Something a person should know that is not a failure. */
function note(text) {
  console.log(`note ${text}`);
}
/** Thrown to end a flow after its failure was reported. */
class Stop extends Error {}
const slug = (text) => text.replace(/[^a-z0-9]+/gi, "-").replace(/^-|-$/g, "").toLowerCase();

async function saveFailure(page, name, log) {
  const base = join(OUT, `FAIL-${slug(name)}`);
  try {
    await page.screenshot({ path: `${base}.png`, fullPage: true });
    writeFileSync(`${base}.html`, await page.content());
    console.log(`  page: ${page.url()}`);
    console.log(`  saved ${base}.png and ${base}.html`);
  } catch (err) {
    console.log(`  (could not save the page: ${err.message})`);
  }
  if (log.length) {
    console.log("  browser log (last 25 lines):");
    for (const line of log.slice(-25)) console.log(`    ${line}`);
  }
}

/** Screenshots of the page at phone and desktop widths. */
async function shoot(page, label) {
  for (const [kind, size] of [["phone", PHONE], ["desktop", DESKTOP]]) {
    await page.setViewportSize(size);
    await page.waitForTimeout(150);
    const path = join(OUT, `${label}-${kind}-${size.width}.png`);
    await page.screenshot({ path, fullPage: true });
    screenshots.push(path);
  }
  await page.setViewportSize(DESKTOP);
}

/** Runs one launch in a fresh browser context (no cookies, empty sessionStorage). */
async function flow(browser, title, body) {
  console.log(`# ${title}`);
  const context = await browser.newContext({ viewport: DESKTOP });
  context.setDefaultTimeout(STEP_TIMEOUT);
  const page = await context.newPage();
  const log = [];
  page.on("console", (m) => log.push(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => log.push(`request failed: ${r.method()} ${r.url()} (${r.failure()?.errorText})`));
  page.on("response", (r) => {
    if (r.status() >= 400) log.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  const requests = [];
  page.on("request", (r) => requests.push(r));
  /** A step that must succeed for the flow to go on. */
  const step = async (name, action) => {
    try {
      const value = await action();
      ok(name);
      return value;
    } catch (err) {
      fail(name, err instanceof Stop ? err.message : (err.message || String(err)).split("\n")[0]);
      await saveFailure(page, name, log);
      throw new Stop(name);
    }
  };
  try {
    await body({ page, step, requests, log });
  } catch (err) {
    if (!(err instanceof Stop)) {
      fail(`${title}: unexpected error`, err.stack || String(err));
      await saveFailure(page, title, log);
    }
  } finally {
    await context.close();
  }
}

function expect(condition, why) {
  if (!condition) throw new Stop(why);
}

async function signIn(page, account) {
  await page.fill("#username", account.user);
  await page.fill("#password", account.password);
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign in" }).click()]);
  const error = page.locator("#sign-in-error");
  expect((await error.count()) === 0, `sign-in refused: ${await error.first().textContent().catch(() => "")}`);
}

/** Waits for the app's redirect page to show its result (or its error) and returns the parsed result. */
async function appResult(page) {
  await page.waitForURL((url) => url.href.startsWith(APP_URL + "index.html"));
  await page.locator("#result:not([hidden]), #error:not([hidden])").first().waitFor();
  const error = await page.locator("#error:not([hidden])").textContent({ timeout: 100 }).catch(() => null);
  expect(!error, `the app reported an error: ${error}`);
  return JSON.parse(await page.locator("#result").textContent());
}

/** The authorization request fhirclient sent (the last navigation to /auth/authorize with client_id). */
function authorizeRequest(requests) {
  const found = requests.filter((r) => r.url().startsWith(`${ORIGIN}/auth/authorize?`) && r.url().includes("client_id="));
  return found.length ? new URL(found.at(-1).url()).searchParams : null;
}

function checkAuthorizeRequest(prefix, params, expectLaunch) {
  if (!check(`${prefix}: fhirclient sent an authorization request`, params !== null, "no GET /auth/authorize seen")) return;
  check(`${prefix}: authorize request has aud = FHIR base`, params.get("aud") === BASE, `aud=${params.get("aud")}`);
  check(
    `${prefix}: authorize request uses PKCE S256`,
    params.get("code_challenge_method") === "S256" && (params.get("code_challenge") || "").length >= 43,
    `code_challenge_method=${params.get("code_challenge_method")} code_challenge=${params.get("code_challenge")}`,
  );
  check(
    `${prefix}: authorize request ${expectLaunch ? "carries" : "has no"} launch`,
    expectLaunch ? Boolean(params.get("launch")) : !params.has("launch"),
    `launch=${params.get("launch")}`,
  );
}

/** Reads a resource as the app; answers "allowed" or the HTTP status of the refusal. */
async function probe(page, path) {
  return page.evaluate(async (p) => {
    try {
      const answer = await window.smartClient.request(p);
      return answer.resourceType === "Bundle" ? `bundle:${(answer.entry || []).length}` : "allowed";
    } catch (err) {
      return String(err.status || err.message);
    }
  }, path);
}

function checkResult(prefix, result, patient, extra) {
  check(`${prefix}: app read the launch patient`, result.patient.id === patient.id && result.patient.name === patient.name,
    `read ${JSON.stringify(result.patient)}, expected Patient/${patient.id} "${patient.name}"`);
  check(`${prefix}: token response names the patient`, result.tokenPatient === patient.id,
    `patient=${result.tokenPatient}, expected ${patient.id}`);
  check(`${prefix}: app found the patient's ${patient.observations} Observations`, result.observations === patient.observations,
    `found ${result.observations}`);
  check(`${prefix}: every Observation is the patient's`,
    result.observationSubjects.length === 1 && result.observationSubjects[0] === `Patient/${patient.id}`,
    `subjects ${JSON.stringify(result.observationSubjects)}`);
  check(`${prefix}: id_token fhirUser is ${extra.fhirUser}`, result.fhirUser === extra.fhirUser,
    `fhirUser=${result.fhirUser} (id_token ${result.hasIdToken ? "present" : "missing"})`);
  const granted = (result.scope || "").split(" ");
  const missing = extra.scopes.filter((s) => !granted.includes(s));
  check(`${prefix}: granted scope has ${extra.scopes.join(" ")}`, missing.length === 0, `scope="${result.scope}"`);
  check(`${prefix}: need_patient_banner is ${extra.banner}`, result.needPatientBanner === extra.banner,
    `need_patient_banner=${result.needPatientBanner}`);
}

async function checkCompartment(prefix, page, other) {
  const read = await probe(page, `Patient/${other.id}`);
  check(`${prefix}: reading another patient is refused (403)`, read === "403", `GET Patient/${other.id} -> ${read}`);
  const search = await probe(page, `Observation?patient=${other.id}`);
  check(`${prefix}: another patient's Observations are left out`, search === "bundle:0" || search === "403",
    `GET Observation?patient=${other.id} -> ${search}`);
}

// ---------------------------------------------------------------------------------------------------------------
// CORS: the app runs on its own origin, so the browser only lets it read Kiln's answers if Kiln allows that origin.
// SMART App Launch 2.2, "Considerations for Cross-Origin Resource Sharing (CORS) support": discovery endpoints for
// any origin; the token endpoint and the FHIR REST API for the client's registered origin(s).
async function corsChecks() {
  if (APP_ORIGIN === ORIGIN) {
    console.log("# CORS: skipped (the app and Kiln share one origin in this run)");
    return;
  }
  console.log(`# CORS for the app's origin ${APP_ORIGIN}`);
  const allows = (response) => {
    const allowed = response.headers.get("access-control-allow-origin");
    return allowed === "*" || allowed === APP_ORIGIN;
  };
  const describe = (response) =>
    `HTTP ${response.status}, access-control-allow-origin: ${response.headers.get("access-control-allow-origin") ?? "(none)"}` +
    `, access-control-allow-headers: ${response.headers.get("access-control-allow-headers") ?? "(none)"}`;
  const headers = { Origin: APP_ORIGIN };
  const cases = [
    ["GET .well-known/smart-configuration", `${BASE}/.well-known/smart-configuration`, { headers }],
    ["GET metadata", `${BASE}/metadata`, { headers }],
    ["POST /auth/token (form)", `${ORIGIN}/auth/token`, {
      method: "POST",
      headers: { ...headers, "Content-Type": "application/x-www-form-urlencoded" },
      body: "grant_type=authorization_code&code=not-a-code&client_id=x&redirect_uri=x&code_verifier=x",
    }],
  ];
  for (const [name, url, init] of cases) {
    try {
      const response = await fetch(url, init);
      check(`cors: ${name} allows the app's origin`, allows(response), describe(response));
    } catch (err) {
      fail(`cors: ${name} allows the app's origin`, err.message);
    }
  }
  // A FHIR request with a bearer token is not a "simple" request: the browser asks first (preflight).
  try {
    const response = await fetch(`${BASE}/Patient/${A.id}`, {
      method: "OPTIONS",
      headers: { ...headers, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization" },
    });
    const allowedHeaders = (response.headers.get("access-control-allow-headers") || "").toLowerCase();
    check("cors: preflight OPTIONS of a FHIR read with Authorization is allowed",
      response.ok && allows(response) && (allowedHeaders === "*" || allowedHeaders.includes("authorization")),
      describe(response));
  } catch (err) {
    fail("cors: preflight OPTIONS of a FHIR read with Authorization is allowed", err.message);
  }
}

// ---------------------------------------------------------------------------------------------------------------
async function ehrLaunch(browser) {
  await flow(browser, "EHR launch: clinician launches the app from Kiln's launcher", async ({ page, step, requests }) => {
    const prefix = "ehr";
    await step(`${prefix}: sign-in page at /auth/login?next=/auth/launcher`, async () => {
      const response = await page.goto(`${ORIGIN}/auth/login?next=/auth/launcher`);
      expect(response.status() === 200, `HTTP ${response.status()}`);
      await page.locator("#username").waitFor();
      await shoot(page, "sign-in");
    });
    await step(`${prefix}: clinician ${CLINICIAN.user} signs in and sees the launcher`, async () => {
      await signIn(page, CLINICIAN);
      expect(new URL(page.url()).pathname === "/auth/launcher", `went to ${page.url()}`);
      await page.getByRole("heading", { name: "Launch an app" }).waitFor();
    });
    await step(`${prefix}: searching "${A.search}" finds ${A.name}`, async () => {
      await page.fill("#name", A.search);
      await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Search" }).click()]);
      const link = page.getByRole("link", { name: A.name, exact: true });
      expect((await link.count()) === 1, `${await link.count()} links named "${A.name}"`);
      const href = await link.getAttribute("href");
      expect(href === `?patient=${encodeURIComponent(A.id)}`, `link href=${href}`);
      await Promise.all([page.waitForNavigation(), link.click()]);
    });
    await step(`${prefix}: ${A.name} selected, encounter ${A.encounter} chosen`, async () => {
      const selected = (await page.locator("#selected-patient").textContent()).trim();
      expect(selected === A.name, `selected "${selected}"`);
      await page.selectOption("#encounter", A.encounter);
      await shoot(page, "launcher");
    });
    let launchUrl = null;
    page.on("request", (r) => {
      if (r.isNavigationRequest() && r.url().startsWith(APP_URL + "launch.html")) launchUrl = new URL(r.url());
    });
    await step(`${prefix}: "Launch ${APP_NAME}" reaches the consent page`, async () => {
      await page.getByRole("button", { name: `Launch ${APP_NAME}` }).click();
      await page.waitForURL((url) => url.href.startsWith(`${ORIGIN}/auth/authorize`));
      await page.getByRole("heading", { name: `${APP_NAME} wants to access patient records` }).waitFor();
    });
    check(`${prefix}: the launcher sent the browser to the launch URL with iss and launch`,
      launchUrl && launchUrl.searchParams.get("iss") === BASE && Boolean(launchUrl.searchParams.get("launch")),
      `launch URL ${launchUrl}`);
    const params = authorizeRequest(requests);
    checkAuthorizeRequest(prefix, params, true);
    if (params && launchUrl) {
      check(`${prefix}: authorize request carries the launcher's launch id`,
        params.get("launch") === launchUrl.searchParams.get("launch"), `launch=${params.get("launch")}`);
    }
    await step(`${prefix}: consent page lists the requested scopes`, async () => {
      const codes = await page.locator("fieldset code").allTextContents();
      expect(["launch", "openid", "fhirUser", "patient/*.rs"].every((s) => codes.includes(s)), `scopes listed: ${codes.join(", ")}`);
      await shoot(page, "consent-clinician");
    });
    const banner = page.locator("section.banner strong");
    if ((await banner.count()) === 0) {
      note(`${prefix}: the consent page of an EHR launch does not name the launch patient (${A.name}); ` +
        "the standalone picker's consent page does");
    } else {
      check(`${prefix}: consent page names ${A.name}`, (await banner.first().textContent()).trim() === A.name,
        `banner "${(await banner.first().textContent()).trim()}"`);
    }
    const result = await step(`${prefix}: Allow -> the app completes the authorization and reads data`, async () => {
      await page.getByRole("button", { name: "Allow" }).click();
      return appResult(page);
    });
    checkResult(prefix, result, A, {
      fhirUser: `Practitioner/${PRACTITIONER_ID}`,
      scopes: ["launch", "openid", "fhirUser", "patient/*.rs"],
      banner: false,
    });
    check(`${prefix}: token response names the chosen encounter`, result.tokenEncounter === A.encounter,
      `encounter=${result.tokenEncounter}`);
    await checkCompartment(prefix, page, B);
  });
}

async function standalonePatient(browser) {
  await flow(browser, "Standalone launch: a patient signs in to the app", async ({ page, step, requests }) => {
    const prefix = "standalone patient";
    await step(`${prefix}: the app's launch page leads to Kiln's sign-in page`, async () => {
      await page.goto(`${APP_URL}launch.html?iss=${encodeURIComponent(BASE)}`);
      await page.waitForURL((url) => url.href.startsWith(`${ORIGIN}/auth/authorize`));
      await page.getByRole("heading", { name: `Sign in to continue to ${APP_NAME}` }).waitFor();
      await shoot(page, "sign-in-for-app");
    });
    checkAuthorizeRequest(prefix, authorizeRequest(requests), false);
    await step(`${prefix}: patient ${PATIENT_USER.user} signs in and sees the patient-facing consent page`, async () => {
      await signIn(page, PATIENT_USER);
      await page.getByRole("heading", { name: `${APP_NAME} wants to access your health record` }).waitFor();
      const banner = (await page.locator("section.banner strong").first().textContent()).trim();
      expect(banner === B.name, `banner "${banner}", expected ${B.name}`);
      await shoot(page, "consent-patient");
    });
    const result = await step(`${prefix}: Allow -> the app completes the authorization and reads data`, async () => {
      await page.getByRole("button", { name: "Allow" }).click();
      return appResult(page);
    });
    checkResult(prefix, result, B, {
      fhirUser: `Patient/${B.id}`,
      scopes: ["launch/patient", "openid", "fhirUser", "patient/*.rs", "offline_access"],
      banner: true,
    });
    check(`${prefix}: offline_access brought a refresh token`, result.hasRefreshToken, "no refresh_token");
    await checkCompartment(prefix, page, A);
    // SMART App Launch 2.2 "Refresh access token" and RFC 6749 §6: grant_type and refresh_token; a public client
    // does not authenticate, and fhirclient by default sends no client_id (option refreshTokenWithClientId).
    const plain = await refresh(page, false);
    const refreshed = bugCheck("refresh-needs-client-id",
      `${prefix}: the app refreshes its token as fhirclient does by default (no client_id)`,
      plain.ok, plain.why);
    if (!refreshed) {
      const withId = await refresh(page, true);
      check(`${prefix}: the app refreshes its token when it also sends client_id`, withId.ok, withId.why);
    }
  });
}

/** Refreshes the app's access token with fhirclient, then reads the patient with the new one. */
async function refresh(page, withClientId) {
  return page.evaluate(async ({ withClientId, timeoutMs }) => {
    const client = window.smartClient;
    const saved = client.state.tokenResponse.refresh_token;
    const before = client.state.tokenResponse.access_token;
    window.FHIR.oauth2.settings.refreshTokenWithClientId = withClientId;
    client._refreshTask = null;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from the token endpoint in ${timeoutMs} ms ` +
        "(a same-origin 401 with WWW-Authenticate: Basic leaves Chromium waiting on a password prompt)")), timeoutMs);
    });
    try {
      await Promise.race([client.refresh(), timeout]);
      const after = client.state.tokenResponse.access_token;
      const patient = await client.patient.read();
      if (after === before) return { ok: false, why: "the access token did not change" };
      return { ok: true, why: `new token, read Patient/${patient.id}` };
    } catch (err) {
      // fhirclient drops a refresh token that failed; put it back so that another attempt can be made.
      client.state.tokenResponse.refresh_token = saved;
      client._refreshTask = null;
      return { ok: false, why: `refresh failed: ${String(err.message || err).replace(/\s+/g, " ").slice(0, 300)}` };
    } finally {
      clearTimeout(timer);
    }
  }, { withClientId, timeoutMs: 8000 });
}

async function standaloneClinician(browser) {
  await flow(browser, "Standalone launch: a clinician picks the patient", async ({ page, step, requests }) => {
    const prefix = "standalone clinician";
    await step(`${prefix}: the app's launch page leads to Kiln's sign-in page`, async () => {
      await page.goto(`${APP_URL}launch.html?iss=${encodeURIComponent(BASE)}`);
      await page.waitForURL((url) => url.href.startsWith(`${ORIGIN}/auth/authorize`));
      await page.getByRole("heading", { name: `Sign in to continue to ${APP_NAME}` }).waitFor();
    });
    checkAuthorizeRequest(prefix, authorizeRequest(requests), false);
    await step(`${prefix}: clinician signs in and gets the patient picker`, async () => {
      await signIn(page, CLINICIAN);
      await page.getByRole("heading", { name: "Choose a patient" }).waitFor();
    });
    await step(`${prefix}: searching "${B.search}" and choosing ${B.name}`, async () => {
      await page.fill("#name", B.search);
      await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Search" }).click()]);
      await shoot(page, "patient-picker");
      const choose = page.getByRole("button", { name: `Choose ${B.name}`, exact: true });
      expect((await choose.count()) === 1, `${await choose.count()} buttons "Choose ${B.name}"`);
      await Promise.all([page.waitForNavigation(), choose.click()]);
      await page.getByRole("heading", { name: `${APP_NAME} wants to access patient records` }).waitFor();
      const banner = (await page.locator("section.banner strong").first().textContent()).trim();
      expect(banner === B.name, `consent banner "${banner}"`);
    });
    const result = await step(`${prefix}: Allow -> the app completes the authorization and reads data`, async () => {
      await page.getByRole("button", { name: "Allow" }).click();
      return appResult(page);
    });
    checkResult(prefix, result, B, {
      fhirUser: `Practitioner/${PRACTITIONER_ID}`,
      scopes: ["launch/patient", "openid", "fhirUser", "patient/*.rs", "offline_access"],
      banner: true,
    });
    await checkCompartment(prefix, page, A);
  });
}

const browser = await chromium
  .launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] })
  .catch((err) => {
    console.log(`FAIL chromium starts: ${err.message.split("\n")[0]}`);
    process.exit(1);
  });
console.log(`drive: ${CHROMIUM} (Chromium ${browser.version()}), app ${APP_URL}, Kiln ${BASE}, screenshots in ${OUT}`);
try {
  await corsChecks();
  await ehrLaunch(browser);
  await standalonePatient(browser);
  await standaloneClinician(browser);
} finally {
  await browser.close();
}
console.log("screenshots:");
for (const path of screenshots) console.log(`  ${path}`);
if (tolerated) console.log(`drive: ${tolerated} known server bug(s) tolerated (KILN_BROWSER_KNOWN_BUGS=${[...KNOWN_BUGS].join(",")})`);
console.log(`drive: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
