// The web console driven end to end in a real headless Chromium (playwright-core, Debian's
// /usr/bin/chromium). Run by tests/suite/console_browser.rs, which starts the server, makes the
// tenants, SIMs and console links, and passes them as a JSON scenario on stdin:
//
//   { "base": "https://localhost:PORT", "ignoreHTTPSErrors": true,
//     "links": { "support": "https://…/console/login/T", … },
//     "sim": { "id", "iccid", "imsi", "msisdn" }, "foreignSimId": "…",
//     "steps": ["sign-in", …]            (optional: the steps to run, default all, in order)
//     "screenshots": "/some/dir"         (optional: PNGs of the search and SIM pages) }
//
// It prints one JSON line per step, {"step", "ok", …facts} or {"step", "ok": false, "error"},
// and exits 1 if any step failed. A later step of the console (PIN reset, PUK reveal, audit,
// OIDC sign-in) adds an entry to STEPS: a name and an async function of the shared context
// that throws on failure and may return facts to print.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const CHROMIUM = process.env.SIMVAULT_CHROMIUM || "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

// The shared context: the scenario, the browser, and every page (document) answer seen, each
// checked for its headers and markup; CSP violations the browser reported.
class Ctx {
  constructor(scenario, context) {
    this.s = scenario;
    this.context = context;
    this.documents = [];
    this.cspViolations = [];
    this.pageErrors = [];
  }

  url(path) {
    return this.s.base + path;
  }

  // A new page (tab) at `viewport`, watched for CSP reports. All pages share the profile's one
  // cookie jar: a step that signs someone else in does it `asSomeoneElse`.
  async newPage(viewport = { width: 1280, height: 900 }) {
    const page = await this.context.newPage();
    await page.setViewportSize(viewport);
    this.watch(page);
    return page;
  }

  // Runs `f` with an empty cookie jar, then puts the main person's cookies back.
  async asSomeoneElse(f) {
    const main = await this.context.cookies();
    await this.context.clearCookies();
    try {
      return await f();
    } finally {
      await this.context.clearCookies();
      if (main.length) await this.context.addCookies(main);
    }
  }

  watch(page) {
    page.on("console", (msg) => {
      const text = msg.text();
      if (/Content[- ]Security[- ]Policy|Refused to (execute|load|apply|connect|frame)/i.test(text)) {
        this.cspViolations.push({ url: page.url(), text });
      }
    });
    page.on("pageerror", (e) => this.pageErrors.push({ url: page.url(), text: String(e) }));
    page.on("response", (res) => {
      if (res.request().resourceType() === "document" && res.frame() === page.mainFrame()) {
        this.documents.push({
          url: res.url(),
          status: res.status(),
          csp: res.headers()["content-security-policy"] || null,
        });
      }
    });
  }

  // The signed-in page of the main person, made by the sign-in step.
  get page() {
    check(this._page, "no signed-in page: run the sign-in step first");
    return this._page;
  }
}

// The markup rules of a page as the browser parsed it: no inline script, no on* attribute.
async function markup(page) {
  const found = await page.evaluate(() => {
    const inline = document.querySelectorAll("script:not([src])").length;
    const handlers = [];
    for (const el of document.querySelectorAll("*")) {
      for (const a of el.attributes) {
        if (a.name.toLowerCase().startsWith("on")) handlers.push(`<${el.localName} ${a.name}>`);
      }
    }
    return { inline, handlers };
  });
  check(found.inline === 0, `${page.url()}: ${found.inline} inline script(s)`);
  check(found.handlers.length === 0, `${page.url()}: event handlers ${found.handlers.join(" ")}`);
}

async function heading(page) {
  return (await page.locator("h1").first().textContent())?.trim();
}

// Signs in with a console link in `page`: the confirm page's "Sign in" button.
async function signIn(page, link) {
  const res = await page.goto(link);
  check(res.status() === 200, `confirm page answered ${res.status()}`);
  await markup(page);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith("/console/login")), page.getByRole("button", { name: "Sign in" }).click()]);
  await markup(page);
  check(await page.getByRole("button", { name: "Sign out" }).isVisible(), "no Sign out button after sign-in");
}

async function search(page, text) {
  await page.getByLabel("Search", { exact: true }).fill(text);
  await Promise.all([page.waitForURL(/search=/), page.getByRole("button", { name: "Search", exact: true }).click()]);
  await markup(page);
}

// Page weight, requests and time to first render of the page at `path`, in a fresh page.
async function measure(ctx, page, path) {
  const requests = [];
  const onResponse = async (res) => {
    let bytes = 0;
    try {
      bytes = (await res.body()).length;
    } catch {
      bytes = 0;
    }
    const sizes = await res.request().sizes().catch(() => null);
    requests.push({ url: res.url(), bytes, headers: sizes ? sizes.responseHeadersSize : 0 });
  };
  page.on("response", onResponse);
  await page.goto(ctx.url(path), { waitUntil: "load" });
  await page.waitForLoadState("networkidle");
  page.off("response", onResponse);
  const timing = await page.evaluate(() => {
    const n = performance.getEntriesByType("navigation")[0];
    const fcp = performance.getEntriesByName("first-contentful-paint")[0];
    return {
      response_to_dcl_ms: +(n.domContentLoadedEventEnd - n.responseStart).toFixed(1),
      response_to_load_ms: +(n.loadEventEnd - n.responseStart).toFixed(1),
      first_contentful_paint_ms: fcp ? +fcp.startTime.toFixed(1) : null,
    };
  });
  return {
    path: new URL(page.url()).pathname,
    requests: requests.length,
    body_bytes: requests.reduce((a, r) => a + r.bytes, 0),
    each: requests.map((r) => ({ path: new URL(r.url).pathname, bytes: r.bytes })),
    ...timing,
  };
}

const STEPS = [
  {
    name: "sign-in",
    async run(ctx) {
      const page = await ctx.newPage();
      await signIn(page, ctx.s.links.support);
      ctx._page = page;
      return { landed: new URL(page.url()).pathname };
    },
  },
  {
    name: "search-and-open-sim",
    async run(ctx) {
      const { page } = ctx;
      const sim = ctx.s.sim;
      await search(page, sim.iccid);
      const link = page.getByRole("link", { name: sim.iccid });
      check((await link.count()) === 1, "the SIM is not in the results");
      check((await page.locator("p.count").textContent()).includes("1 SIM found"), "not exactly one result");
      await Promise.all([page.waitForURL(`**/console/sims/${sim.id}`), link.click()]);
      await markup(page);
      const facts = await page.locator("dl.facts").innerText();
      for (const v of [sim.iccid, sim.imsi, sim.msisdn]) check(facts.includes(v), `SIM page lacks ${v}`);
      check((await heading(page)) === `SIM ${sim.iccid}`, "wrong SIM page heading");
      return { sim_page: new URL(page.url()).pathname };
    },
  },
  {
    name: "another-tenant-sim-is-not-found",
    async run(ctx) {
      const { page } = ctx;
      const res = await page.goto(ctx.url(`/console/sims/${ctx.s.foreignSimId}`));
      check(res.status() === 404, `answered ${res.status()}`);
      check((await heading(page)) === "Not found", `heading ${await heading(page)}`);
      await markup(page);
      const text = await page.locator("main").innerText();
      for (const v of ctx.s.foreignLeaks || []) check(!text.includes(v), `the 404 page shows ${v}`);
      return { status: 404 };
    },
  },
  {
    name: "narrow-layout-has-no-horizontal-scroll",
    async run(ctx) {
      return ctx.asSomeoneElse(async () => {
      const page = await ctx.newPage({ width: 390, height: 844 });
      await signIn(page, ctx.s.links.narrow);
      const widths = {};
      for (const path of [`/console?search=${ctx.s.sim.iccid}`, `/console/sims/${ctx.s.sim.id}`, `/console/sims/${ctx.s.foreignSimId}`]) {
        await page.goto(ctx.url(path));
        await markup(page);
        const w = await page.evaluate(() => document.documentElement.scrollWidth);
        widths[path] = w;
        check(w <= 390, `${path} is ${w} px wide at 390`);
      }
      await page.close();
      return { scroll_widths: widths };
      });
    },
  },
  {
    name: "keyboard-tab-reaches-search-enter-submits",
    async run(ctx) {
      const { page } = ctx;
      await page.goto(ctx.url("/console"));
      await page.evaluate(() => document.activeElement && document.activeElement.blur());
      let presses = 0;
      for (; presses < 25; presses++) {
        if (await page.evaluate(() => document.activeElement && document.activeElement.id === "search")) break;
        await page.keyboard.press("Tab");
      }
      check(await page.evaluate(() => document.activeElement.id === "search"), "Tab never reached the search box");
      await page.keyboard.type(ctx.s.sim.iccid);
      await Promise.all([page.waitForURL(/search=/), page.keyboard.press("Enter")]);
      check((await page.getByRole("link", { name: ctx.s.sim.iccid }).count()) === 1, "Enter did not search");
      return { tab_presses: presses };
    },
  },
  {
    name: "measure",
    async run(ctx) {
      const page = ctx.page;
      const search = await measure(ctx, page, `/console?search=${ctx.s.sim.iccid}`);
      const sim = await measure(ctx, page, `/console/sims/${ctx.s.sim.id}`);
      return { search, sim };
    },
  },
  {
    name: "screenshots",
    async run(ctx) {
      const dir = ctx.s.screenshots;
      if (!dir) return { skipped: "no screenshots directory given" };
      mkdirSync(dir, { recursive: true });
      const files = [];
      for (const width of [1280, 390]) {
        await ctx.asSomeoneElse(async () => {
        const page = await ctx.newPage({ width, height: width === 390 ? 844 : 800 });
        await signIn(page, ctx.s.links[`shots${width}`]);
        for (const [name, path] of [["search", `/console?search=${ctx.s.sim.iccid.slice(0, 10)}`], ["sim", `/console/sims/${ctx.s.sim.id}`]]) {
          await page.goto(ctx.url(path));
          const file = join(dir, `console-${name}-${width}.png`);
          await page.screenshot({ path: file, fullPage: true });
          files.push(file);
        }
        await page.close();
        });
      }
      return { files };
    },
  },
  {
    name: "sign-out-ends-the-session",
    async run(ctx) {
      const { page } = ctx;
      await page.goto(ctx.url("/console"));
      const old = await page.context().cookies();
      check(old.some((c) => c.name === "__Host-simvault-session"), "no session cookie");
      await Promise.all([page.waitForURL("**/console/login"), page.getByRole("button", { name: "Sign out" }).click()]);
      await markup(page);
      // The old cookie put back, as a thief who copied it would: refused, back to sign-in.
      await page.context().addCookies(old);
      const res = await page.goto(ctx.url("/console"));
      check(new URL(page.url()).pathname === "/console/login", `the old session reached ${page.url()}`);
      check(res.status() === 200 && (await heading(page)) === "Sign in to the simvault console", "not the sign-in page");
      check((await page.getByRole("button", { name: "Sign out" }).count()) === 0, "still signed in");
      const sim = await page.goto(ctx.url(`/console/sims/${ctx.s.sim.id}`));
      check(new URL(page.url()).pathname === "/console/login", "the old session opened a SIM page");
      check(!(await page.content()).includes(ctx.s.sim.imsi), "the SIM's IMSI was shown");
      return { after_sign_out: new URL(page.url()).pathname, sim_status: sim.status() };
    },
  },
  {
    name: "a-used-console-link-is-refused",
    async run(ctx) {
      return ctx.asSomeoneElse(async () => {
      const page = await ctx.newPage();
      const res = await page.goto(ctx.s.links.support);
      let status = res.status();
      const button = page.getByRole("button", { name: "Sign in" });
      if ((await button.count()) > 0) {
        const [answer] = await Promise.all([page.waitForResponse((r) => r.request().method() === "POST"), button.click()]);
        status = answer.status();
        await page.waitForLoadState();
      }
      await markup(page);
      check(status === 410, `the used link answered ${status}`);
      check((await heading(page)) === "This console link cannot sign you in", `heading ${await heading(page)}`);
      check((await page.context().cookies()).every((c) => c.name !== "__Host-simvault-session"), "a session cookie was set");
      const home = await page.goto(ctx.url("/console"));
      check(new URL(page.url()).pathname === "/console/login", `reached ${page.url()} (${home.status()})`);
      await page.close();
      return { status };
      });
    },
  },
  {
    name: "every-page-has-the-csp-and-no-violation",
    async run(ctx) {
      check(ctx.documents.length > 0, "no page was visited");
      for (const d of ctx.documents) {
        check(d.csp, `${d.url} (${d.status}) has no CSP header`);
        check(d.csp.includes("default-src 'self'"), `${d.url}: CSP without default-src 'self'`);
        check(d.csp.includes("frame-ancestors 'none'"), `${d.url}: CSP without frame-ancestors 'none'`);
      }
      check(ctx.cspViolations.length === 0, `CSP violations: ${JSON.stringify(ctx.cspViolations)}`);
      check(ctx.pageErrors.length === 0, `script errors: ${JSON.stringify(ctx.pageErrors)}`);
      return { pages: ctx.documents.length, paths: [...new Set(ctx.documents.map((d) => new URL(d.url).pathname))].length };
    },
  },
];

async function main() {
  const scenario = await readStdin();
  const wanted = scenario.steps || STEPS.map((s) => s.name);
  const unknown = wanted.filter((w) => !STEPS.some((s) => s.name === w));
  if (unknown.length) {
    console.log(JSON.stringify({ step: "scenario", ok: false, error: `unknown steps ${unknown.join(", ")}` }));
    process.exit(2);
  }
  const profile = mkdtempSync(join(tmpdir(), "simvault-chromium-"));
  // A fresh profile of its own (playwright passes it as --user-data-dir).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    ignoreHTTPSErrors: !!scenario.ignoreHTTPSErrors,
    viewport: { width: 1280, height: 900 },
    timeout: 60_000,
  });
  const ctx = new Ctx(scenario, context);
  let failed = 0;
  try {
    for (const step of STEPS.filter((s) => wanted.includes(s.name))) {
      const started = Date.now();
      try {
        const facts = (await step.run(ctx)) || {};
        console.log(JSON.stringify({ step: step.name, ok: true, ms: Date.now() - started, ...facts }));
      } catch (e) {
        failed++;
        const where = ctx._page && !ctx._page.isClosed() ? ctx._page.url() : null;
        console.log(JSON.stringify({ step: step.name, ok: false, error: String(e && e.message ? e.message : e), page: where }));
      }
    }
  } finally {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.log(JSON.stringify({ step: "harness", ok: false, error: String(e && e.stack ? e.stack : e) }));
  process.exit(2);
});
